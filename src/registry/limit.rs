//! The adaptive limit on registry requests in flight, shared by every stage of a command.
//!
//! Fixed high parallelism makes transfers unreliable against registries that throttle (users of
//! oc-mirror and Zarf report it); a fixed low one wastes a WAN link. So the limit adapts, AIMD
//! as TCP does: each request that succeeds grows it by `1/limit` (about one more per round of
//! requests), a 429, a 503 or a connection error halves it (once per round: the requests
//! already in flight when it halved do not halve it again), and a `Retry-After` holds every new
//! request until it has passed. It never leaves `1..=max`.
//!
//! Plain AIMD against a registry with a hard cap of `c` requests climbs back to `c + 1` and is
//! refused again every few rounds. So, as CUBIC does, the limit remembers where it was refused
//! and, in the last request's worth below that point, grows [`PROBE_SLOWDOWN`] times more slowly:
//! it still finds capacity the registry gains, but meets a fixed cap far less often.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The default ceiling on requests in flight (`--max-requests`).
pub const DEFAULT_MAX_REQUESTS: usize = 32;

/// Where the limit starts: high enough to fill a WAN round trip at once, low enough that a
/// throttling registry sees few requests before the first back-off.
const INITIAL: f64 = 8.0;

/// How many times more slowly the limit grows near the point where it was last refused.
const PROBE_SLOWDOWN: f64 = 8.0;

/// The adaptive limit. Cheap to share; [`Limit::acquire`] waits for room.
#[derive(Debug)]
pub struct Limit {
    max: usize,
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    /// Bumped at each halving: a permit taken before it cannot halve again.
    epoch: u64,
    /// No request starts before this (a `Retry-After`).
    hold_until: Option<Instant>,
    /// The limit at the last halving: growth slows in the last request's worth below it.
    refused_at: Option<f64>,
}

/// How a request ended, for the limit to learn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer that is not a sign of overload (any status but 429 and 5xx).
    Success,
    /// 429, 5xx or a connection error: the registry (or the path to it) is overloaded.
    Overloaded,
}

/// One request's place in flight; frees it when dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    limit: &'a Limit,
    epoch: u64,
}

impl Limit {
    /// A limit that never lets more than `max` (at least 1) requests fly at once.
    pub fn new(max: usize) -> Limit {
        let max = max.max(1);
        Limit {
            max,
            state: Mutex::new(State {
                limit: INITIAL.min(max as f64),
                in_flight: 0,
                epoch: 0,
                hold_until: None,
                refused_at: None,
            }),
            freed: Notify::new(),
        }
    }

    /// The ceiling given at construction.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The current limit, rounded down (for tests and progress).
    pub fn current(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.limit as usize)
            .unwrap_or(1)
            .max(1)
    }

    /// True while a `Retry-After` holds new requests.
    pub fn held(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.hold_until.is_some_and(|t| t > Instant::now()))
            .unwrap_or(false)
    }

    /// Waits for room under the limit (and for any `Retry-After` hold to pass).
    pub async fn acquire(&self) -> Permit<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check and the wait wakes us.
            freed.as_mut().enable();
            let hold = {
                let Ok(mut s) = self.state.lock() else {
                    // A poisoned lock means a panic elsewhere; run unlimited rather than hang.
                    return Permit {
                        limit: self,
                        epoch: u64::MAX,
                    };
                };
                match s.hold_until {
                    Some(t) if t > Instant::now() => Some(t),
                    _ => {
                        s.hold_until = None;
                        if s.in_flight < (s.limit as usize).max(1) {
                            s.in_flight += 1;
                            return Permit {
                                limit: self,
                                epoch: s.epoch,
                            };
                        }
                        None
                    }
                }
            };
            match hold {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => freed.await,
            }
        }
    }
}

impl Permit<'_> {
    /// Reports how the request ended; `retry_after` is the registry's `Retry-After`, if any.
    /// The place in flight is freed when the permit drops.
    pub fn finish(&self, outcome: Outcome, retry_after: Option<Duration>) {
        let Ok(mut s) = self.limit.state.lock() else {
            return;
        };
        match outcome {
            Outcome::Success => {
                let near_refusal = s
                    .refused_at
                    .is_some_and(|r| s.limit + 1.0 >= r && s.limit < r);
                let step = if near_refusal {
                    1.0 / (s.limit * PROBE_SLOWDOWN)
                } else {
                    1.0 / s.limit
                };
                s.limit = (s.limit + step).min(self.limit.max as f64);
            }
            Outcome::Overloaded => {
                if self.epoch == s.epoch {
                    s.refused_at = Some(s.limit);
                    s.limit = (s.limit / 2.0).max(1.0);
                    s.epoch += 1;
                }
            }
        }
        if let Some(wait) = retry_after.filter(|w| !w.is_zero()) {
            let until = Instant::now() + wait;
            s.hold_until = Some(s.hold_until.map_or(until, |t| t.max(until)));
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.limit.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.limit.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_on_success_up_to_the_ceiling() {
        let l = Limit::new(12);
        assert_eq!(l.current(), 8);
        for _ in 0..200 {
            let p = l.acquire().await;
            p.finish(Outcome::Success, None);
        }
        assert_eq!(l.current(), 12);
    }

    #[tokio::test]
    async fn halves_once_per_round_of_requests_in_flight() {
        let l = Limit::new(32);
        let a = l.acquire().await;
        let b = l.acquire().await;
        // Both were in flight before the first halving: only one halves.
        a.finish(Outcome::Overloaded, None);
        b.finish(Outcome::Overloaded, None);
        assert_eq!(l.current(), 4);
        drop((a, b));
        let c = l.acquire().await;
        c.finish(Outcome::Overloaded, None);
        assert_eq!(l.current(), 2);
        drop(c);
        for _ in 0..5 {
            let p = l.acquire().await;
            p.finish(Outcome::Overloaded, None);
        }
        assert_eq!(l.current(), 1, "never below one");
    }

    /// Successes until the limit reaches `target` (or 10 000).
    async fn successes_to_reach(l: &Limit, target: usize) -> usize {
        let mut n = 0;
        while l.current() < target && n < 10_000 {
            l.acquire().await.finish(Outcome::Success, None);
            n += 1;
        }
        n
    }

    #[tokio::test]
    async fn climbs_back_quickly_but_probes_slowly_where_it_was_refused() {
        let l = Limit::new(32);
        // Refused at 8: halves to 4.
        l.acquire().await.finish(Outcome::Overloaded, None);
        assert_eq!(l.current(), 4);
        // Back to 7 at the usual pace: growing 1/limit per success takes (b² - a²) / 2 from a
        // to b...
        let back = successes_to_reach(&l, 7).await;
        assert!(back <= (49 - 16) / 2 + 2, "{back} successes from 4 to 7");
        // ...but the last step before the refusal point takes PROBE_SLOWDOWN times longer.
        let probe = successes_to_reach(&l, 8).await;
        // (The usual pace would take about 7.)
        assert!(probe >= 5 * 7, "{probe} successes from 7 to 8");
        // Past it, the usual pace again: capacity the registry gains is still found.
        let beyond = successes_to_reach(&l, 10).await;
        assert!(
            beyond <= (100 - 64) / 2 + 2,
            "{beyond} successes from 8 to 10"
        );
    }

    #[tokio::test]
    async fn waits_for_room_and_for_retry_after() {
        let l = std::sync::Arc::new(Limit::new(1));
        let first = l.acquire().await;
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            let _p = l2.acquire().await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a second request waits at limit 1");
        // A minute's Retry-After: the freed place is not taken while the hold lasts.
        first.finish(Outcome::Overloaded, Some(Duration::from_secs(60)));
        drop(first);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(l.held(), "Retry-After holds new requests");
        assert!(!waiter.is_finished(), "no request starts during the hold");
        waiter.abort();
    }
}
