//! Running `rndc` against the BIND control channel.
//!
//! Zone creation and deletion are outside RFC 2136, so they go through rndc.
//! The command runs as an argument vector (no shell); every value embedded in
//! a zone configuration string is validated by the caller first.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Where and how to reach the control channel.
#[derive(Debug, Clone)]
pub struct Rndc {
    pub program: PathBuf,
    pub host: String,
    pub port: u16,
    pub key_file: PathBuf,
    pub timeout: Duration,
}

/// What an rndc call ended with, classified from its exit status and output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RndcError {
    /// `addzone` of a zone the view already has.
    AlreadyExists,
    /// `addzone` of a primary zone whose file does not exist yet.
    FileNotFound,
    /// `delzone`/`zonestatus` of a zone the view does not have.
    NotFound,
    /// The control channel could not be reached or did not answer in time.
    Unreachable(String),
    /// The server refused the key.
    AuthFailed(String),
    /// The server closed the control connection without an answer: rndc
    /// prints the same for a key it refuses and for a named that is shutting
    /// down (a stop or restart under the call), so it cannot say which.
    Closed(String),
    /// Anything else rndc or named reported.
    Failed(String),
}

impl Rndc {
    /// Runs `rndc -s HOST -p PORT -k KEYFILE ARGS...` and returns its stdout.
    pub async fn run(&self, args: &[&str]) -> Result<String, RndcError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg("-s")
            .arg(&self.host)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.key_file)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(self.timeout, cmd.output()).await {
            Err(_) => {
                return Err(RndcError::Unreachable(format!(
                    "rndc {} did not finish within {:?}",
                    args.first().unwrap_or(&""),
                    self.timeout
                )));
            }
            Ok(Err(e)) => {
                return Err(RndcError::Failed(format!(
                    "cannot run {}: {e}",
                    self.program.display()
                )));
            }
            Ok(Ok(out)) => out,
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(classify(&format!("{stdout}\n{stderr}")))
    }
}

/// Classifies rndc's complaint. Order matters: "file not found" also contains
/// "not found".
pub fn classify(output: &str) -> RndcError {
    let text = output.trim();
    let short: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(400)
        .collect();
    if text.contains("already exists") {
        RndcError::AlreadyExists
    } else if text.contains("file not found") {
        RndcError::FileNotFound
    } else if text.contains("not found") && !text.contains("was found") {
        RndcError::NotFound
    } else if text.contains("connect failed")
        || text.contains("connection refused")
        // named going down under a call (a restart, a stop): the
        // connection dies mid-answer, which says nothing about the key.
        || text.contains("connection reset")
        || text.contains("recv failed")
        || text.contains("shutting down")
        || text.contains("timed out")
        || text.contains("network unreachable")
        || text.contains("host unreachable")
    {
        RndcError::Unreachable(short)
    } else if text.contains("connection to remote host closed") {
        RndcError::Closed(short)
    } else if text.contains("bad auth") || text.contains("key is invalid") {
        RndcError::AuthFailed(short)
    } else {
        RndcError::Failed(short)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_real_rndc_messages() {
        assert_eq!(
            classify("rndc: 'addzone' failed: already exists"),
            RndcError::AlreadyExists
        );
        assert_eq!(
            classify(
                "rndc: 'addzone' failed: file not found\ndns_zone_loadnew failed: file not found"
            ),
            RndcError::FileNotFound
        );
        assert_eq!(
            classify("rndc: 'delzone' failed: not found\nno matching zone 'x.test' in any view"),
            RndcError::NotFound
        );
        assert!(matches!(
            classify("rndc: connect failed: 127.0.0.1#55954: connection refused"),
            RndcError::Unreachable(_)
        ));
        assert!(matches!(
            classify("rndc: recv failed: connection reset"),
            RndcError::Unreachable(_)
        ));
        assert!(matches!(
            classify(
                "rndc: connection to remote host closed.\n* This may indicate that the\n* or the key is invalid."
            ),
            RndcError::Closed(_)
        ));
        assert!(matches!(
            classify("rndc: neither /etc/bind/rndc.conf nor /nonexistent was found"),
            RndcError::Failed(_)
        ));
    }
}
