//! SSH transport shared by the web host and FTP adapters.
//!
//! * A command line is built only by [`hostwright_adapter::shell::command`]
//!   (see [`Command::new`]); values are validated by the caller first. A
//!   remote shell script, where one is unavoidable, is a constant written in
//!   hostwright's source and gets its values as quoted positional parameters
//!   ([`Command::script`]). File contents travel as the command's stdin, never
//!   on the command line.
//! * libssh2 sessions are pooled per host ([`SshPool`]): at most `pool_size`
//!   sessions, each used by one operation at a time (a libssh2 session
//!   serialises its channels anyway). Every libssh2 call runs inside
//!   `tokio::task::spawn_blocking` with a session timeout set. A session that
//!   failed at the transport level is dropped and a new one is made.
//! * The host key is checked against `known_hosts_file`; an unknown key is a
//!   permanent error unless `accept_unknown_host_key`, a changed key always
//!   is. Authentication is by key only.
//! * stdout and stderr are drained together (non-blocking reads of both
//!   streams), so a chatty stderr cannot stall the channel; the exit status is
//!   read after `wait_close`.
//! * Commands run under the remote `timeout` so a hung command is killed on
//!   the host, not just abandoned; the local deadline is a backstop.
//!
//! Classification ([`SshError`] → [`AdapterError`]): refused/timed-out
//! connections and broken sessions are transient; authentication and host key
//! failures are permanent; a non-zero exit is returned as [`Output`] for the
//! caller to judge ([`Output::check`] turns it into [`SshError::Exit`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hostwright_adapter::{AdapterError, shell};
use serde::Deserialize;
use ssh2::{CheckResult, KnownHostFileKind, Session};
use tokio::sync::Semaphore;

/// Exit status the remote `timeout` uses when it had to stop the command.
const TIMEOUT_STATUS: i32 = 124;
/// Longest stderr excerpt kept in an error (errors are journaled).
const STDERR_EXCERPT: usize = 2000;

/// How to reach one host (the `ssh` table of an adapter's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The login user (root or an admin user with the needed rights).
    pub user: String,
    /// Private key file (OpenSSH format, no passphrase); key auth only.
    pub private_key_file: PathBuf,
    /// OpenSSH known_hosts file holding the host's key.
    pub known_hosts_file: PathBuf,
    /// Accept a host whose key is not in `known_hosts_file`. Default false: an
    /// unknown key is a permanent error. A *changed* key is always refused.
    #[serde(default)]
    pub accept_unknown_host_key: bool,
    /// TCP connect + handshake + auth timeout; 10 s when absent.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Longest a single command may run before it is killed; 120 s when absent.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: u64,
    /// Most sessions open to this host at once; 8 when absent (the default
    /// worker concurrency).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_port() -> u16 {
    22
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_command_timeout() -> u64 {
    120
}
/// The production default of `[workers] concurrency`: every worker can
/// have a command running on the host at once (4 made half of them queue).
fn default_pool_size() -> usize {
    8
}

/// A failure of the transport or, via [`Output::check`], of a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SshError {
    /// The host could not be reached (refused, unreachable, connect timeout):
    /// worth retrying.
    #[error("ssh {host}: cannot connect: {message}")]
    Connect { host: String, message: String },
    /// The session broke or a libssh2 call failed mid-operation: the session
    /// is dropped; worth retrying on a fresh one.
    #[error("ssh {host}: session failed: {message}")]
    Session { host: String, message: String },
    /// The command ran longer than `command_timeout_secs` and was killed.
    #[error("ssh {host}: command timed out after {secs} s")]
    Timeout { host: String, secs: u64 },
    /// The server refused our key: configuration, retrying cannot help.
    #[error("ssh {host}: authentication as {user} failed: {message}")]
    Auth {
        host: String,
        user: String,
        message: String,
    },
    /// The host key is not in known_hosts (and unknown keys are not accepted).
    #[error("ssh {host}: host key not in {known_hosts}")]
    HostKeyUnknown { host: String, known_hosts: String },
    /// The host key differs from the one in known_hosts: possible MITM.
    #[error("ssh {host}: HOST KEY MISMATCH against {known_hosts}")]
    HostKeyMismatch { host: String, known_hosts: String },
    /// Local configuration problem (unreadable known_hosts, bad address).
    #[error("ssh {host}: configuration: {message}")]
    Config { host: String, message: String },
    /// A command exited non-zero (raised by [`Output::check`]).
    #[error("{what} exited with status {status}: {stderr}")]
    Exit {
        what: String,
        status: i32,
        stderr: String,
    },
}

impl SshError {
    /// Transport failures that a retry on a new session may cure.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SshError::Connect { .. } | SshError::Session { .. } | SshError::Timeout { .. }
        )
    }
}

impl From<SshError> for AdapterError {
    fn from(e: SshError) -> Self {
        if e.is_transient() {
            AdapterError::transient(e.to_string())
        } else {
            AdapterError::permanent(e.to_string())
        }
    }
}

/// One remote command: a quoted command line and an optional stdin payload.
#[derive(Clone)]
pub struct Command {
    line: String,
    stdin: Option<Vec<u8>>,
}

impl std::fmt::Debug for Command {
    // The payload may be a private key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("line", &self.line)
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .finish()
    }
}

impl Command {
    /// `program args...`, every word quoted by the one quoting function.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Command {
            line: shell::command(program, args),
            stdin: None,
        }
    }

    /// `sh -c SCRIPT sh args...`: `script` must be a constant from
    /// hostwright's source that refers to its values only as `"$1"`, `"$2"`...;
    /// the values are passed as quoted words.
    pub fn script<I, S>(script: &'static str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut words: Vec<String> = vec!["-c".into(), script.into(), "sh".into()];
        words.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        Command::new("sh", words)
    }

    /// Sends `payload` as the command's stdin (then EOF).
    pub fn stdin(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(payload.into());
        self
    }

    /// The command line as sent (without the timeout wrapper).
    pub fn line(&self) -> &str {
        &self.line
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// `Ok(self)` on exit 0, else [`SshError::Exit`] naming `what` with a
    /// truncated stderr excerpt.
    pub fn check(self, what: &str) -> Result<Output, SshError> {
        if self.success() {
            Ok(self)
        } else {
            Err(SshError::Exit {
                what: what.to_string(),
                status: self.status,
                stderr: excerpt(&self.stderr),
            })
        }
    }
}

/// At most [`STDERR_EXCERPT`] bytes of `bytes`, lossily decoded and trimmed.
pub fn excerpt(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    if s.len() <= STDERR_EXCERPT {
        return s.to_string();
    }
    let mut cut = STDERR_EXCERPT;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

/// A small pool of SSH sessions to one host.
pub struct SshPool {
    cfg: Arc<SshConfig>,
    idle: Arc<Mutex<Vec<Session>>>,
    permits: Semaphore,
    created: AtomicU64,
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPool")
            .field("host", &self.cfg.host)
            .field("port", &self.cfg.port)
            .finish()
    }
}

impl SshPool {
    pub fn new(cfg: SshConfig) -> Self {
        let size = cfg.pool_size.max(1);
        SshPool {
            cfg: Arc::new(cfg),
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Semaphore::new(size),
            created: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &SshConfig {
        &self.cfg
    }

    /// How many sessions this pool has opened so far (for tests and metrics).
    pub fn sessions_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Runs `cmd` on the host. A non-zero exit is an `Ok(Output)`; transport
    /// trouble is an error. A pooled session found dead before the command
    /// started is replaced once transparently.
    pub async fn run(&self, cmd: Command) -> Result<Output, SshError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.session_err("pool closed"))?;
        let cmd = Arc::new(cmd);
        let pooled = self.idle.lock().expect("ssh pool lock").pop();
        let reused = pooled.is_some();
        let sess = match pooled {
            Some(s) => s,
            None => self.connect().await?,
        };
        match self.exec_on(sess, cmd.clone()).await {
            Err(Attempt::NotStarted(_)) if reused => {
                tracing::debug!(host = %self.cfg.host, "pooled ssh session was dead; reconnecting");
                let sess = self.connect().await?;
                self.exec_on(sess, cmd).await.map_err(Attempt::into_error)
            }
            other => other.map_err(Attempt::into_error),
        }
    }

    /// Runs `cmd` and fails with [`SshError::Exit`] unless it exits 0.
    pub async fn run_ok(&self, what: &str, cmd: Command) -> Result<Output, SshError> {
        self.run(cmd).await?.check(what)
    }

    async fn exec_on(&self, sess: Session, cmd: Arc<Command>) -> Result<Output, Attempt> {
        let cfg = self.cfg.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = exec_blocking(&sess, &cfg, &cmd);
            (sess, r)
        })
        .await;
        match joined {
            Ok((sess, Ok(out))) => {
                self.idle.lock().expect("ssh pool lock").push(sess);
                Ok(out)
            }
            // The session is dropped here: a broken one is never reused.
            Ok((_sess, Err(e))) => Err(e),
            Err(e) => Err(Attempt::Failed(
                self.session_err(&format!("ssh task failed: {e}")),
            )),
        }
    }

    async fn connect(&self) -> Result<Session, SshError> {
        let cfg = self.cfg.clone();
        let sess = tokio::task::spawn_blocking(move || connect_blocking(&cfg))
            .await
            .map_err(|e| self.session_err(&format!("ssh task failed: {e}")))??;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(sess)
    }

    fn session_err(&self, message: &str) -> SshError {
        SshError::Session {
            host: self.cfg.host.clone(),
            message: message.to_string(),
        }
    }
}

/// Whether a failed execution got as far as starting the command.
enum Attempt {
    NotStarted(SshError),
    Failed(SshError),
}

impl Attempt {
    fn into_error(self) -> SshError {
        match self {
            Attempt::NotStarted(e) | Attempt::Failed(e) => e,
        }
    }
}

fn host_label(cfg: &SshConfig) -> String {
    format!("{}:{}", cfg.host, cfg.port)
}

fn connect_blocking(cfg: &SshConfig) -> Result<Session, SshError> {
    let host = host_label(cfg);
    let timeout = Duration::from_secs(cfg.connect_timeout_secs.max(1));
    let addrs: Vec<_> = (cfg.host.as_str(), cfg.port)
        .to_socket_addrs()
        .map_err(|e| SshError::Connect {
            host: host.clone(),
            message: format!("cannot resolve: {e}"),
        })?
        .collect();
    let mut last = None;
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let tcp = tcp.ok_or_else(|| SshError::Connect {
        host: host.clone(),
        message: last.map_or("no address".into(), |e| e.to_string()),
    })?;
    let _ = tcp.set_nodelay(true);

    let mut sess = Session::new().map_err(|e| SshError::Session {
        host: host.clone(),
        message: e.to_string(),
    })?;
    sess.set_tcp_stream(tcp);
    sess.set_timeout(timeout.as_millis() as u32);
    sess.handshake().map_err(|e| SshError::Connect {
        host: host.clone(),
        message: format!("handshake: {e}"),
    })?;

    check_host_key(&sess, cfg)?;

    sess.userauth_pubkey_file(&cfg.user, None, &cfg.private_key_file, None)
        .map_err(|e| {
            // A key file we cannot read is ours to fix, just as a refused key.
            SshError::Auth {
                host: host.clone(),
                user: cfg.user.clone(),
                message: e.message().to_string(),
            }
        })?;
    if !sess.authenticated() {
        return Err(SshError::Auth {
            host,
            user: cfg.user.clone(),
            message: "not authenticated".into(),
        });
    }
    sess.set_keepalive(true, 30);
    Ok(sess)
}

fn check_host_key(sess: &Session, cfg: &SshConfig) -> Result<(), SshError> {
    let host = host_label(cfg);
    let known_hosts = cfg.known_hosts_file.display().to_string();
    let (key, _) = sess.host_key().ok_or_else(|| SshError::Session {
        host: host.clone(),
        message: "server sent no host key".into(),
    })?;
    let mut kh = sess.known_hosts().map_err(|e| SshError::Session {
        host: host.clone(),
        message: e.to_string(),
    })?;
    if cfg.known_hosts_file.exists() {
        kh.read_file(&cfg.known_hosts_file, KnownHostFileKind::OpenSSH)
            .map_err(|e| SshError::Config {
                host: host.clone(),
                message: format!("cannot read {known_hosts}: {e}"),
            })?;
    } else if !cfg.accept_unknown_host_key {
        return Err(SshError::Config {
            host,
            message: format!("known_hosts file {known_hosts} does not exist"),
        });
    }
    match kh.check_port(&cfg.host, cfg.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::NotFound if cfg.accept_unknown_host_key => {
            tracing::warn!(host = %host, "accepting an unknown SSH host key (accept_unknown_host_key)");
            Ok(())
        }
        CheckResult::NotFound => Err(SshError::HostKeyUnknown { host, known_hosts }),
        CheckResult::Mismatch => Err(SshError::HostKeyMismatch { host, known_hosts }),
        CheckResult::Failure => Err(SshError::Session {
            host,
            message: "host key check failed".into(),
        }),
    }
}

fn exec_blocking(sess: &Session, cfg: &SshConfig, cmd: &Command) -> Result<Output, Attempt> {
    let host = host_label(cfg);
    let secs = cfg.command_timeout_secs.max(1);
    let serr = |e: ssh2::Error| SshError::Session {
        host: host.clone(),
        message: e.to_string(),
    };
    // The remote `timeout` kills a hung command on the host; our own deadline
    // (a little later) only guards against a host that stopped answering.
    let line = shell::command(
        "timeout",
        ["-k", "5", &format!("{secs}s"), "sh", "-c", &cmd.line],
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs + 10);
    sess.set_blocking(true);
    sess.set_timeout((cfg.connect_timeout_secs.max(1) * 1000) as u32);

    let mut ch = sess
        .channel_session()
        .map_err(|e| Attempt::NotStarted(serr(e)))?;
    ch.exec(&line).map_err(|e| Attempt::NotStarted(serr(e)))?;

    let result = (|| -> Result<Output, SshError> {
        if let Some(payload) = &cmd.stdin {
            ch.write_all(payload).map_err(|e| SshError::Session {
                host: host.clone(),
                message: format!("writing stdin: {e}"),
            })?;
        }
        ch.send_eof().map_err(serr)?;

        // Drain stdout and stderr together, without blocking on either.
        sess.set_blocking(false);
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let drained = loop {
            let mut progressed = false;
            for (stream, sink) in [(0, &mut stdout), (1, &mut stderr)] {
                match ch.stream(stream).read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        break_err(&host, e)?;
                    }
                }
            }
            if ch.eof() && !progressed {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        sess.set_blocking(true);
        if !drained {
            return Err(SshError::Timeout {
                host: host.clone(),
                secs,
            });
        }
        ch.wait_close().map_err(serr)?;
        let status = ch.exit_status().map_err(serr)?;
        // `timeout` reports 124 after TERM, 137 after the KILL of `-k`.
        if (status == TIMEOUT_STATUS || status == 128 + 9)
            && started.elapsed() >= Duration::from_secs(secs)
        {
            return Err(SshError::Timeout {
                host: host.clone(),
                secs,
            });
        }
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    })();
    result.map_err(Attempt::Failed)
}

fn break_err(host: &str, e: std::io::Error) -> Result<(), SshError> {
    Err(SshError::Session {
        host: host.to_string(),
        message: format!("reading output: {e}"),
    })
}

/// A remote file read by [`SshPool::read_file`]: absent is not an error.
const READ_FILE: &str = r#"if [ -e "$1" ]; then exec cat -- "$1"; else exit 3; fi"#;

/// Atomic write: temp file in the same directory (mode 0600 from mktemp, so a
/// key is never readable), then mode, owner and rename.
const WRITE_FILE: &str = r#"set -e
t=$(mktemp "$(dirname -- "$1")/.hw-tmp.XXXXXX")
trap 'rm -f -- "$t"' EXIT
cat >"$t"
chmod "$2" "$t"
chown "$3" "$t"
mv -f -- "$t" "$1"
trap - EXIT"#;

impl SshPool {
    /// The contents of `path` on the host, or `None` when it does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SshError> {
        let out = self.run(Command::script(READ_FILE, [path])).await?;
        match out.status {
            0 => Ok(Some(out.stdout)),
            3 => Ok(None),
            _ => out.check("reading a remote file").map(|_| None),
        }
    }

    /// Writes `contents` to `path` atomically with `mode` (octal, e.g.
    /// "0644") and `owner` ("user:group"). The contents travel as stdin.
    pub async fn write_file(
        &self,
        path: &str,
        contents: &[u8],
        mode: &str,
        owner: &str,
    ) -> Result<(), SshError> {
        self.run_ok(
            "writing a remote file",
            Command::script(WRITE_FILE, [path, mode, owner]).stdin(contents.to_vec()),
        )
        .await
        .map(|_| ())
    }
}

/// A remote command's stdout as a byte stream, read on an SSH session of
/// its own (a move's tar stream: long and large, it must not hold one of
/// the pool's sessions). Reading past its end checks the command's exit
/// status: a command that failed ends the stream with an error, so a
/// truncated stream is never taken for a whole one.
pub struct RemoteStdout {
    // The channel keeps its session alive; the session is kept to be
    // dropped last.
    ch: ssh2::Channel,
    _sess: Session,
    host: String,
    what: String,
    ended: bool,
}

impl Read for RemoteStdout {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.ch.read(buf)?;
        if n > 0 || self.ended {
            return Ok(n);
        }
        self.ended = true;
        let mut stderr = Vec::new();
        let _ = self.ch.stderr().read_to_end(&mut stderr);
        self.ch.wait_close().map_err(std::io::Error::other)?;
        let status = self.ch.exit_status().map_err(std::io::Error::other)?;
        if status != 0 {
            return Err(std::io::Error::other(format!(
                "{} on {} exited with status {status}: {}",
                self.what,
                self.host,
                excerpt(&stderr)
            )));
        }
        Ok(0)
    }
}

impl SshPool {
    /// Starts `cmd` on a session of its own and returns its stdout as a
    /// stream (see [`RemoteStdout`]). Each read waits at most the command
    /// timeout for data: a command that stalls that long fails the stream.
    pub async fn open_stdout(&self, what: &str, cmd: Command) -> Result<RemoteStdout, SshError> {
        let cfg = self.cfg.clone();
        let what = what.to_string();
        let joined = tokio::task::spawn_blocking(move || {
            let sess = connect_blocking(&cfg)?;
            let host = host_label(&cfg);
            let serr = |e: ssh2::Error| SshError::Session {
                host: host.clone(),
                message: e.to_string(),
            };
            sess.set_timeout((cfg.command_timeout_secs.max(1) * 1000) as u32);
            let mut ch = sess.channel_session().map_err(serr)?;
            ch.exec(&cmd.line).map_err(serr)?;
            ch.send_eof().map_err(serr)?;
            Ok(RemoteStdout {
                ch,
                _sess: sess,
                host,
                what,
                ended: false,
            })
        })
        .await;
        self.created.fetch_add(1, Ordering::Relaxed);
        joined.map_err(|e| self.session_err(&format!("ssh task failed: {e}")))?
    }

    /// Runs `cmd` on a session of its own with `input` streamed to its
    /// stdin, and returns its output. An error reading `input` (the other
    /// end of a stream failed) fails the call: the command sees its stdin
    /// cut short and its exit status is not trusted.
    pub async fn run_with_input(
        &self,
        cmd: Command,
        mut input: Box<dyn Read + Send>,
    ) -> Result<Output, SshError> {
        let cfg = self.cfg.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let sess = connect_blocking(&cfg)?;
            let host = host_label(&cfg);
            let serr = |e: ssh2::Error| SshError::Session {
                host: host.clone(),
                message: e.to_string(),
            };
            sess.set_timeout((cfg.command_timeout_secs.max(1) * 1000) as u32);
            let mut ch = sess.channel_session().map_err(serr)?;
            ch.exec(&cmd.line).map_err(serr)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input.read(&mut buf).map_err(|e| SshError::Session {
                    host: host.clone(),
                    message: format!("the stream to copy failed: {e}"),
                })?;
                if n == 0 {
                    break;
                }
                ch.write_all(&buf[..n]).map_err(|e| SshError::Session {
                    host: host.clone(),
                    message: format!("writing stdin: {e}"),
                })?;
            }
            ch.send_eof().map_err(serr)?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            ch.read_to_end(&mut stdout).map_err(|e| SshError::Session {
                host: host.clone(),
                message: format!("reading output: {e}"),
            })?;
            let _ = ch.stderr().read_to_end(&mut stderr);
            ch.wait_close().map_err(serr)?;
            let status = ch.exit_status().map_err(serr)?;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        })
        .await;
        self.created.fetch_add(1, Ordering::Relaxed);
        joined.map_err(|e| self.session_err(&format!("ssh task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_quoted_words() {
        let c = Command::new("useradd", ["-c", "hostwright x; rm -rf /", "u1"]);
        assert_eq!(c.line(), "'useradd' '-c' 'hostwright x; rm -rf /' 'u1'");
        let s = Command::script("printf %s \"$1\"", ["$(id)"]);
        assert_eq!(s.line(), "'sh' '-c' 'printf %s \"$1\"' 'sh' '$(id)'");
    }

    #[test]
    fn debug_never_prints_the_payload() {
        let c = Command::new("cat", Vec::<String>::new()).stdin("-----BEGIN PRIVATE KEY-----");
        let d = format!("{c:?}");
        assert!(!d.contains("PRIVATE"), "{d}");
        assert!(d.contains("stdin_bytes"));
    }

    #[test]
    fn errors_map_to_the_right_class() {
        let t: AdapterError = SshError::Connect {
            host: "h".into(),
            message: "refused".into(),
        }
        .into();
        assert!(t.is_transient());
        let t: AdapterError = SshError::Timeout {
            host: "h".into(),
            secs: 1,
        }
        .into();
        assert!(t.is_transient());
        for e in [
            SshError::Auth {
                host: "h".into(),
                user: "u".into(),
                message: "denied".into(),
            },
            SshError::HostKeyMismatch {
                host: "h".into(),
                known_hosts: "k".into(),
            },
            SshError::HostKeyUnknown {
                host: "h".into(),
                known_hosts: "k".into(),
            },
            SshError::Exit {
                what: "x".into(),
                status: 1,
                stderr: "no".into(),
            },
        ] {
            let a: AdapterError = e.into();
            assert!(!a.is_transient());
        }
    }

    #[test]
    fn excerpts_are_bounded() {
        let long = "é".repeat(5000);
        let e = excerpt(long.as_bytes());
        assert!(e.len() <= STDERR_EXCERPT + 4);
        let out = Output {
            status: 3,
            stdout: vec![],
            stderr: b"  boom \n".to_vec(),
        };
        match out.check("thing") {
            Err(SshError::Exit { status, stderr, .. }) => {
                assert_eq!(status, 3);
                assert_eq!(stderr, "boom");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_defaults() {
        let c: SshConfig = serde_json::from_value(serde_json::json!({
            "host": "web1", "user": "root",
            "private_key_file": "/k", "known_hosts_file": "/kh"
        }))
        .unwrap();
        assert_eq!(c.port, 22);
        assert_eq!(c.pool_size, 8);
        assert!(!c.accept_unknown_host_key);
    }
}
