//! Playbooks: per service type, which resources a contract needs, which adapter
//! drives each, and in what order (`after`). Data, not code: `playbooks/*.toml`.
//!
//! Playbooks are validated at start-up against the adapters actually
//! registered and the resource kinds the planner can derive, so a typo fails
//! the start with the file and line, not a job at 3 a.m.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A playbook problem, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct PlaybookError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// One resource entry of a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRule {
    pub kind: String,
    pub adapter: String,
    /// Kinds that must be created before this one (and removed after it).
    pub after: Vec<String>,
    /// Whether suspension (第20条) reaches this resource.
    pub suspend: bool,
}

/// A validated playbook, its resources in dependency order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playbook {
    pub file: PathBuf,
    pub services: Vec<String>,
    /// Topologically sorted: every resource after those it depends on.
    pub resources: Vec<ResourceRule>,
}

impl Playbook {
    pub fn rule(&self, kind: &str) -> Option<&ResourceRule> {
        self.resources.iter().find(|r| r.kind == kind)
    }
    /// Position of a kind in creation order.
    pub fn order(&self, kind: &str) -> usize {
        self.resources
            .iter()
            .position(|r| r.kind == kind)
            .unwrap_or(usize::MAX)
    }
    /// Whether `kind` must be created after `other`, directly or through
    /// other resources (`after`, transitively). False for kinds the playbook
    /// does not list.
    pub fn depends_on(&self, kind: &str, other: &str) -> bool {
        let mut stack = vec![kind];
        let mut seen = BTreeSet::new();
        while let Some(k) = stack.pop() {
            let Some(rule) = self.rule(k) else { continue };
            for a in &rule.after {
                if a == other {
                    return true;
                }
                if seen.insert(a.as_str()) {
                    stack.push(a.as_str());
                }
            }
        }
        false
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    services: Vec<Spanned<String>>,
    #[serde(rename = "resource")]
    resources: Vec<Spanned<RawResource>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    kind: Spanned<String>,
    adapter: Spanned<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default = "default_true")]
    suspend: bool,
}

fn default_true() -> bool {
    true
}

/// What playbooks are checked against.
pub struct Known<'a> {
    /// Adapter name -> resource kinds it manages.
    pub adapters: &'a BTreeMap<String, BTreeSet<String>>,
    /// Service type codes that exist in the catalog.
    pub services: &'a BTreeSet<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses and validates one playbook.
pub fn parse(file: &Path, text: &str, known: &Known<'_>) -> Result<Playbook, PlaybookError> {
    let fname = file.display().to_string();
    let err = |span: std::ops::Range<usize>, message: String| PlaybookError {
        file: fname.clone(),
        line: line_of(text, span.start),
        message,
    };
    let raw: RawPlaybook = toml::from_str(text).map_err(|e| PlaybookError {
        file: fname.clone(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().to_string(),
    })?;
    if raw.services.is_empty() {
        return Err(err(0..0, "`services` names no service type".into()));
    }
    for s in &raw.services {
        if !known.services.contains(s.get_ref()) {
            return Err(err(
                s.span(),
                format!("unknown service type `{}`", s.get_ref()),
            ));
        }
    }
    let mut rules: Vec<(ResourceRule, std::ops::Range<usize>)> = Vec::new();
    let mut seen = BTreeMap::new();
    for r in &raw.resources {
        let span = r.span();
        let r = r.get_ref();
        let kind = r.kind.get_ref();
        let adapter = r.adapter.get_ref();
        let Some(kinds) = known.adapters.get(adapter) else {
            return Err(err(
                r.adapter.span(),
                format!(
                    "unknown adapter `{adapter}` (registered: {})",
                    known
                        .adapters
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if !kinds.contains(kind) {
            return Err(err(
                r.kind.span(),
                format!("adapter `{adapter}` does not manage resource kind `{kind}`"),
            ));
        }
        if seen.insert(kind.clone(), span.clone()).is_some() {
            return Err(err(
                r.kind.span(),
                format!("resource kind `{kind}` listed twice"),
            ));
        }
        rules.push((
            ResourceRule {
                kind: kind.clone(),
                adapter: adapter.clone(),
                after: r.after.iter().map(|a| a.get_ref().clone()).collect(),
                suspend: r.suspend,
            },
            span,
        ));
    }
    for r in &raw.resources {
        for a in &r.get_ref().after {
            if !seen.contains_key(a.get_ref()) {
                return Err(err(
                    a.span(),
                    format!(
                        "`after` names `{}`, which this playbook does not list",
                        a.get_ref()
                    ),
                ));
            }
        }
    }
    // Kahn's algorithm, keeping file order among independent resources.
    let mut sorted: Vec<ResourceRule> = Vec::new();
    let mut remaining = rules;
    while !remaining.is_empty() {
        let done: BTreeSet<&str> = sorted.iter().map(|r| r.kind.as_str()).collect();
        let Some(pos) = remaining
            .iter()
            .position(|(r, _)| r.after.iter().all(|a| done.contains(a.as_str())))
        else {
            let (r, span) = &remaining[0];
            return Err(err(
                span.clone(),
                format!(
                    "dependency cycle among {} (starting at `{}`)",
                    remaining
                        .iter()
                        .map(|(r, _)| format!("`{}`", r.kind))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.kind
                ),
            ));
        };
        sorted.push(remaining.remove(pos).0);
    }
    Ok(Playbook {
        file: file.to_path_buf(),
        services: raw.services.into_iter().map(|s| s.into_inner()).collect(),
        resources: sorted,
    })
}

/// All playbooks of a directory, indexed by service type.
#[derive(Debug, Clone, Default)]
pub struct Playbooks {
    by_service: BTreeMap<String, Playbook>,
}

impl Playbooks {
    /// Loads every `*.toml` directly in `dir` (the catalog lives in a
    /// subdirectory and is not a playbook).
    pub fn load_dir(dir: &Path, known: &Known<'_>) -> Result<Playbooks, PlaybookError> {
        let io_err = |message: String| PlaybookError {
            file: dir.display().to_string(),
            line: 0,
            message,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io_err(format!("cannot read playbook directory: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut out = Playbooks::default();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| PlaybookError {
                file: f.display().to_string(),
                line: 0,
                message: e.to_string(),
            })?;
            let pb = parse(&f, &text, known)?;
            for s in &pb.services {
                if let Some(other) = out.by_service.get(s) {
                    return Err(PlaybookError {
                        file: f.display().to_string(),
                        line: 1,
                        message: format!(
                            "service type `{s}` already has a playbook: {}",
                            other.file.display()
                        ),
                    });
                }
                out.by_service.insert(s.clone(), pb.clone());
            }
        }
        Ok(out)
    }

    pub fn for_service(&self, service: &str) -> Option<&Playbook> {
        self.by_service.get(service)
    }

    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.by_service.keys().map(|s| s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
        let mut a = BTreeMap::new();
        a.insert(
            "webhost".to_string(),
            ["webspace", "vhost"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        a.insert(
            "dns".to_string(),
            ["dns_zone"].iter().map(|s| s.to_string()).collect(),
        );
        let s = ["www"].iter().map(|s| s.to_string()).collect();
        (a, s)
    }

    fn check(text: &str) -> Result<Playbook, PlaybookError> {
        let (a, s) = known();
        parse(
            Path::new("pb.toml"),
            text,
            &Known {
                adapters: &a,
                services: &s,
            },
        )
    }

    #[test]
    fn orders_by_dependencies_keeping_file_order() {
        let pb = check(
            r#"services = ["www"]
[[resource]]
kind = "vhost"
adapter = "webhost"
after = ["webspace", "dns_zone"]
[[resource]]
kind = "dns_zone"
adapter = "dns"
suspend = false
[[resource]]
kind = "webspace"
adapter = "webhost"
"#,
        )
        .unwrap();
        let kinds: Vec<_> = pb.resources.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["dns_zone", "webspace", "vhost"]);
        assert!(!pb.rule("dns_zone").unwrap().suspend);
        assert!(pb.rule("vhost").unwrap().suspend);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            (
                "services = [\"www\"]\n[[resource]]\nkind = \"vhost\"\nadapter = \"nginx\"\n",
                4,
                "unknown adapter `nginx`",
            ),
            (
                "services = [\"www\"]\n[[resource]]\nkind = \"mailbox\"\nadapter = \"webhost\"\n",
                3,
                "does not manage resource kind `mailbox`",
            ),
            (
                "services = [\"www\"]\n[[resource]]\nkind = \"vhost\"\n",
                2,
                "missing field `adapter`",
            ),
            (
                "services = [\"ftp\"]\n[[resource]]\nkind = \"vhost\"\nadapter = \"webhost\"\n",
                1,
                "unknown service type `ftp`",
            ),
            (
                "services = [\"www\"]\n[[resource]]\nkind = \"vhost\"\nadapter = \"webhost\"\nafter = [\"nothing\"]\n",
                5,
                "does not list",
            ),
            (
                "services = [\"www\"]\n[[resource]]\nkind = \"vhost\"\nadapter = \"webhost\"\nafter = [\"webspace\"]\n[[resource]]\nkind = \"webspace\"\nadapter = \"webhost\"\nafter = [\"vhost\"]\n",
                2,
                "dependency cycle",
            ),
            (
                "services = [\"www\"]\n[[resource]]\nkind = \"vhost\"\nadapter = \"webhost\"\nafterwards = []\n",
                5,
                "unknown field",
            ),
        ];
        for (text, line, msg) in cases {
            let e = check(text).unwrap_err();
            assert_eq!(e.file, "pb.toml");
            assert!(e.message.contains(msg), "{e} should contain {msg}");
            assert_eq!(e.line, line, "{e}");
        }
    }
}
