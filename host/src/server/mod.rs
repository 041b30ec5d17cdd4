//! `server`: listeners, connections, dispatch, 4lw.
