//! Timestamps: RFC 3339, UTC, milliseconds, as every body and event carries them.

use time::format_description::well_known::iso8601::{Config, EncodedConfig, Iso8601, TimePrecision};
pub use time::OffsetDateTime;

const FORMAT: EncodedConfig =
    Config::DEFAULT.set_time_precision(TimePrecision::Second { decimal_digits: std::num::NonZeroU8::new(3) }).encode();

/// Now, e.g. `2026-11-25T13:31:03.123Z`.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

pub fn format(t: OffsetDateTime) -> String {
    t.format(&Iso8601::<FORMAT>).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn millisecond_utc() {
        let s = super::now();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z'));
        assert!(time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339).is_ok());
    }
}
