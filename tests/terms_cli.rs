//! The terms commands of the built binary on the shipped examples: `contract
//! check` accepts every good example and refuses the rejected one with named
//! rules, `--json` output parses, `contract verify` refuses a tampered file and
//! `bill` prints the statements worked out in docs/billing.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GOOD: [&str; 12] = [
    "www-ssl",
    "www-ssl-more-ftp",
    "securemx",
    "securemx-to-pack",
    "pack-dns",
    "pack-dns-suspend",
    "pack-dns-resume",
    "pack-dns-terminate",
    "www-kobo",
    "www-kobo-inherit",
    "www-kobo-suspend",
    "www-kobo-terminate",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn signed(name: &str) -> PathBuf {
    root().join("examples/signed").join(format!("{name}.json"))
}

fn plain(name: &str) -> PathBuf {
    root()
        .join("examples/contracts")
        .join(format!("{name}.json"))
}

fn keys() -> PathBuf {
    root().join("examples/keys/trusted-keys.toml")
}

fn hostwright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(args)
        .output()
        .expect("the hostwright binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_accepts_every_good_example() {
    for name in GOOD {
        let o = hostwright(&[
            "contract",
            "check",
            s(&signed(name)),
            "--trusted-keys",
            s(&keys()),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout(&o).contains(": ok (contract C-"),
            "{name}: {}",
            stdout(&o)
        );
    }
}

/// `contract check` of a signed example after the plain revision before it.
fn check_after(name: &str, previous: &str) -> Output {
    hostwright(&[
        "contract",
        "check",
        s(&signed(name)),
        "--trusted-keys",
        s(&keys()),
        "--previous",
        s(&plain(previous)),
    ])
}

#[test]
fn check_accepts_the_revisions_in_sequence() {
    for (name, previous) in [
        ("www-ssl-more-ftp", "www-ssl"),
        ("pack-dns-suspend", "pack-dns"),
        ("pack-dns-resume", "pack-dns-suspend"),
        ("pack-dns-terminate", "pack-dns-resume"),
        ("securemx-to-pack", "securemx"),
        ("www-kobo-inherit", "www-kobo"),
        ("www-kobo-suspend", "www-kobo-inherit"),
        ("www-kobo-terminate", "www-kobo-suspend"),
    ] {
        let o = check_after(name, previous);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name} after {previous}: {}",
            stdout(&o)
        );
    }
    // Out of order: revision 2 after revision 4 is refused.
    let o = hostwright(&[
        "contract",
        "check",
        s(&signed("pack-dns-suspend")),
        "--trusted-keys",
        s(&keys()),
        "--previous",
        s(&signed("pack-dns-terminate")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("[revision-increasing]") && out.contains("[terminated-is-final] 第25条"),
        "{out}"
    );
}

#[test]
fn check_refuses_the_rejected_example_with_named_rules() {
    let o = hostwright(&[
        "contract",
        "check",
        s(&signed("rejected-securemx-ssl")),
        "--trusted-keys",
        s(&keys()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("3 finding(s)"), "{out}");
    for needle in [
        "[option-service-type] 第6条2項, 別表③1 at /options/3",
        "[securemx-option-prerequisite] 第6条3項(4) at /options/4",
        "[securemx-administrator] 第9条1項 at /secure_mx/administrator/name",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in\n{out}");
    }
}

#[test]
fn check_json_output_parses() {
    let o = hostwright(&[
        "contract",
        "check",
        s(&signed("rejected-securemx-ssl")),
        "--trusted-keys",
        s(&keys()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json prints JSON");
    assert_eq!(v["ok"], false);
    assert_eq!(v["contract_id"], "C-9001");
    assert_eq!(v["revision"], 1);
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "option-service-type",
            "securemx-option-prerequisite",
            "securemx-administrator"
        ]
    );
    for f in v["findings"].as_array().unwrap() {
        for field in ["rule", "article", "path", "message"] {
            assert!(f[field].as_str().is_some_and(|x| !x.is_empty()), "{f}");
        }
    }
    let o = hostwright(&[
        "contract",
        "check",
        s(&signed("securemx")),
        "--trusted-keys",
        s(&keys()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["findings"], serde_json::json!([]));
}

/// A copy of a signed example with one byte of its contract changed.
fn tampered(dir: &Path) -> PathBuf {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(signed("www-ssl")).unwrap()).unwrap();
    let payload = b64.decode(env["payload"].as_str().unwrap()).unwrap();
    let text = String::from_utf8(payload).unwrap();
    let changed = text.replacen("\"quantity\": 2", "\"quantity\": 9", 1);
    assert_ne!(changed, text, "test setup: the payload must change");
    env["payload"] = serde_json::json!(b64.encode(changed));
    let path = dir.join("tampered.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&env).unwrap()).unwrap();
    path
}

#[test]
fn verify_accepts_the_examples_and_rejects_a_tampered_file() {
    for name in GOOD {
        let o = hostwright(&[
            "contract",
            "verify",
            s(&signed(name)),
            "--trusted-keys",
            s(&keys()),
        ]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("signed by `example-only-2026`"),
            "{}",
            stdout(&o)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = tampered(dir.path());
    let o = hostwright(&["contract", "verify", s(&bad), "--trusted-keys", s(&keys())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("signature does not verify with key `example-only-2026`"),
        "{}",
        stdout(&o)
    );
    // check refuses it too, before any rule.
    let o = hostwright(&[
        "contract",
        "check",
        s(&bad),
        "--trusted-keys",
        s(&keys()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("signature does not verify"),
        "{v}"
    );
    // A plain (unsigned) contract is not an envelope.
    let o = hostwright(&[
        "contract",
        "verify",
        s(&plain("www-ssl")),
        "--trusted-keys",
        s(&keys()),
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn sign_then_verify_with_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let tk = dir.path().join("trusted.toml");
    let o = hostwright(&[
        "keys",
        "generate",
        "--id",
        "test-key",
        "--out-dir",
        s(dir.path()),
        "--trusted-keys",
        s(&tk),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = dir.path().join("signed.json");
    let o = hostwright(&[
        "contract",
        "sign",
        s(&plain("securemx")),
        "--key",
        s(&dir.path().join("test-key.key")),
        "--key-id",
        "test-key",
        "--out",
        s(&out),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = hostwright(&["contract", "verify", s(&out), "--trusted-keys", s(&tk)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // Not trusted by the example keys file.
    let o = hostwright(&["contract", "verify", s(&out), "--trusted-keys", s(&keys())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("unknown signing key `test-key`"),
        "{}",
        stdout(&o)
    );
}

fn bill_json(files: &[PathBuf], month: &str) -> serde_json::Value {
    let mut args = vec!["bill".to_string()];
    args.extend(files.iter().map(|f| s(f).to_string()));
    args.extend(["--month".into(), month.into(), "--json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = hostwright(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("bill --json prints JSON")
}

#[test]
fn bill_prints_the_worked_examples() {
    // Worked out by hand in docs/billing.md.
    let www = [signed("www-ssl"), signed("www-ssl-more-ftp")];
    for (month, total) in [
        ("2026-12", "93500"),
        ("2027-01", "26400"),
        ("2027-02", "26400"),
        ("2027-03", "27500"),
    ] {
        let v = bill_json(&www, month);
        assert_eq!(v["total"], total, "www {month}: {v}");
    }
    let mx = [plain("securemx")];
    for (month, total) in [
        ("2026-12", "38500"),
        ("2027-01", "8580"),
        ("2027-02", "8140"),
    ] {
        assert_eq!(bill_json(&mx, month)["total"], total, "securemx {month}");
    }
    let pack: Vec<PathBuf> = [
        "pack-dns-terminate",
        "pack-dns",
        "pack-dns-resume",
        "pack-dns-suspend",
    ]
    .map(plain)
    .to_vec();
    for (month, total) in [
        ("2026-12", "33000"),
        ("2027-01", "16500"),
        ("2027-03", "16500"),
        ("2027-04", "0"),
    ] {
        assert_eq!(bill_json(&pack, month)["total"], total, "pack {month}");
    }
    // The human form has the same total.
    let o = hostwright(&["bill", s(&plain("securemx")), "--month", "2027-01"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("¥8,580"), "{}", stdout(&o));
    // The table is aligned by display width: every amount ends in the same
    // terminal column, Japanese descriptions (two columns a character)
    // included.
    let o = hostwright(&["bill", s(&plain("pack-dns")), "--month", "2027-01"]);
    let text = stdout(&o);
    let ends: Vec<usize> = text
        .lines()
        .filter_map(|l| {
            // The last amount of the line (the line's total).
            let last = l.rfind('¥')?;
            let len = l[last..]
                .find(|c: char| c != '¥' && c != ',' && !c.is_ascii_digit())
                .unwrap_or(l.len() - last);
            Some(unicode_width::UnicodeWidthStr::width(&l[..last + len]))
        })
        .collect();
    assert!(ends.len() >= 5, "{text}");
    assert!(ends.iter().all(|e| *e == ends[0]), "{ends:?}\n{text}");
    assert!(text.contains("パック"), "{text}");
    // A bad month is an error (exit 2).
    let o = hostwright(&["bill", s(&plain("securemx")), "--month", "2027-1"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_and_bill_show_a_succession_a_company_termination_and_a_type_change() {
    // contract check names what the revision records.
    let check = |name: &str, previous: &str| {
        let o = check_after(name, previous);
        assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
        stdout(&o)
    };
    let out = check("www-kobo-inherit", "www-kobo");
    assert!(
        out.contains("succession (第18条, 相続): CU-0004 Suzuki Hanako → CU-0005 Suzuki Taro, on 2027-01-20, reported 2027-01-28"),
        "{out}"
    );
    let out = check("www-kobo-terminate", "www-kobo-suspend");
    assert!(
        out.contains("termination (company_after_suspension, 第24条1項): ends 2027-02-26")
            && out.contains("第33条 applies"),
        "{out}"
    );
    assert!(!out.contains("succession"), "{out}");
    let out = check("securemx-to-pack", "securemx");
    assert!(
        out.contains(
            "service type change (別表②2): mail_secure_mx → pack_secure_mx from 2027-02-01"
        ),
        "{out}"
    );
    // bill shows the change fee and the switch of the monthly fee.
    let mx = [plain("securemx"), plain("securemx-to-pack")];
    for (month, total) in [
        ("2027-01", "8580"),
        ("2027-02", "28490"),
        ("2027-03", "17490"),
    ] {
        assert_eq!(
            bill_json(&mx, month)["total"],
            total,
            "securemx-to-pack {month}"
        );
    }
    let o = hostwright(&["bill", s(&mx[0]), s(&mx[1]), "--month", "2027-02"]);
    let out = stdout(&o);
    assert!(
        out.contains(
            "サービス種別の変更 (追加及び削除など) mail_secure_mx → pack_secure_mx (2027-02-01)"
        ) && out.contains("[service_type_change / 第31条3項, 別表②2]")
            && out.contains("[service:pack_secure_mx / "),
        "{out}"
    );
    // The company termination: February whole plus 第33条's March; then nothing.
    let kobo: Vec<PathBuf> = [
        "www-kobo",
        "www-kobo-inherit",
        "www-kobo-suspend",
        "www-kobo-terminate",
    ]
    .map(signed)
    .to_vec();
    for (month, total) in [("2027-01", "22000"), ("2027-02", "24200"), ("2027-03", "0")] {
        assert_eq!(bill_json(&kobo, month)["total"], total, "www-kobo {month}");
    }
    let mut args: Vec<&str> = vec!["bill"];
    args.extend(kobo.iter().map(|p| s(p)));
    args.extend(["--month", "2027-02"]);
    let out = stdout(&hostwright(&args));
    assert!(
        out.contains("[early_termination / 第12条, 第33条]")
            && out.contains("note: ended on 2027-02-26 (company_after_suspension, 第24条1項)"),
        "{out}"
    );
    args.pop();
    args.push("2027-01");
    let out = stdout(&hostwright(&args));
    assert!(
        out.contains("note: the customer's position passed from CU-0004 to CU-0005 by 相続"),
        "{out}"
    );
}

// --- docs/contract.schema.json -------------------------------------------------------------

fn schema() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root().join("docs/contract.schema.json")).unwrap())
        .expect("the schema is JSON")
}

/// Every way `v` breaks the published schema (a full draft 2020-12 validator).
fn schema_errors(v: &serde_json::Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema()).expect("the schema is a valid schema");
    validator
        .iter_errors(v)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn every_example_contract_validates_against_the_schema() {
    let root = schema();
    assert_eq!(
        root["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    for name in GOOD.iter().chain(&["rejected-securemx-ssl"]) {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(plain(name)).unwrap()).unwrap();
        let errors = schema_errors(&v);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn the_schema_refuses_what_the_parser_refuses() {
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plain("securemx")).unwrap()).unwrap();
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("/discount", serde_json::json!(1)),
        ("/service", serde_json::json!("WWW")),
        ("/contract_id", serde_json::json!("c-1")),
        ("/status", serde_json::json!({"state": "active", "note": 1})),
        (
            "/status",
            serde_json::json!({"state": "suspended", "since": "2027-01-01"}),
        ),
        ("/options/0/item", serde_json::json!("mx_account")),
        ("/options/0/quoted_monthly", serde_json::json!(100)),
        ("/customer/email", serde_json::json!("x@y.jp")),
        ("/usage/0/month", serde_json::json!("2027-13")),
        ("/revision", serde_json::json!(0)),
        ("/revision", serde_json::json!(1_000_001)),
        ("/revision", serde_json::json!(4_294_967_295u32)),
        ("/customer/id", serde_json::json!("")),
        (
            "/customer/id",
            serde_json::json!("CU-1\n2026-12-01 INFO accepted"),
        ),
        ("/customer/id", serde_json::json!("CU\u{1b}[32m")),
        ("/customer/id", serde_json::json!("x".repeat(65))),
        ("/domains/0/name", serde_json::json!("127.0.0.1")),
        ("/domains/0/name", serde_json::json!("１２７．０．０．１")),
        ("/secure_mx/target_domains/0", serde_json::json!("10.0.0.1")),
        ("/domains/0/renewal_month", serde_json::json!(13)),
    ];
    for (pointer, value) in cases {
        let mut v = base.clone();
        if let Some(existing) = v.pointer_mut(pointer) {
            *existing = value.clone();
        } else {
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            v.pointer_mut(parent).unwrap()[key] = value.clone();
        }
        assert!(
            !schema_errors(&v).is_empty(),
            "the schema should refuse {pointer} = {value}"
        );
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(
            hostwright::contract::Contract::from_json(&bytes).is_err(),
            "the parser should refuse {pointer} = {value}"
        );
    }
}

// --- hostile input (issue 11, part 4) -------------------------------------------------------

/// Every file the CLI reads is read to its documented limit and no further:
/// an endless file is refused at once, naming the limit.
#[test]
fn files_are_read_to_their_limit_and_no_further() {
    let zero = "/dev/zero";
    let good = signed("www-ssl");
    let k = keys();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["contract", "check", zero, "--trusted-keys", s(&k)],
            "1402197 bytes, the limit for a signed contract envelope",
        ),
        (
            vec!["contract", "check", s(&good), "--trusted-keys", zero],
            "262144 bytes, the limit for a trusted-keys file",
        ),
        (
            vec![
                "contract",
                "check",
                s(&good),
                "--trusted-keys",
                s(&k),
                "--previous",
                zero,
            ],
            "1402197 bytes, the limit for a contract (signed envelope or JSON)",
        ),
        (
            vec!["contract", "verify", zero, "--trusted-keys", s(&k)],
            "1402197 bytes, the limit for a signed contract envelope",
        ),
        (
            vec!["contract", "sign", zero, "--key", zero, "--key-id", "k"],
            "1048576 bytes, the limit for a contract document",
        ),
        (
            vec!["bill", zero, "--month", "2027-01"],
            "1402197 bytes, the limit for a contract (signed envelope or JSON)",
        ),
        (
            vec!["submit", zero, "--url", "http://127.0.0.1:9"],
            "1402197 bytes, the limit for a signed contract envelope",
        ),
    ];
    for (args, limit) in cases {
        let started = std::time::Instant::now();
        let o = hostwright(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "/dev/zero is larger than {limit}; reading stopped there"
            )),
            "{args:?}: {err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{args:?}"
        );
    }
}

/// A key id (or anything else) with control characters is printed escaped:
/// the refusal stays one line and draws nothing.
#[test]
fn check_prints_a_hostile_key_id_escaped_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hostile.json");
    let signature = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 64]);
    let env = serde_json::json!({
        "key_id": "k\n./x.json: ok (contract C-EVIL revision 1)\r\x1b[2K\u{9b}1A",
        "payload": "",
        "signature": signature,
    });
    std::fs::write(&file, serde_json::to_vec(&env).unwrap()).unwrap();
    let o = hostwright(&["contract", "check", s(&file), "--trusted-keys", s(&keys())]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(
        !out.trim_end_matches('\n')
            .contains(hostwright::escape::is_unsafe),
        "{out:?}"
    );
    assert!(
        out.contains("unknown signing key `k\\n./x.json: ok (contract C-EVIL"),
        "{out}"
    );
    // The JSON output is the same value, still without a raw control character.
    let o = hostwright(&[
        "contract",
        "check",
        s(&file),
        "--trusted-keys",
        s(&keys()),
        "--json",
    ]);
    let out = stdout(&o);
    assert!(
        !out.trim_end_matches('\n')
            .contains(hostwright::escape::is_unsafe),
        "{out:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["error"].as_str().unwrap().contains("\u{9b}1A"), "{v}");
}

#[test]
fn keys_generate_and_contract_verify_answer_json() {
    let dir = tempfile::tempdir().unwrap();
    let o = hostwright(&[
        "keys",
        "generate",
        "--id",
        "k-json",
        "--out-dir",
        s(dir.path()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["key_id"], "k-json");
    assert!(
        v["public_key"].as_str().is_some_and(|k| k.len() == 44),
        "{v}"
    );
    assert!(v["trusted_keys_entry"].as_str().unwrap().contains("k-json"));
    assert!(v["appended_to"].is_null());
    assert!(dir.path().join("k-json.key").exists());

    let signed = root().join("examples/signed/pack-dns.json");
    let o = hostwright(&[
        "contract",
        "verify",
        s(&signed),
        "--trusted-keys",
        s(&keys()),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["contract_id"], "C-3001");
    assert!(v["error"].is_null());
    // Refused: the same shape, `valid: false` and why; exit 1.
    let other = dir.path().join("other-keys.toml");
    let o = hostwright(&[
        "keys",
        "generate",
        "--id",
        "other",
        "--out-dir",
        s(dir.path()),
        "--trusted-keys",
        s(&other),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let o = hostwright(&[
        "contract",
        "verify",
        s(&signed),
        "--trusted-keys",
        s(&other),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert!(
        v["error"].as_str().unwrap().contains("unknown signing key"),
        "{v}"
    );
    assert!(v["contract_id"].is_null());
}
