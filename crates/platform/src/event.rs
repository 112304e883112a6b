//! The event envelope: `eventId`, `eventType`, `timestamp`, `source`, and the payload fields
//! flat beside them, exactly as it travels on the bus.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub timestamp: String,
    pub source: String,
    /// W3C trace context of the span that raised the event, so its consumers continue the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(flatten)]
    pub payload: Map<String, Value>,
}

impl Event {
    /// A new event with a fresh id. `payload` must serialise to a JSON object.
    pub fn new(source: &str, event_type: &str, payload: &impl Serialize) -> Event {
        let payload = match serde_json::to_value(payload) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Event {
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            timestamp: crate::time::now(),
            source: source.to_string(),
            traceparent: crate::trace::current().map(|c| c.header()),
            payload,
        }
    }

    /// The payload as a typed struct (unknown fields ignored).
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(Value::Object(self.payload.clone()))
    }

    /// The order this event is about, for logs: `orderId`, or `id` for the order's own events.
    pub fn order_id(&self) -> Option<i64> {
        self.payload.get("orderId").or_else(|| self.payload.get("id")).and_then(Value::as_i64)
    }

    /// The trace context the event was raised in.
    pub fn trace(&self) -> Option<crate::trace::TraceContext> {
        self.traceparent.as_deref().and_then(crate::trace::TraceContext::parse)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An event as stored in an outbox and carried by a bus: its id and type for routing and
/// de-duplication, and its JSON.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub event_id: String,
    pub event_type: String,
    pub body: String,
}

impl From<&Event> for Envelope {
    fn from(e: &Event) -> Self {
        Envelope { event_id: e.event_id.clone(), event_type: e.event_type.clone(), body: e.to_json() }
    }
}
