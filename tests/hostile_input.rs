//! Hostile and oversized input against a real `hostwright serve` (issue 11,
//! part 4), as anyone who can reach the webhook would send it: forged log
//! lines, bodies far over the limit, a contract just under the envelope
//! limit, refusals in a loop, absurd list limits; and the CLI printing what a
//! hostile server answers. The store-level parts (what a refusal keeps,
//! retention, the refusal budget) run on both back ends in `engine_suite.rs`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hostwright::escape::is_unsafe;
use hostwright::signing::MAX_ENVELOPE_BYTES;

const TOKEN: &str = "test-ops-token";

/// A serve config on SQLite with scripted adapters; `intake_extra` is added
/// to `[intake]`.
fn write_config(dir: &Path, port: u16, intake_extra: &str) -> PathBuf {
    let sections = format!(
        "{intake_extra}\n[workers]\nconcurrency = 2\npoll_interval_ms = 50\n\n[adapters.scripted]\n"
    );
    write_scripted_config(dir, "sqlite:jobs.db", port, TOKEN, &sections)
}

async fn start(dir: &Path, intake_extra: &str) -> (Serve, u16) {
    let port = free_port();
    let serve = Serve::start(&write_config(dir, port, intake_extra));
    wait_http(port, "/healthz").await;
    (serve, port)
}

fn post(port: u16, body: Vec<u8>) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/contracts"))
        .body(body)
}

async fn ops_get(port: u16, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn rejections(port: u16) -> Vec<serde_json::Value> {
    let r = ops_get(port, "/v1/rejections").await;
    assert_eq!(r.status(), 200);
    let page: serde_json::Value = r.json().await.unwrap();
    page["items"].as_array().expect("a page of items").clone()
}

/// Sends a request by hand: the head, then `body` chunks while the server
/// still reads (a write error ends the sending: the server has answered and
/// closed). Returns the status and the body of the answer.
fn raw_request(
    port: u16,
    head: &str,
    body: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let head = head.to_string();
    let sender = std::thread::spawn(move || {
        let mut sent = 0usize;
        if writer.write_all(head.as_bytes()).is_err() {
            return sent;
        }
        for chunk in body {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut reader = BufReader::new(&mut stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut text = vec![0u8; len];
    reader.read_exact(&mut text).unwrap();
    drop(reader);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let sent = sender.join().unwrap();
    assert!(sent < 64 * 1024 * 1024, "the server read {sent} bytes");
    (code, String::from_utf8(text).unwrap())
}

#[tokio::test]
async fn forged_log_lines_are_escaped_in_the_human_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("serve.log");
    let mut serve = Serve::start_logging(&write_config(dir.path(), port, ""), &log, "info");
    wait_http(port, "/healthz").await;
    let forged = "\n2026-12-01T00:00:00.000000Z  INFO hostwright::engine::intake: contract accepted; job queued contract_id=C-EVIL\r\x1b[2K\u{9b}1A";
    // An unknown key id, and an unknown field name in the envelope: both are
    // quoted in the signature-check warning.
    // (Key ids are quoted up to 64 characters.)
    let key_id = "k\n2026-12-01T00:00:00Z  INFO accepted C-EVIL\r\x1b[2K\u{9b}1A";
    assert!(key_id.chars().count() < 64);
    let signature = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 64]);
    let by_key_id = serde_json::json!({"key_id": key_id, "payload": "", "signature": signature});
    let by_field = format!(
        "{{\"key_id\": \"k\", \"payload\": \"\", \"signature\": \"\", {}: 1}}",
        serde_json::to_string(&format!("FIELD{forged}")).unwrap()
    );
    for body in [
        serde_json::to_vec(&by_key_id).unwrap(),
        by_field.into_bytes(),
    ] {
        let r = post(port, body).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    serve.kill_9();
    let text = std::fs::read_to_string(&log).unwrap();
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("contract refused at signature check"))
        .collect();
    assert_eq!(refusals.len(), 2, "{text}");
    for line in text.lines() {
        assert!(
            !line.contains(is_unsafe),
            "a raw control character: {line:?}"
        );
        if line.contains("C-EVIL") {
            assert!(
                line.contains("contract refused at signature check"),
                "a forged line: {line:?}\n{text}"
            );
        }
    }
    assert!(
        refusals[0].contains("k\\n2026-12-01T00:00:00Z  INFO accepted C-EVIL\\r\\x1b[2K"),
        "{}",
        refusals[0]
    );
    assert!(
        refusals[1].contains("unknown field `FIELD\\n2026-12-01"),
        "{}",
        refusals[1]
    );
}

#[tokio::test]
async fn one_size_limit_one_json_refusal_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, port) = start(dir.path(), "").await;

    // A contract `contract check` accepts, whose envelope is over 1 MiB
    // (the old body limit) and under MAX_ENVELOPE_BYTES: accepted by serve too.
    let mut c = www_contract("C-5001", 1);
    c["customer"]["name"] = serde_json::json!("x".repeat(1_040_000));
    let envelope = sign(&keys(), &c);
    assert!(envelope.len() > 1024 * 1024 && envelope.len() <= MAX_ENVELOPE_BYTES);
    let file = dir.path().join("big.json");
    std::fs::write(&file, &envelope).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["contract", "check"])
        .arg(&file)
        .arg("--trusted-keys")
        .arg(dir.path().join("trusted-keys.toml"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{check:?}");
    let r = post(port, envelope).send().await.unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);

    // Far over the limit, with a Content-Length of 64 MiB and without one
    // (chunked, endless): 413 as JSON once the limit is passed, recorded.
    let declared = format!(
        "POST /v1/contracts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        64 * 1024 * 1024
    );
    let chunks = std::iter::repeat_n(vec![b'{'; 64 * 1024], 1024);
    let (status, body) = raw_request(port, &declared, chunks);
    assert_eq!(status, 413, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["outcome"], "too_large");
    assert_eq!(v["limit"], MAX_ENVELOPE_BYTES);

    let chunked = "POST /v1/contracts HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n";
    let endless = std::iter::repeat_with(|| {
        let mut c = format!("{:x}\r\n", 64 * 1024).into_bytes();
        c.extend(std::iter::repeat_n(b' ', 64 * 1024));
        c.extend_from_slice(b"\r\n");
        c
    })
    .take(1024);
    let (status, body) = raw_request(port, chunked, endless);
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["outcome"],
        "too_large"
    );

    let rej = rejections(port).await;
    let too_large: Vec<_> = rej.iter().filter(|r| r["kind"] == "too_large").collect();
    assert_eq!(too_large.len(), 2, "{rej:?}");
    for r in too_large {
        assert_eq!(r["received_size"], MAX_ENVELOPE_BYTES + 1);
        assert_eq!(r["received_sha256"].as_str().unwrap().len(), 64);
    }
}

#[tokio::test]
async fn an_address_refused_too_often_gets_429_as_json_and_only_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, port) = start(dir.path(), "refusal_burst = 2\nrefusals_per_minute = 1").await;
    for _ in 0..2 {
        let r = post(port, b"junk".to_vec()).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = post(port, b"junk".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "rate_limited");
    assert_eq!(v["retry_after_seconds"], retry);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("too many refused submissions"),
        "{v}"
    );
    assert_eq!(rejections(port).await.len(), 2);
    let metrics = ops_get(port, "/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("hostwright_intake_rate_limited_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn job_listings_are_capped_with_an_error_naming_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let (_serve, port) = start(dir.path(), "").await;
    for bad in [
        "4294967295",
        "99999999999999999999",
        "0",
        "1001",
        "-1",
        "ten",
    ] {
        let r = ops_get(port, &format!("/v1/jobs?limit={bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["detail"].as_str().unwrap().contains("from 1 to 1000"),
            "{bad}: {v}"
        );
    }
    for good in ["1", "1000"] {
        assert_eq!(
            ops_get(port, &format!("/v1/jobs?limit={good}"))
                .await
                .status(),
            200
        );
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["jobs", "list", "--limit", "4294967295", "--url"])
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(2));
    let err = String::from_utf8_lossy(&cli.stderr);
    assert!(err.contains("1..=1000"), "{err}");
}

/// A stand-in server that answers each request, in turn, with one of `answers`
/// (status, JSON body), closing each connection.
fn fake_server(answers: Vec<(u16, serde_json::Value)>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body_in = vec![0u8; len];
            r.read_exact(&mut body_in).unwrap();
            let text = body.to_string();
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    port
}

#[test]
fn the_cli_prints_what_a_server_says_without_its_control_characters() {
    let fake = "C-1\n2026-12-01 ok: accepted job 00000000 (C-EVIL rev 1)\r\x1b[2K\x1b[32m\u{9b}1A";
    let port = fake_server(vec![
        (
            202,
            serde_json::json!({"outcome": "accepted", "job_id": fake, "contract_id": fake, "revision": 1}),
        ),
        (
            422,
            serde_json::json!({"outcome": "rejected", "findings": [
                {"rule": fake, "article": fake, "path": fake, "message": fake}]}),
        ),
        (
            400,
            serde_json::json!({"outcome": "malformed", "error": fake}),
        ),
        (
            200,
            serde_json::json!({"items": [{"job_id": fake, "contract_id": fake, "revision": 1, "state": "failed",
                "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z",
                "error": fake, "steps_total": 1, "steps_done": 0}], "next_cursor": null}),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, b"{}").unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hostwright"))
            .args(args)
            .args(["--url", &url])
            .output()
            .unwrap();
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let f = file.to_str().unwrap();
    let (out, err) = run(&["submit", f, f, f]);
    // One line per answer, plus the finding: nothing drew a line of its own.
    assert_eq!(out.lines().count(), 4, "{out}\n{err}");
    assert!(!out.replace('\n', "").contains(is_unsafe), "{out:?}");
    assert!(
        out.lines().next().unwrap().contains("C-1\\n2026-12-01 ok"),
        "{out}"
    );
    let (out, err) = run(&["jobs", "list"]);
    assert_eq!(out.lines().count(), 2, "{out}\n{err}");
    assert!(!out.replace('\n', "").contains(is_unsafe), "{out:?}");
}
