//! `consensus`: the seam between the server and the replicated log.
