//! What the cafe's services say to each other, declared once.
//!
//! - [`events`]: every event of SPEC §5 as a typed struct, their set [`Payload`] (a serde
//!   enum tagged by `eventType`), and [`Event`], the envelope around one.
//! - [`calls`]: the request and answer of every synchronous call (SPEC §6).
//! - [`status`]: the statuses those carry, spelled once.
//! - [`PhoneNumber`]: how a customer is known, by identity, order and their token.
//! - [`ServiceName`]: who is who, for wiring and for the `source` of events.
//!
//! One crate rather than a module per service: every consumer reads events from several
//! producers (the customer center from four), and a golden fixture per event pins the wire
//! form in one place. It holds types and their JSON only; no service logic.

pub mod calls;
pub mod events;
mod phone;
mod service;
pub mod status;

pub use events::{Event, EventType, Payload};
pub use phone::PhoneNumber;
pub use service::ServiceName;
pub use status::{DeliveryStatus, DrinkStatus, OrderStatus, PaymentStatus};
