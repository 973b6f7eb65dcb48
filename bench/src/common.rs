//! What every part shares: where things are, the bench signing key, signed
//! contracts, and the local helpers (shell scripts run as root on this
//! machine, which is the loopback web host of the test environment).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// Paths and test-environment coordinates for one bench run.
pub struct Ctx {
    pub root: PathBuf,
    /// Release `hostwright` binary.
    pub hostwright: PathBuf,
    /// This run's scratch folder (configs, stores, logs).
    pub work: PathBuf,
    env: BTreeMap<String, String>,
}

impl Ctx {
    pub fn new(root: &Path, hostwright: &Path, work: &Path) -> Result<Ctx> {
        let env_file = root.join(".hostwright/testenv/env");
        let text = std::fs::read_to_string(&env_file).with_context(|| {
            format!(
                "{} missing: run scripts/testenv/up.sh (scripts/bench does)",
                env_file.display()
            )
        })?;
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        std::fs::create_dir_all(work)?;
        Ok(Ctx {
            root: root.to_path_buf(),
            hostwright: hostwright.to_path_buf(),
            work: work.to_path_buf(),
            env,
        })
    }

    /// A test-environment coordinate (`HW_*` from `.hostwright/testenv/env`).
    pub fn var(&self, name: &str) -> Result<String> {
        self.env
            .get(name)
            .cloned()
            .with_context(|| format!("{name} is not in .hostwright/testenv/env"))
    }

    /// A fresh folder under this run's work folder.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.work.join(name);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }
}

/// The bench's own contract-signing key. It is trusted only by the
/// `hostwright serve` processes the bench starts (a trusted-keys file in
/// their folder), never by anything else.
pub struct Signer {
    key: ed25519_dalek::SigningKey,
}

pub const KEY_ID: &str = "bench-2026";

impl Signer {
    pub fn new() -> Signer {
        Signer {
            key: ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]),
        }
    }

    pub fn trusted_keys_toml(&self) -> String {
        format!(
            "[[key]]\nid = \"{KEY_ID}\"\npublic_key = \"{}\"\nnot_before = \"2020-01-01T00:00:00Z\"\n",
            base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
        )
    }

    pub fn sign(&self, contract: &Value) -> Vec<u8> {
        let bytes = serde_json::to_vec_pretty(contract).expect("contract serializes");
        hostwright::signing::sign(&bytes, KEY_ID, &self.key)
    }
}

/// A random tag that makes a run's contract ids, users and domains fresh.
pub fn tag() -> String {
    format!("{:05X}", rand::random::<u32>() & 0xf_ffff)
}

/// A plain WWW contract (第5条): one web space, one vhost, the one FTP account
/// of 別表② and, with `dns_operation`, one DNS zone with its A records.
pub fn www_contract(id: &str, domain: &str, dns: bool) -> Value {
    let mut d = json!({"name": domain, "registry": "gtld"});
    if dns {
        d["dns_operation"] = json!("monthly");
    }
    json!({
        "contract_id": id,
        "revision": 1,
        "requested_on": "2026-11-01",
        "customer": {
            "id": format!("CU-{id}"),
            "kind": "corporation",
            "name": "Bench K.K.",
            "legal_capacity": "adult"
        },
        "service": "www",
        "service_start": "2026-12-01",
        "status": {"state": "active"},
        "options": [],
        "domains": [d],
        "external": {}
    })
}

/// The terminating revision (第25条) of a [`www_contract`]: hostwright
/// removes everything it created for it.
pub fn www_termination(id: &str, domain: &str, dns: bool) -> Value {
    let mut c = www_contract(id, domain, dns);
    c["revision"] = json!(2);
    c["requested_on"] = json!("2027-02-26");
    c["status"] =
        json!({"state": "terminated", "effective": "2027-03-31", "notified_on": "2027-02-26"});
    c
}

/// Runs a constant bash script with positional arguments, locally as root.
/// The test web host is this machine (sshd on loopback), so cleanup goes
/// straight to it; arguments are our own generated names, passed as
/// positional parameters, never interpolated into the script.
pub fn local_script(script: &str, args: &[String]) -> Result<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bench")
        .args(args)
        .output()
        .context("running bash")?;
    if !out.status.success() {
        bail!(
            "local script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Removes bench web spaces and vhosts: Unix accounts only when their GECOS
/// carries the hostwright marker (as `scripts/testenv/services/webhost.sh
/// down` does), their homes under `home_root`, the vhost files, then one
/// nginx test + reload. $1 home_root, $2 sites_dir, $3 nginx.conf, $4
/// archive_dir, then `user:domain` pairs (domain may be empty).
const CLEAN_WEB: &str = r#"set -u
root=$1 sites=$2 conf=$3 archive=$4; shift 4
for pair in "$@"; do
  u=${pair%%:*} d=${pair#*:}
  if ent=$(getent passwd "$u"); then
    case "$(printf %s "$ent" | cut -d: -f5)" in
      hostwright*) pkill -KILL -u "$u" 2>/dev/null; userdel "$u" 2>/dev/null ;;
    esac
  fi
  getent group "$u" >/dev/null && groupdel "$u" 2>/dev/null
  rm -rf -- "$root/$u"
  rm -f -- "$archive/$u"-*.tar.gz
  if [ -n "$d" ]; then rm -f -- "$sites/$d.conf" "$sites/$d.conf.rejected"; fi
done
nginx -t -q -c "$conf" && nginx -s reload -c "$conf"
"#;

/// One loopback test web host: 1 is `webhost.sh`'s (`HW_WEB_*`,
/// `HW_FTP_*`), 2 `webhost2.sh`'s (`HW_WEB2_*`, `HW_FTP2_*`).
pub struct WebHost(u8);

impl WebHost {
    pub fn first() -> WebHost {
        WebHost(1)
    }

    /// The name of this host's variable `HW_{base}_{name}`.
    pub fn var(&self, base: &str, name: &str) -> String {
        match self.0 {
            1 => format!("HW_{base}_{name}"),
            n => format!("HW_{base}{n}_{name}"),
        }
    }
}

/// The loopback web hosts the test environment runs.
pub fn web_hosts(ctx: &Ctx) -> Vec<WebHost> {
    let mut v = vec![WebHost(1)];
    if ctx.var("HW_WEB2_ROOT").is_ok() {
        v.push(WebHost(2));
    }
    v
}

/// Web-space leftovers of a bench run on `host`, cleaned in one go.
pub fn clean_web(ctx: &Ctx, host: &WebHost, sites: &[(String, String)]) -> Result<()> {
    let root = ctx.var(&host.var("WEB", "ROOT"))?;
    let mut args = vec![
        format!("{root}/home"),
        format!("{root}/sites"),
        ctx.var(&host.var("WEB", "NGINX_CONF"))?,
        format!("{root}/archive"),
    ];
    args.extend(sites.iter().map(|(u, d)| format!("{u}:{d}")));
    // Thousands of names fit comfortably in one argv (ARG_MAX is 2 MiB).
    local_script(CLEAN_WEB, &args)?;
    Ok(())
}

/// Accounts whose GECOS starts with `marker`: what a run left behind.
pub fn users_with_gecos(marker: &str) -> Result<Vec<String>> {
    let out = Command::new("getent").arg("passwd").output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 4 && f[4].starts_with(marker)).then(|| f[0].to_string())
        })
        .collect())
}

/// HTTP status nginx answers for `host` (checks that a site really serves):
/// the first web host's that is not its default server's 404.
pub fn http_status(ctx: &Ctx, host: &str) -> Result<String> {
    let mut last = String::new();
    for h in web_hosts(ctx) {
        last = http_status_on(ctx, &h, host)?;
        if last != "404" {
            break;
        }
    }
    Ok(last)
}

fn http_status_on(ctx: &Ctx, web: &WebHost, host: &str) -> Result<String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "-w",
            "%{http_code}",
            "-H",
        ])
        .arg(format!("Host: {host}"))
        .arg(format!(
            "http://127.0.0.1:{}/",
            ctx.var(&web.var("WEB", "HTTP_PORT"))?
        ))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `p` percentile (0..=100) of `v` by nearest rank.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

/// Everything any bench run (even a killed one) can have left on the test
/// backends: accounts whose GECOS carries a bench marker (`hostwright
/// C-B…`/`C-W…` from hostwright, `hostwright bench …` from Ansible and the
/// floor) with their homes under `home_root`, vhost files, zones and FTP
/// logins of `*.bench.example` / `c-[bw]<tag>-<n>`, and removal archives.
/// $1 webhost root, $2 nginx.conf, $3 passwd, $4 pdb, $5 rndc host,
/// $6 rndc port, $7 rndc key, $8 zone dir. Prints what it removed.
const SWEEP: &str = r#"set -u
root=$1 conf=$2 passwd=$3 pdb=$4 rhost=$5 rport=$6 rkey=$7 zones=$8
users=0
for u in $(getent passwd | awk -F: -v h="$root/home/" '($5 ~ /^hostwright (C-[BW][0-9A-F]+-|bench )/) && index($6, h) == 1 { print $1 }'); do
  pkill -KILL -u "$u" 2>/dev/null; userdel "$u" 2>/dev/null
  getent group "$u" >/dev/null && groupdel "$u" 2>/dev/null
  rm -rf -- "$root/home/$u"; users=$((users + 1))
done
for d in "$root"/home/c-[bw]?????-[0-9]* "$root"/home/[afp]?????-[0-9]*; do
  [ -d "$d" ] && ! getent passwd "$(basename "$d")" >/dev/null && rm -rf -- "$d"
done
rm -f -- "$root"/archive/c-[bw]?????-[0-9]*.tar.gz
vhosts=0
for f in "$root"/sites/*.bench.example.conf "$root"/sites/*.bench.example.conf.rejected; do
  [ -e "$f" ] && { rm -f -- "$f"; vhosts=$((vhosts + 1)); }
done
nzones=0
# Zones a failed seeding left in BIND's views without a file of their own.
for nzd in "$zones"/../work/*.nzd; do
  [ -e "$nzd" ] || continue
  view=$(basename "$nzd" .nzd)
  for z in $(named-nzd2nzf "$nzd" 2>/dev/null | sed -n 's/^zone "\([a-z0-9.-]*\.bench\.example\)".*/\1/p'); do
    rndc -s "$rhost" -p "$rport" -k "$rkey" delzone "$z" IN "$view" >/dev/null 2>&1 && nzones=$((nzones + 1))
  done
done
for f in "$zones"/*.bench.example.db; do
  [ -e "$f" ] || continue
  z=$(basename "$f" .db)
  rndc -s "$rhost" -p "$rport" -k "$rkey" delzone -clean "$z" >/dev/null 2>&1 || rm -f -- "$f" "$f.jnl"
  nzones=$((nzones + 1))
done
logins=0
if [ -f "$passwd" ] && grep -Eq '^c-[bw][0-9a-f]{5}-[0-9]+:' "$passwd"; then
  exec 9>>"$passwd.lock"
  flock -w 30 9 || exit 22
  logins=$(grep -Ec '^c-[bw][0-9a-f]{5}-[0-9]+:' "$passwd")
  tmp=$(mktemp "$passwd.XXXXXX")
  grep -Ev '^c-[bw][0-9a-f]{5}-[0-9]+:' "$passwd" >"$tmp" || true
  chmod 0600 "$tmp"; mv -f -- "$tmp" "$passwd"
  pure-pw mkdb "$pdb" -f "$passwd"
fi
nginx -t -q -c "$conf" && nginx -s reload -c "$conf"
echo "users=$users vhosts=$vhosts zones=$nzones ftp_logins=$logins"
"#;

/// Removes every bench leftover (see [`SWEEP`]); returns its summary line.
pub fn sweep_all(ctx: &Ctx) -> Result<String> {
    let mut said = Vec::new();
    for host in web_hosts(ctx) {
        let args = vec![
            ctx.var(&host.var("WEB", "ROOT"))?,
            ctx.var(&host.var("WEB", "NGINX_CONF"))?,
            ctx.var(&host.var("FTP", "PASSWD"))?,
            ctx.var(&host.var("FTP", "PDB"))?,
            ctx.var("HW_DNS_RNDC_HOST")?,
            ctx.var("HW_DNS_RNDC_PORT")?,
            ctx.var("HW_DNS_RNDC_KEY")?,
            ctx.var("HW_DNS_ZONE_DIR")?,
        ];
        said.push(local_script(SWEEP, &args)?.trim().to_string());
    }
    Ok(said.join("; "))
}
