//! The compose stack as the tests see it from the host: the coordinates
//! `scripts/compose-up.sh` wrote to `.hostwright/compose/env`, the `docker
//! compose` command line for the project, and the few facts of hostwright's
//! own config inside the stack (backend paths, DNS records) that the checks
//! compare against. A missing stack fails the tests, never skips them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What one finished command printed.
#[derive(Debug, Clone)]
pub struct Out {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end with stdin closed.
pub fn run(cmd: &mut Command) -> Out {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Out {
        ok: out.status.success(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One web host of hostwright's fleet as the tests reach it: its fleet
/// name (placements and adapter names say `web2`), its compose service,
/// the address its sites' A records carry, its ports published on the
/// docker host, and the paths of its adapters' config.
#[derive(Debug, Clone)]
pub struct WebHost {
    pub name: String,
    pub service: String,
    pub ipv4: String,
    /// `127.0.0.1:PORT` on the docker host.
    pub http: String,
    pub https: String,
    pub ftp: String,
    pub sites_dir: String,
    pub tls_dir: String,
    pub archive_dir: String,
    pub ftp_passwd: String,
}

/// One name server of the stack: the primary hostwright updates (`dns`)
/// or a secondary that follows its catalog (`dns2`).
#[derive(Debug, Clone)]
pub struct NameServer {
    pub service: String,
    /// `127.0.0.1:PORT` on the docker host (UDP and TCP).
    pub addr: String,
}

/// Paths and settings of hostwright's config inside the stack.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The fleet, in config order (the first is the stack's first web host).
    pub web_hosts: Vec<WebHost>,
    /// The primary first.
    pub name_servers: Vec<NameServer>,
    /// Zone files on the BIND primary.
    pub zone_file_dir: String,
    /// The DNS adapter's catalog zone, which the secondary follows.
    pub catalog_zone: String,
    /// Every zone's apex NS rrset (the DNS adapter's `nameservers`).
    pub nameservers: Vec<String>,
    pub mx: Vec<String>,
    pub spf: String,
    pub max_attempts: u64,
}

pub struct Stack {
    vars: BTreeMap<String, String>,
    pub layout: Layout,
}

/// The stack, read once per test process.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let path = root.join(".hostwright/compose/env");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the compose stack is not up; run `scripts/compose-test.sh` \
                 (or `scripts/compose-up.sh` first)",
                path.display()
            )
        });
        let vars = text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.trim().split_once('=')?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect();
        let mut s = Stack {
            vars,
            layout: Layout {
                web_hosts: Vec::new(),
                name_servers: Vec::new(),
                zone_file_dir: String::new(),
                catalog_zone: String::new(),
                nameservers: Vec::new(),
                mx: Vec::new(),
                spf: String::new(),
                max_attempts: 0,
            },
        };
        s.layout = s.read_layout();
        s
    })
}

impl Stack {
    pub fn var(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or_else(|| {
            panic!("{name} missing from .hostwright/compose/env (scripts/compose-up.sh writes it)")
        })
    }

    /// The fleet's web hosts, in config order.
    pub fn web_hosts(&self) -> &[WebHost] {
        &self.layout.web_hosts
    }

    /// The web host named `name` in the fleet (`web1`).
    pub fn web_host(&self, name: &str) -> &WebHost {
        self.web_hosts()
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no web host {name} in hostwright's fleet"))
    }

    /// The web host whose sites' address is `ip`.
    pub fn web_host_by_ip(&self, ip: &str) -> Option<&WebHost> {
        self.web_hosts().iter().find(|h| h.ipv4 == ip)
    }

    /// The name servers, the primary first.
    pub fn name_servers(&self) -> &[NameServer] {
        &self.layout.name_servers
    }

    pub fn primary(&self) -> &NameServer {
        &self.layout.name_servers[0]
    }

    /// The first secondary.
    pub fn secondary(&self) -> &NameServer {
        &self.layout.name_servers[1]
    }

    pub fn url(&self) -> &str {
        self.var("HW_COMPOSE_URL")
    }

    pub fn token_file(&self) -> &str {
        self.var("HW_COMPOSE_TOKEN_FILE")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .expect("ops token file")
            .trim()
            .to_string()
    }

    /// `docker compose -p PROJECT -f FILE`, to which callers add a command:
    /// the stack's wrapper (`HW_COMPOSE_CMD`), which falls back to
    /// docker-compose v1 where the v2 plugin is missing.
    pub fn compose(&self) -> Command {
        match self.vars.get("HW_COMPOSE_CMD") {
            Some(cmd) => Command::new(cmd),
            None => {
                let mut c = Command::new("docker");
                c.args(["compose", "-p", self.var("HW_COMPOSE_PROJECT")])
                    .args(["-f", self.var("HW_COMPOSE_FILE")]);
                c
            }
        }
    }

    /// A command in the service's container: `docker exec`, the same as
    /// `docker compose exec -T SERVICE` without compose v1's second of
    /// start-up per call (the census makes many).
    pub fn exec(&self, service: &str, args: &[&str]) -> Out {
        run(Command::new("docker")
            .arg("exec")
            .arg(self.container(service))
            .args(args))
    }

    /// Like [`Stack::exec`], panicking with the command's stderr on failure.
    pub fn exec_ok(&self, service: &str, args: &[&str]) -> String {
        let out = self.exec(service, args);
        assert!(
            out.ok,
            "`{service}: {}` failed ({}): {}",
            args.join(" "),
            out.code,
            out.stderr
        );
        out.stdout
    }

    /// A `docker compose` command that must succeed.
    pub fn compose_ok(&self, args: &[&str]) -> String {
        let out = run(self.compose().args(args));
        assert!(
            out.ok,
            "`docker compose {}` failed: {}",
            args.join(" "),
            out.stderr
        );
        out.stdout
    }

    /// The container of a service: the stack names them
    /// `<project>-<service>`.
    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.var("HW_COMPOSE_PROJECT"))
    }

    /// The container's health (`healthy`, `starting`, ...), or its state
    /// when it has no health check.
    pub fn health(&self, service: &str) -> String {
        let out = run(Command::new("docker").args([
            "inspect",
            "-f",
            "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
            &self.container(service),
        ]));
        if out.ok {
            out.stdout.trim().to_string()
        } else {
            format!("unknown ({})", out.stderr.trim())
        }
    }

    /// Waits until the service's health check passes (or, without one,
    /// until it runs).
    pub fn wait_healthy(&self, service: &str, secs: u64) -> Result<(), String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let h = self.health(service);
            if h == "healthy" || h == "running" {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!("{service} is {h} after {secs}s"));
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// The `hostwright` CLI built for the host (`HW_COMPOSE_BIN`), with the
    /// stack's URL and ops token.
    pub fn cli(&self, args: &[&str]) -> Out {
        run(Command::new(self.var("HW_COMPOSE_BIN")).args(args).args([
            "--url",
            self.url(),
            "--token-file",
            self.token_file(),
        ]))
    }

    /// Reads hostwright's own config from its container: the file named by
    /// `serve --config` on its command line.
    fn read_layout(&self) -> Layout {
        let procs = self.exec_ok(
            "hostwright",
            &[
                "sh",
                "-c",
                r#"for p in /proc/[0-9]*; do tr '\0' ' ' <"$p/cmdline" 2>/dev/null; echo; done"#,
            ],
        );
        let config_path = procs
            .lines()
            .find_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                if !words.contains(&"serve") {
                    return None;
                }
                words
                    .iter()
                    .position(|w| *w == "--config" || *w == "-c")
                    .and_then(|i| words.get(i + 1))
                    .map(|s| s.to_string())
                    .or_else(|| {
                        words
                            .iter()
                            .find_map(|w| w.strip_prefix("--config="))
                            .map(str::to_string)
                    })
            })
            .unwrap_or_else(|| {
                panic!("no `hostwright serve --config FILE` in the hostwright container: {procs}")
            });
        let text = self.exec_ok("hostwright", &["cat", &config_path]);
        // The parse error is not shown: it quotes the file, which holds the
        // store's password.
        let cfg: toml::Value = toml::from_str(&text)
            .unwrap_or_else(|_| panic!("hostwright config {config_path} does not parse"));
        let s = |path: &[&str]| -> Option<String> {
            let mut v = &cfg;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_string)
        };
        let need = |path: &[&str]| {
            s(path).unwrap_or_else(|| {
                panic!("hostwright config {config_path} has no {}", path.join("."))
            })
        };
        let mx = cfg
            .get("provisioning")
            .and_then(|p| p.get("mx"))
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| {
                vec![
                    "10 mx1.securemx.example.".to_string(),
                    "20 mx2.securemx.example.".to_string(),
                ]
            });
        let spf = s(&["provisioning", "spf"])
            .unwrap_or_else(|| "v=spf1 include:spf.securemx.example ~all".to_string());
        let max_attempts = cfg
            .get("workers")
            .and_then(|w| w.get("retry"))
            .and_then(|r| r.get("max_attempts"))
            .and_then(|m| m.as_integer())
            .unwrap_or(5) as u64;
        let hosts = cfg
            .get("fleet")
            .and_then(|f| f.get("hosts"))
            .and_then(|h| h.as_array())
            .unwrap_or_else(|| panic!("hostwright config {config_path} has no [[fleet.hosts]]"));
        let web_hosts = hosts
            .iter()
            .map(|h| self.web_host_from(&config_path, h))
            .collect::<Vec<_>>();
        let listed: Vec<&str> = self
            .var("HW_COMPOSE_WEB_HOSTS")
            .split_whitespace()
            .collect();
        let names: Vec<&str> = web_hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names, listed,
            "hostwright's fleet and HW_COMPOSE_WEB_HOSTS (scripts/compose-up.sh) disagree"
        );
        let dns = cfg
            .get("adapters")
            .and_then(|a| a.get("dns"))
            .unwrap_or_else(|| panic!("hostwright config {config_path} has no [adapters.dns]"));
        let nameservers = dns
            .get("nameservers")
            .and_then(|n| n.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec![need(&["adapters", "dns", "nameserver"])]);
        Layout {
            web_hosts,
            name_servers: vec![
                NameServer {
                    service: "dns".into(),
                    addr: self.var("HW_COMPOSE_DNS").to_string(),
                },
                NameServer {
                    service: "dns2".into(),
                    addr: self.var("HW_COMPOSE_DNS2").to_string(),
                },
            ],
            zone_file_dir: need(&["adapters", "dns", "zone_file_dir"]),
            catalog_zone: need(&["adapters", "dns", "catalog_zone"]),
            nameservers,
            mx,
            spf,
            max_attempts,
        }
    }

    /// One `[[fleet.hosts]]` entry with its published ports
    /// (`HW_COMPOSE_<NAME>_HTTP`... from compose-up.sh).
    fn web_host_from(&self, config_path: &str, h: &toml::Value) -> WebHost {
        let get = |path: &[&str]| -> String {
            let mut v = h;
            for p in path {
                v = v.get(p).unwrap_or_else(|| {
                    panic!(
                        "hostwright config {config_path}: a fleet host has no {}",
                        path.join(".")
                    )
                });
            }
            v.as_str()
                .unwrap_or_else(|| panic!("{config_path}: {} is not a string", path.join(".")))
                .to_string()
        };
        let name = get(&["name"]);
        let prefix = format!(
            "HW_COMPOSE_{}_",
            name.to_ascii_uppercase().replace('-', "_")
        );
        let port = |what: &str| self.var(&format!("{prefix}{what}")).to_string();
        WebHost {
            service: port("SERVICE"),
            http: port("HTTP"),
            https: port("HTTPS"),
            ftp: port("FTP"),
            ipv4: get(&["ipv4"]),
            sites_dir: get(&["webhost", "sites_dir"]),
            tls_dir: get(&["webhost", "tls_dir"]),
            archive_dir: get(&["webhost", "archive_dir"]),
            ftp_passwd: get(&["ftp", "passwd_file"]),
            name,
        }
    }
}

/// Absolute path of a file under the repository.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
