//! vhost files in batches: the files of a batch of vhost changes are written
//! (or deleted) and nginx tested and reloaded once, all in one SSH command.
//!
//! Every vhost ensure/remove announces itself ([`Reloader::begin`]) before
//! its slow preparation (certificates, the suspended page) and then hands
//! its change to the coordinator ([`Reloader::submit`]), a shared
//! [`Coalescer`]. The leader of a batch waits (at most a hundred windows
//! of `coalesce`, 100 ms by default) until every change that had *begun*
//! before the batch opened has been handed over or given up, and not
//! longer: changes begun later do not hold the batch up (under a steady
//! stream the batch would otherwise wait for a lull); they ride along if
//! they arrived in time, else they form the next batch.
//!
//! One remote script ([`SITES_BATCH`]) then, per change in order, checks
//! the owner's account (a vhost whose web space is missing or lives
//! elsewhere fails alone, nothing written), compares the wanted file with
//! the one in place and writes it only if it differs (an unchanged file is
//! not rewritten: idempotent), or deletes it; and if anything changed (or a
//! change forces it: a new certificate, an earlier failed reload) runs
//! `nginx -t` and, if that passes, the reload. Every change gets its own
//! result line; every change that needed the reload gets that reload's
//! result.
//!
//! If `nginx -t` fails, nothing was reloaded (the running nginx keeps its
//! old config); the file nginx names is moved aside (`.rejected`) so a
//! broken vhost can never block the next reload for everyone else, its
//! change fails permanently with nginx's message, and the test + reload is
//! run again for the rest of the batch. A failure in a file the batch did
//! not write fails the batch's reloading changes transiently.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostwright_adapter::AdapterError;
use hostwright_adapter::batch::{BatchRunner, Coalescer, stdin_lines};
use hostwright_ssh::{Command, Output, SshPool, excerpt};

/// How nginx is tested and reloaded on the host.
#[derive(Debug, Clone)]
pub struct NginxCommands {
    /// argv of the config test, e.g. `nginx -t -c CONF`.
    pub test: Vec<String>,
    /// argv of the reload, e.g. `nginx -s reload -c CONF`.
    pub reload: Vec<String>,
    /// The nginx.conf (its `pid` directive names the master to watch).
    pub conf: String,
}

/// The end of [`SITES_BATCH`] and [`TEST_AND_RELOAD`]: with `$conf` (the
/// nginx.conf) and `$n` set and "$@" = the test's argv then the reload's,
/// runs the test (its words only), prints `tested`, runs the reload and then
/// waits (at most 5 s) until nginx's master runs a worker that was not
/// there before the reload and every old worker has stopped accepting
/// (retitled "shutting down", or gone): nginx applies a reload asynchronously (~0.5 s
/// under load), and a step that reports its vhost live must not end before
/// nginx serves it. The master is found through the `pid` directive of
/// `$conf`; without one (or a readable pid file) nothing is awaited.
macro_rules! test_and_reload {
    () => {
        r#"total=$#
i=0
( for a in "$@"; do i=$((i + 1)); [ "$i" -gt "$n" ] || set -- "$@" "$a"; done
  shift "$total"
  exec "$@" ) || exit
echo tested
shift "$n"
master=
pidf=$(sed -n 's/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]]*\)[[:space:]]*;.*/\1/p' "$conf" 2>/dev/null | head -n 1)
case $pidf in /*) if [ -r "$pidf" ]; then read -r master <"$pidf" || master=; fi ;; esac
old=
if [ -n "$master" ]; then old=" $(ps -o pid= --ppid "$master" | tr '\n' ' ') "; fi
"$@" || exit
if [ -n "$master" ]; then
  k=0
  while [ "$k" -lt 250 ]; do
    ready=$(ps -o pid=,args= --ppid "$master" | awk -v old="$old" '
      BEGIN { n = split(old, o, " "); for (i = 1; i <= n; i++) was[o[i]] = 1 }
      { if ($1 in was) { if ($0 !~ /shutting down/) stale = 1 } else fresh = 1 }
      END { print (fresh && !stale) ? 1 : 0 }')
    if [ "$ready" = 1 ]; then break; fi
    sleep 0.02
    k=$((k + 1))
  done
fi
"#
    };
}

/// Most changes in one batch (one stdin payload of ~2 KB each).
pub const MAX_BATCH: usize = 500;

/// A batch waits at most this many coalescing windows for stragglers.
const MAX_WAITS: usize = 100;

const MOVE_ASIDE: &str = r#"[ -e "$1" ] && mv -f -- "$1" "$1.rejected"; exit 0"#;

/// The vhost files of a batch, then `nginx -t` + reload, in one command.
///
/// $1 = how many of the following words are the test's argv; the rest is
/// the reload's argv. stdin: one change per line, values validated by the
/// adapter (no ':' nor ',' nor whitespace; the contents base64):
/// `put:FILE:FORCE(0|1):CONTRACT_ID:USER:HOME:STALE1,STALE2,..:CONTENTS_BASE64`
/// (empty USER: no owner check) or `del:FILE:FORCE:CONTRACT_ID:EXTRA1,EXTRA2,..`.
/// A file in place whose marker line names another contract, or that has
/// no hostwright marker, is neither written nor deleted (empty
/// CONTRACT_ID: not checked). stdout: one line per change, in order:
/// `s:FILE:ok:CHANGED:STALE_N` (STALE_N = how many of the STALE files
/// exist), `s:FILE:nouser`, `s:FILE:foreign`, `s:FILE:other`, `s:FILE:unmanaged`,
/// `s:FILE:del:EXISTED` (FILE or FILE.rejected existed; both and the EXTRA
/// files are deleted); then
/// `noreload` when nothing changed and nothing forces a reload, else
/// `tested` once the test passed, then the reload's exit status is the
/// script's. A failed test exits with its status, without `tested`.
pub const SITES_BATCH: &str = concat!(
    r##"set -eu
set -f
conf=$1 n=$2
shift 2
oifs=$IFS
reload=0
t=
trap 'rm -f -- "$t"' EXIT
# Which contract a vhost file says it belongs to: nothing printed when the
# file does not exist, `other` (another contract's), `unmanaged` (no
# hostwright marker), `own`. An empty contract id checks nothing.
marker() {
  [ -n "$2" ] || { echo own; return; }
  [ -e "$1" ] || return 0
  first=
  IFS= read -r first <"$1" || :
  case $first in
    "# managed by hostwright (contract $2,"*) echo own ;;
    "# managed by hostwright (contract "*) echo other ;;
    *) echo unmanaged ;;
  esac
}
while IFS=: read -r op file force cid a b c d; do
  owner=$(marker "$file" "$cid")
  if [ "$owner" = other ] || [ "$owner" = unmanaged ]; then
    echo "s:$file:$owner"
    continue
  fi
  case $op in
  put)
    user=$a home=$b stale=$c
    if [ -n "$user" ]; then
      if ! ent=$(getent passwd "$user"); then echo "s:$file:nouser"; continue; fi
      rest=${ent%:*}
      if [ "${rest##*:}" != "$home" ]; then echo "s:$file:foreign"; continue; fi
    fi
    t=$(mktemp "${file%/*}/.hw-tmp.XXXXXX")
    printf %s "$d" | base64 -d >"$t"
    if [ -f "$file" ] && cmp -s -- "$t" "$file"; then
      changed=0
      rm -f -- "$t"
    else
      chmod 0644 "$t"
      chown root:root "$t"
      mv -f -- "$t" "$file"
      changed=1
    fi
    t=
    k=0
    IFS=,
    for f in $stale; do if [ -e "$f" ]; then k=$((k + 1)); fi; done
    IFS=$oifs
    echo "s:$file:ok:$changed:$k"
    if [ "$changed" = 1 ] || [ "$force" = 1 ]; then reload=1; fi
    ;;
  del)
    existed=0
    for f in "$file" "$file.rejected"; do
      if [ -e "$f" ]; then existed=1; rm -f -- "$f"; fi
    done
    IFS=,
    for f in $a; do if [ -e "$f" ]; then rm -f -- "$f"; fi; done
    IFS=$oifs
    echo "s:$file:del:$existed"
    if [ "$existed" = 1 ] || [ "$force" = 1 ]; then reload=1; fi
    ;;
  *) echo "unknown change $op" >&2; exit 2 ;;
  esac
done
[ "$reload" = 1 ] || { echo noreload; exit 0; }
"##,
    test_and_reload!()
);

/// `nginx -t` then the reload, in one SSH command (the retry after a file
/// was moved aside). $1 = how many of the following words are the test's
/// argv; the rest is the reload's argv. Prints `tested` once the test
/// passed, so a failed reload is told apart from a failed test by stdout,
/// not by an exit status either could use.
const TEST_AND_RELOAD: &str = concat!(
    r#"conf=$1 n=$2
shift 2
"#,
    test_and_reload!()
);

/// One vhost change. Paths and names must be validated (the adapter builds
/// them from validated domains and config paths); [`SiteChange::encode`]
/// refuses anything that could shift the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteChange {
    /// Put `contents` in place as `file` if it differs; `owner` = (user,
    /// home) whose account must exist with that home first; `stale` = files
    /// whose presence is reported back.
    Put {
        file: String,
        contents: String,
        /// The contract whose marker a file in place must carry.
        contract_id: Option<String>,
        owner: Option<(String, String)>,
        stale: Vec<String>,
        /// Reload even if the file is unchanged.
        force: bool,
    },
    /// Delete `file` (and `file.rejected`) and `extra`; reload if one of
    /// the first two existed (or `force`). `contract_id`: as for `Put`.
    Del {
        file: String,
        contract_id: Option<String>,
        extra: Vec<String>,
        force: bool,
    },
}

impl SiteChange {
    /// The vhost file this change is about.
    pub fn file(&self) -> &str {
        match self {
            SiteChange::Put { file, .. } | SiteChange::Del { file, .. } => file,
        }
    }

    /// The stdin line of [`SITES_BATCH`].
    pub fn encode(&self) -> Result<String, AdapterError> {
        let plain = |v: &str| !v.contains([':', ',']) && !v.contains(char::is_whitespace);
        let (line, ok) = match self {
            SiteChange::Put {
                file,
                contents,
                contract_id,
                owner,
                stale,
                force,
            } => {
                let (user, home) = owner.clone().unwrap_or_default();
                let cid = contract_id.clone().unwrap_or_default();
                (
                    format!(
                        "put:{file}:{}:{cid}:{user}:{home}:{}:{}",
                        u8::from(*force),
                        stale.join(","),
                        crate::spaces::base64(contents.as_bytes())
                    ),
                    [file, &cid, &user, &home]
                        .into_iter()
                        .chain(stale)
                        .all(|v| plain(v)),
                )
            }
            SiteChange::Del {
                file,
                contract_id,
                extra,
                force,
            } => {
                let cid = contract_id.clone().unwrap_or_default();
                (
                    format!("del:{file}:{}:{cid}:{}", u8::from(*force), extra.join(",")),
                    [file, &cid].into_iter().chain(extra).all(|v| plain(v)),
                )
            }
        };
        if !ok || !self.file().starts_with('/') || line.contains(char::is_control) {
            return Err(AdapterError::permanent(format!(
                "webhost: refusing to send a malformed vhost change for {:?}",
                self.file().chars().take(120).collect::<String>()
            )));
        }
        Ok(line)
    }
}

/// What the host did with one [`SiteChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteApplied {
    /// The file was written (put) or had existed (del).
    pub changed: bool,
    /// How many of a put's `stale` files exist.
    pub stale: usize,
    /// nginx was tested and reloaded for this change.
    pub reloaded: bool,
}

/// The per-change part of a batch's output, before the reload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Put {
        changed: bool,
        stale: usize,
    },
    NoUser,
    Foreign,
    Del {
        existed: bool,
    },
    /// The file in place carries another contract's marker.
    OtherContract,
    /// The file in place has no hostwright marker.
    Unmanaged,
}

fn parse_line(change: &SiteChange, line: &str) -> Option<Line> {
    let rest = line.strip_prefix("s:")?.strip_prefix(change.file())?;
    let f: Vec<&str> = rest.strip_prefix(':')?.split(':').collect();
    match (change, f.as_slice()) {
        (SiteChange::Put { .. }, ["ok", c, n]) => Some(Line::Put {
            changed: *c == "1",
            stale: n.parse().ok()?,
        }),
        (SiteChange::Put { .. }, ["nouser"]) => Some(Line::NoUser),
        (SiteChange::Put { .. }, ["foreign"]) => Some(Line::Foreign),
        (SiteChange::Del { .. }, ["del", e]) => Some(Line::Del { existed: *e == "1" }),
        (_, ["other"]) => Some(Line::OtherContract),
        (_, ["unmanaged"]) => Some(Line::Unmanaged),
        _ => None,
    }
}

/// Tickets of the vhost changes being prepared ([`Reloader::begin`]).
#[derive(Default)]
struct Flight {
    in_flight: BTreeSet<u64>,
    next_ticket: u64,
}

/// The vhost batch runner of one host.
pub struct SiteBatch {
    pool: Arc<SshPool>,
    cmds: NginxCommands,
    coalesce: Duration,
    flight: Arc<Mutex<Flight>>,
    reloads: AtomicU64,
}

/// The vhost + reload coordinator of one host.
pub struct Reloader {
    batches: Arc<Coalescer<SiteBatch>>,
}

/// Held while a vhost change is being prepared: the coordinator waits for it
/// (bounded) before it runs a batch, so concurrent changes share one batch.
/// Released by [`Reloader::submit`] or when the change fails early.
pub struct InFlight(Arc<Mutex<Flight>>, u64);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut f) = self.0.lock() {
            f.in_flight.remove(&self.1);
        }
    }
}

impl Reloader {
    pub fn new(pool: Arc<SshPool>, cmds: NginxCommands, coalesce: Duration) -> Arc<Self> {
        Arc::new(Reloader {
            batches: Coalescer::new(
                SiteBatch {
                    pool,
                    cmds,
                    coalesce,
                    flight: Arc::new(Mutex::new(Flight::default())),
                    reloads: AtomicU64::new(0),
                },
                MAX_BATCH,
            ),
        })
    }

    /// Successful reloads so far (tests and metrics).
    pub fn reloads(&self) -> u64 {
        self.batches.runner().reloads.load(Ordering::Relaxed)
    }

    /// Batches run so far (tests and metrics).
    pub fn batches(&self) -> u64 {
        self.batches.batches()
    }

    /// Announces a vhost change that will soon be submitted.
    pub fn begin(&self) -> InFlight {
        let flight = self.batches.runner().flight.clone();
        let ticket = {
            let mut f = flight.lock().expect("vhost flight");
            let t = f.next_ticket;
            f.next_ticket += 1;
            f.in_flight.insert(t);
            t
        };
        InFlight(flight, ticket)
    }

    /// Hands `change` to the next batch (queued before `in_flight` is
    /// released, so the batch waiting for it sees it) and waits for its
    /// result.
    pub async fn submit(
        &self,
        change: SiteChange,
        in_flight: Option<InFlight>,
    ) -> Result<SiteApplied, AdapterError> {
        change.encode()?;
        let res = self.batches.submit(change);
        drop(in_flight);
        res.await
    }
}

#[async_trait::async_trait]
impl BatchRunner for SiteBatch {
    type Item = SiteChange;
    type Output = SiteApplied;

    fn what(&self) -> &str {
        "vhost batch"
    }

    async fn gather(&self) {
        // Wait for the changes begun before this batch opened (they are the
        // same wave: a step that issues a certificate takes a while), polled
        // in steps of at most 10 ms, for at most MAX_WAITS windows. With
        // none of them left the batch starts at once: changes arriving
        // while it runs form the next batch, so under load batches grow by
        // themselves and a lone change waits for nothing.
        let horizon = self.flight.lock().expect("vhost flight").next_ticket;
        let step = self.coalesce.min(Duration::from_millis(10));
        let deadline = tokio::time::Instant::now() + self.coalesce * MAX_WAITS as u32;
        loop {
            let waiting = {
                let f = self.flight.lock().expect("vhost flight");
                f.in_flight.range(..horizon).next().is_some()
            };
            if !waiting || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(step).await;
        }
    }

    async fn run(
        &self,
        batch: &[SiteChange],
    ) -> Result<Vec<Result<SiteApplied, AdapterError>>, AdapterError> {
        let stdin = stdin_lines(batch, SiteChange::encode)?;
        tracing::debug!(changes = batch.len(), "nginx: a batch of vhost changes");
        let out = self
            .pool
            .run(Command::script(SITES_BATCH, self.test_and_reload_args()).stdin(stdin))
            .await?;
        let text = out.stdout_str();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() < batch.len() {
            // The script broke before every change was handled: whatever
            // was written is retried (and reloaded) by the steps' retries.
            return Err(AdapterError::transient(format!(
                "vhost batch: {} result lines for {} changes (exit {}): {}",
                lines.len(),
                batch.len(),
                out.status,
                excerpt(&out.stderr)
            )));
        }
        let mut results = Vec::with_capacity(batch.len());
        // Indices of the changes that wait for the reload.
        let mut reloading = Vec::new();
        for (i, (c, line)) in batch.iter().zip(&lines).enumerate() {
            let (user, home) = match c {
                SiteChange::Put {
                    owner: Some((u, h)),
                    ..
                } => (u.as_str(), h.as_str()),
                _ => ("", ""),
            };
            let applied = match parse_line(c, line) {
                Some(Line::Put { changed, stale }) => Ok((changed, stale)),
                Some(Line::Del { existed }) => Ok((existed, 0)),
                Some(Line::NoUser) => Err(AdapterError::permanent(format!(
                    "web space {user} does not exist (the webspace step must come first)"
                ))),
                Some(Line::Foreign) => Err(AdapterError::permanent(format!(
                    "user {user} does not live at {home}"
                ))),
                Some(Line::OtherContract) => Err(AdapterError::permanent(format!(
                    "{} belongs to another contract: not touched",
                    c.file()
                ))),
                Some(Line::Unmanaged) => Err(AdapterError::permanent(format!(
                    "{} was not made by hostwright (no marker line): not touched",
                    c.file()
                ))),
                None => Err(AdapterError::transient(format!(
                    "vhost batch: unexpected result {:?} for {}",
                    excerpt(line.as_bytes()),
                    c.file()
                ))),
            };
            let force = match c {
                SiteChange::Put { force, .. } | SiteChange::Del { force, .. } => *force,
            };
            results.push(applied.map(|(changed, stale)| {
                if changed || force {
                    reloading.push(i);
                }
                SiteApplied {
                    changed,
                    stale,
                    reloaded: false,
                }
            }));
        }
        let tail = &lines[batch.len()..];
        if tail.first() == Some(&"noreload") && out.success() {
            return Ok(results);
        }
        let outcome = self.settle(batch, &reloading, out).await;
        for i in reloading {
            let r = &mut results[i];
            match outcome.get(&i) {
                Some(Err(e)) => *r = Err(e.clone()),
                Some(Ok(())) => {
                    if let Ok(a) = r {
                        a.reloaded = true;
                    }
                }
                None => {}
            }
        }
        Ok(results)
    }
}

impl SiteBatch {
    fn test_and_reload_args(&self) -> Vec<String> {
        let mut args = vec![self.cmds.conf.clone(), self.cmds.test.len().to_string()];
        args.extend(self.cmds.test.iter().cloned());
        args.extend(self.cmds.reload.iter().cloned());
        args
    }

    /// The reload's result per reloading change, from the batch's `out`:
    /// a failed test moves the file nginx names aside (failing its changes
    /// permanently) and tests + reloads again for the rest.
    async fn settle(
        &self,
        batch: &[SiteChange],
        reloading: &[usize],
        mut out: Output,
    ) -> std::collections::HashMap<usize, Result<(), AdapterError>> {
        let mut res = std::collections::HashMap::new();
        let mut left: Vec<usize> = reloading.to_vec();
        let files: BTreeSet<&str> = left.iter().map(|&i| batch[i].file()).collect();
        let mut tries = 0;
        loop {
            let tested = out.stdout_str().lines().any(|l| l == "tested");
            let end = if out.success() && tested {
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Some(Ok(()))
            } else if tested {
                Some(Err(AdapterError::transient(format!(
                    "nginx reload exited {}: {}",
                    out.status,
                    excerpt(&out.stderr)
                ))))
            } else {
                None
            };
            if let Some(end) = end {
                for i in left {
                    res.insert(i, end.clone());
                }
                return res;
            }
            let msg = excerpt(&out.stderr);
            // nginx names the file: "... in /path/sites/x.conf:12".
            let culprit = left
                .iter()
                .map(|&i| batch[i].file())
                .filter(|f| msg.contains(&format!("{f}:")) || msg.contains(&format!("{f} ")))
                .max_by_key(|f| f.len())
                .map(str::to_string);
            let Some(f) = culprit.filter(|_| tries < files.len()) else {
                // Broken outside this batch: nothing of ours to move.
                let e = AdapterError::transient(format!(
                    "nginx -t fails on a file this batch did not write: {msg}"
                ));
                for i in left {
                    res.insert(i, Err(e.clone()));
                }
                return res;
            };
            tries += 1;
            let moved = self
                .pool
                .run_ok(
                    "moving a broken vhost aside",
                    Command::script(MOVE_ASIDE, [&f]),
                )
                .await;
            let err = match moved {
                Ok(_) => AdapterError::permanent(format!(
                    "nginx rejected {f} (moved aside to {f}.rejected): {msg}"
                )),
                Err(e) => AdapterError::transient(format!(
                    "nginx rejected {f} and it could not be moved aside ({e}): {msg}"
                )),
            };
            let (bad, rest): (Vec<usize>, Vec<usize>) =
                left.into_iter().partition(|&i| batch[i].file() == f);
            for i in bad {
                res.insert(i, Err(err.clone()));
            }
            left = rest;
            if left.is_empty() {
                return res;
            }
            out = match self
                .pool
                .run(Command::script(
                    TEST_AND_RELOAD,
                    self.test_and_reload_args(),
                ))
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    let e: AdapterError = e.into();
                    for i in left {
                        res.insert(i, Err(e.clone()));
                    }
                    return res;
                }
            };
        }
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
            .arg("/nonexistent/nginx.conf")
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

    /// A stand-in host for [`SITES_BATCH`], run locally with `sh`: `getent`
    /// knows two accounts, the nginx "test" fails while `test-fails` exists
    /// and the "reload" counts itself, so the script's logic is checked
    /// without the test environment (the live tests cover the rest).
    struct Host {
        dir: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Host {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::create_dir(d.join("bin")).unwrap();
            std::fs::create_dir(d.join("sites")).unwrap();
            let getent = d.join("bin/getent");
            std::fs::write(
                &getent,
                "#!/bin/sh\ncase $2 in\n\
                 c1) echo 'c1:x:61001:61001:hostwright k-1:/srv/home/c1:/usr/sbin/nologin' ;;\n\
                 daemon) echo 'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin' ;;\n\
                 *) exit 2 ;;\nesac\n",
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).unwrap();
            Host { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn reloads(&self) -> usize {
            std::fs::read_to_string(self.path("reloads"))
                .unwrap_or_default()
                .lines()
                .count()
        }

        /// Runs one batch: (status, stdout lines).
        fn run(&self, changes: &[SiteChange]) -> (i32, Vec<String>) {
            let stdin: String = changes.iter().map(|c| c.encode().unwrap() + "\n").collect();
            let test = format!("[ ! -e '{}' ]", self.path("test-fails"));
            let reload = format!("echo x >>'{}'", self.path("reloads"));
            let args = [
                "/nonexistent/nginx.conf",
                "3",
                "sh",
                "-c",
                &test,
                "sh",
                "-c",
                &reload,
            ];
            hostwright_adapter::testenv::run_script(
                SITES_BATCH,
                &args,
                std::path::Path::new(&self.path("bin")),
                &stdin,
            )
        }

        fn put(&self, name: &str, contents: &str, user: &str) -> SiteChange {
            SiteChange::Put {
                file: self.path(&format!("sites/{name}.conf")),
                contents: contents.into(),
                contract_id: None,
                owner: (!user.is_empty()).then(|| (user.to_string(), format!("/srv/home/{user}"))),
                stale: vec![self.path("sites/stale.crt"), self.path("sites/none.crt")],
                force: false,
            }
        }
    }

    #[test]
    fn a_batch_writes_what_differs_refuses_bad_owners_and_reloads_once() {
        let h = Host::new();
        std::fs::write(h.path("sites/stale.crt"), "x").unwrap();
        let changes = [
            h.put("a", "server { a }\n", "c1"),
            h.put("b", "server { b }\n", "nosuch"),
            h.put("c", "server { c }\n", "daemon"),
            h.put("d", "server { d }\n", ""),
        ];
        let (st, out) = h.run(&changes);
        let f = |n: &str| h.path(&format!("sites/{n}.conf"));
        assert_eq!(st, 0, "{out:?}");
        assert_eq!(
            out,
            [
                format!("s:{}:ok:1:1", f("a")),
                format!("s:{}:nouser", f("b")),
                format!("s:{}:foreign", f("c")),
                format!("s:{}:ok:1:1", f("d")),
                "tested".to_string(),
            ]
        );
        assert_eq!(std::fs::read_to_string(f("a")).unwrap(), "server { a }\n");
        assert!(!std::path::Path::new(&f("b")).exists());
        assert!(!std::path::Path::new(&f("c")).exists());
        assert_eq!(h.reloads(), 1);
        // Parsed per change: the refusals are the owners' own errors.
        assert_eq!(
            parse_line(&changes[0], &out[0]),
            Some(Line::Put {
                changed: true,
                stale: 1
            })
        );
        assert_eq!(parse_line(&changes[1], &out[1]), Some(Line::NoUser));
        assert_eq!(parse_line(&changes[1], &out[0]), None);

        // The same files again: nothing written, no test, no reload...
        let mtime = std::fs::metadata(f("a")).unwrap().modified().unwrap();
        let (st, out) = h.run(&[changes[0].clone(), changes[3].clone()]);
        assert_eq!(st, 0);
        assert_eq!(out[2], "noreload");
        assert!(out[0].ends_with(":ok:0:1"), "{out:?}");
        assert_eq!(
            std::fs::metadata(f("a")).unwrap().modified().unwrap(),
            mtime
        );
        assert_eq!(h.reloads(), 1);
        // ...unless the change forces it.
        let mut forced = changes[0].clone();
        if let SiteChange::Put { force, .. } = &mut forced {
            *force = true;
        }
        let (_, out) = h.run(&[forced]);
        assert_eq!(out[1], "tested");
        assert_eq!(h.reloads(), 2);
        // No temporary files are left in the sites folder.
        let names: Vec<String> = std::fs::read_dir(h.path("sites"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".hw-tmp")), "{names:?}");
    }

    #[test]
    fn a_failed_test_reloads_nothing_and_deletes_take_their_extras() {
        let h = Host::new();
        let f = |n: &str| h.path(&format!("sites/{n}.conf"));
        std::fs::write(h.path("test-fails"), "").unwrap();
        let (st, out) = h.run(&[h.put("a", "broken\n", "c1")]);
        assert_ne!(st, 0);
        assert_eq!(out, [format!("s:{}:ok:1:0", f("a"))], "no `tested`");
        assert_eq!(h.reloads(), 0);
        std::fs::remove_file(h.path("test-fails")).unwrap();
        std::fs::write(format!("{}.rejected", f("b")), "old").unwrap();
        std::fs::write(h.path("b.crt"), "cert").unwrap();
        let del = |name: &str, force: bool| SiteChange::Del {
            file: f(name),
            contract_id: None,
            extra: vec![h.path("b.crt")],
            force,
        };
        let (st, out) = h.run(&[del("a", false), del("b", false), del("gone", false)]);
        assert_eq!(st, 0);
        assert_eq!(
            out,
            [
                format!("s:{}:del:1", f("a")),
                format!("s:{}:del:1", f("b")),
                format!("s:{}:del:0", f("gone")),
                "tested".to_string(),
            ]
        );
        for p in [f("a"), format!("{}.rejected", f("b")), h.path("b.crt")] {
            assert!(!std::path::Path::new(&p).exists(), "{p}");
        }
        let (_, out) = h.run(&[del("gone", false)]);
        assert_eq!(out[1], "noreload");
        assert_eq!(h.reloads(), 1);
    }

    #[test]
    fn a_file_of_another_contract_or_without_a_marker_is_neither_written_nor_deleted() {
        let h = Host::new();
        let f = |n: &str| h.path(&format!("sites/{n}.conf"));
        let marked = |cid: &str| {
            format!("# managed by hostwright (contract {cid}, user u); do not edit\nserver {{ }}\n")
        };
        std::fs::write(f("theirs"), marked("C-2")).unwrap();
        std::fs::write(f("by-hand"), "server { }\n").unwrap();
        std::fs::write(f("mine"), marked("C-1")).unwrap();
        let put = |name: &str| SiteChange::Put {
            file: f(name),
            contents: marked("C-1"),
            contract_id: Some("C-1".into()),
            owner: None,
            stale: vec![],
            force: false,
        };
        let del = |name: &str| SiteChange::Del {
            file: f(name),
            contract_id: Some("C-1".into()),
            extra: vec![],
            force: false,
        };
        let changes = [
            put("theirs"),
            put("by-hand"),
            put("mine"),
            del("theirs"),
            del("by-hand"),
        ];
        let (st, out) = h.run(&changes);
        assert_eq!(st, 0, "{out:?}");
        assert_eq!(out[0], format!("s:{}:other", f("theirs")));
        assert_eq!(out[1], format!("s:{}:unmanaged", f("by-hand")));
        assert_eq!(
            out[2],
            format!("s:{}:ok:0:0", f("mine")),
            "unchanged: not rewritten"
        );
        assert_eq!(out[3], format!("s:{}:other", f("theirs")));
        assert_eq!(out[4], format!("s:{}:unmanaged", f("by-hand")));
        assert_eq!(parse_line(&changes[0], &out[0]), Some(Line::OtherContract));
        assert_eq!(parse_line(&changes[4], &out[4]), Some(Line::Unmanaged));
        // Untouched, both of them.
        assert_eq!(std::fs::read_to_string(f("theirs")).unwrap(), marked("C-2"));
        assert_eq!(
            std::fs::read_to_string(f("by-hand")).unwrap(),
            "server { }\n"
        );
        // Its own file is removed as before.
        let (_, out) = h.run(&[del("mine")]);
        assert_eq!(out[0], format!("s:{}:del:1", f("mine")));
    }

    #[test]
    fn changes_refuse_values_that_would_shift_the_fields() {
        let put = |file: &str, user: &str| SiteChange::Put {
            file: file.into(),
            contents: "any: thing, with\nlines".into(),
            contract_id: Some("C-1".into()),
            owner: Some((user.into(), "/srv/home/u".into())),
            stale: vec![],
            force: false,
        };
        assert!(put("/s/a.conf", "u").encode().is_ok());
        for bad in [
            put("/s/a:b.conf", "u"),
            put("/s/a,b.conf", "u"),
            put("/s/a b.conf", "u"),
            put("relative.conf", "u"),
            put("/s/a.conf", "u\ndel"),
        ] {
            assert!(!bad.encode().unwrap_err().is_transient(), "{bad:?}");
        }
    }
}
