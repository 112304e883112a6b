//! Golden JSON fixtures, one per event: each typed event serialises to its fixture, and each
//! fixture reads back as that event, so the wire format of SPEC §5 cannot drift unnoticed.

use contracts::{Event, EventType, Payload};
use platform::event::Undecodable;
use platform::Envelope;
use serde_json::Value;

/// The event each fixture holds, in `EventType::ALL` order, with its source.
fn expected() -> Vec<(Payload, &'static str)> {
    let sources = [
        "order", "order", "payment", "payment", "drink", "drink", "drink", "drink", "delivery", "delivery", "delivery",
    ];
    contracts::events::examples().into_iter().zip(sources).collect()
}

fn fixture(event_type: EventType) -> Value {
    let path = format!("{}/tests/fixtures/{}.json", env!("CARGO_MANIFEST_DIR"), event_type.as_str());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn event(n: usize, payload: Payload, source: &str) -> Event {
    Event {
        event_id: format!("7c3e1a52-0b8f-4d6e-9a41-{n:012}"),
        timestamp: "2026-12-03T10:15:30.123Z".into(),
        source: source.into(),
        payload,
        headers: Default::default(),
    }
}

#[test]
fn every_event_type_has_a_fixture_and_an_expected_event() {
    let kinds: Vec<EventType> = expected().iter().map(|(p, _)| p.kind()).collect();
    assert_eq!(kinds, EventType::ALL);
}

#[test]
fn each_event_serialises_to_its_fixture() {
    for (n, (payload, source)) in expected().into_iter().enumerate() {
        let kind = payload.kind();
        let written = serde_json::to_value(event(n + 1, payload, source)).unwrap();
        assert_eq!(written, fixture(kind), "{kind:?} drifted from its fixture");
    }
}

#[test]
fn each_fixture_reads_as_its_event() {
    for (n, (payload, source)) in expected().into_iter().enumerate() {
        let kind = payload.kind();
        let read: Event = serde_json::from_value(fixture(kind)).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(read, event(n + 1, payload, source));
    }
}

fn envelope(event_type: &str, body: String) -> Envelope {
    Envelope { event_id: "e-1".into(), event_type: event_type.into(), body, headers: Default::default() }
}

#[test]
fn an_unknown_type_and_an_unreadable_payload_are_explicit_outcomes() {
    let unknown = envelope("Teleported", r#"{"eventType":"Teleported","id":1}"#.into());
    assert!(matches!(unknown.decode::<Payload>(), Err(Undecodable::UnknownType(t)) if t == "Teleported"));

    let mut made = fixture(EventType::Made);
    made["orderId"] = Value::String("eight".into());
    let unreadable = envelope("Made", made.to_string());
    assert!(matches!(unreadable.decode::<Payload>(), Err(Undecodable::Unreadable { .. })));

    let mut missing = fixture(EventType::Delivered);
    missing.as_object_mut().unwrap().remove("status");
    assert!(envelope("Delivered", missing.to_string()).decode::<Payload>().is_err());
}

#[test]
fn a_decoded_event_keeps_the_headers_that_travelled_beside_it() {
    let mut e = envelope("Made", fixture(EventType::Made).to_string());
    e.headers.insert("traceparent".into(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    let event = e.decode::<Payload>().unwrap();
    assert_eq!(event.headers, e.headers);
    assert_eq!(e.event_type, "Made");
    assert!(!serde_json::to_string(&event).unwrap().contains("traceparent"), "headers stay out of the JSON");
}
