//! Sessions end to end against real server processes: how a session lives
//! and ends, and how a client keeps it across broken connections and
//! restarts.

/// Timeout negotiation, resuming, keepalive pings, expiry and close.
mod lifecycle;
/// Reconnection across a restarted server, cut connections and dead addresses.
mod reconnect;
