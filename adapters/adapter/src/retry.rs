//! The one retry policy and the one retry driver: exponential backoff with
//! equal jitter (a random point in the upper half of each step), within an
//! attempt budget, never shorter than a backend's own `Retry-After`.
//!
//! The engine drives a step's attempts with it ([`Backoff`]), the outbox
//! spaces its deliveries with it ([`RetryPolicy::delay`]), and the one
//! adapter that waits in place (the Secure MX client, out of a short 429)
//! uses it too. Adapters otherwise only classify errors; they never retry
//! across attempts on their own (kube-rs's error_policy idea).

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts per step, the first included.
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay_ms: 200,
            max_delay_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2, 3, ...): equal jitter, a random
    /// point in `[cap/2, cap]` where `cap = base * 2^(n-2)` bounded by
    /// `max_delay` (half the wait is certain, so a burst of failures spreads
    /// out without ever retrying at once), and never less than the backend's
    /// own `Retry-After`.
    pub fn delay(&self, next_attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(20);
        let cap = self
            .base_delay_ms
            .saturating_mul(1u64 << exp)
            .min(self.max_delay_ms)
            .max(1);
        let jittered = cap / 2 + rand::random_range(0..=cap / 2);
        let d = Duration::from_millis(jittered);
        match retry_after {
            Some(ra) if ra > d => ra,
            _ => d,
        }
    }

    /// The driver of one operation's tries under this policy.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            tries: 1,
        }
    }
}

/// One operation's tries: after each failure that may be retried, the wait
/// before the next try, until the budget is spent.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    /// Tries made so far, the one in flight included.
    tries: u32,
}

impl Backoff {
    /// Tries made so far (the first is 1).
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The last try failed and may be retried: the wait before the next, or
    /// `None` when the budget is spent. `hint`: the backend's `Retry-After`.
    pub fn next(&mut self, hint: Option<Duration>) -> Option<Duration> {
        if self.tries >= self.policy.max_attempts {
            return None;
        }
        self.tries += 1;
        Some(self.policy.delay(self.tries, hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay_ms: 100,
            max_delay_ms: 1000,
        };
        for _ in 0..200 {
            let d2 = p.delay(2, None).as_millis();
            assert!((50..=100).contains(&d2), "{d2}");
            let d4 = p.delay(4, None).as_millis();
            assert!((200..=400).contains(&d4), "{d4}");
            let d9 = p.delay(9, None).as_millis();
            assert!((500..=1000).contains(&d9), "{d9}");
        }
    }

    #[test]
    fn a_backoff_spends_its_budget_and_honours_hints() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay_ms: 10,
            max_delay_ms: 20,
        };
        let mut b = p.backoff();
        assert_eq!(b.tries(), 1);
        let d = b.next(None).unwrap();
        assert!((5..=10).contains(&d.as_millis()), "{d:?}");
        assert_eq!(
            b.next(Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(b.tries(), 3);
        assert_eq!(b.next(None), None, "three tries, no fourth");
    }

    #[test]
    fn honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
