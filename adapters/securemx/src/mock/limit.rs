//! Token-bucket rate limiting, one bucket per API key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `rate` tokens per second refill a bucket of `burst` tokens; a request takes one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    /// Parses `N/s`, `N/m` or plain `N` (per second); the burst defaults to
    /// `min(N per second, 100)`, at least 1.
    pub fn parse(text: &str, burst: Option<u32>) -> Result<RateLimit, String> {
        let (n, unit) = match text.split_once('/') {
            Some((n, u)) => (n, u),
            None => (text, "s"),
        };
        let n: f64 = n
            .trim()
            .parse()
            .map_err(|_| format!("rate limit {text:?}: expected N/s or N/m"))?;
        let per_second = match unit.trim() {
            "s" => n,
            "m" => n / 60.0,
            _ => return Err(format!("rate limit {text:?}: unit must be s or m")),
        };
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!("rate limit {text:?} must be positive"));
        }
        let burst = match burst {
            Some(b) if b >= 1 => f64::from(b),
            Some(_) => return Err("burst must be at least 1".into()),
            None => per_second.clamp(1.0, 100.0).floor(),
        };
        Ok(RateLimit { per_second, burst })
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `who`, or says how long until one is there.
    pub fn take(&self, who: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("limiter lock");
        let b = buckets.entry(who.to_string()).or_insert(Bucket {
            tokens: self.limit.burst,
            last: now,
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.limit.per_second).min(self.limit.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - b.tokens) / self.limit.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        assert_eq!(
            RateLimit::parse("200/s", None).unwrap(),
            RateLimit {
                per_second: 200.0,
                burst: 100.0
            }
        );
        assert_eq!(RateLimit::parse("5", None).unwrap().burst, 5.0);
        assert_eq!(RateLimit::parse("1/m", None).unwrap().burst, 1.0);
        assert!(RateLimit::parse("0/s", None).is_err());
        assert!(RateLimit::parse("x/s", None).is_err());
        assert!(RateLimit::parse("5/h", None).is_err());
    }

    #[test]
    fn burst_then_refused_with_a_wait() {
        let l = Limiter::new(RateLimit::parse("1/m", Some(2)).unwrap());
        assert!(l.take("a").is_ok());
        assert!(l.take("a").is_ok());
        let wait = l.take("a").unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        // Buckets are per key.
        assert!(l.take("b").is_ok());
    }
}
