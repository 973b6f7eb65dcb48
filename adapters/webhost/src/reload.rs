//! One nginx test + reload per batch of vhost changes.
//!
//! Every ensure/remove that changed a vhost file calls [`Reloader::request`]
//! with the file it touched. The first request of a batch waits in windows
//! of `coalesce` (100 ms by default, at most a hundred windows) until every
//! vhost change that had *begun* ([`Reloader::begin`]) before the batch
//! opened has asked or given up; then one remote command tests (`nginx -t`)
//! and reloads for everything that arrived; every contributor gets that
//! reload's result. Changes begun later do not hold the batch up (under a
//! steady stream of changes the batch would otherwise wait for a lull):
//! they ride along if they arrived in time, else they form the next batch,
//! as do requests arriving while a reload runs.
//!
//! If `nginx -t` fails, the file nginx names is moved aside (`.rejected`) so
//! a broken vhost can never block the next reload for everyone else; its
//! contributor fails permanently with nginx's message, and the test is run
//! again for the rest of the batch.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Tickets of the changes being prepared ([`Reloader::begin`]).
    in_flight: BTreeSet<u64>,
    next_ticket: u64,
}

/// The reload coordinator of one host.
pub struct Reloader {
    pool: Arc<SshPool>,
    cmds: NginxCommands,
    coalesce: Duration,
    queue: Mutex<Queue>,
    reloads: AtomicU64,
}

/// Held while a vhost change is being prepared: the coordinator waits for it
/// (bounded) before it tests and reloads, so concurrent changes share one
/// reload. Dropped by [`Reloader::request`] or when the change fails early.
pub struct InFlight(Arc<Reloader>, Option<u64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // `request` settles the ticket itself, under the queue lock it
        // already holds; only an abandoned change gets here with one.
        if let Some(ticket) = self.1.take()
            && let Ok(mut q) = self.0.queue.lock()
        {
            q.in_flight.remove(&ticket);
        }
    }
}

/// A batch waits at most this many coalescing windows for stragglers.
const MAX_WAITS: usize = 100;

const MOVE_ASIDE: &str = r#"[ -e "$1" ] && mv -f -- "$1" "$1.rejected"; exit 0"#;

/// `nginx -t` then the reload, in one SSH command. $1 = how many of the
/// following words are the test's argv; the rest is the reload's argv.
/// Prints `tested` once the test passed, so a failed reload is told apart
/// from a failed test by stdout, not by an exit status either could use.
const TEST_AND_RELOAD: &str = r#"n=$1
shift
total=$#
i=0
( for a in "$@"; do i=$((i + 1)); [ "$i" -gt "$n" ] || set -- "$@" "$a"; done
  shift "$total"
  exec "$@" ) || exit
echo tested
shift "$n"
exec "$@""#;

impl Reloader {
    pub fn new(pool: Arc<SshPool>, cmds: NginxCommands, coalesce: Duration) -> Arc<Self> {
        Arc::new(Reloader {
            pool,
            cmds,
            coalesce,
            queue: Mutex::new(Queue {
                pending: Vec::new(),
                leader: false,
                in_flight: BTreeSet::new(),
                next_ticket: 0,
            }),
            reloads: AtomicU64::new(0),
        })
    }

    /// Successful reloads so far (tests and metrics).
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Announces a vhost change that may soon ask for a reload.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        let mut q = self.queue.lock().expect("reload queue");
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.in_flight.insert(ticket);
        InFlight(self.clone(), Some(ticket))
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
            // The change is now pending rather than in flight, in one step
            // (dropping the guard here would take this lock again).
            if let Some(ticket) = in_flight.and_then(|mut f| f.1.take()) {
                q.in_flight.remove(&ticket);
            }
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
            // Wait for the changes begun before this batch opened (they are
            // the same wave), at least one window and at most MAX_WAITS.
            let horizon = self.queue.lock().expect("reload queue").next_ticket;
            for _ in 0..MAX_WAITS {
                tokio::time::sleep(self.coalesce).await;
                let q = self.queue.lock().expect("reload queue");
                if q.in_flight.range(..horizon).next().is_none() {
                    break;
                }
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
        let mut test_and_reload = vec![self.cmds.test.len().to_string()];
        test_and_reload.extend(self.cmds.test.iter().cloned());
        test_and_reload.extend(self.cmds.reload.iter().cloned());
        let mut tries = 0;
        let res = loop {
            tries += 1;
            let out = match self
                .pool
                .run(Command::script(TEST_AND_RELOAD, &test_and_reload))
                .await
            {
                Ok(o) => o,
                Err(e) => return finish(by_file, Err(e.into())),
            };
            if out.success() {
                self.reloads.fetch_add(1, Ordering::Relaxed);
                break Ok(());
            }
            if out.stdout_str().lines().any(|l| l == "tested") {
                break Err(AdapterError::transient(format!(
                    "nginx reload exited {}: {}",
                    out.status,
                    excerpt(&out.stderr)
                )));
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
        };
        finish(by_file, res);
    }
}

fn finish(by_file: HashMap<String, Vec<Waiter>>, res: Result<(), AdapterError>) {
    for w in by_file.into_values().flatten() {
        let _ = w.send(res.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs TEST_AND_RELOAD locally: (status, stdout).
    fn run(test: &[&str], reload: &[&str]) -> (i32, String) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(TEST_AND_RELOAD)
            .arg("sh")
            .arg(test.len().to_string())
            .args(test)
            .args(reload)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn the_test_runs_first_with_its_own_words_then_the_reload() {
        // Words with spaces and quotes stay words on both sides.
        let (st, out) = run(
            &["printf", "%s|", "t 1", "it's"],
            &["printf", "%s|", "r 1", "$(id)"],
        );
        assert_eq!(st, 0);
        assert_eq!(out, "t 1|it's|tested\nr 1|$(id)|");
    }

    #[test]
    fn a_failed_test_skips_the_reload_and_a_failed_reload_is_told_apart() {
        let (st, out) = run(&["sh", "-c", "exit 1"], &["echo", "reloaded"]);
        assert_eq!(st, 1);
        assert!(
            !out.contains("tested") && !out.contains("reloaded"),
            "{out}"
        );
        let (st, out) = run(&["true"], &["sh", "-c", "exit 3"]);
        assert_eq!(st, 3);
        assert_eq!(out, "tested\n");
    }
}
