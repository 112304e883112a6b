//! Delivery against a real SQLite database and embedded bus: one test binary, requests
//! through the router without a socket, the `Made` consumer driven by hand or through the bus.
//! Auth is off but in `auth`, which runs them signed.

mod auth;
mod cancellations;
mod deliveries;
mod helpers;
