//! The webhook's defences against hostile and oversized input: anyone who can
//! reach `POST /v1/contracts` can post, signed or not.
//!
//! - **One size limit**, [`MAX_ENVELOPE_BYTES`] (what `contract check`
//!   accepts), read by [`read_body`] with a bound: a body over it is read to
//!   the limit plus one byte, then refused as JSON (413) and recorded, however
//!   large the sender says or makes it.
//! - **A budget of refusals per address** ([`RefusalLimiter`]): every refused
//!   submission spends one; an address whose budget is spent gets 429 without
//!   its body being read or anything recorded, only counted
//!   (`hostwright_intake_rate_limited_total`), until the budget refills.
//!   Accepted submissions spend nothing, so a busy contract system is never
//!   slowed by it.
//! - **Retention** ([`prune_rejections`], run by [`run_housekeeping`]):
//!   refusals older than `[intake] rejection_retention_days` are deleted.
//!
//! What a refusal keeps of the body (digest, size, a prefix) is
//! [`super::store::Rejection::of_body`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use chrono::{DateTime, Utc};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter, clock::DefaultClock};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tracing::{info, warn};

use super::Engine;
use super::intake::{IntakeError, IntakeResult};
use super::store::StoreError;
pub use crate::signing::MAX_ENVELOPE_BYTES;

/// How refusals are budgeted per address (`[intake]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalBudget {
    /// Refusals one address may have in a row before it is answered 429.
    pub burst: NonZeroU32,
    /// Refusals per minute the budget refills at.
    pub per_minute: NonZeroU32,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        RefusalBudget {
            burst: NonZeroU32::new(30).expect("non-zero"),
            per_minute: NonZeroU32::new(30).expect("non-zero"),
        }
    }
}

type Limiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// Counts refused submissions per client address (governor's GCRA, one cell
/// per refusal) and answers which addresses are out of budget.
///
/// An address is blocked as soon as a refusal spends its last cell, until one
/// cell is back (one refill interval at most): so at most `burst` refusals of
/// one address are recorded in a row, then one per refill interval.
/// The address is the TCP peer's: behind a reverse proxy every client shares
/// the proxy's budget (forwarded headers are not trusted: anyone could send
/// them).
pub struct RefusalLimiter {
    limiter: Limiter,
    interval: Duration,
    /// Addresses out of budget, with when they may post again.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl RefusalLimiter {
    pub fn new(budget: RefusalBudget) -> RefusalLimiter {
        let interval = Duration::from_secs(60) / budget.per_minute.get();
        let quota = Quota::with_period(interval)
            .expect("a non-zero rate gives a non-zero period")
            .allow_burst(budget.burst);
        RefusalLimiter {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            interval,
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `peer` is out of budget.
    pub fn check(&self, peer: IpAddr) -> Result<(), Duration> {
        let mut blocked = self.blocked.lock().expect("refusal limiter lock");
        match blocked.get(&peer) {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(wait),
                _ => {
                    blocked.remove(&peer);
                    Ok(())
                }
            },
            None => Ok(()),
        }
    }

    /// Spends one refusal of `peer`'s budget; `Some(wait)` when that was the
    /// last one (the address is blocked for `wait` from now).
    pub fn refused(&self, peer: IpAddr) -> Option<Duration> {
        let wait = match self.limiter.check_key(&peer) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return None,
            // The last cell: blocked until the next one is back, which is
            // within one refill interval.
            Ok(_) => self.interval,
            // Two refusals of one address raced past the check.
            Err(not_until) => not_until
                .wait_time_from(governor::clock::Clock::now(self.limiter.clock()))
                .max(self.interval),
        };
        self.blocked
            .lock()
            .expect("refusal limiter lock")
            .insert(peer, Instant::now() + wait);
        Some(wait)
    }

    /// Forgets addresses whose budget is full again and blocks that ended, so
    /// the limiter's memory follows the recent senders only.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        self.blocked
            .lock()
            .expect("refusal limiter lock")
            .retain(|_, until| *until > now);
    }
}

impl Default for RefusalLimiter {
    fn default() -> Self {
        RefusalLimiter::new(RefusalBudget::default())
    }
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum BodyError {
    /// More than the limit: the first `limit + 1` bytes, as read.
    TooLarge(Vec<u8>),
    /// The body broke off (the client went away).
    Read(String),
}

/// Reads a request body, never more than `limit + 1` bytes of it.
pub async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let room = limit + 1 - out.len();
        out.extend_from_slice(&data[..data.len().min(room)]);
        if out.len() > limit {
            return Err(BodyError::TooLarge(out));
        }
    }
    Ok(out)
}

impl IntakeResult {
    /// Whether the submission was refused (anything but accepted or known).
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            IntakeResult::Accepted { .. } | IntakeResult::Existing { .. }
        )
    }
}

impl Engine {
    /// The webhook: one submission from `peer`, its body still unread.
    /// Answers 429 at once to an address out of its refusal budget; reads at
    /// most [`MAX_ENVELOPE_BYTES`] + 1 bytes; takes the envelope in; spends
    /// the budget on a refusal.
    pub async fn submit(
        &self,
        peer: IpAddr,
        body: Body,
        now: DateTime<Utc>,
    ) -> Result<IntakeResult, IntakeError> {
        if let Err(wait) = self.refusals.check(peer) {
            self.metrics.intake_rate_limited.inc();
            return Ok(rate_limited(wait));
        }
        let result = match read_body(body, MAX_ENVELOPE_BYTES).await {
            // Intake refuses and records what is over the limit.
            Ok(bytes) | Err(BodyError::TooLarge(bytes)) => self.intake(&bytes, now).await?,
            Err(BodyError::Read(e)) => IntakeResult::Malformed {
                error: format!("the request body could not be read: {e}"),
            },
        };
        if result.is_refusal()
            && let Some(wait) = self.refusals.refused(peer)
        {
            warn!(
                peer = %peer,
                wait_s = wait.as_secs_f64(),
                "address refused too often: its submissions are answered 429 for a while"
            );
        }
        Ok(result)
    }
}

fn rate_limited(wait: Duration) -> IntakeResult {
    let retry_after_seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    IntakeResult::RateLimited {
        retry_after_seconds,
        error: format!(
            "too many refused submissions from this address: nothing was read or recorded; retry after {retry_after_seconds} s"
        ),
    }
}

/// Deletes the refusals received before `now - retention`, in batches;
/// returns how many.
pub async fn prune_rejections(
    engine: &Engine,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    const BATCH: u32 = 1000;
    let before = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut total = 0;
    loop {
        let n = engine.store.prune_rejections(before, BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// How often [`run_housekeeping`] runs.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

/// Serve's periodic clean-up until shutdown: refusals past their retention,
/// and the refusal limiter's idle addresses; at start, then every
/// [`HOUSEKEEPING_EVERY`].
pub async fn run_housekeeping(
    engine: Arc<Engine>,
    retention: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        engine.refusals.forget_idle();
        match prune_rejections(&engine, retention, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => info!(
                deleted = n,
                retention_days = retention.as_secs() / 86_400,
                "old refusals deleted"
            ),
            Err(e) => warn!(error = %e, "deleting old refusals failed; next try later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_its_burst_and_others_are_not() {
        let l = RefusalLimiter::new(RefusalBudget {
            burst: NonZeroU32::new(3).unwrap(),
            per_minute: NonZeroU32::new(1).unwrap(),
        });
        let a = ip("192.0.2.1");
        assert!(l.check(a).is_ok());
        assert_eq!(l.refused(a), None);
        assert_eq!(l.refused(a), None);
        // The third refusal spends the last cell: blocked for about a minute.
        let wait = l.refused(a).expect("blocked after the burst");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        let left = l.check(a).unwrap_err();
        assert!(left <= wait && left > Duration::from_secs(50), "{left:?}");
        // Another address has its own budget.
        assert!(l.check(ip("2001:db8::1")).is_ok());
        l.forget_idle();
        assert!(l.check(a).is_err(), "a running block is kept");
    }

    #[test]
    fn the_budget_refills() {
        // 600 a minute: one cell back every 100 ms.
        let l = RefusalLimiter::new(RefusalBudget {
            burst: NonZeroU32::new(1).unwrap(),
            per_minute: NonZeroU32::new(600).unwrap(),
        });
        let a = ip("192.0.2.7");
        assert!(l.refused(a).is_some());
        assert!(l.check(a).is_err());
        std::thread::sleep(Duration::from_millis(150));
        assert!(l.check(a).is_ok());
        assert!(l.refused(a).is_some(), "one cell came back, and was spent");
    }

    #[tokio::test]
    async fn a_body_is_read_to_the_limit_plus_one_byte_and_no_further() {
        assert_eq!(
            read_body(Body::from(vec![1u8; 10]), 10)
                .await
                .unwrap()
                .len(),
            10
        );
        // An endless body: the reader stops on its own.
        let endless =
            futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024]));
        match read_body(Body::from_stream(endless), 1000).await {
            Err(BodyError::TooLarge(read)) => assert_eq!(read.len(), 1001),
            other => panic!("{other:?}"),
        }
    }
}
