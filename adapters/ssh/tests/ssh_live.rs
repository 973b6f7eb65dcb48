//! Against the test sshd of `scripts/testenv/services/webhost.sh`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostwright_adapter::{AdapterError, testenv::var};
use hostwright_ssh::{Command, SshConfig, SshError, SshPool};

fn config() -> SshConfig {
    SshConfig {
        host: var("HW_WEB_SSH_HOST"),
        port: var("HW_WEB_SSH_PORT").parse().unwrap(),
        user: var("HW_WEB_SSH_USER"),
        private_key_file: var("HW_WEB_SSH_KEY").into(),
        known_hosts_file: var("HW_WEB_KNOWN_HOSTS").into(),
        accept_unknown_host_key: false,
        connect_timeout_secs: 5,
        command_timeout_secs: 20,
        pool_size: 4,
    }
}

#[tokio::test]
async fn echo_exit_codes_stderr_and_stdin() {
    let pool = SshPool::new(config());
    let out = pool
        .run(Command::new("echo", ["hello", "a b"]))
        .await
        .unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stdout_str(), "hello a b\n");

    // A hostile argument is one inert word.
    let out = pool
        .run(Command::new("printf", ["%s", "$(id);`id`\n'x'"]))
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "$(id);`id`\n'x'");

    let out = pool
        .run(Command::script(
            "echo out; echo err >&2; exit 7",
            Vec::<String>::new(),
        ))
        .await
        .unwrap();
    assert_eq!(out.status, 7);
    assert_eq!(out.stdout_str(), "out\n");
    assert_eq!(out.stderr_str(), "err\n");
    let err = out.check("the script").unwrap_err();
    assert!(matches!(err, SshError::Exit { status: 7, .. }), "{err:?}");
    assert!(!AdapterError::from(err).is_transient());

    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let out = pool
        .run(Command::new("wc", ["-c"]).stdin(payload.clone()))
        .await
        .unwrap();
    assert_eq!(out.stdout_str().trim(), "200000");
    let out = pool
        .run(Command::new("cat", Vec::<String>::new()).stdin(payload.clone()))
        .await
        .unwrap();
    assert_eq!(out.stdout, payload);
}

#[tokio::test]
async fn chatty_stderr_and_stdout_do_not_deadlock() {
    let pool = SshPool::new(config());
    // ~6 MB on stderr and ~3 MB on stdout, more than a channel window.
    let out = pool
        .run(Command::script(
            "head -c 6000000 /dev/zero >&2; head -c 3000000 /dev/zero",
            Vec::<String>::new(),
        ))
        .await
        .unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(out.stderr.len(), 6_000_000);
    assert_eq!(out.stdout.len(), 3_000_000);
}

#[tokio::test]
async fn a_hung_command_is_killed_at_the_timeout() {
    let mut cfg = config();
    cfg.command_timeout_secs = 2;
    let pool = SshPool::new(cfg);
    let marker = format!("60.{}", std::process::id());
    let t = Instant::now();
    let err = pool
        .run(Command::new("sleep", [&marker]))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(15));
    assert!(AdapterError::from(err).is_transient());
    // The remote process is gone, not merely abandoned.
    let out = pool
        .run(Command::new("pgrep", ["-f", &format!("^sleep {marker}$")]))
        .await
        .unwrap();
    assert_ne!(out.status, 0, "sleep still running: {}", out.stdout_str());
    // And the pool still works afterwards.
    let out = pool
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap();
    assert_eq!(out.status, 0);
}

#[tokio::test]
async fn wrong_host_key_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    // A syntactically valid key that is not the server's.
    std::fs::write(
        &kh,
        format!(
            "[{}]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBd2kXJ2p9m0n0m1g8xv0tCj1kq3w6M2z0ly8mVb6wN9\n",
            var("HW_WEB_SSH_HOST"),
            var("HW_WEB_SSH_PORT")
        ),
    )
    .unwrap();
    let mut cfg = config();
    cfg.known_hosts_file = kh.clone();
    let err = SshPool::new(cfg.clone())
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
    assert!(!AdapterError::from(err).is_transient());

    // Mismatch stays refused even when unknown keys are accepted.
    cfg.accept_unknown_host_key = true;
    let err = SshPool::new(cfg.clone())
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");

    // Unknown host: permanent by default, accepted when configured.
    std::fs::write(&kh, "").unwrap();
    cfg.accept_unknown_host_key = false;
    let err = SshPool::new(cfg.clone())
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err:?}");
    assert!(!AdapterError::from(err).is_transient());
    cfg.accept_unknown_host_key = true;
    let out = SshPool::new(cfg)
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap();
    assert_eq!(out.status, 0);
}

#[tokio::test]
async fn wrong_user_key_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let key: PathBuf = dir.path().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let mut cfg = config();
    cfg.private_key_file = key;
    let err = SshPool::new(cfg)
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    assert!(!AdapterError::from(err).is_transient());
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let mut cfg = config();
    cfg.port = 1; // nothing listens there
    let err = SshPool::new(cfg)
        .run(Command::new("true", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
    assert!(AdapterError::from(err).is_transient());
}

#[tokio::test]
async fn pool_reuses_sessions_and_handles_concurrency() {
    let pool = Arc::new(SshPool::new(config()));
    for _ in 0..5 {
        pool.run(Command::new("true", Vec::<String>::new()))
            .await
            .unwrap();
    }
    assert_eq!(
        pool.sessions_created(),
        1,
        "sequential runs reuse one session"
    );

    let mut tasks = Vec::new();
    for i in 0..24 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let out = pool
                .run(Command::script("sleep 0.2; echo \"$1\"", [i.to_string()]))
                .await
                .unwrap();
            assert_eq!(out.stdout_str().trim(), i.to_string());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let created = pool.sessions_created();
    assert!(
        (2..=4).contains(&created),
        "pool of 4 opened {created} sessions for 24 concurrent commands"
    );
}

#[tokio::test]
async fn files_are_written_atomically_and_read_back() {
    let pool = SshPool::new(config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    let path = path.to_str().unwrap();
    assert_eq!(pool.read_file(path).await.unwrap(), None);
    let body = b"line1\n$(id) `id` 'q'\n".to_vec();
    pool.write_file(path, &body, "0600", "root:root")
        .await
        .unwrap();
    assert_eq!(pool.read_file(path).await.unwrap(), Some(body.clone()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temp file left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A write into a missing directory fails with the command's stderr.
    let err = pool
        .write_file(
            &format!("{}/nope/x", dir.path().display()),
            b"x",
            "0644",
            "root:root",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Exit { .. }), "{err:?}");
}
