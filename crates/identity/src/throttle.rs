//! Slowing down password guessing: per user name, after [`LIMIT`] failed sign-ins within
//! [`WINDOW`], further attempts are refused (429) until the oldest failure leaves the window,
//! even with the right password, so a guesser cannot learn that a guess was right. A success
//! clears the name's failures.
//!
//! The record is kept in memory, **per instance**: with several replicas of identity behind
//! a load balancer a guesser gets `LIMIT` tries per replica per window. It is bounded: at most
//! [`MAX_NAMES`] user names are tracked; when full, names whose failures have all left the
//! window are dropped, and then the name that failed least recently. Pushing a victim's name
//! out that way takes `MAX_NAMES` failed sign-ins, each costing the server a password hash,
//! which no guesser gets through within one window.
//!
//! Failures are counted per user name whether or not the account exists: otherwise a 429
//! would tell which names do.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed sign-ins allowed per user name within [`WINDOW`].
pub const LIMIT: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
/// User names tracked at most.
pub const MAX_NAMES: usize = 10_000;

/// Where the time comes from: the real clock, or a test's.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The failed sign-ins of the last [`WINDOW`], by user name.
pub struct Throttle {
    clock: Clock,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Throttle")
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::with_clock(Arc::new(Instant::now))
    }
}

impl Throttle {
    pub fn with_clock(clock: Clock) -> Throttle {
        Throttle { clock, failures: Mutex::new(HashMap::new()) }
    }

    /// Starts a sign-in for `name`: `Err(seconds to wait)` if it has failed too often.
    ///
    /// The attempt counts as a failure from now until [`Throttle::succeeded`] says otherwise,
    /// so guesses sent in parallel cannot all slip in before the first failure is counted.
    pub fn attempt(&self, name: &str) -> Result<(), u64> {
        let now = (self.clock)();
        // A std mutex: held for a few map operations, never across an `.await`.
        let mut failures = self.failures.lock().expect("the throttle lock");
        if let Some(times) = failures.get_mut(name) {
            forget_expired(times, now);
            if times.len() >= LIMIT {
                let oldest = times[0];
                let wait = (oldest + WINDOW).saturating_duration_since(now);
                return Err(whole_seconds(wait));
            }
        } else if failures.len() >= MAX_NAMES {
            make_room(&mut failures, now);
        }
        failures.entry(name.to_string()).or_default().push_back(now);
        Ok(())
    }

    /// The sign-in for `name` succeeded: its failures are forgotten.
    pub fn succeeded(&self, name: &str) {
        self.failures.lock().expect("the throttle lock").remove(name);
    }

    /// How many user names are tracked now.
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("the throttle lock").len()
    }
}

fn forget_expired(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW) {
        times.pop_front();
    }
}

/// Drops every name with no failure left in the window; if none was, the name whose last
/// failure is oldest.
fn make_room(failures: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
    failures.retain(|_, times| {
        forget_expired(times, now);
        !times.is_empty()
    });
    if failures.len() >= MAX_NAMES {
        let stalest = failures.iter().min_by_key(|(_, times)| times.back().copied()).map(|(name, _)| name.clone());
        if let Some(name) = stalest {
            failures.remove(&name);
        }
    }
}

/// Seconds to wait, rounded up, and at least one: `Retry-After: 0` would invite a retry
/// that is still refused.
fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A throttle on a clock the test moves, and the hand that moves it (in milliseconds).
    fn throttle() -> (Throttle, Arc<AtomicU64>) {
        let start = Instant::now();
        let elapsed = Arc::new(AtomicU64::new(0));
        let at = elapsed.clone();
        let t = Throttle::with_clock(Arc::new(move || start + Duration::from_millis(at.load(Ordering::SeqCst))));
        (t, elapsed)
    }

    #[test]
    fn the_sixth_attempt_within_a_minute_waits_for_the_oldest_failure_to_leave() {
        let (t, ms) = throttle();
        for i in 0..LIMIT as u64 {
            ms.store(i * 1000, Ordering::SeqCst);
            assert_eq!(t.attempt("kim"), Ok(()));
        }
        ms.store(10_000, Ordering::SeqCst);
        assert_eq!(t.attempt("kim"), Err(50), "the first failure, at 0 s, leaves at 60 s");
        ms.store(59_500, Ordering::SeqCst);
        assert_eq!(t.attempt("kim"), Err(1), "rounded up");
        assert_eq!(t.attempt("lee"), Ok(()), "other names are not affected");
        ms.store(60_000, Ordering::SeqCst);
        assert_eq!(t.attempt("kim"), Ok(()), "one failure has left the window");
        assert_eq!(t.attempt("kim"), Err(1), "and the failure just made fills it again");
    }

    #[test]
    fn a_success_clears_the_failures() {
        let (t, _) = throttle();
        for _ in 0..LIMIT - 1 {
            t.attempt("kim").unwrap();
        }
        t.attempt("kim").unwrap();
        t.succeeded("kim");
        for _ in 0..LIMIT {
            assert_eq!(t.attempt("kim"), Ok(()));
        }
        assert!(t.attempt("kim").is_err());
    }

    #[test]
    fn the_record_stays_bounded() {
        let (t, ms) = throttle();
        for i in 0..MAX_NAMES {
            t.attempt(&format!("user{i}")).unwrap();
        }
        assert_eq!(t.tracked(), MAX_NAMES);
        // Full, with every failure still in the window: the stalest name makes room.
        ms.store(1, Ordering::SeqCst);
        t.attempt("newcomer").unwrap();
        assert_eq!(t.tracked(), MAX_NAMES);
        // Once the window has passed, the expired names all go.
        ms.store(61_000, Ordering::SeqCst);
        t.attempt("late").unwrap();
        assert_eq!(t.tracked(), 1);
    }
}
