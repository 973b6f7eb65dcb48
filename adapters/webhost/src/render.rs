//! File contents rendered from validated values only.
//!
//! Every value interpolated here has passed `hostwright_adapter::validate`
//! (domains, user names) or the config path check in [`crate::check_path`],
//! so none of them can contain whitespace, `;`, braces, quotes or newlines
//! that would change the structure of an nginx configuration.

use std::fmt::Write;

/// Where and how a vhost listens; from the adapter config.
#[derive(Debug, Clone)]
pub struct Listen {
    /// `None` listens on every address; else e.g. `127.0.0.1`.
    pub address: Option<String>,
    pub http_port: u16,
    pub https_port: u16,
}

impl Listen {
    fn addr(&self, port: u16) -> String {
        match &self.address {
            Some(a) => format!("{a}:{port}"),
            None => port.to_string(),
        }
    }
}

/// The TLS files of a vhost on the host.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
}

/// What a vhost serves.
#[derive(Debug, Clone)]
pub enum Serve {
    /// The customer's document root.
    Site { root: String },
    /// The suspended page (HTTP 503), from this directory.
    Suspended { root: String },
}

/// The page a suspended vhost shows (HTTP 503).
pub const SUSPENDED_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\
<title>サービス停止中 / Service suspended</title></head>\n<body>\n\
<h1>このサイトは現在ご利用いただけません</h1>\n\
<p>本サービスは利用規約第20条（サービスの利用停止）に基づき、一時的に停止しています。</p>\n\
<p>This site is temporarily suspended under Article 20 (第20条) of the terms of service.</p>\n\
</body></html>\n";

/// The file name of the suspended page inside `suspended_root`.
pub const SUSPENDED_FILE: &str = "suspended.html";

/// The default index page of a new web space.
pub fn index_page(user: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{user}</title></head>\n\
<body>\n<h1>Welcome</h1>\n<p>This web space ({user}) is ready. Upload your site to public_html.</p>\n\
<!-- hostwright default page -->\n</body></html>\n"
    )
}

/// The first line of every vhost file hostwright writes: it names the
/// owning contract, so the adapter never touches another contract's file.
pub fn marker_line(contract_id: &str, user: &str) -> String {
    format!(
        "# managed by hostwright (contract {contract_id}, user {user}); do not edit: changes are overwritten"
    )
}

/// Whether the vhost file `existing` may be changed for `contract_id`: it
/// must carry that contract's marker (the batch script checks the same on
/// the host; this is for what is written before the batch, the certificate).
pub fn check_owner(file: &str, existing: &[u8], contract_id: &str) -> Result<(), String> {
    let first = existing.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let mine = format!("# managed by hostwright (contract {contract_id},");
    if first.starts_with(&mine) {
        Ok(())
    } else if first.starts_with("# managed by hostwright (contract ") {
        Err(format!("{file} belongs to another contract: not touched"))
    } else {
        Err(format!(
            "{file} was not made by hostwright (no marker line): not touched"
        ))
    }
}

/// The URL path ACME's HTTP-01 challenges are fetched under (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The nginx server block(s) of one vhost. `acme_challenge`: the directory
/// on the host whose files answer `/.well-known/acme-challenge/` (with
/// `[acme]`), served before the site or the suspended page so a suspended
/// site's certificate is renewed too.
pub fn vhost_conf(
    contract_id: &str,
    user: &str,
    names: &[String],
    listen: &Listen,
    tls: Option<&TlsFiles>,
    acme_challenge: Option<&str>,
    serve: &Serve,
) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "{}", marker_line(contract_id, user));
    let _ = writeln!(c, "server {{");
    let _ = writeln!(c, "    listen {};", listen.addr(listen.http_port));
    if let Some(t) = tls {
        let _ = writeln!(c, "    listen {} ssl;", listen.addr(listen.https_port));
        let _ = writeln!(c, "    ssl_certificate {};", t.cert);
        let _ = writeln!(c, "    ssl_certificate_key {};", t.key);
        let _ = writeln!(c, "    ssl_protocols TLSv1.2 TLSv1.3;");
    }
    let _ = writeln!(c, "    server_name {};", names.join(" "));
    if let Some(dir) = acme_challenge {
        let _ = writeln!(c, "    location ^~ {ACME_CHALLENGE_PATH} {{");
        let _ = writeln!(c, "        alias {dir}/;");
        let _ = writeln!(c, "        default_type text/plain;");
        let _ = writeln!(c, "    }}");
    }
    match serve {
        Serve::Site { root } => {
            let _ = writeln!(c, "    root {root};");
            let _ = writeln!(c, "    index index.html index.htm;");
            let _ = writeln!(c, "    location / {{");
            let _ = writeln!(c, "        try_files $uri $uri/ =404;");
            let _ = writeln!(c, "    }}");
        }
        Serve::Suspended { root } => {
            let _ = writeln!(c, "    # suspended (第20条)");
            let _ = writeln!(c, "    root {root};");
            let _ = writeln!(c, "    error_page 503 /{SUSPENDED_FILE};");
            let _ = writeln!(c, "    location = /{SUSPENDED_FILE} {{");
            let _ = writeln!(c, "        internal;");
            let _ = writeln!(c, "    }}");
            let _ = writeln!(c, "    location / {{");
            let _ = writeln!(c, "        return 503;");
            let _ = writeln!(c, "    }}");
        }
    }
    let _ = writeln!(c, "}}");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> Listen {
        Listen {
            address: Some("127.0.0.1".into()),
            http_port: 8080,
            https_port: 8443,
        }
    }

    #[test]
    fn site_block_serves_public_html_for_all_names() {
        let c = vhost_conf(
            "k-1",
            "c1001",
            &["example.jp".into(), "www.example.jp".into()],
            &listen(),
            None,
            None,
            &Serve::Site {
                root: "/srv/home/c1001/public_html".into(),
            },
        );
        assert!(c.contains("listen 127.0.0.1:8080;"));
        assert!(!c.contains("ssl"));
        assert!(c.contains("server_name example.jp www.example.jp;"));
        assert!(c.contains("root /srv/home/c1001/public_html;"));
        assert!(!c.contains("acme-challenge"));
    }

    #[test]
    fn with_acme_the_challenge_location_comes_before_the_site_and_the_503() {
        for serve in [
            Serve::Site {
                root: "/srv/home/c1001/public_html".into(),
            },
            Serve::Suspended {
                root: "/srv/suspended".into(),
            },
        ] {
            let c = vhost_conf(
                "k-1",
                "c1001",
                &["example.jp".into()],
                &listen(),
                None,
                Some("/srv/acme"),
                &serve,
            );
            let at = c
                .find("location ^~ /.well-known/acme-challenge/ {")
                .unwrap();
            assert!(at < c.find("location / {").unwrap(), "{c}");
            assert!(c.contains("        alias /srv/acme/;\n"), "{c}");
        }
    }

    #[test]
    fn tls_and_suspended_blocks() {
        let c = vhost_conf(
            "k-1",
            "c1001",
            &["example.jp".into()],
            &Listen {
                address: None,
                http_port: 80,
                https_port: 443,
            },
            Some(&TlsFiles {
                cert: "/tls/example.jp.crt".into(),
                key: "/tls/example.jp.key".into(),
            }),
            None,
            &Serve::Suspended {
                root: "/srv/suspended".into(),
            },
        );
        assert!(c.contains("listen 80;"));
        assert!(c.contains("listen 443 ssl;"));
        assert!(c.contains("ssl_certificate_key /tls/example.jp.key;"));
        assert!(c.contains("return 503;"));
        assert!(c.contains("error_page 503 /suspended.html;"));
        assert!(!c.contains("public_html"));
        assert!(SUSPENDED_PAGE.contains("第20条"));
    }
}
