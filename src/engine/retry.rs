//! The one retry policy: exponential backoff with full jitter, within a
//! per-step attempt budget. Adapters only classify errors; they never sleep
//! and retry on their own across attempts (kube-rs's error_policy idea).

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
    /// Delay before attempt `next_attempt` (2, 3, ...): a random point in
    /// `[cap/2, cap]` where `cap = base * 2^(n-2)` bounded by `max_delay`, and
    /// never less than the backend's own `Retry-After`.
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
    fn honours_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(2, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
