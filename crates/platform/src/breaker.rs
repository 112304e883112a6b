//! A circuit breaker with the original's Hystrix settings: a 10 s rolling window of 1 s
//! buckets; it opens when the window holds at least 20 calls of which at least 10% failed;
//! while open, calls fail at once; after 5 s one trial call goes through (half-open): its
//! success closes the circuit, its failure opens it again.
//!
//! [`State`] is the pure state machine, driven by an explicit clock (`Duration` since any
//! fixed origin) so tests can step time; [`Breaker`] wraps it for concurrent use.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub window: Duration,
    pub buckets: u32,
    pub min_calls: u32,
    pub failure_ratio: f64,
    pub open_for: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            window: Duration::from_secs(10),
            buckets: 10,
            min_calls: 20,
            failure_ratio: 0.10,
            open_for: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Closed => "CLOSED",
            Phase::Open => "OPEN",
            Phase::HalfOpen => "HALF_OPEN",
        }
    }
}

/// Refused without calling: the circuit is open. Retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket-length slot of time this bucket counts; stale when older than the window.
    slot: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug, Clone)]
pub struct State {
    settings: Settings,
    phase: Phase,
    opened_at: Duration,
    trial_in_flight: bool,
    buckets: Vec<Bucket>,
}

impl State {
    pub fn new(settings: Settings) -> State {
        State {
            settings,
            phase: Phase::Closed,
            opened_at: Duration::ZERO,
            trial_in_flight: false,
            buckets: vec![Bucket::default(); settings.buckets.max(1) as usize],
        }
    }

    fn bucket_len(&self) -> Duration {
        self.settings.window / self.settings.buckets.max(1)
    }

    fn slot(&self, now: Duration) -> u64 {
        (now.as_nanos() / self.bucket_len().as_nanos().max(1)) as u64
    }

    /// Calls and failures in the window ending at `now`.
    pub fn counts(&self, now: Duration) -> (u32, u32) {
        let current = self.slot(now);
        let n = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|b| b.slot + n > current && b.slot <= current)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
    }

    pub fn phase(&self, now: Duration) -> Phase {
        match self.phase {
            Phase::Open if now >= self.opened_at + self.settings.open_for => Phase::HalfOpen,
            p => p,
        }
    }

    /// May a call go out now? While half-open only one trial at a time.
    pub fn try_acquire(&mut self, now: Duration) -> Result<(), Rejected> {
        match self.phase(now) {
            Phase::Closed => Ok(()),
            Phase::Open => Err(Rejected { retry_after: (self.opened_at + self.settings.open_for).saturating_sub(now) }),
            Phase::HalfOpen => {
                if self.trial_in_flight {
                    Err(Rejected { retry_after: Duration::from_secs(1) })
                } else {
                    self.phase = Phase::HalfOpen;
                    self.trial_in_flight = true;
                    Ok(())
                }
            }
        }
    }

    /// The outcome of a call that `try_acquire` let through.
    pub fn record(&mut self, now: Duration, success: bool) {
        if self.phase == Phase::HalfOpen {
            self.trial_in_flight = false;
            if success {
                self.phase = Phase::Closed;
                self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
            } else {
                self.open(now);
            }
            return;
        }
        let slot = self.slot(now);
        let n = self.buckets.len();
        let bucket = &mut self.buckets[(slot % n as u64) as usize];
        if bucket.slot != slot {
            *bucket = Bucket { slot, calls: 0, failures: 0 };
        }
        bucket.calls += 1;
        if !success {
            bucket.failures += 1;
        }
        if self.phase == Phase::Closed {
            let (calls, failures) = self.counts(now);
            if calls >= self.settings.min_calls && f64::from(failures) >= self.settings.failure_ratio * f64::from(calls)
            {
                self.open(now);
            }
        }
    }

    fn open(&mut self, now: Duration) {
        self.phase = Phase::Open;
        self.opened_at = now;
        self.trial_in_flight = false;
    }
}

/// A breaker shared by every caller of one dependency.
pub struct Breaker {
    origin: Instant,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(settings: Settings) -> Breaker {
        Breaker { origin: Instant::now(), state: Mutex::new(State::new(settings)) }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    // A std Mutex: held for a few arithmetic steps, never across an await.
    fn with<T>(&self, f: impl FnOnce(&mut State, Duration) -> T) -> T {
        let now = self.now();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s, now)
    }

    pub fn try_acquire(&self) -> Result<(), Rejected> {
        self.with(|s, now| s.try_acquire(now))
    }

    pub fn record(&self, success: bool) {
        self.with(|s, now| s.record(now, success))
    }

    pub fn phase(&self) -> Phase {
        self.with(|s, now| s.phase(now))
    }

    /// State and counts, for health details and metrics.
    pub fn snapshot(&self) -> Value {
        self.with(|s, now| {
            let (calls, failures) = s.counts(now);
            json!({ "status": "UP", "details": { "state": s.phase(now).as_str(), "calls": calls, "failures": failures } })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn calls(state: &mut State, at: f64, ok: u32, failed: u32) {
        for _ in 0..ok {
            state.try_acquire(secs(at)).unwrap();
            state.record(secs(at), true);
        }
        for _ in 0..failed {
            state.try_acquire(secs(at)).unwrap();
            state.record(secs(at), false);
        }
    }

    /// A circuit (default settings) opened at 1 s by twenty failed calls.
    fn opened() -> State {
        let mut s = State::new(Settings::default());
        calls(&mut s, 1.0, 0, 20);
        s
    }

    /// [`opened`], its sleep window over and its trial call let through at 6 s.
    fn on_trial() -> State {
        let mut s = opened();
        s.try_acquire(secs(6.0)).unwrap();
        s
    }

    #[test]
    fn stays_closed_below_the_minimum_number_of_calls() {
        let mut s = State::new(Settings::default());
        calls(&mut s, 1.0, 0, 19);
        assert_eq!(s.phase(secs(1.0)), Phase::Closed);
    }

    #[test]
    fn stays_closed_below_the_failure_ratio() {
        let mut s = State::new(Settings::default());
        calls(&mut s, 1.0, 28, 3); // 9.7%
        assert_eq!(s.phase(secs(1.0)), Phase::Closed);
    }

    #[test]
    fn opens_at_twenty_calls_and_ten_percent_then_fails_fast() {
        let mut s = State::new(Settings::default());
        calls(&mut s, 1.0, 18, 1);
        assert_eq!(s.phase(secs(1.0)), Phase::Closed);
        calls(&mut s, 1.5, 0, 1); // 20 calls, 2 failures = 10%
        assert_eq!(s.phase(secs(1.5)), Phase::Open);
        let r = s.try_acquire(secs(2.5)).unwrap_err();
        assert_eq!(r.retry_after, secs(4.0));
    }

    #[test]
    fn old_calls_leave_the_rolling_window() {
        let mut s = State::new(Settings::default());
        calls(&mut s, 0.5, 0, 10);
        calls(&mut s, 11.0, 10, 0); // the failures are more than 10 s old
        assert_eq!(s.counts(secs(11.0)), (10, 0));
        assert_eq!(s.phase(secs(11.0)), Phase::Closed);
    }

    #[test]
    fn half_open_after_the_sleep_window_lets_one_trial_through() {
        let mut s = opened();
        assert!(s.try_acquire(secs(5.9)).is_err());
        assert_eq!(s.phase(secs(6.0)), Phase::HalfOpen);
        assert!(s.try_acquire(secs(6.0)).is_ok());
        assert!(s.try_acquire(secs(6.1)).is_err(), "only one trial at a time");
    }

    #[test]
    fn a_successful_trial_closes_the_circuit() {
        let mut s = on_trial();
        s.record(secs(6.2), true);
        assert_eq!(s.phase(secs(6.2)), Phase::Closed);
        assert_eq!(s.counts(secs(6.2)), (0, 0));
        assert!(s.try_acquire(secs(6.3)).is_ok());
    }

    #[test]
    fn a_failed_trial_opens_it_again() {
        let mut s = on_trial();
        s.record(secs(6.5), false);
        assert_eq!(s.phase(secs(6.5)), Phase::Open);
        assert!(s.try_acquire(secs(11.0)).is_err());
        assert_eq!(s.phase(secs(11.5)), Phase::HalfOpen);
    }
}
