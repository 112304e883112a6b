//! The delivery center against a real SQLite database and embedded bus: events handed to
//! the consumer by hand or through the bus, pages read through the router without a socket.

mod auth;
mod helpers;
mod pages;
