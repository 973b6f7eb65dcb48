//! Test support: where the real backends started by `scripts/testenv/up.sh` are.
//!
//! `up.sh` writes `KEY=value` lines to `.hostwright/testenv/env` at the
//! workspace root. Integration tests call [`var`], which reads the process
//! environment first and that file second. A missing value panics with the
//! command to run: a test that needs a backend fails without it, never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root, found by walking up from this crate to `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        if dir.join("Cargo.lock").exists() && dir.join("adapters").is_dir() {
            return dir;
        }
        if !dir.pop() {
            panic!("no workspace root above {}", env!("CARGO_MANIFEST_DIR"));
        }
    }
}

fn file_vars() -> &'static BTreeMap<String, String> {
    static VARS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    VARS.get_or_init(|| {
        let path = workspace_root().join(".hostwright/testenv/env");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let l = l.trim().trim_start_matches("export ");
                let (k, v) = l.split_once('=')?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect()
    })
}

/// The value of a test-environment variable, or a panic that says how to get it.
pub fn var(name: &str) -> String {
    try_var(name).unwrap_or_else(|| {
        panic!(
            "test backend variable {name} is not set: run `scripts/testenv/up.sh` \
             (the README's test command does) so the real backends are started"
        )
    })
}

/// The value of a test-environment variable, if the test environment has it.
pub fn try_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| file_vars().get(name).cloned())
}

/// Which `[adapters.*]` sections [`adapters_toml`] writes.
#[derive(Debug, Clone)]
pub struct Sections {
    /// The UIDs the web host adapter may give out: a range of its own per
    /// user of the test environment keeps their accounts apart.
    pub uids: (u32, u32),
    /// `[adapters.ftp]` and `[adapters.dns]` too (else the web host only).
    pub ftp_and_dns: bool,
    /// `[adapters.securemx]` too.
    pub securemx: bool,
}

/// The `[adapters.*]` sections of a `hostwright serve` config that drive the
/// real backends of the test environment, so every test and benchmark drives
/// them the same way. Errs with the name of a missing variable.
pub fn adapters_toml(s: &Sections) -> Result<String, String> {
    let mut out = web_sections(1, "adapters.webhost", "adapters.ftp", s.uids, s.ftp_and_dns)?;
    out.push_str(&other_sections(s)?);
    Ok(out)
}

/// A `[fleet]` of the test environment's web hosts (`hosts`: 1 or 2; the
/// second is `webhost2.sh`'s nginx and pure-ftpd behind the same sshd),
/// named `web1`, `web2`, each with its own half of `s.uids`, and the other
/// adapters as [`adapters_toml`] writes them. Capacity is not what is
/// measured here: each host takes 100,000 accounts.
pub fn fleet_toml(s: &Sections, hosts: u8, policy: &str) -> Result<String, String> {
    let mut out = format!("[fleet]\npolicy = \"{policy}\"\n\n");
    let span = (s.uids.1 - s.uids.0 + 1) / u32::from(hosts.max(1));
    for n in 1..=hosts {
        let lo = s.uids.0 + span * u32::from(n - 1);
        out.push_str(&format!(
            "[[fleet.hosts]]\nname = \"web{n}\"\nipv4 = \"192.0.2.{}\"\n\
             capacity_accounts = 100000\ncapacity_disk_gb = 100000000\n\n",
            80 + n
        ));
        out.push_str(&web_sections(
            n,
            "fleet.hosts.webhost",
            "fleet.hosts.ftp",
            (lo, lo + span - 1),
            true,
        )?);
    }
    out.push_str(&other_sections(s)?);
    Ok(out)
}

fn env_var(name: &str) -> Result<String, String> {
    try_var(name).ok_or_else(|| {
        format!("{name} is not set: run `scripts/testenv/up.sh` so the real backends are started")
    })
}

/// Test web host `n`'s web host section under `[web]` (and its FTP section
/// under `[ftp]` with `ftp`).
fn web_sections(
    n: u8,
    web: &str,
    ftp_header: &str,
    uids: (u32, u32),
    ftp: bool,
) -> Result<String, String> {
    let v = env_var;
    // Host 1's variables are HW_WEB_* / HW_FTP_*; host 2's HW_WEB2_* / HW_FTP2_*.
    let k = |base: &str, name: &str| {
        if n == 1 {
            format!("HW_{base}_{name}")
        } else {
            format!("HW_{base}{n}_{name}")
        }
    };
    let root = v(&k("WEB", "ROOT"))?;
    let ssh = format!(
        "host = \"{}\"\nport = {}\nuser = \"{}\"\nprivate_key_file = \"{}\"\nknown_hosts_file = \"{}\"\n",
        v("HW_WEB_SSH_HOST")?,
        v("HW_WEB_SSH_PORT")?,
        v("HW_WEB_SSH_USER")?,
        v("HW_WEB_SSH_KEY")?,
        v("HW_WEB_KNOWN_HOSTS")?,
    );
    let mut out = format!(
        r#"[{web}]
home_root = "{root}/home"
sites_dir = "{root}/sites"
tls_dir = "{root}/tls"
archive_dir = "{root}/archive"
suspended_root = "{root}/suspended"
nginx_conf = "{nginx_conf}"
http_port = {http_port}
https_port = {https_port}
listen_address = "127.0.0.1"
uid_min = {uid_min}
uid_max = {uid_max}
tls_ca_cert = "{ca_cert}"
tls_ca_key = "{ca_key}"

[{web}.ssh]
{ssh}
"#,
        nginx_conf = v(&k("WEB", "NGINX_CONF"))?,
        http_port = v(&k("WEB", "HTTP_PORT"))?,
        https_port = v(&k("WEB", "HTTPS_PORT"))?,
        uid_min = uids.0,
        uid_max = uids.1,
        ca_cert = v("HW_TLS_CA_CERT")?,
        ca_key = v("HW_TLS_CA_KEY")?,
    );
    if ftp {
        out.push_str(&format!(
            r#"[{ftp_header}]
home_root = "{root}/home"
passwd_file = "{ftp_passwd}"
pdb_file = "{ftp_pdb}"

[{ftp_header}.ssh]
{ssh}
"#,
            ftp_passwd = v(&k("FTP", "PASSWD"))?,
            ftp_pdb = v(&k("FTP", "PDB"))?,
        ));
    }
    Ok(out)
}

/// The DNS and Secure MX sections, as `s` asks.
fn other_sections(s: &Sections) -> Result<String, String> {
    let v = env_var;
    let mut out = String::new();
    if s.ftp_and_dns {
        out.push_str(&format!(
            r#"[adapters.dns]
server = "{dns_server}"
rndc_host = "{rndc_host}"
rndc_port = {rndc_port}
rndc_key_file = "{rndc_key}"
tsig_key_name = "{tsig_name}"
tsig_secret_file = "{tsig_file}"
nameserver = "{nameserver}"
initial_file = "{initial_file}"
zone_file_dir = "{zone_dir}"

"#,
            dns_server = v("HW_DNS_SERVER")?,
            rndc_host = v("HW_DNS_RNDC_HOST")?,
            rndc_port = v("HW_DNS_RNDC_PORT")?,
            rndc_key = v("HW_DNS_RNDC_KEY")?,
            tsig_name = v("HW_DNS_TSIG_NAME")?,
            tsig_file = v("HW_DNS_TSIG_FILE")?,
            nameserver = v("HW_DNS_NAMESERVER")?,
            initial_file = v("HW_DNS_INITIAL_FILE")?,
            zone_dir = v("HW_DNS_ZONE_DIR")?,
        ));
    }
    if s.securemx {
        out.push_str(&format!(
            "[adapters.securemx]\nbase_url = \"{}\"\napi_key_file = \"{}\"\n",
            v("HW_SECUREMX_URL")?,
            v("HW_SECUREMX_API_KEY_FILE")?,
        ));
    }
    Ok(out)
}

/// Runs one of an adapter's remote scripts here, under `sh -c`, the way the
/// SSH transport runs it on a host (`$0` = `sh`, then `args`), with `bin_dir`
/// first on `PATH` so that a test can put stand-ins for host tools
/// (`getent`, `pure-pw`, `nginx`, ...) there. Feeds `stdin`; returns the exit
/// status (-1 if killed by a signal) and the lines of stdout. For unit tests
/// of the scripts' logic without a host.
pub fn run_script<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
    bin_dir: &Path,
    stdin: &str,
) -> (i32, Vec<String>) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("script reads its stdin");
    let out = child.wait_with_output().expect("script ends");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}
