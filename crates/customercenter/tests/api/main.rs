//! The customer center against a real SQLite database and embedded bus: events handed to
//! the consumer by hand or through the bus, rows read through the router without a socket.

mod auth;
mod helpers;
mod mypages;
