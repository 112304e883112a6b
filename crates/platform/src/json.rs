//! Request bodies: a JSON extractor whose every rejection is problem+json, and a small
//! validator that names each offending field at once instead of stopping at the first.
//!
//! Bodies are parsed to `serde_json::Value` first and then read field by field, so a wrong
//! type and a missing field both come back as a named field error (400), never a 422 from
//! serde's first complaint or a 500.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::Bytes;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::problem::{FieldError, Problem};

/// Largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON object body. Rejects with 415 (not JSON), 413 (too large) or 400 (malformed, or
/// an object holding a key twice, which parsers read differently: the first, the last, or
/// refused).
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(status, "payload-too-large", format!("the body is larger than {MAX_BODY_BYTES} bytes"))
            } else {
                Problem::bad_request(format!("could not read the body: {rejection}"))
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => match duplicate_key(&bytes) {
                None => Ok(JsonBody(map)),
                Some(key) => {
                    let mut p = Problem::validation(vec![FieldError {
                        field: key.clone(),
                        message: "appears more than once".into(),
                    }]);
                    p.detail = format!("the key {key:?} appears more than once in the body");
                    Err(p)
                }
            },
            Ok(_) => Err(Problem::bad_request("the body must be a JSON object")),
            Err(e) => Err(Problem::bad_request(format!("malformed JSON: {e}"))),
        }
    }
}

/// Walks a JSON document and stops at the first object that holds a key twice, noting the
/// key. `serde_json` would keep the last of them silently, so `{"qty": 1, "qty": 100}`
/// would read as whichever the client's or a proxy's parser did not: refused instead.
#[derive(Clone, Copy)]
struct UniqueKeys<'a>(&'a std::cell::RefCell<Option<String>>);

impl<'de> DeserializeSeed<'de> for UniqueKeys<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let message = format!("the key {key:?} appears more than once");
                *self.0.borrow_mut() = Some(key);
                return Err(serde::de::Error::custom(message));
            }
            map.next_value_seed(self)?;
            seen.insert(key);
        }
        Ok(())
    }
}

/// The first key that some object of `bytes` (well-formed JSON) holds twice, if any.
fn duplicate_key(bytes: &[u8]) -> Option<String> {
    let found = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let _ = UniqueKeys(&found).deserialize(&mut de);
    found.into_inner()
}

/// Reads typed fields out of a JSON object, collecting every error.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a JsonBody) -> Self {
        Fields { map: &body.0, errors: Vec::new() }
    }

    pub fn of(map: &'a Map<String, Value>) -> Self {
        Fields { map, errors: Vec::new() }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.to_string(), message: message.into() });
    }

    fn present(&mut self, field: &str) -> Option<&'a Value> {
        match self.map.get(field) {
            None | Some(Value::Null) => {
                self.error(field, "is required");
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A string of `min..=max` characters (after trimming), without control characters.
    pub fn string(&mut self, field: &str, min: usize, max: usize) -> Option<String> {
        match self.present(field)? {
            Value::String(s) => {
                let s = s.trim();
                let n = s.chars().count();
                if n < min || n > max {
                    self.error(field, format!("must be {min} to {max} characters"));
                    None
                } else if s.chars().any(char::is_control) {
                    self.error(field, "must not contain control characters");
                    None
                } else {
                    Some(s.to_string())
                }
            }
            _ => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    /// An integer within `min..=max`. Floats with a fraction and numeric strings are refused.
    pub fn int(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        match self.present(field)? {
            Value::Number(n) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Some(v),
                Some(_) => {
                    self.error(field, format!("must be between {min} and {max}"));
                    None
                }
                None => {
                    self.error(field, format!("must be a whole number between {min} and {max}"));
                    None
                }
            },
            _ => {
                self.error(field, "must be a number");
                None
            }
        }
    }

    /// A positive id.
    pub fn id(&mut self, field: &str) -> Option<i64> {
        self.int(field, 1, i64::MAX)
    }

    /// Ends validation: every collected error at once, as one 400.
    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Problem::validation(self.errors))
        }
    }
}

/// `Some` values once validation passed. Call after `finish()` succeeded.
pub fn checked<T>(v: Option<T>) -> Result<T, Problem> {
    v.ok_or_else(|| Problem::bad_request("invalid body"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_bad_field_is_named_once() {
        let m = map(json!({"qty": "3", "amt": 1.5, "name": ""}));
        let mut f = Fields::of(&m);
        f.int("qty", 1, 100);
        f.int("amt", 0, 10);
        f.string("name", 1, 10);
        f.string("missing", 1, 10);
        let p = f.finish().unwrap_err();
        let names: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["qty", "amt", "name", "missing"]);
        assert_eq!(p.status, 400);
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        for bad in ["a\u{0}b", "\u{1b}[31m", "latte\u{7}", "x\u{7f}", "x\u{85}y"] {
            let m = map(json!({ "name": bad }));
            let mut f = Fields::of(&m);
            assert_eq!(f.string("name", 1, 10), None, "{bad:?}");
            assert_eq!(f.finish().unwrap_err().fields(), ["name"], "{bad:?}");
        }
    }

    #[test]
    fn a_key_twice_is_found_at_any_depth() {
        assert_eq!(duplicate_key(br#"{"qty": 1, "qty": 2}"#).as_deref(), Some("qty"));
        assert_eq!(duplicate_key(br#"{"q\u0074y": 1, "qty": 2}"#).as_deref(), Some("qty"));
        assert_eq!(duplicate_key(br#"{"a": [{"b": 1, "b": 1}]}"#).as_deref(), Some("b"));
        assert_eq!(duplicate_key(br#"{"a": {"b": 1}, "b": {"a": 2}, "c": [1, "x", null]}"#), None);
    }

    #[test]
    fn good_fields_pass() {
        let m = map(json!({"qty": 3, "name": " latte "}));
        let mut f = Fields::of(&m);
        assert_eq!(f.int("qty", 1, 100), Some(3));
        assert_eq!(f.string("name", 1, 10).as_deref(), Some("latte"));
        assert!(f.finish().is_ok());
    }
}
