//! Orders and revenue per minute, counted from `Ordered` events (and, when a manager's page
//! is rendered, from the order API, so a fresh replica does not start from nothing), drawn
//! on the server as an SVG: bars for orders, a line for revenue.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use time::OffsetDateTime;

/// Minutes shown.
pub const MINUTES: i64 = 30;

#[derive(Debug, Default)]
pub struct Chart {
    /// Per minute since the epoch: orders and revenue.
    minutes: BTreeMap<i64, (u64, i64)>,
    counted: HashSet<i64>,
}

impl Chart {
    /// Counts order `id` (once, however often it is told) at `create_time` (RFC 3339).
    pub fn count(&mut self, id: i64, create_time: &str, amt: i64) {
        let Ok(at) = OffsetDateTime::parse(create_time, &time::format_description::well_known::Rfc3339) else {
            return;
        };
        if !self.counted.insert(id) {
            return;
        }
        let minute = at.unix_timestamp().div_euclid(60);
        let slot = self.minutes.entry(minute).or_default();
        slot.0 += 1;
        slot.1 += amt;
        // Forget what has left the chart.
        let oldest = minute - 4 * MINUTES;
        while self.minutes.first_key_value().is_some_and(|(m, _)| *m < oldest) {
            self.minutes.pop_first();
        }
        if self.counted.len() > 200_000 {
            self.counted.clear();
        }
    }

    /// The last [`MINUTES`] minutes up to `now`: (minute, orders, revenue).
    pub fn series(&self, now: OffsetDateTime) -> Vec<(i64, u64, i64)> {
        let last = now.unix_timestamp().div_euclid(60);
        (last - MINUTES + 1..=last)
            .map(|m| {
                let (n, r) = self.minutes.get(&m).copied().unwrap_or_default();
                (m, n, r)
            })
            .collect()
    }

    /// The chart as an SVG element with id `chart`, described for screen readers.
    pub fn svg(&self, now: OffsetDateTime) -> String {
        let series = self.series(now);
        let (w, h, left, bottom, top) = (600.0_f64, 220.0_f64, 40.0_f64, 24.0_f64, 12.0_f64);
        let plot_h = h - bottom - top;
        let max_n = series.iter().map(|s| s.1).max().unwrap_or(0).max(1) as f64;
        let max_r = series.iter().map(|s| s.2).max().unwrap_or(0).max(1) as f64;
        let total_n: u64 = series.iter().map(|s| s.1).sum();
        let total_r: i64 = series.iter().map(|s| s.2).sum();
        let step = (w - left - 8.0) / series.len() as f64;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg id="chart" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title" data-orders="{total_n}" data-revenue="{total_r}"><title id="chart-title">Orders and revenue per minute, last {MINUTES} minutes: {total_n} orders, revenue {total_r}</title>"#
        );
        let _ = write!(svg, r#"<line x1="{left}" y1="{}" x2="{w}" y2="{}" class="axis"/>"#, h - bottom, h - bottom);
        let _ = write!(svg, r#"<text x="4" y="{}" class="tick">{}</text>"#, top + 8.0, max_n as u64);
        let _ = write!(svg, r#"<text x="4" y="{}" class="tick">0</text>"#, h - bottom);
        let mut line = String::new();
        for (i, (minute, n, r)) in series.iter().enumerate() {
            let x = left + i as f64 * step;
            let bar = plot_h * (*n as f64) / max_n;
            if *n > 0 {
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{} orders</title></rect>"#,
                    x + 1.0,
                    h - bottom - bar,
                    (step - 2.0).max(1.0),
                    bar,
                    n
                );
            }
            let y = h - bottom - plot_h * (*r as f64) / max_r;
            let _ = write!(line, "{}{:.1},{:.1}", if i == 0 { "" } else { " " }, x + step / 2.0, y);
            if i % 10 == 0 || i + 1 == series.len() {
                let t = OffsetDateTime::from_unix_timestamp(minute * 60).unwrap_or(now);
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{}" class="tick">{:02}:{:02}</text>"#,
                    x,
                    h - 6.0,
                    t.hour(),
                    t.minute()
                );
            }
        }
        let _ = write!(svg, r#"<polyline class="revenue" points="{line}"/>"#);
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_counts_once_in_its_minute() {
        let mut c = Chart::default();
        let now =
            OffsetDateTime::parse("2026-12-03T10:15:59.000Z", &time::format_description::well_known::Rfc3339).unwrap();
        c.count(1, "2026-12-03T10:15:30.100Z", 9000);
        c.count(1, "2026-12-03T10:15:30.100Z", 9000);
        c.count(2, "2026-12-03T10:14:01.000Z", 4500);
        let s = c.series(now);
        assert_eq!(s.len() as i64, MINUTES);
        assert_eq!(s.last().map(|x| (x.1, x.2)), Some((1, 9000)));
        assert_eq!(s[s.len() - 2].1, 1);
        assert!(c.svg(now).contains(r#"data-orders="2""#));
    }
}
