//! Group commit for adapters: concurrent steps hand their change to a
//! [`Coalescer`] and wait for their own result; the coalescer applies the
//! changes in batches, one [`BatchRunner::run`] call per batch.
//!
//! Why: on a remote host every command costs a round trip and a process tree
//! (on the test machine ~150-300 ms), and most host-side edits are
//! O(everything) anyway (a passwd rewrite, a PureDB rebuild, `nginx -t`) or
//! serialised under a host-wide `flock`. Paying that once per batch instead
//! of once per step is what lets concurrent steps actually run concurrently.
//!
//! The discipline, shared by every batching adapter:
//! * When no batch is running, a change starts one at once (after
//!   [`BatchRunner::gather`], which returns immediately by default), so a
//!   lone change gets no added latency. Changes arriving while a batch runs
//!   queue up and form the next batch (at most `max_batch` each).
//! * The batch runs on its own task: a waiter that gives up (a step timeout
//!   drops its future) does not stop the batch the others wait for.
//! * The runner answers one result per change, in order: a refused change
//!   fails only its own waiter. A batch that fails as a whole (transport
//!   trouble, lock timeout, a result count that does not match) fails every
//!   waiter with the same error, transient or permanent as the runner says.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::AdapterError;

/// The stdin of a batch script: one line per change, in batch order, as
/// `encode` writes it (`encode` refuses what must not reach the host).
pub fn stdin_lines<T>(
    batch: &[T],
    encode: impl Fn(&T) -> Result<String, AdapterError>,
) -> Result<String, AdapterError> {
    let mut stdin = String::new();
    for item in batch {
        stdin.push_str(&encode(item)?);
        stdin.push('\n');
    }
    Ok(stdin)
}

/// Pairs a batch with the result lines its script printed, one per change in
/// order, and parses each into that change's own result. Any other number of
/// lines means the script did not get through the batch: the whole batch
/// fails (transient: its steps retry).
pub fn results_by_line<T, O>(
    what: &str,
    batch: &[T],
    stdout: &str,
    parse: impl Fn(&T, &str) -> Result<O, AdapterError>,
) -> Result<Vec<Result<O, AdapterError>>, AdapterError> {
    let lines: Vec<&str> = stdout.lines().collect();
    if lines.len() != batch.len() {
        return Err(AdapterError::transient(format!(
            "{what}: {} result lines for {} changes",
            lines.len(),
            batch.len()
        )));
    }
    Ok(batch
        .iter()
        .zip(lines)
        .map(|(item, line)| parse(item, line))
        .collect())
}

/// Applies a batch of changes (one remote command, typically).
#[async_trait::async_trait]
pub trait BatchRunner: Send + Sync + 'static {
    /// One change, as a step hands it over.
    type Item: Send + 'static;
    /// What one change's waiter gets back when it succeeded.
    type Output: Send + 'static;

    /// Names the batch in errors, e.g. "ftp passwd batch".
    fn what(&self) -> &str;

    /// Called by the leader before it takes a batch from the queue; may wait
    /// for changes known to be on their way (the nginx reload waits for
    /// vhost changes that began before the batch opened). Default: none.
    async fn gather(&self) {}

    /// Applies `items` in order. `Ok` must hold one result per item, in the
    /// same order; `Err` fails the whole batch.
    async fn run(
        &self,
        items: &[Self::Item],
    ) -> Result<Vec<Result<Self::Output, AdapterError>>, AdapterError>;
}

type Waiter<R> = oneshot::Sender<Result<<R as BatchRunner>::Output, AdapterError>>;

struct Queue<R: BatchRunner> {
    pending: Vec<(R::Item, Waiter<R>)>,
    /// A batch is being gathered or run.
    leader: bool,
}

/// The batching coordinator of one backend (one per adapter instance).
pub struct Coalescer<R: BatchRunner> {
    runner: R,
    max_batch: usize,
    queue: Mutex<Queue<R>>,
    batches: AtomicU64,
}

impl<R: BatchRunner> Coalescer<R> {
    /// `max_batch` bounds one batch (its stdin size, its time under a lock).
    pub fn new(runner: R, max_batch: usize) -> Arc<Self> {
        Arc::new(Coalescer {
            runner,
            max_batch: max_batch.max(1),
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leader: false,
            }),
            batches: AtomicU64::new(0),
        })
    }

    /// The runner (its own counters and state, for the adapter and tests).
    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Batches run so far, successful or not (tests and metrics).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Queues `item` now and returns the wait for the result of the batch
    /// it lands in. The queueing is done before this returns (not when the
    /// future is first polled), so a caller can hand over its change and
    /// then release anything [`BatchRunner::gather`] waits for, in order.
    pub fn submit(
        self: &Arc<Self>,
        item: R::Item,
    ) -> impl std::future::Future<Output = Result<R::Output, AdapterError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut q = self.queue.lock().expect("batch queue");
            q.pending.push((item, tx));
            !std::mem::replace(&mut q.leader, true)
        };
        if lead {
            let me = self.clone();
            tokio::spawn(async move { me.lead().await });
        }
        let what = self.runner.what().to_string();
        async move {
            rx.await.unwrap_or_else(|_| {
                Err(AdapterError::transient(format!(
                    "{what}: the batch coordinator stopped"
                )))
            })
        }
    }

    async fn lead(self: Arc<Self>) {
        loop {
            self.runner.gather().await;
            let batch = {
                let mut q = self.queue.lock().expect("batch queue");
                if q.pending.is_empty() {
                    q.leader = false;
                    return;
                }
                let take = q.pending.len().min(self.max_batch);
                q.pending.drain(..take).collect::<Vec<_>>()
            };
            self.run_batch(batch).await;
        }
    }

    async fn run_batch(&self, batch: Vec<(R::Item, Waiter<R>)>) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        let (items, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let results = match self.runner.run(&items).await {
            Ok(r) if r.len() == items.len() => r,
            Ok(r) => {
                let e = AdapterError::transient(format!(
                    "{}: {} results for {} changes",
                    self.runner.what(),
                    r.len(),
                    items.len()
                ));
                return fail_all(waiters, e);
            }
            Err(e) => return fail_all(waiters, e),
        };
        for (w, res) in waiters.into_iter().zip(results) {
            let _ = w.send(res);
        }
    }
}

fn fail_all<T>(waiters: Vec<oneshot::Sender<Result<T, AdapterError>>>, e: AdapterError) {
    for w in waiters {
        let _ = w.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Doubles numbers; refuses 13; fails a whole batch containing 99.
    struct Doubler {
        sizes: Mutex<Vec<usize>>,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl BatchRunner for Doubler {
        type Item = u32;
        type Output = u32;
        fn what(&self) -> &str {
            "doubler"
        }
        async fn run(&self, items: &[u32]) -> Result<Vec<Result<u32, AdapterError>>, AdapterError> {
            self.sizes.lock().unwrap().push(items.len());
            tokio::time::sleep(self.delay).await;
            if items.contains(&99) {
                return Err(AdapterError::transient("batch broke"));
            }
            if items.contains(&7) {
                return Ok(vec![]);
            }
            Ok(items
                .iter()
                .map(|&i| {
                    if i == 13 {
                        Err(AdapterError::permanent("13 refused"))
                    } else {
                        Ok(i * 2)
                    }
                })
                .collect())
        }
    }

    fn doubler(ms: u64, max: usize) -> Arc<Coalescer<Doubler>> {
        Coalescer::new(
            Doubler {
                sizes: Mutex::new(vec![]),
                delay: Duration::from_millis(ms),
            },
            max,
        )
    }

    #[tokio::test]
    async fn a_lone_change_runs_at_once_and_concurrent_ones_share_batches() {
        let c = doubler(50, 100);
        assert_eq!(c.submit(4).await.unwrap(), 8);
        assert_eq!(c.batches(), 1);
        let all: Vec<_> = (10..50u32)
            .map(|i| {
                let c = c.clone();
                (i, tokio::spawn(async move { c.submit(i).await }))
            })
            .collect();
        for (i, h) in all {
            let r = h.await.unwrap();
            if i == 13 {
                assert!(!r.unwrap_err().is_transient());
            } else {
                assert_eq!(r.unwrap(), 2 * i);
            }
        }
        // The first of the 40 starts a batch; the others arrive while it
        // runs and form the next one.
        let sizes = c.runner().sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 41);
        assert!(sizes.len() <= 4, "{sizes:?}");
    }

    #[tokio::test]
    async fn batches_are_capped() {
        let c = doubler(20, 3);
        let all: Vec<_> = (0..10u32)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { c.submit(i + 100).await })
            })
            .collect();
        for h in all {
            h.await.unwrap().unwrap();
        }
        let sizes = c.runner().sizes.lock().unwrap().clone();
        assert!(sizes.iter().all(|&s| s <= 3), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 10);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_waiter_and_a_short_answer_is_transient() {
        let c = doubler(50, 100);
        // Hold the leader busy so 1, 99 and 2 land in one batch.
        let first = {
            let c = c.clone();
            tokio::spawn(async move { c.submit(0).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let rest: Vec<_> = [1u32, 99, 2]
            .into_iter()
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { c.submit(i).await })
            })
            .collect();
        first.await.unwrap().unwrap();
        for h in rest {
            let e = h.await.unwrap().unwrap_err();
            assert!(
                e.is_transient() && e.to_string().contains("batch broke"),
                "{e}"
            );
        }
        let e = c.submit(7).await.unwrap_err();
        assert!(
            e.is_transient() && e.to_string().contains("0 results for 1"),
            "{e}"
        );
        // The coordinator still works afterwards.
        assert_eq!(c.submit(5).await.unwrap(), 10);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_stop_the_batch() {
        let c = doubler(100, 100);
        let gave_up = tokio::time::timeout(Duration::from_millis(10), c.submit(1)).await;
        assert!(gave_up.is_err());
        let other = c.submit(2).await.unwrap();
        assert_eq!(other, 4);
        let sizes = c.runner().sizes.lock().unwrap().clone();
        assert_eq!(sizes, [1, 1], "the abandoned change was still applied");
    }

    #[test]
    fn stdin_and_results_are_one_line_per_change_in_order() {
        let batch = ["a", "b", "c"];
        let enc = |x: &&str| Ok(format!("put:{x}"));
        assert_eq!(stdin_lines(&batch, enc).unwrap(), "put:a\nput:b\nput:c\n");
        let refuse = |x: &&str| {
            if *x == "b" {
                Err(AdapterError::permanent("b is malformed"))
            } else {
                Ok(x.to_string())
            }
        };
        assert!(!stdin_lines(&batch, refuse).unwrap_err().is_transient());

        let parse = |x: &&str, line: &str| {
            if line == format!("{x}:ok") {
                Ok(x.len())
            } else {
                Err(AdapterError::permanent(format!("{x}: {line}")))
            }
        };
        let r = results_by_line("t", &batch, "a:ok\nb:refused\nc:ok\n", parse).unwrap();
        assert!(r[0].is_ok() && r[1].is_err() && r[2].is_ok());
        // A script that stopped short fails the whole batch, retryably.
        let e = results_by_line("t", &batch, "a:ok\n", parse).unwrap_err();
        assert!(e.is_transient(), "{e:?}");
        assert!(
            e.to_string().contains("1 result lines for 3 changes"),
            "{e}"
        );
    }
}
