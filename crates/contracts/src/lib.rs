//! What the cafe's services say to each other, declared once.
//!
//! - [`ServiceName`]: who is who, for wiring (`cafe up`, `cafe serve`, `cafe cluster`, the
//!   gateway's route table) and for the `source` of events.
//!
//! One crate rather than a module per service: every consumer reads events from several
//! producers (the customer center from four), and a golden fixture per event pins the wire
//! form in one place. It holds types and their JSON only; no service logic.

mod service;

pub use service::ServiceName;
