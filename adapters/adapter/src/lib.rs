//! The contract between the engine and the backends.
//!
//! The engine knows nothing about SSH, DNS or HTTP: it hands an adapter a
//! [`Resource`] (a kind, a stable key and the desired spec as JSON) and asks it
//! to [`Adapter::ensure`] it exists as described, or to [`Adapter::remove`] it.
//! Both calls must be idempotent, because the engine retries them after
//! timeouts and crashes: running `ensure` twice with the same resource must leave
//! the backend as running it once would, and `remove` of something already gone
//! succeeds. Retry policy lives in the engine only; an adapter merely says
//! whether a failure is worth retrying ([`AdapterError::Transient`]) or not
//! ([`AdapterError::Permanent`]).
//!
//! Shared batching machinery lives here ([`batch`]: group commit of
//! concurrent steps' changes into one remote command), and shared input
//! hygiene too ([`validate`], [`shell`]) so that every
//! adapter that builds a remote command uses one allow-list and one quoting
//! function.

pub mod batch;
pub mod retry;
pub mod shell;
pub mod testenv;
/// The shared allow-lists and validated types (crate `hostwright-validate`).
pub use hostwright_validate as validate;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One thing an adapter manages for one contract, as the planner wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// Resource kind, e.g. `webspace`, `vhost`, `ftp_account`, `dns_zone`.
    pub kind: String,
    /// Stable key, unique per (contract, kind); e.g. the domain for a vhost.
    pub key: String,
    /// The contract the resource belongs to.
    pub contract_id: String,
    /// Desired state, adapter specific. Never contains secrets: it is journaled.
    pub spec: serde_json::Value,
}

/// The typed spec of one resource kind. Each adapter crate exports the spec
/// of every kind it manages, and the planner builds exactly these types, so a
/// change on either side fails to compile instead of failing a step. Values
/// in a spec are validated types ([`validate`]): a spec that deserializes is
/// one its adapter accepts. The resource's key is not repeated in its spec.
pub trait Spec: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug {
    /// The resource kind this spec describes (`webspace`, `vhost`, ...).
    const KIND: &'static str;
    /// Fields specs of older plans carried (the key, repeated): read and
    /// dropped, so plans and recorded resources of any version still load.
    const LEGACY_FIELDS: &'static [&'static str] = &[];

    /// Reads a spec as the store keeps it (any version).
    fn from_stored(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        let mut v = value.clone();
        if let Some(o) = v.as_object_mut() {
            for f in Self::LEGACY_FIELDS {
                o.remove(*f);
            }
        }
        serde_json::from_value(v)
    }

    /// The JSON the planner stores for this spec.
    fn to_stored(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a spec serializes")
    }
}

impl Resource {
    /// Deserializes the spec into the adapter's typed form; a spec that does
    /// not fit is a permanent error (a planner/adapter mismatch, not a glitch).
    pub fn spec<T: Spec>(&self) -> Result<T, AdapterError> {
        if self.kind != T::KIND {
            return Err(AdapterError::permanent(format!(
                "{} {}: not a {} resource",
                self.kind,
                self.key,
                T::KIND
            )));
        }
        T::from_stored(&self.spec).map_err(|e| {
            AdapterError::permanent(format!(
                "{} {}: spec does not match the adapter: {e}",
                self.kind, self.key
            ))
        })
    }
}

/// Where a step call comes from, for idempotency keys and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContext {
    pub job_id: String,
    pub step_id: String,
    pub attempt: u32,
}

impl StepContext {
    /// A key that is the same for every attempt of one step, so a backend with
    /// idempotency keys (HTTP APIs) can recognise a retried request.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.job_id, self.step_id)
    }
}

/// What a successful step leaves behind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Facts about the real resource (ids, addresses); recorded in the
    /// contract's state and the journal, so never secret.
    pub facts: serde_json::Value,
    /// Credentials created by this step, handed back once to the contract
    /// system and never journaled or logged.
    pub secrets: BTreeMap<String, Secret>,
}

impl Outcome {
    pub fn with_facts(facts: serde_json::Value) -> Self {
        Outcome {
            facts,
            secrets: BTreeMap::new(),
        }
    }
}

/// What an adapter sees of a resource on the backend right now.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Absent,
    Present { facts: serde_json::Value },
}

/// One way a resource on its backend differs from its desired spec: a field
/// a script reads (`field`, `want`, `have`) and the same in words a person
/// reads (`says`). Drift reports are made of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub field: String,
    pub want: serde_json::Value,
    pub have: serde_json::Value,
    pub says: String,
}

impl Difference {
    /// A difference whose words are `field: want W, the backend has H`.
    pub fn of(field: impl Into<String>, want: impl Serialize, have: impl Serialize) -> Difference {
        let field = field.into();
        let want = serde_json::to_value(want).unwrap_or(serde_json::Value::Null);
        let have = serde_json::to_value(have).unwrap_or(serde_json::Value::Null);
        let says = format!("{field}: want {want}, the backend has {have}");
        Difference {
            field,
            want,
            have,
            says,
        }
    }

    /// The same with words of its own.
    pub fn says(mut self, says: impl Into<String>) -> Difference {
        self.says = says.into();
        self
    }
}

/// How one resource on its backend compares with its desired spec.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    /// It should exist and does not.
    Missing,
    /// It exists as the spec describes.
    Matches,
    /// It exists and differs (never empty).
    Differs(Vec<Difference>),
}

impl Comparison {
    /// `Matches` when nothing differs.
    pub fn from_differences(d: Vec<Difference>) -> Comparison {
        if d.is_empty() {
            Comparison::Matches
        } else {
            Comparison::Differs(d)
        }
    }
}

/// A resource a backend holds with hostwright's ownership marker (GECOS,
/// vhost first line, FTP account's owner, ...), whoever the marker names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Marked {
    pub kind: String,
    pub key: String,
    /// The contract the marker names.
    pub owner: String,
}

/// The generic comparison: every top-level field of the spec that the
/// observed facts also name must be equal. Adapters whose facts are not
/// shaped like their specs override [`Adapter::compare`].
pub fn compare_fields(spec: &serde_json::Value, facts: &serde_json::Value) -> Comparison {
    let mut out = Vec::new();
    if let (Some(want), Some(have)) = (spec.as_object(), facts.as_object()) {
        for (k, w) in want {
            if let Some(h) = have.get(k)
                && h != w
            {
                out.push(Difference::of(k.clone(), w, h));
            }
        }
    }
    Comparison::from_differences(out)
}

/// A secret value whose `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The clear text: call only where it leaves for its one rightful reader.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An adapter failure, classified for the engine's retry policy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdapterError {
    /// Worth retrying: timeouts, refused connections, 5xx, 429, locks.
    #[error("transient: {message}")]
    Transient {
        message: String,
        /// A backend's own hint (HTTP Retry-After), honoured by the engine.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: bad input, auth/host key errors, quota exceeded.
    #[error("permanent: {message}")]
    Permanent { message: String },
}

impl AdapterError {
    pub fn transient(message: impl Into<String>) -> Self {
        AdapterError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        AdapterError::Permanent {
            message: message.into(),
        }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, AdapterError::Transient { .. })
    }
}

/// A backend driver. One implementation per crate under `adapters/`.
#[async_trait::async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The name playbooks use to pick this adapter (`webhost`, `dns`, ...).
    fn name(&self) -> &'static str;

    /// The resource kinds this adapter manages; playbooks are checked against it
    /// at start-up.
    fn kinds(&self) -> &'static [&'static str];

    /// Makes the backend match `resource.spec` (create or update, including the
    /// suspended state a spec may carry). Idempotent.
    async fn ensure(&self, ctx: &StepContext, resource: &Resource)
    -> Result<Outcome, AdapterError>;

    /// Removes the resource; succeeds if it is already gone. Idempotent.
    async fn remove(&self, ctx: &StepContext, resource: &Resource)
    -> Result<Outcome, AdapterError>;

    /// Reads the resource's current state without changing anything.
    async fn observe(&self, resource: &Resource) -> Result<Observation, AdapterError>;

    /// Compares each resource on the backend with its spec, changing
    /// nothing; one answer per resource, in order. Adapters read the
    /// backend in batches here (one remote command, one read of a file, a
    /// bounded number of requests at a time), which is what makes a drift
    /// scan of thousands of resources take seconds. The default observes
    /// one at a time and compares the fields spec and facts share
    /// ([`compare_fields`]).
    async fn compare(&self, resources: &[Resource]) -> Vec<Result<Comparison, AdapterError>> {
        let mut out = Vec::with_capacity(resources.len());
        for r in resources {
            out.push(match self.observe(r).await {
                Ok(Observation::Absent) => Ok(Comparison::Missing),
                Ok(Observation::Present { facts }) => Ok(compare_fields(&r.spec, &facts)),
                Err(e) => Err(e),
            });
        }
        out
    }

    /// Everything the backend holds with hostwright's marker, for finding
    /// orphans. `None`: this backend cannot list what it holds (its API has
    /// no listing), so its orphans cannot be found (said in the report,
    /// never taken for "none").
    async fn inventory(&self) -> Result<Option<Vec<Marked>>, AdapterError> {
        Ok(None)
    }

    /// Where this adapter's resources live (a host, a server, an API), for
    /// reports.
    fn location(&self) -> String {
        self.name().to_string()
    }

    /// What another instance of this adapter (another web host) needs to
    /// take `resource` over from this one: a relocation's first half. The
    /// default is nothing (the new instance creates it from its spec).
    async fn export(&self, resource: &Resource) -> Result<Export, AdapterError> {
        let _ = resource;
        Ok(Export::Nothing)
    }

    /// Takes `resource` over from another instance, with what it exported:
    /// makes the backend match the spec as `ensure` does, keeping what
    /// must not change (files, password hashes). Idempotent like `ensure`.
    /// The default is `ensure`, for kinds with nothing to carry over.
    async fn import(
        &self,
        ctx: &StepContext,
        resource: &Resource,
        export: Export,
    ) -> Result<Outcome, AdapterError> {
        match export {
            Export::Nothing => self.ensure(ctx, resource).await,
            other => Err(AdapterError::permanent(format!(
                "{} cannot import {} {} ({})",
                self.name(),
                resource.kind,
                resource.key,
                other.describe()
            ))),
        }
    }
}

/// What one instance of an adapter hands another in a relocation.
pub enum Export {
    /// Nothing: the new instance creates the resource from its spec.
    Nothing,
    /// A small record (an FTP account's password hash and settings).
    Record(serde_json::Value),
    /// A stream of bytes read from the old instance while the new one
    /// writes it (a home's files as a tar stream), with what the new one
    /// must find once written (`manifest`: a digest of every path's
    /// content, owner and mode), so the copy is verified, not trusted.
    Stream {
        reader: Box<dyn std::io::Read + Send>,
        manifest: String,
    },
}

impl Export {
    pub fn describe(&self) -> &'static str {
        match self {
            Export::Nothing => "nothing",
            Export::Record(_) => "a record",
            Export::Stream { .. } => "a stream",
        }
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Export::Stream { manifest, .. } => f
                .debug_struct("Stream")
                .field("manifest", manifest)
                .finish_non_exhaustive(),
            other => f.write_str(other.describe()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_generic_comparison_reads_the_fields_spec_and_facts_share() {
        let spec = json!({"quota_mb": 100, "suspended": false, "user": "u1"});
        assert_eq!(
            compare_fields(&spec, &json!({"quota_mb": 100, "uid": 5})),
            Comparison::Matches
        );
        let Comparison::Differs(d) = compare_fields(&spec, &json!({"quota_mb": 50})) else {
            panic!("a different quota differs");
        };
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].field.as_str(), &d[0].want, &d[0].have),
            ("quota_mb", &json!(100), &json!(50))
        );
        assert_eq!(d[0].says, "quota_mb: want 100, the backend has 50");
    }
}
