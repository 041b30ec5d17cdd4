//! `session`: session liveness and expiry decisions.
