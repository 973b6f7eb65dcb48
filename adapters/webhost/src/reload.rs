//! One nginx test + reload per batch of vhost changes.
//!
//! Every ensure/remove that changed a vhost file calls [`Reloader::request`]
//! with the file it touched. The first request of a batch waits
//! until no new request came for `coalesce` (100 ms by default; at most a hundred
//! such windows), then one `nginx -t` and one reload run for everything that
//! arrived; every contributor gets that
//! reload's result. Requests arriving while a reload runs form the next
//! batch.
//!
//! If `nginx -t` fails, the file nginx names is moved aside (`.rejected`) so
//! a broken vhost can never block the next reload for everyone else; its
//! contributor fails permanently with nginx's message, and the test is run
//! again for the rest of the batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostwright_adapter::AdapterError;
use hostwright_ssh::{Command, SshPool, excerpt};
use tokio::sync::oneshot;

/// How nginx is tested and reloaded on the host.
#[derive(Debug, Clone)]
pub struct NginxCommands {
    /// argv of the config test, e.g. `nginx -t -c CONF`.
    pub test: Vec<String>,
    /// argv of the reload, e.g. `nginx -s reload -c CONF`.
    pub reload: Vec<String>,
}

type Waiter = oneshot::Sender<Result<(), AdapterError>>;

struct Queue {
    pending: Vec<(String, Waiter)>,
    leader: bool,
}

/// The reload coordinator of one host.
pub struct Reloader {
    pool: Arc<SshPool>,
    cmds: NginxCommands,
    coalesce: Duration,
    queue: Mutex<Queue>,
    reloads: AtomicU64,
    in_flight: AtomicUsize,
}

/// Held while a vhost change is being prepared: the coordinator waits for it
/// (bounded) before it tests and reloads, so concurrent changes share one
/// reload. Dropped by [`Reloader::request`] or when the change fails early.
pub struct InFlight(Arc<Reloader>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A batch waits at most this many coalescing windows for stragglers.
const MAX_WAITS: usize = 100;

const MOVE_ASIDE: &str = r#"[ -e "$1" ] && mv -f -- "$1" "$1.rejected"; exit 0"#;

impl Reloader {
    pub fn new(pool: Arc<SshPool>, cmds: NginxCommands, coalesce: Duration) -> Arc<Self> {
        Arc::new(Reloader {
            pool,
            cmds,
            coalesce,
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leader: false,
            }),
            reloads: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Successful reloads so far (tests and metrics).
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Announces a vhost change that may soon ask for a reload.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// Asks for a test + reload covering `file` (a vhost file just written or
    /// deleted) and waits for the batch's result.
    pub async fn request(
        self: &Arc<Self>,
        file: String,
        in_flight: Option<InFlight>,
    ) -> Result<(), AdapterError> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut q = self.queue.lock().expect("reload queue");
            q.pending.push((file, tx));
            drop(in_flight);
            !std::mem::replace(&mut q.leader, true)
        };
        if lead {
            let me = self.clone();
            tokio::spawn(async move { me.lead().await });
        }
        rx.await
            .unwrap_or_else(|_| Err(AdapterError::transient("nginx reload coordinator stopped")))
    }

    async fn lead(self: Arc<Self>) {
        loop {
            // Debounce: wait until no new change arrived for `coalesce`, but
            // never longer than MAX_WAITS windows in all.
            // Changes still being prepared (in flight) are waited for too.
            let mut seen = 0;
            for _ in 0..MAX_WAITS {
                tokio::time::sleep(self.coalesce).await;
                let n = self.queue.lock().expect("reload queue").pending.len();
                if n == seen && self.in_flight.load(Ordering::SeqCst) == 0 {
                    break;
                }
                seen = n;
            }
            let batch = {
                let mut q = self.queue.lock().expect("reload queue");
                if q.pending.is_empty() {
                    q.leader = false;
                    return;
                }
                std::mem::take(&mut q.pending)
            };
            self.run_batch(batch).await;
        }
    }

    async fn run_batch(&self, batch: Vec<(String, Waiter)>) {
        // Several requests may name the same file; all of them share its fate.
        let mut by_file: HashMap<String, Vec<Waiter>> = HashMap::new();
        for (f, w) in batch {
            by_file.entry(f).or_default().push(w);
        }
        let n = by_file.len();
        tracing::debug!(files = n, "nginx: testing and reloading a batch");
        let mut tries = 0;
        loop {
            tries += 1;
            let out = match self.pool.run(argv(&self.cmds.test)).await {
                Ok(o) => o,
                Err(e) => return finish(by_file, Err(e.into())),
            };
            if out.success() {
                break;
            }
            let msg = excerpt(&out.stderr);
            // nginx names the file: "... in /path/sites/x.conf:12".
            let culprit = by_file
                .keys()
                .filter(|f| msg.contains(&format!("{f}:")) || msg.contains(&format!("{f} ")))
                .max_by_key(|f| f.len())
                .cloned();
            match culprit {
                Some(f) if tries <= n => {
                    let moved = self
                        .pool
                        .run_ok(
                            "moving a broken vhost aside",
                            Command::script(MOVE_ASIDE, [&f]),
                        )
                        .await;
                    let waiters = by_file.remove(&f).unwrap_or_default();
                    let err = match moved {
                        Ok(_) => AdapterError::permanent(format!(
                            "nginx rejected {f} (moved aside to {f}.rejected): {msg}"
                        )),
                        Err(e) => AdapterError::transient(format!(
                            "nginx rejected {f} and it could not be moved aside ({e}): {msg}"
                        )),
                    };
                    for w in waiters {
                        let _ = w.send(Err(err.clone()));
                    }
                    if by_file.is_empty() {
                        return;
                    }
                }
                _ => {
                    // Broken outside this batch: nothing of ours to move.
                    return finish(
                        by_file,
                        Err(AdapterError::transient(format!(
                            "nginx -t fails on a file this batch did not write: {msg}"
                        ))),
                    );
                }
            }
        }
        let res = match self.pool.run(argv(&self.cmds.reload)).await {
            Ok(o) if o.success() => {
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(o) => Err(AdapterError::transient(format!(
                "nginx reload exited {}: {}",
                o.status,
                excerpt(&o.stderr)
            ))),
            Err(e) => Err(e.into()),
        };
        finish(by_file, res);
    }
}

fn argv(v: &[String]) -> Command {
    Command::new(&v[0], &v[1..])
}

fn finish(by_file: HashMap<String, Vec<Waiter>>, res: Result<(), AdapterError>) {
    for w in by_file.into_values().flatten() {
        let _ = w.send(res.clone());
    }
}
