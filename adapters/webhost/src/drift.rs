//! Drift: how the host's web spaces and vhost files compare with their
//! specs, read in batches (one remote command per [`CHUNK`] resources), and
//! what the host holds with hostwright's marker. Reads only: nothing here
//! changes the host.

use std::collections::BTreeMap;

use base64::Engine as _;
use hostwright_adapter::{AdapterError, Comparison, Difference, Marked, Resource, validate};
use hostwright_ssh::Command;

use crate::render;
use crate::{
    KIND_VHOST, KIND_WEBSPACE, VhostSpec, WebhostAdapter, WebspaceSpec, perm, script_result,
    scripts,
};

/// Resources per remote command: keeps the command line far below the
/// host's argument limit (names are at most 253 bytes).
const CHUNK: usize = 400;

/// Chunks read at once.
const PARALLEL: usize = 4;

/// What the scan printed for one item.
type Facts = BTreeMap<String, String>;

fn unb64(s: Option<&String>) -> Option<String> {
    let s = s?;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Splits the scan's output into items keyed by their header (`u NAME`,
/// `d NAME`).
fn parse_scan(out: &str) -> BTreeMap<String, Facts> {
    let mut items = BTreeMap::new();
    let mut cur: Option<(String, Facts)> = None;
    for line in out.lines() {
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if let Some((k, f)) = cur.take() {
                items.insert(k, f);
            }
            cur = Some((h.to_string(), Facts::new()));
        } else if let (Some((_, f)), Some((k, v))) = (cur.as_mut(), line.split_once('=')) {
            f.insert(k.to_string(), v.to_string());
        }
    }
    if let Some((k, f)) = cur {
        items.insert(k, f);
    }
    items
}

/// The first line where `want` and `have` differ (1-based), with both lines.
fn first_line_difference(want: &str, have: &str) -> Option<(usize, String, String)> {
    let (mut w, mut h) = (want.lines(), have.lines());
    let mut n = 0;
    loop {
        n += 1;
        match (w.next(), h.next()) {
            (None, None) => return None,
            (a, b) if a == b => continue,
            (a, b) => {
                return Some((
                    n,
                    a.unwrap_or("(end of file)").to_string(),
                    b.unwrap_or("(end of file)").to_string(),
                ));
            }
        }
    }
}

impl WebhostAdapter {
    /// [`hostwright_adapter::Adapter::compare`] for web spaces and vhosts.
    pub(crate) async fn compare_batch(
        &self,
        resources: &[Resource],
    ) -> Vec<Result<Comparison, AdapterError>> {
        use futures_util::stream::{self, StreamExt};
        // Owned chunks: borrowed ones trip the async-trait future's
        // lifetime inference.
        let chunks: Vec<Vec<Resource>> = resources.chunks(CHUNK).map(<[_]>::to_vec).collect();
        let answers: Vec<Vec<Result<Comparison, AdapterError>>> = stream::iter(chunks)
            .map(|c| async move { self.compare_chunk(&c).await })
            .buffered(PARALLEL)
            .collect()
            .await;
        answers.into_iter().flatten().collect()
    }

    async fn compare_chunk(&self, resources: &[Resource]) -> Vec<Result<Comparison, AdapterError>> {
        // Every item is checked before anything is sent.
        let mut items = Vec::new();
        let mut header = Vec::new();
        for r in resources {
            let item = match r.kind.as_str() {
                KIND_WEBSPACE => validate::user_name(&r.key)
                    .map(|u| format!("u:{u}"))
                    .map_err(perm),
                KIND_VHOST => validate::domain_name(&r.key)
                    .map(|d| format!("d:{d}"))
                    .map_err(perm),
                k => Err(perm(format!("webhost does not manage {k:?}"))),
            };
            match item {
                Ok(i) => {
                    header.push(Some(format!("{} {}", &i[..1], &i[2..])));
                    items.push(i);
                }
                Err(_) => header.push(None),
            }
        }
        let mut args = vec![
            self.cfg.home_root.clone(),
            self.cfg.sites_dir.clone(),
            self.cfg.tls_dir.clone(),
        ];
        args.extend(items);
        let scanned = match self.pool.run(Command::script(scripts::SCAN, &args)).await {
            Ok(out) => script_result("scanning web spaces and vhosts", out)
                .map(|o| parse_scan(&o.stdout_str())),
            Err(e) => Err(e.into()),
        };
        let now = chrono::Utc::now();
        resources
            .iter()
            .zip(header)
            .map(|(r, h)| {
                let facts = match (&scanned, h) {
                    (Err(e), _) => return Err(e.clone()),
                    (Ok(all), Some(h)) => all.get(&h).cloned().unwrap_or_default(),
                    (Ok(_), None) => {
                        return Err(perm(format!("{} {}: not a valid name", r.kind, r.key)));
                    }
                };
                if facts.get("present").map(String::as_str) != Some("1") {
                    return Ok(Comparison::Missing);
                }
                match r.kind.as_str() {
                    KIND_WEBSPACE => self.compare_webspace(r, &facts),
                    _ => self.compare_vhost(r, &facts, now),
                }
            })
            .collect()
    }

    fn compare_webspace(&self, r: &Resource, f: &Facts) -> Result<Comparison, AdapterError> {
        let spec: WebspaceSpec = r.spec()?;
        let mut d = Vec::new();
        let marker = format!("hostwright {}", r.contract_id);
        let gecos = unb64(f.get("gecos")).unwrap_or_default();
        if gecos != marker {
            d.push(Difference::of("owner", &marker, &gecos).says(format!(
                "the account's GECOS is {gecos:?}, not hostwright's marker {marker:?}"
            )));
        }
        let home = self.home(&r.key);
        let have_home = unb64(f.get("home")).unwrap_or_default();
        if have_home != home {
            d.push(Difference::of("home", &home, &have_home));
        }
        match f.get("home_mode") {
            None => d.push(
                Difference::of("home_mode", "711", None::<String>)
                    .says(format!("the home {home} does not exist")),
            ),
            Some(m) if m != "711" => d.push(
                Difference::of("home_mode", "711", m)
                    .says(format!("the home {home} has mode {m}, not 711")),
            ),
            Some(_) => {}
        }
        let ids = format!(
            "{}:{}",
            f.get("uid").map(String::as_str).unwrap_or("?"),
            f.get("gid").map(String::as_str).unwrap_or("?")
        );
        if let Some(o) = f.get("home_owner")
            && *o != ids
        {
            d.push(Difference::of("home_owner", &ids, o).says(format!(
                "the home {home} is owned by {o}, not the account ({ids})"
            )));
        }
        let quota = f.get("quota_mb").and_then(|q| q.trim().parse::<u64>().ok());
        if quota != Some(spec.quota_mb) {
            d.push(Difference::of("quota_mb", spec.quota_mb, quota));
        }
        let suspended = f.get("locked").map(String::as_str) == Some("true")
            || f.get("suspended").map(String::as_str) == Some("true");
        if suspended != spec.suspended {
            d.push(Difference::of("suspended", spec.suspended, suspended));
        }
        Ok(Comparison::from_differences(d))
    }

    fn compare_vhost(
        &self,
        r: &Resource,
        f: &Facts,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Comparison, AdapterError> {
        let spec: VhostSpec = r.spec()?;
        let (domain, names) = Self::vhost_names(r, &spec)?;
        let cid = crate::contract_id(&r.contract_id)?;
        let want = self.desired_conf(cid, &domain, &names, &spec);
        let have = unb64(f.get("conf")).unwrap_or_default();
        let mut d = Vec::new();
        let marker = render::marker_line(cid, spec.user.as_str());
        let first = have.lines().next().unwrap_or_default();
        if first != marker {
            d.push(Difference::of("owner", &marker, first).says(format!(
                "the file's first line is not hostwright's marker for {cid}"
            )));
        }
        if let Some((n, w, h)) = first_line_difference(&want, &have) {
            d.push(
                Difference::of("content", &w, &h).says(format!(
                    "the file {} differs from what hostwright writes from line {n}: want {w:?}, the host has {h:?}",
                    self.site_file(&domain)
                )),
            );
        }
        if spec.tls {
            let certs = self.certs.as_ref().ok_or_else(|| perm(crate::NO_ISSUER))?;
            match unb64(f.get("meta")) {
                None => d.push(
                    Difference::of("certificate", names.join(","), None::<String>)
                        .says("no certificate is installed"),
                ),
                Some(meta) if !certs.is_current(&meta, &names, now) => d.push(
                    Difference::of("certificate", names.join(","), meta.trim()).says(format!(
                        "the certificate names other names, comes from another issuer than {} or expires within the renewal window ({} days)",
                        certs.source(),
                        certs.renew_days()
                    )),
                ),
                Some(_) => {}
            }
        }
        Ok(Comparison::from_differences(d))
    }

    /// [`hostwright_adapter::Adapter::inventory`]: accounts with the GECOS
    /// marker and vhost files with the marker line, in one command.
    pub(crate) async fn list_marked(&self) -> Result<Vec<Marked>, AdapterError> {
        let out = self
            .pool
            .run(Command::script(
                scripts::INVENTORY,
                [&self.cfg.sites_dir, &self.cfg.home_root],
            ))
            .await?;
        let out = script_result("listing hostwright's accounts and vhosts", out)?;
        Ok(out
            .stdout_str()
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                let kind = match w.next()? {
                    "u" => KIND_WEBSPACE,
                    "d" => KIND_VHOST,
                    _ => return None,
                };
                Some(Marked {
                    kind: kind.to_string(),
                    key: w.next()?.to_string(),
                    owner: w.next()?.to_string(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_output_splits_into_items() {
        let out = "[u c1]\npresent=1\nuid=5\nhome=L2hvbWUvYzE=\n[d a.jp]\npresent=0\n";
        let items = parse_scan(out);
        assert_eq!(items["u c1"]["uid"], "5");
        assert_eq!(unb64(items["u c1"].get("home")).unwrap(), "/home/c1");
        assert_eq!(items["d a.jp"]["present"], "0");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn first_line_difference_names_the_line() {
        assert_eq!(first_line_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(
            first_line_difference("a\nb\n", "a\nx\n"),
            Some((2, "b".into(), "x".into()))
        );
        assert_eq!(
            first_line_difference("a\nb\n", "a\n"),
            Some((2, "b".into(), "(end of file)".into()))
        );
    }
}
