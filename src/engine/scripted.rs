//! A scripted in-process adapter for engine tests and the no-op benchmark:
//! it stands in for a real adapter name (`webhost`, `dns`, ...) and can be told
//! to fail transiently, fail permanently, hang or crash the process on demand.
//!
//! In-process tests ([`Script::new`]) get its memory: every call, and the
//! resources it "created", so they can prove that a resource was created
//! exactly once however often its step ran. In the `hostwright serve` binary
//! it is enabled with `[adapters.scripted]` (see `ScriptedConfig`), which lets
//! the crash tests kill a real worker process mid-step; there
//! ([`Script::with_files`]) it keeps no history in memory, since the process
//! would grow with every job it ran (the no-op benchmark drains 10,000): the
//! optional log file (one JSON line per call) is the record, and every
//! `ensure` counts as a creation.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hostwright_adapter::{
    Adapter, AdapterError, Observation, Outcome, Resource, Secret, StepContext,
};
use serde::{Deserialize, Serialize};

/// What a matching call does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "do")]
pub enum Behavior {
    Transient,
    /// Transient with a Retry-After hint.
    TransientAfter {
        ms: u64,
    },
    Permanent,
    /// Sleeps this long before answering (a hung backend).
    Hang {
        ms: u64,
    },
    /// Aborts the whole process mid-call (a worker killed with -9).
    Crash,
}

/// A rule: calls matching `kind`/`key`/`op` (absent = any) get `behavior`,
/// `times` times (absent = always).
// No `deny_unknown_fields`: serde does not support it together with
// `flatten`, and would refuse every rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// `ensure` or `remove`.
    #[serde(default)]
    pub op: Option<String>,
    #[serde(flatten)]
    pub behavior: Behavior,
    #[serde(default)]
    pub times: Option<u32>,
}

/// One call as the adapter saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub adapter: String,
    pub op: String,
    pub kind: String,
    pub key: String,
    pub job_id: String,
    pub attempt: u32,
    /// True when this call created the resource (it did not exist before).
    pub created: bool,
    /// Set on entries a scripted fault produced: the op (`ensure`/`remove`)
    /// the fault hit. Control-file rules count their `times` with it, since
    /// they keep no counters across processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<Call>,
    /// (kind, key) -> spec of what exists.
    resources: BTreeMap<(String, String), serde_json::Value>,
    creations: BTreeMap<(String, String), u32>,
}

/// Shared between every scripted adapter of one engine, so a test sees all calls.
#[derive(Clone, Default)]
pub struct Script {
    state: Arc<Mutex<State>>,
    /// Whether calls, resources and creations are kept in memory (tests);
    /// without it the script's memory does not grow with the calls.
    history: bool,
    log: Option<PathBuf>,
    /// Read before every call when set: a JSON array of [`Rule`]s, so a test
    /// can change behaviour of a running `hostwright serve` process.
    control_file: Option<PathBuf>,
}

impl Script {
    /// A script that remembers every call and resource (in-process tests).
    pub fn new() -> Self {
        Script {
            history: true,
            ..Script::default()
        }
    }

    /// A script for `hostwright serve`: no history in memory; calls go to
    /// `log` when set, faults come from `control_file` when set.
    pub fn with_files(log: Option<PathBuf>, control_file: Option<PathBuf>) -> Self {
        Script {
            log,
            control_file,
            history: false,
            ..Script::default()
        }
    }

    pub fn push(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// How many times each resource was actually created.
    pub fn creations(&self) -> BTreeMap<(String, String), u32> {
        self.state.lock().unwrap().creations.clone()
    }

    /// What exists now.
    pub fn resources(&self) -> BTreeMap<(String, String), serde_json::Value> {
        self.state.lock().unwrap().resources.clone()
    }

    fn behavior_for(&self, op: &str, r: &Resource) -> Option<Behavior> {
        let mut st = self.state.lock().unwrap();
        if let Some(path) = &self.control_file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            let rules = match serde_json::from_str::<Vec<Rule>>(&text) {
                Ok(rules) => rules,
                Err(e) => {
                    // A control file that does not parse must not pass
                    // unnoticed as "no faults": fail the call loudly.
                    tracing::error!(path = %path.display(), error = %e, "scripted control file does not parse");
                    return Some(Behavior::Permanent);
                }
            };
            // File rules carry no counters across processes: `times` is
            // checked against the calls logged so far.
            let logged = self.logged_calls();
            for rule in rules {
                if matches(&rule, op, r) {
                    let used = logged
                        .iter()
                        .filter(|c| {
                            c.fault.as_deref() == Some(op) && c.kind == r.kind && c.key == r.key
                        })
                        .count() as u32;
                    if rule.times.is_none_or(|t| used < t) {
                        return Some(rule.behavior);
                    }
                }
            }
        }
        for rule in st.rules.iter_mut() {
            if matches(rule, op, r) {
                match rule.times.as_mut() {
                    None => return Some(rule.behavior.clone()),
                    Some(0) => continue,
                    Some(n) => {
                        *n -= 1;
                        return Some(rule.behavior.clone());
                    }
                }
            }
        }
        None
    }

    fn logged_calls(&self) -> Vec<Call> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn record(&self, call: Call) {
        if let Some(log) = &self.log {
            let line = serde_json::to_string(&call).expect("call serializes");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("scripted adapter log opens");
            writeln!(f, "{line}").expect("scripted adapter log writes");
            let _ = f.sync_data();
        }
        if self.history {
            self.state.lock().unwrap().calls.push(call);
        }
    }
}

fn matches(rule: &Rule, op: &str, r: &Resource) -> bool {
    rule.kind.as_deref().is_none_or(|k| k == r.kind)
        && rule.key.as_deref().is_none_or(|k| k == r.key)
        && rule.op.as_deref().is_none_or(|o| o == op)
}

/// Stands in for the adapter `name`, managing `kinds`.
pub struct ScriptedAdapter {
    name: &'static str,
    kinds: &'static [&'static str],
    script: Script,
}

impl ScriptedAdapter {
    pub fn new(name: &'static str, kinds: &'static [&'static str], script: Script) -> Self {
        ScriptedAdapter {
            name,
            kinds,
            script,
        }
    }

    /// Stand-ins for every real adapter, sharing one script.
    pub fn all(script: &Script) -> Vec<Arc<dyn Adapter>> {
        REAL_ADAPTERS
            .iter()
            .map(|(n, k)| Arc::new(ScriptedAdapter::new(n, k, script.clone())) as Arc<dyn Adapter>)
            .collect()
    }

    async fn act(
        &self,
        op: &str,
        ctx: &StepContext,
        r: &Resource,
    ) -> Result<Outcome, AdapterError> {
        if let Some(b) = self.script.behavior_for(op, r) {
            match b {
                Behavior::Transient => {
                    self.log_fault(op, op, ctx, r);
                    return Err(AdapterError::transient(format!(
                        "scripted transient failure of {} {}",
                        r.kind, r.key
                    )));
                }
                Behavior::TransientAfter { ms } => {
                    self.log_fault(op, op, ctx, r);
                    return Err(AdapterError::Transient {
                        message: format!("scripted throttling of {} {}", r.kind, r.key),
                        retry_after: Some(Duration::from_millis(ms)),
                    });
                }
                Behavior::Permanent => {
                    self.log_fault(op, op, ctx, r);
                    return Err(AdapterError::permanent(format!(
                        "scripted permanent failure of {} {}",
                        r.kind, r.key
                    )));
                }
                Behavior::Hang { ms } => {
                    // Logged as its own op so tests can see a step is inside
                    // the call; the call itself is logged when it completes.
                    self.log_fault("hang", op, ctx, r);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Behavior::Crash => {
                    self.log_fault(op, op, ctx, r);
                    std::process::abort();
                }
            }
        }
        let id = (r.kind.clone(), r.key.clone());
        let created = if !self.script.history {
            // Without memory the stand-in cannot tell; a no-op run creates
            // what it ensures, like a first provisioning.
            op != "remove"
        } else {
            let mut st = self.script.state.lock().unwrap();
            if op == "remove" {
                st.resources.remove(&id);
                false
            } else {
                let created = st.resources.insert(id.clone(), r.spec.clone()).is_none();
                if created {
                    *st.creations.entry(id).or_default() += 1;
                }
                created
            }
        };
        self.log(op, ctx, r, created);
        let mut outcome = Outcome::with_facts(serde_json::json!({ "scripted": true }));
        if created && r.kind == "ftp_account" {
            outcome
                .secrets
                .insert("password".into(), Secret::new(format!("pw-{}", r.key)));
        }
        Ok(outcome)
    }

    fn log(&self, op: &str, ctx: &StepContext, r: &Resource, created: bool) {
        self.record(op, ctx, r, created, None);
    }

    /// Logs an entry `op` produced by a fault that hit the call `hit`.
    fn log_fault(&self, op: &str, hit: &str, ctx: &StepContext, r: &Resource) {
        self.record(op, ctx, r, false, Some(hit.to_string()));
    }

    fn record(
        &self,
        op: &str,
        ctx: &StepContext,
        r: &Resource,
        created: bool,
        fault: Option<String>,
    ) {
        self.script.record(Call {
            adapter: self.name.to_string(),
            op: op.to_string(),
            kind: r.kind.clone(),
            key: r.key.clone(),
            job_id: ctx.job_id.clone(),
            attempt: ctx.attempt,
            created,
            fault,
        });
    }
}

/// The real adapters' names and kinds, which scripted stand-ins take over.
pub const REAL_ADAPTERS: &[(&str, &[&str])] = &[
    ("webhost", &["webspace", "vhost"]),
    ("ftp", &["ftp_account"]),
    ("dns", &["dns_zone"]),
    ("securemx", &["mx_tenant", "mx_mailboxes"]),
];

#[async_trait]
impl Adapter for ScriptedAdapter {
    fn name(&self) -> &'static str {
        self.name
    }
    fn kinds(&self) -> &'static [&'static str] {
        self.kinds
    }
    async fn ensure(&self, ctx: &StepContext, r: &Resource) -> Result<Outcome, AdapterError> {
        self.act("ensure", ctx, r).await
    }
    async fn remove(&self, ctx: &StepContext, r: &Resource) -> Result<Outcome, AdapterError> {
        self.act("remove", ctx, r).await
    }
    async fn observe(&self, r: &Resource) -> Result<Observation, AdapterError> {
        let st = self.script.state.lock().unwrap();
        Ok(match st.resources.get(&(r.kind.clone(), r.key.clone())) {
            Some(spec) => Observation::Present {
                facts: spec.clone(),
            },
            None => Observation::Absent,
        })
    }
}

/// `[adapters.scripted]` in the config: every real adapter is replaced by a
/// scripted stand-in (used by the engine's crash tests and the no-op bench).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedConfig {
    pub log: Option<PathBuf>,
    pub control_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(job: &str) -> StepContext {
        StepContext {
            job_id: job.into(),
            step_id: "create:webspace:w".into(),
            attempt: 1,
        }
    }

    fn resource(key: &str) -> Resource {
        Resource {
            kind: "webspace".into(),
            key: key.into(),
            contract_id: "C-1".into(),
            spec: serde_json::json!({ "quota_mb": 100 }),
        }
    }

    #[tokio::test]
    async fn a_serve_script_keeps_no_history_a_test_script_does() {
        let serve = Script::with_files(None, None);
        let test = Script::new();
        for script in [&serve, &test] {
            let a = ScriptedAdapter::new("webhost", &["webspace"], script.clone());
            for i in 0..50 {
                a.ensure(&ctx("j"), &resource(&format!("w{i}")))
                    .await
                    .unwrap();
            }
        }
        assert!(serve.calls().is_empty());
        assert!(serve.resources().is_empty());
        assert!(serve.creations().is_empty());
        assert_eq!(test.calls().len(), 50);
        assert_eq!(test.resources().len(), 50);
        assert!(test.calls().iter().all(|c| c.created));
    }

    #[test]
    fn control_file_rules_parse_with_their_behavior() {
        let rules: Vec<Rule> = serde_json::from_str(
            r#"[{"kind": "vhost", "do": "hang", "ms": 60000, "times": 1},
                {"op": "remove", "do": "permanent"}]"#,
        )
        .unwrap();
        assert_eq!(rules[0].behavior, Behavior::Hang { ms: 60000 });
        assert_eq!(rules[0].times, Some(1));
        assert_eq!(rules[1].op.as_deref(), Some("remove"));
        assert_eq!(rules[1].behavior, Behavior::Permanent);
    }
}
