//! Part 2: the same web-space work (Unix account, home, document root, index
//! page, nginx vhost file, one nginx test + reload) for N sites, four ways, in
//! the same run against the same sshd:
//! (a) hostwright through its engine, with a playbook limited to webspace +
//!     vhost (`bench/playbooks/webspace`);
//! (b) Ansible (ansible-core in `.hostwright/bench/venv`) with its default
//!     settings, and (c) with `pipelining = True` + ControlPersist;
//! (d) the floor: one SSH session running one generated shell script.
//! Each variant creates its own names and is cleaned up before the next.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hostwright_webhost::render;
use serde_json::{Value, json};

use crate::common::{self, Ctx, Signer};
use crate::report::{Figure, Target};
use crate::serve::{self, Serve, ServeConfig};

pub struct Opts {
    pub ns: Vec<usize>,
    pub concurrency: usize,
    /// POSTs in flight at once.
    pub in_flight: usize,
    /// Ansible's venv (`ansible-playbook` inside `bin/`).
    pub venv: std::path::PathBuf,
    /// Run the Ansible variants (`--no-ansible` skips them; their figures
    /// are then `n/a` with a note saying so).
    pub ansible: bool,
}

pub async fn run(ctx: &Ctx, opts: &Opts, figs: &mut Vec<Figure>) -> Result<Value> {
    let mut runs = Vec::new();
    for &n in &opts.ns {
        let tag = common::tag().to_ascii_lowercase();
        let mut r = json!({"n": n});
        eprintln!("part 2: N={n}: floor (one SSH session, one script)");
        r["floor_s"] = timed(floor(ctx, &tag, n));
        eprintln!("part 2: N={n}: hostwright (webspace + vhost playbook)");
        r["hostwright"] = match hostwright(ctx, &tag, n, opts).await {
            Ok(v) => v,
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        if opts.ansible {
            eprintln!("part 2: N={n}: ansible, default settings");
            r["ansible_default_s"] = timed(ansible(ctx, opts, &tag, n, false));
            eprintln!("part 2: N={n}: ansible, pipelining + ControlPersist");
            r["ansible_pipelining_s"] = timed(ansible(ctx, opts, &tag, n, true));
        } else {
            let skipped = json!({"error": "skipped (--no-ansible)"});
            r["ansible_default_s"] = skipped.clone();
            r["ansible_pipelining_s"] = skipped;
        }

        let get = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        let hw = get(&r["hostwright"]["seconds"]);
        let floor_s = get(&r["floor_s"]["seconds"]);
        let a_def = get(&r["ansible_default_s"]["seconds"]);
        let a_pipe = get(&r["ansible_pipelining_s"]["seconds"]);
        let note = |v: &Value| {
            v["error"]
                .as_str()
                .map(|e| {
                    if e.starts_with("skipped") {
                        e.to_string()
                    } else {
                        format!("FAILED: {}", e.chars().take(150).collect::<String>())
                    }
                })
                .unwrap_or_default()
        };
        figs.push(
            Figure::new("2", format!("N={n}: hostwright"), hw, "s").note(note(&r["hostwright"])),
        );
        figs.push(
            Figure::new("2", format!("N={n}: Ansible default"), a_def, "s")
                .note(note(&r["ansible_default_s"])),
        );
        figs.push(
            Figure::new("2", format!("N={n}: Ansible pipelining"), a_pipe, "s")
                .note(note(&r["ansible_pipelining_s"])),
        );
        figs.push(
            Figure::new("2", format!("N={n}: floor (1 SSH script)"), floor_s, "s")
                .note(note(&r["floor_s"])),
        );
        figs.push(Figure::new(
            "2",
            format!("N={n}: Ansible default / hostwright"),
            a_def / hw,
            "x",
        ));
        figs.push(
            Figure::new(
                "2",
                format!("N={n}: Ansible pipelining / hostwright"),
                a_pipe / hw,
                "x",
            )
            .target(Target::AtLeast(20.0)),
        );
        figs.push(
            Figure::new("2", format!("N={n}: hostwright / floor"), hw / floor_s, "x")
                .target(Target::Below(3.0)),
        );
        r["ratios"] = json!({
            "ansible_default_over_hostwright": a_def / hw,
            "ansible_pipelining_over_hostwright": a_pipe / hw,
            "hostwright_over_floor": hw / floor_s,
        });
        runs.push(r);
    }
    Ok(json!({"part": 2, "concurrency": opts.concurrency, "runs": runs}))
}

fn timed(r: Result<f64>) -> Value {
    match r {
        Ok(s) => json!({"seconds": s}),
        Err(e) => json!({"error": format!("{e:#}")}),
    }
}

/// Every site of a variant must answer 200 at the end (first and last are
/// checked), or the time measured nothing. Every variant stops its clock
/// when `nginx -s reload` has signalled the master, which then starts new
/// workers on its own: the check polls for that (untimed), up to 10 s.
fn check_sites(ctx: &Ctx, sites: &[(String, String)]) -> Result<()> {
    for (_, d) in [sites.first(), sites.last()].into_iter().flatten() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = common::http_status(ctx, d)?;
            if s == "200" {
                break;
            }
            if Instant::now() > deadline {
                bail!("site {d} answers {s}, not 200");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn names(prefix: &str, tag: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let u = format!("{prefix}{tag}-{i:04}");
            let d = format!("{u}.bench.example");
            (u, d)
        })
        .collect()
}

/// (a) hostwright: N WWW contracts through intake and the engine, with the
/// web-space-only playbook. First POST → last job ended.
async fn hostwright(ctx: &Ctx, tag: &str, n: usize, opts: &Opts) -> Result<Value> {
    let signer = Signer::new();
    let dir = ctx.dir(&format!("part2-hostwright-n{n}"))?;
    let adapters = serve::real_adapters(false)?;
    let config = serve::write_config(
        &dir,
        &signer,
        &ServeConfig {
            store_url: "sqlite:jobs.db".into(),
            playbooks: ctx.root.join("bench/playbooks/webspace"),
            concurrency: opts.concurrency,
            adapters: &adapters,
        },
    )?;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("C-W{}-{i:04}", tag.to_ascii_uppercase()))
        .collect();
    let sites: Vec<(String, String)> = ids
        .iter()
        .map(|id| {
            let u = id.to_ascii_lowercase();
            let d = format!("{u}.bench.example");
            (u, d)
        })
        .collect();
    let envelopes: Vec<Vec<u8>> = ids
        .iter()
        .zip(&sites)
        .map(|(id, (_, d))| signer.sign(&common::www_contract(id, d, false)))
        .collect();
    let serve = Serve::start(ctx, &config, &dir.join("serve.log")).await?;
    let res = async {
        let b = serve
            .run_batch(
                envelopes,
                opts.in_flight,
                n as u64,
                Duration::from_secs(600),
            )
            .await?;
        b.all_succeeded()?;
        let seconds = b.seconds;
        check_sites(ctx, &sites)?;
        let sample: Vec<String> = b.job_ids.into_iter().take(100).collect();
        let breakdown = serve::step_breakdown(&serve, &sample).await?;
        Ok(json!({
            "seconds": seconds,
            "mean_attempt_ms_by_step": serve::breakdown_json(&breakdown),
        }))
    }
    .await;
    let _ = serve.stop();
    common::clean_web(ctx, &common::WebHost::first(), &sites)?;
    res
}

/// SSH options every command-line client here uses: the test key and the
/// test known_hosts file, nothing from the invoking user's ~/.ssh.
fn ssh_opts(ctx: &Ctx) -> Result<Vec<String>> {
    Ok(vec![
        "-i".into(),
        ctx.var("HW_WEB_SSH_KEY")?,
        "-p".into(),
        ctx.var("HW_WEB_SSH_PORT")?,
        "-o".into(),
        format!("UserKnownHostsFile={}", ctx.var("HW_WEB_KNOWN_HOSTS")?),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
    ])
}

/// (d) The floor: one SSH session, one generated script doing the same work
/// for all N sites, then one nginx test + reload.
fn floor(ctx: &Ctx, tag: &str, n: usize) -> Result<f64> {
    let sites = names("f", tag, n);
    let root = ctx.var("HW_WEB_ROOT")?;
    let home_root = format!("{root}/home");
    let sites_dir = format!("{root}/sites");
    let conf = ctx.var("HW_WEB_NGINX_CONF")?;
    let listen = render::Listen {
        address: Some("127.0.0.1".into()),
        http_port: ctx.var("HW_WEB_HTTP_PORT")?.parse()?,
        https_port: ctx.var("HW_WEB_HTTPS_PORT")?.parse()?,
    };
    // Names are generated here from [a-z0-9-] only; file contents go
    // through quoted here-documents.
    let mut script = String::from("set -eu\n");
    for (u, d) in &sites {
        let home = format!("{home_root}/{u}");
        let conf_text = render::vhost_conf(
            "bench-floor",
            u,
            &[d.clone(), format!("www.{d}")],
            &listen,
            None,
            None,
            &render::Serve::Site {
                root: format!("{home}/public_html"),
            },
        );
        script.push_str(&format!(
            "useradd -U -M -d {home} -s /usr/sbin/nologin -c 'hostwright bench floor' {u}\n\
             mkdir -p {home}/public_html\n\
             chown {u}:{u} {home} {home}/public_html\n\
             chmod 0711 {home}; chmod 0755 {home}/public_html\n\
             cat >{home}/public_html/index.html <<'HW_EOF'\n{index}HW_EOF\n\
             chown {u}:{u} {home}/public_html/index.html; chmod 0644 {home}/public_html/index.html\n\
             cat >{sites_dir}/{d}.conf <<'HW_EOF'\n{conf_text}HW_EOF\n",
            index = render::index_page(u),
        ));
    }
    script.push_str(&format!(
        "nginx -t -q -c {conf}\nnginx -s reload -c {conf}\n"
    ));
    let clock = Instant::now();
    let res = ssh_script(ctx, &script);
    let seconds = clock.elapsed().as_secs_f64();
    let checked = res.and_then(|_| check_sites(ctx, &sites));
    common::clean_web(ctx, &common::WebHost::first(), &sites)?;
    checked.map(|_| seconds)
}

fn ssh_script(ctx: &Ctx, script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ssh")
        .args(ssh_opts(ctx)?)
        .arg(format!(
            "{}@{}",
            ctx.var("HW_WEB_SSH_USER")?,
            ctx.var("HW_WEB_SSH_HOST")?
        ))
        .arg("sh -s")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ssh")?;
    child
        .stdin
        .take()
        .context("ssh stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the floor script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// (b)/(c) Ansible: `ansible-playbook bench/ansible/webspace.yml` for N sites.
/// Each run gets a fresh ControlPath folder, so no SSH master connection
/// survives from an earlier run. `pipelining` also sets ControlPersist
/// explicitly (Ansible's default `ssh_args` already carry ControlMaster=auto
/// and ControlPersist=60s).
fn ansible(ctx: &Ctx, opts: &Opts, tag: &str, n: usize, pipelining: bool) -> Result<f64> {
    let variant = if pipelining { "pipelining" } else { "default" };
    let sites = names(if pipelining { "p" } else { "a" }, tag, n);
    let dir = ctx.dir(&format!("part2-ansible-{variant}-n{n}"))?;
    // ControlPath sockets must fit in sun_path (108 bytes): a short folder.
    let cp = std::path::PathBuf::from(format!("/tmp/hwb-cp-{tag}-{variant}"));
    let _ = std::fs::remove_dir_all(&cp);
    std::fs::create_dir_all(&cp)?;
    let mut cfg = format!(
        "[defaults]\nretry_files_enabled = False\n\n[ssh_connection]\ncontrol_path_dir = {}\n",
        cp.display()
    );
    if pipelining {
        cfg.push_str(
            "pipelining = True\nssh_args = -C -o ControlMaster=auto -o ControlPersist=600s\n",
        );
    }
    std::fs::write(dir.join("ansible.cfg"), cfg)?;
    let root = ctx.var("HW_WEB_ROOT")?;
    let vars = json!({
        "sites": sites.iter().map(|(u, d)| json!({"user": u, "domain": d})).collect::<Vec<_>>(),
        "gecos": format!("hostwright bench ansible {variant}"),
        "home_root": format!("{root}/home"),
        "sites_dir": format!("{root}/sites"),
        "nginx_conf": ctx.var("HW_WEB_NGINX_CONF")?,
        "http_port": ctx.var("HW_WEB_HTTP_PORT")?,
        "listen_address": "127.0.0.1",
        "ansible_ssh_private_key_file": ctx.var("HW_WEB_SSH_KEY")?,
        "ansible_ssh_common_args": format!(
            "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
            ctx.var("HW_WEB_KNOWN_HOSTS")?
        ),
    });
    std::fs::write(dir.join("vars.json"), serde_json::to_vec_pretty(&vars)?)?;
    let playbook_dir = ctx.root.join("bench/ansible");
    let log = std::fs::File::create(dir.join("ansible.log"))?;
    let clock = Instant::now();
    let status = Command::new(opts.venv.join("bin/ansible-playbook"))
        .current_dir(&playbook_dir)
        .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .arg("-i")
        .arg(playbook_dir.join("inventory.ini"))
        .arg(playbook_dir.join("webspace.yml"))
        .arg("-e")
        .arg(format!("@{}", dir.join("vars.json").display()))
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("running ansible-playbook (is the venv installed? scripts/bench does)")?;
    let seconds = clock.elapsed().as_secs_f64();
    // Stop the SSH master this run left (ControlPersist) so it cannot help
    // the next one.
    stop_masters(&cp);
    let _ = std::fs::remove_dir_all(&cp);
    let checked = if status.success() {
        check_sites(ctx, &sites)
    } else {
        Err(anyhow::anyhow!(
            "ansible-playbook exited {status}; log: {}",
            dir.join("ansible.log").display()
        ))
    };
    common::clean_web(ctx, &common::WebHost::first(), &sites)?;
    checked.map(|_| seconds)
}

/// Closes SSH ControlMaster sockets left in `dir`.
fn stop_masters(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = Command::new("ssh")
                .args([
                    "-o",
                    &format!("ControlPath={}", e.path().display()),
                    "-O",
                    "exit",
                    "x",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
