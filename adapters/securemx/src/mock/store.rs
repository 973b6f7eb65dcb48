//! Persistence of the mock's state: one JSON file, replaced atomically (write
//! a temporary file, then rename) after changes, so a crash of the process
//! never leaves a torn file.
//!
//! Writes are coalesced by a writer task (write-behind): a handler changes the
//! state in memory and answers; the writer copies the state, serialises and
//! writes it outside the lock, at most once per 25 ms, each write covering
//! every change made meanwhile. Waiting for each write before answering would
//! rewrite the whole state once per few requests (1,000 mailbox creations took
//! ~1.5 s in a debug build instead of ~0.3 s). The price: a `kill -9` can lose
//! the changes of the last write interval; SIGTERM / Ctrl-C flush before exit
//! ([`Store::flush`]). Clients are idempotent against exactly that kind of loss.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use super::model::State;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is not valid state JSON: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing state file {path}: {message}")]
    Write { path: PathBuf, message: String },
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
            path: path.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(StoreError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Shortest time between the starts of two writes.
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

#[derive(Debug, Clone, Default)]
struct Flushed {
    upto: u64,
    error: Option<String>,
}

/// The state and its file.
pub struct Store {
    path: PathBuf,
    state: Mutex<State>,
    changes: AtomicU64,
    dirty: Notify,
    flushed: watch::Sender<Flushed>,
}

impl Store {
    /// Loads the state and starts the writer task (needs a Tokio runtime).
    pub fn open(path: &Path) -> Result<Arc<Store>, StoreError> {
        let state = load(path)?;
        let store = Arc::new(Store {
            path: path.to_path_buf(),
            state: Mutex::new(state),
            changes: AtomicU64::new(0),
            dirty: Notify::new(),
            flushed: watch::channel(Flushed::default()).0,
        });
        tokio::spawn(writer(Arc::downgrade(&store)));
        Ok(store)
    }

    /// Runs `f` on the state. `f` returns its result and whether it changed
    /// anything; a change is written to the file shortly after.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> (T, bool)) -> T {
        let (out, changed) = {
            let mut st = self.state.lock().expect("state lock");
            let (out, changed) = f(&mut st);
            if changed {
                self.changes.fetch_add(1, Ordering::SeqCst);
            }
            (out, changed)
        };
        if changed {
            self.dirty.notify_one();
        }
        out
    }

    /// Waits until every change made so far is in the file.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let n = self.changes.load(Ordering::SeqCst);
        self.dirty.notify_one();
        let mut rx = self.flushed.subscribe();
        let done = rx
            .wait_for(|f| f.upto >= n || f.error.is_some())
            .await
            .map_err(|_| StoreError::Write {
                path: self.path.clone(),
                message: "writer stopped".into(),
            })?
            .clone();
        match done.error {
            Some(message) if done.upto < n => Err(StoreError::Write {
                path: self.path.clone(),
                message,
            }),
            _ => Ok(()),
        }
    }

    /// The last write's error, if the file is behind because writes fail.
    pub fn write_error(&self) -> Option<String> {
        self.flushed.borrow().error.clone()
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().expect("state lock"))
    }
}

async fn writer(store: std::sync::Weak<Store>) {
    loop {
        let Some(s) = store.upgrade() else { return };
        let upto = s.flushed.borrow().upto;
        if s.changes.load(Ordering::SeqCst) <= upto {
            // A notify_one before this wait leaves a permit, so no change is
            // missed; the timeout lets the task notice the store was dropped.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(1), s.dirty.notified()).await;
            continue;
        }
        // Copy under the lock, serialise and write outside it.
        let (snapshot, n) = {
            let st = s.state.lock().expect("state lock");
            (st.clone(), s.changes.load(Ordering::SeqCst))
        };
        let path = s.path.clone();
        let started = tokio::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&snapshot).expect("state serialises");
            write_atomic(&path, &bytes)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        match result {
            Ok(()) => {
                s.flushed.send_modify(|f| {
                    f.upto = n;
                    f.error = None;
                });
                drop(s);
                // Leave the handlers some CPU between whole-file rewrites.
                tokio::time::sleep_until(started + WRITE_INTERVAL).await;
            }
            Err(e) => {
                tracing::error!(error = %e, path = %s.path.display(), "writing the state failed");
                s.flushed.send_modify(|f| f.error = Some(e));
                drop(s);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}
