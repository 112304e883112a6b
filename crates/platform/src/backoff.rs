//! How long to wait before trying again: one exponential backoff for every loop that retries
//! against something that may be down (the outbox relay, redelivery to a consumer, a NATS
//! pull, a restarted instance of the cluster).
//!
//! Without jitter: the loops that retry are few (a relay and a consumer or two per service),
//! not a herd of clients to spread out.

use std::time::Duration;

/// Delays that double from `first` up to `max`, and start over at `first` after [`reset`].
///
/// [`reset`]: Backoff::reset
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, next: first }
    }

    /// The delay to wait now; the one after is twice as long, at most `max`.
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(self.max);
        now
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_after_a_reset() {
        let mut b = Backoff::new(ms(50), ms(300));
        let seen: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(seen, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(50));
    }
}
