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
//! optional log file (one JSON line per call, [`CallLog`]) is the record, and
//! every `ensure` counts as a creation.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
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

/// The scripted adapter's call log, `[adapters.scripted] log`: one JSON line
/// per call.
///
/// Each line is appended with **one** `write` on a file opened `O_APPEND`,
/// so the lines of concurrent writers (the workers of one process, or two
/// processes on one file) never interleave. The log is read **once**, when
/// opened: the faults it already holds (those of a process killed before
/// this one) seed the in-memory counts that control-file rules' `times` are
/// checked against, and later faults are counted in memory as they are
/// logged. A line left without its newline by a killed process is closed
/// first, so it stays a line of its own.
pub struct CallLog {
    file: std::fs::File,
    /// `(fault op, kind, key)` -> faults logged so far.
    faults: Mutex<HashMap<(String, String, String), u32>>,
}

impl CallLog {
    pub fn open(path: &Path) -> std::io::Result<CallLog> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let mut faults = HashMap::new();
        for call in parse_log(&text).calls {
            if let Some(op) = call.fault {
                *faults.entry((op, call.kind, call.key)).or_default() += 1;
            }
        }
        if text.last().is_some_and(|b| *b != b'\n') {
            file.write_all(b"\n")?;
        }
        file.rewind()?;
        Ok(CallLog {
            file,
            faults: Mutex::new(faults),
        })
    }

    /// Appends one call as one line, in one write.
    fn append(&self, call: &Call) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(call).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write of the whole line: with O_APPEND the kernel places it at
        // the end of the file at once, whoever else appends. A short write
        // (disk full) is an error, not half a line followed by the rest.
        let n = (&self.file).write(&line)?;
        if n != line.len() {
            return Err(std::io::Error::other(format!(
                "short write to the call log ({n} of {} bytes)",
                line.len()
            )));
        }
        if let Some(op) = &call.fault {
            *self
                .faults
                .lock()
                .unwrap()
                .entry((op.clone(), call.kind.clone(), call.key.clone()))
                .or_default() += 1;
        }
        Ok(())
    }

    fn faults(&self, op: &str, kind: &str, key: &str) -> u32 {
        self.faults
            .lock()
            .unwrap()
            .get(&(op.to_string(), kind.to_string(), key.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// What a call log holds.
#[derive(Debug, Default)]
pub struct LogContents {
    /// The calls of the whole lines, in order.
    pub calls: Vec<Call>,
    /// Lines that do not parse (torn). A last line without its newline is a
    /// write in progress: neither a call nor torn.
    pub torn: usize,
}

/// Reads a call log as a test or the adapter sees it (a missing file is empty).
pub fn read_log(path: &Path) -> std::io::Result<LogContents> {
    match std::fs::read(path) {
        Ok(text) => Ok(parse_log(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LogContents::default()),
        Err(e) => Err(e),
    }
}

fn parse_log(text: &[u8]) -> LogContents {
    let complete = match text.iter().rposition(|b| *b == b'\n') {
        Some(i) => &text[..i],
        None => return LogContents::default(),
    };
    let mut out = LogContents::default();
    for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(call) => out.calls.push(call),
            Err(_) => out.torn += 1,
        }
    }
    out
}

/// Shared between every scripted adapter of one engine, so a test sees all calls.
#[derive(Clone, Default)]
pub struct Script {
    state: Arc<Mutex<State>>,
    /// Whether calls, resources and creations are kept in memory (tests);
    /// without it the script's memory does not grow with the calls.
    history: bool,
    log: Option<Arc<CallLog>>,
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
    pub fn with_files(
        log: Option<PathBuf>,
        control_file: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        Ok(Script {
            log: log.as_deref().map(CallLog::open).transpose()?.map(Arc::new),
            control_file,
            history: false,
            ..Script::default()
        })
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

    /// Changes a resource behind the engine's back (drift made by hand):
    /// `None` deletes it, `Some(spec)` replaces what exists.
    pub fn tamper(&self, kind: &str, key: &str, now: Option<serde_json::Value>) {
        let mut st = self.state.lock().unwrap();
        let k = (kind.to_string(), key.to_string());
        match now {
            Some(v) => {
                st.resources.insert(k, v);
            }
            None => {
                st.resources.remove(&k);
            }
        }
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
            // checked against the faults logged so far (the log's counts).
            for rule in rules {
                if matches(&rule, op, r) {
                    let used = self
                        .log
                        .as_ref()
                        .map_or(0, |l| l.faults(op, &r.kind, &r.key));
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

    fn record(&self, call: Call) {
        if let Some(log) = &self.log {
            // No fsync: the crash tests kill the process, not the machine,
            // and the kernel keeps what was written.
            log.append(&call).expect("scripted adapter log writes");
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
    /// The name its calls are logged under: `name`, or `name@HOST` for a
    /// fleet host's stand-in.
    label: String,
    kinds: &'static [&'static str],
    script: Script,
}

impl ScriptedAdapter {
    pub fn new(name: &'static str, kinds: &'static [&'static str], script: Script) -> Self {
        ScriptedAdapter {
            name,
            label: name.to_string(),
            kinds,
            script,
        }
    }

    /// The stand-ins of the adapters that live on fleet host `host`
    /// (`webhost@HOST`, `ftp@HOST`), registered and logged under those names.
    pub fn on_host(script: &Script, host: &str) -> Vec<(String, Arc<dyn Adapter>)> {
        REAL_ADAPTERS
            .iter()
            .filter(|(n, _)| crate::engine::fleet::PLACED_ADAPTERS.contains(n))
            .map(|(n, k)| {
                let label = crate::engine::fleet::host_adapter(n, host);
                let a = ScriptedAdapter {
                    name: n,
                    label: label.clone(),
                    kinds: k,
                    script: script.clone(),
                };
                (label, Arc::new(a) as Arc<dyn Adapter>)
            })
            .collect()
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
            adapter: self.label.clone(),
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
        let serve = Script::with_files(None, None).unwrap();
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

    fn call(i: usize, fault: Option<&str>) -> Call {
        Call {
            adapter: "webhost".into(),
            op: "ensure".into(),
            kind: "webspace".into(),
            key: format!("w{i}"),
            job_id: format!("job-{i}-{}", "x".repeat(i % 300)),
            attempt: 1,
            created: true,
            fault: fault.map(str::to_string),
        }
    }

    #[test]
    fn concurrent_writers_never_mix_their_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.jsonl");
        // Two "processes" on one file, each with several writer threads.
        let scripts = [
            Script::with_files(Some(log.clone()), None).unwrap(),
            Script::with_files(Some(log.clone()), None).unwrap(),
        ];
        std::thread::scope(|s| {
            for t in 0..8 {
                let script = scripts[t % 2].clone();
                s.spawn(move || {
                    for i in 0..400 {
                        script.record(call(t * 1000 + i, None));
                    }
                });
            }
        });
        let got = read_log(&log).unwrap();
        assert_eq!(got.torn, 0, "no line is torn");
        assert_eq!(got.calls.len(), 8 * 400);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 8 * 400);
    }

    #[test]
    fn fault_counts_come_from_the_log_once_then_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.jsonl");
        let control = dir.path().join("control.json");
        std::fs::write(
            &control,
            r#"[{"kind": "webspace", "key": "w1", "do": "permanent", "times": 2}]"#,
        )
        .unwrap();
        // A previous process logged one fault of the rule, and was killed
        // in the middle of its next line.
        let mut before = serde_json::to_vec(&call(1, Some("ensure"))).unwrap();
        before.extend_from_slice(b"\n{\"adapter\":\"webh");
        std::fs::write(&log, before).unwrap();

        let script = Script::with_files(Some(log.clone()), Some(control)).unwrap();
        let r = resource("w1");
        // One fault of the two is left...
        assert_eq!(script.behavior_for("ensure", &r), Some(Behavior::Permanent));
        script.record(call(1, Some("ensure")));
        // ...and the count is kept in memory, not re-read from the log: a
        // log emptied under the process does not start the rule over.
        std::fs::write(&log, b"").unwrap();
        assert_eq!(script.behavior_for("ensure", &r), None);

        // The torn line stayed a line of its own; the calls after it parse.
        let dir2 = tempfile::tempdir().unwrap();
        let log2 = dir2.path().join("calls.jsonl");
        std::fs::write(&log2, b"{\"adapter\":\"webh").unwrap();
        let s2 = Script::with_files(Some(log2.clone()), None).unwrap();
        s2.record(call(2, None));
        let got = read_log(&log2).unwrap();
        assert_eq!((got.calls.len(), got.torn), (1, 1));
        assert_eq!(got.calls[0].key, "w2");
    }

    #[test]
    fn a_line_still_being_written_is_neither_a_call_nor_torn() {
        let mut text = serde_json::to_vec(&call(1, None)).unwrap();
        text.push(b'\n');
        text.extend_from_slice(b"{\"adapter\"");
        let got = parse_log(&text);
        assert_eq!((got.calls.len(), got.torn), (1, 0));
        assert_eq!(parse_log(b"{\"a").calls.len(), 0);
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
