//! Contracts for the suite: the signed examples' documents with run-unique
//! ids and domains (so a second run, or a second test, never meets what an
//! earlier one left), signed with the example-only key the stack trusts.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::stack::repo;

/// Six hex digits, fixed for this test process.
pub fn run_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| format!("{:06X}", rand::random::<u32>() & 0xff_ffff))
}

/// One contract of the suite: its id, Unix user and main domain.
#[derive(Debug, Clone)]
pub struct Names {
    pub id: String,
    pub user: String,
    pub domain: String,
}

/// Fresh names for contract `n` of the group `group` (a few letters naming
/// the test). The id fits `^[A-Z][A-Z0-9-]{2,31}$` and the user the Unix
/// user-name rules.
pub fn names(group: &str, n: usize) -> Names {
    let tag = run_tag();
    let id = format!("C-{tag}-{}{n:03}", group.to_ascii_uppercase());
    Names {
        user: id.to_ascii_lowercase(),
        domain: format!(
            "{}{n}-{}.example",
            group.to_ascii_lowercase(),
            tag.to_ascii_lowercase()
        ),
        id,
    }
}

fn example(file: &str) -> Value {
    let path = repo().join("examples/contracts").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("example contract parses")
}

/// The example `file` renamed to `n`: contract and customer id, every
/// domain, the mail domain and the administrator's address.
pub fn renamed(file: &str, n: &Names) -> Value {
    let mut c = example(file);
    c["contract_id"] = json!(n.id);
    c["customer"]["id"] = json!(format!("CU-{}", &n.id[2..]));
    // `get_mut`, not `c["..."]`: indexing a missing key would insert a null.
    for d in c
        .get_mut("domains")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        d["name"] = json!(n.domain);
    }
    for o in c
        .get_mut("one_time")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if o.get("domain").is_some() {
            o["domain"] = json!(n.domain);
        }
    }
    if c.get("secure_mx").is_some() {
        c["secure_mx"]["target_domains"] = json!([n.domain]);
        c["secure_mx"]["administrator"]["email"] = json!(format!("admin@{}", n.domain));
    }
    c
}

/// `examples/contracts/www-ssl.json`: WWW with SSL, 2 extra FTP accounts,
/// 1 GB extra disk, DNS operation.
pub fn www_ssl(n: &Names) -> Value {
    renamed("www-ssl.json", n)
}

/// `securemx.json`: Secure MX mail with 5 extra accounts, 2 extra disk units,
/// the mailing-list option and 5 mailboxes.
pub fn securemx(n: &Names) -> Value {
    renamed("securemx.json", n)
}

/// `pack-dns.json` and its later revisions (`pack-dns-suspend.json`, ...).
pub fn pack(file: &str, n: &Names) -> Value {
    renamed(file, n)
}

/// The smallest WWW contract with DNS operation: one web space, one vhost,
/// one FTP account, one zone. The batches of the fault tests use it.
pub fn www_plain(n: &Names) -> Value {
    let mut c = renamed("www-ssl.json", n);
    c["options"] = json!([]);
    c.as_object_mut().unwrap().remove("one_time");
    c
}

/// A contract with a new revision number and `requested_on`.
pub fn revised(mut c: Value, revision: u32, requested_on: &str) -> Value {
    c["revision"] = json!(revision);
    c["requested_on"] = json!(requested_on);
    c
}

/// Signed with the example-only key (`examples/keys/`), which the stack's
/// hostwright trusts.
pub fn sign(c: &Value) -> Vec<u8> {
    static KEY: OnceLock<ed25519_dalek::SigningKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        hostwright::signing::read_signing_key(&repo().join("examples/keys/example-only-2026.key"))
            .expect("example signing key")
    });
    let bytes = serde_json::to_vec_pretty(c).expect("contract serialises");
    hostwright::signing::sign(&bytes, "example-only-2026", key)
}
