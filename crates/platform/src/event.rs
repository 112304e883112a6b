//! The event envelope, `eventId`, `timestamp`, `source` and the payload flat beside them,
//! generic over the payload: `platform` knows how events travel, the `contracts` crate what
//! they say.
//!
//! [`Event`] is what services raise and handle; [`Envelope`] is what an outbox stores and a
//! bus carries: the id and type for routing and de-duplication, the JSON, and headers (the
//! trace context) that travel beside the JSON rather than inside it, so the JSON is exactly
//! the contract.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What an event says: the set of a system's events, a serde enum tagged by `eventType`.
pub trait Payload: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    /// The `eventType` it travels as.
    fn event_type(&self) -> &'static str;

    /// The order (the aggregate) it is about: for logs, and for keeping one order's events
    /// together.
    fn order_id(&self) -> i64;

    /// Is `event_type` one of the payload's types? An event whose type is not is an
    /// [`Undecodable::UnknownType`], not an unreadable one.
    fn knows(event_type: &str) -> bool;
}

/// Headers travelling beside an event's JSON (the W3C trace context).
pub type Headers = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event<P> {
    pub event_id: String,
    pub timestamp: String,
    pub source: String,
    #[serde(flatten)]
    pub payload: P,
    /// Carried beside the JSON: stamped when the event is raised, read when it is handled.
    #[serde(skip)]
    pub headers: Headers,
}

impl<P: Payload> Event<P> {
    /// A new event from `source` with a fresh id, stamped with the current trace context.
    pub fn new(source: &str, payload: P) -> Event<P> {
        let mut headers = Headers::new();
        crate::trace::inject(&mut headers);
        Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            timestamp: crate::time::now(),
            source: source.to_string(),
            payload,
            headers,
        }
    }

    pub fn event_type(&self) -> &'static str {
        self.payload.event_type()
    }

    pub fn order_id(&self) -> i64 {
        self.payload.order_id()
    }

    /// The event as an outbox stores it.
    pub fn envelope(&self) -> Result<Envelope, serde_json::Error> {
        Ok(Envelope {
            event_id: self.event_id.clone(),
            event_type: self.event_type().to_string(),
            body: serde_json::to_string(self)?,
            headers: self.headers.clone(),
        })
    }
}

/// An event as stored in an outbox and carried by a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub headers: Headers,
}

/// Why an event that arrived could not be handed to its handler.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unreadable {event_type}: {error}")]
    Unreadable { event_type: String, error: serde_json::Error },
}

impl Undecodable {
    /// The `reason` label of the rejected-events metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Undecodable::UnknownType(_) => "unknown_type",
            Undecodable::Unreadable { .. } => "unreadable",
        }
    }
}

impl Envelope {
    /// The typed event, or why there is none.
    pub fn decode<P: Payload>(&self) -> Result<Event<P>, Undecodable> {
        if !P::knows(&self.event_type) {
            return Err(Undecodable::UnknownType(self.event_type.clone()));
        }
        let mut event: Event<P> = serde_json::from_str(&self.body)
            .map_err(|error| Undecodable::Unreadable { event_type: self.event_type.clone(), error })?;
        event.headers = self.headers.clone();
        Ok(event)
    }

    /// The headers as stored in an outbox or event log column.
    pub fn headers_json(&self) -> String {
        if self.headers.is_empty() {
            return String::new();
        }
        // A map of strings always serialises.
        serde_json::to_string(&self.headers).expect("a map of strings serialises")
    }

    /// Headers read back from [`Envelope::headers_json`]; a column written before headers
    /// existed is empty.
    pub fn headers_from_json(stored: &str) -> Headers {
        if stored.is_empty() {
            return Headers::new();
        }
        serde_json::from_str(stored).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "unreadable event headers ignored");
            Headers::new()
        })
    }
}
