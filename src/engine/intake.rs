//! Intake of signed contracts (the approval webhook): verify the signature,
//! check the terms, record, queue. Nothing is silently dropped: every refusal
//! is recorded with its reasons before it is answered.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use super::claims::{self, Claim, Claims};
use super::store::{
    IntakeOutcome, IntakeView, Judged, NewRevision, RecordedResource, Rejection, StoreError,
};
use super::{Engine, plan};
use crate::contract::Contract;
use crate::rules::{self, Finding};
use crate::signing::{self, MAX_ENVELOPE_BYTES};

/// How often intake judges one revision again because a concurrent revision
/// of its contract or customer changed what it was judged against. Each
/// round is a read and a check of microseconds, so only a storm of
/// revisions for one customer reaches this; the contract system then gets a
/// 503 and sends the revision again.
const MAX_JUDGEMENTS: usize = 16;

/// What judging a revision decided.
#[derive(Debug)]
pub enum Judgement {
    /// Refused (or answered) without recording.
    Answer(IntakeResult),
    /// To record, if what it was judged against still holds.
    Record(NewRevision),
}

/// The answer to one submitted contract, mapped to HTTP by the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IntakeResult {
    /// 202: recorded and queued.
    Accepted {
        job_id: String,
        contract_id: String,
        revision: u32,
    },
    /// 200: this revision was already recorded; its job.
    Existing {
        job_id: String,
        contract_id: String,
        revision: u32,
    },
    /// 409: older than (or conflicting with) the latest recorded revision.
    Stale {
        contract_id: String,
        revision: u32,
        latest: u32,
        message: String,
    },
    /// 422: the terms forbid it; every finding.
    Rejected {
        contract_id: String,
        revision: u32,
        /// Each finding names its rule and the terms' article.
        #[schema(value_type = Vec<Object>)]
        findings: Vec<Finding>,
    },
    /// 401: signature, key or envelope refused.
    Unauthorized { error: String },
    /// 400: the envelope verified but its payload is not a valid contract.
    Malformed { error: String },
    /// 413: larger than the limit.
    TooLarge { limit: usize },
    /// 503: concurrent revisions of the same contract or customer kept
    /// changing what this one was judged against; nothing was recorded.
    Busy { message: String },
    /// 429: this address was refused too often; nothing was read or recorded.
    RateLimited {
        retry_after_seconds: u64,
        error: String,
    },
}

impl IntakeResult {
    /// The answer's `outcome` member (its kind), for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            IntakeResult::Accepted { .. } => "accepted",
            IntakeResult::Existing { .. } => "existing",
            IntakeResult::Stale { .. } => "stale",
            IntakeResult::Rejected { .. } => "rejected",
            IntakeResult::Unauthorized { .. } => "unauthorized",
            IntakeResult::Malformed { .. } => "malformed",
            IntakeResult::TooLarge { .. } => "too_large",
            IntakeResult::Busy { .. } => "busy",
            IntakeResult::RateLimited { .. } => "rate_limited",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] super::JobPlanError),
}

/// What `plan` answers for a signed contract: intake's refusal, or the
/// steps its job would run now.
#[derive(Debug)]
pub enum DryRun {
    Refused(IntakeResult),
    Planned {
        contract: Box<Contract>,
        steps: Vec<super::store::PlannedStep>,
    },
}

impl Engine {
    /// Takes one signed contract envelope as received.
    pub async fn intake(
        &self,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IntakeResult, IntakeError> {
        if body.len() > MAX_ENVELOPE_BYTES {
            // The webhook reads one byte past the limit, no more: the size
            // is a lower bound.
            self.reject(
                None,
                None,
                "too_large",
                serde_json::json!({"limit": MAX_ENVELOPE_BYTES, "size_at_least": body.len()}),
                body,
                now,
            )
            .await?;
            return Ok(IntakeResult::TooLarge {
                limit: MAX_ENVELOPE_BYTES,
            });
        }
        let verified = match signing::verify(body, &self.trusted_keys, now) {
            Ok(v) => v,
            Err(e) if e.is_payload_error() => {
                let error = e.to_string();
                self.reject(
                    None,
                    None,
                    "malformed",
                    serde_json::json!({"error": error}),
                    body,
                    now,
                )
                .await?;
                return Ok(IntakeResult::Malformed { error });
            }
            Err(e) => {
                let error = e.to_string();
                warn!(error = %error, "contract refused at signature check");
                self.reject(
                    None,
                    None,
                    "signature",
                    serde_json::json!({"error": error}),
                    body,
                    now,
                )
                .await?;
                return Ok(IntakeResult::Unauthorized { error });
            }
        };
        let contract = verified.contract;
        let payload = verified.payload;
        // Judge against what is recorded, then record only onto that same
        // state: if another intake changed it meanwhile, judge again.
        for _ in 0..MAX_JUDGEMENTS {
            let revision = match self.verdict(&contract, &payload, body, now).await? {
                Judgement::Answer(result) => return self.answer(result, body, now).await,
                Judgement::Record(rev) => rev,
            };
            match self.store.record_revision(revision).await? {
                IntakeOutcome::Changed => {
                    self.metrics.intake_rejudged.inc();
                    continue;
                }
                outcome => return self.answered_outcome(&contract, outcome, body, now).await,
            }
        }
        let message = format!(
            "revision {} of {} could not be recorded: what it is judged against kept changing \
             under concurrent revisions ({MAX_JUDGEMENTS} tries); send it again",
            contract.revision, contract.contract_id
        );
        warn!(contract_id = %contract.contract_id, revision = contract.revision, "intake gave up re-judging");
        self.reject(
            Some(contract.contract_id.as_str()),
            Some(contract.revision),
            "busy",
            serde_json::json!({"error": message}),
            body,
            now,
        )
        .await?;
        Ok(IntakeResult::Busy { message })
    }

    /// `plan`: the signed envelope judged exactly as intake would judge it
    /// (signature, size, the rules, the planner, ownership), recording
    /// nothing; if intake would accept it, the plan its job would run now.
    pub async fn dry_run(&self, body: &[u8], now: DateTime<Utc>) -> Result<DryRun, IntakeError> {
        if body.len() > MAX_ENVELOPE_BYTES {
            return Ok(DryRun::Refused(IntakeResult::TooLarge {
                limit: MAX_ENVELOPE_BYTES,
            }));
        }
        let verified = match signing::verify(body, &self.trusted_keys, now) {
            Ok(v) => v,
            Err(e) if e.is_payload_error() => {
                return Ok(DryRun::Refused(IntakeResult::Malformed {
                    error: e.to_string(),
                }));
            }
            Err(e) => {
                return Ok(DryRun::Refused(IntakeResult::Unauthorized {
                    error: e.to_string(),
                }));
            }
        };
        match self
            .verdict(&verified.contract, &verified.payload, body, now)
            .await?
        {
            Judgement::Answer(refused) => Ok(DryRun::Refused(refused)),
            Judgement::Record(_) => {
                let steps = self.plan_contract(&verified.contract).await?;
                Ok(DryRun::Planned {
                    contract: Box::new(verified.contract),
                    steps,
                })
            }
        }
    }

    /// Intake's judgement of a verified revision against what is recorded
    /// now, without recording anything: what `plan` shows is exactly what
    /// intake would do. `Answer`: refused (or already recorded); `Record`:
    /// what to record if that state still holds.
    pub async fn verdict(
        &self,
        contract: &Contract,
        payload: &[u8],
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Judgement, IntakeError> {
        // What the steps would need: every derived name must pass its
        // backend's allow-list, every domain must be one a customer can
        // hold; refused now rather than failing at a step.
        let derived = self
            .derive(contract)
            .map(|desired| claims::of_revision(contract, &desired));
        let claims = derived.as_ref().cloned().unwrap_or_default();
        let view = self
            .store
            .intake_view(
                contract.contract_id.as_str(),
                &contract.customer.id,
                &claims,
            )
            .await?;
        self.judge(contract, payload, &derived, &view, body, now)
    }

    /// The rules and the planner on one revision against what intake read.
    fn judge(
        &self,
        contract: &Contract,
        payload: &[u8],
        derived: &Result<Claims, plan::PlanError>,
        view: &IntakeView,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Judgement, IntakeError> {
        let cid = contract.contract_id.as_str().to_string();
        let rev = contract.revision;
        let previous: Option<Contract> = match &view.latest {
            Some(l) if l.revision == rev => {
                if l.payload != payload {
                    let message = format!(
                        "revision {rev} of {cid} was already recorded with different content; revisions are immutable"
                    );
                    return Ok(Judgement::Answer(IntakeResult::Stale {
                        contract_id: cid,
                        revision: rev,
                        latest: l.revision,
                        message,
                    }));
                }
                // Same bytes again: recording answers with the existing job.
                None
            }
            Some(l) if l.revision > rev => {
                let message = format!(
                    "revision {rev} is older than the latest recorded revision {} (revisions strictly increase)",
                    l.revision
                );
                return Ok(Judgement::Answer(IntakeResult::Stale {
                    contract_id: cid,
                    revision: rev,
                    latest: l.revision,
                    message,
                }));
            }
            Some(l) => Some(Contract::from_json(&l.payload).map_err(|e| {
                StoreError::Corrupt(format!("recorded revision {} of {cid}: {e}", l.revision))
            })?),
            None => None,
        };
        let same_again = view.latest.as_ref().is_some_and(|l| l.revision == rev);
        let mut findings = Vec::new();
        if !same_again {
            let others: Vec<rules::OtherContract> = view
                .others
                .iter()
                .map(|o| rules::OtherContract {
                    contract_id: o.contract_id.clone(),
                    service: o.service.clone(),
                    active: o.active,
                })
                .collect();
            findings = rules::check(&rules::CheckInput {
                contract,
                previous: previous.as_ref(),
                others: &others,
                catalog: &self.catalog,
            });
        }
        let claims = match derived {
            Ok(claims) => claims.clone(),
            Err(e) => {
                findings.push(plan_finding(e));
                Claims::default()
            }
        };
        findings.extend(taken_findings(&view.taken_names, &view.taken_domains));
        for d in &claims.domains {
            if claims::registrable(d).is_none() {
                findings.push(Finding {
                    rule: "domain-registrable",
                    article: "第8条".into(),
                    path: "/domains".into(),
                    message: format!(
                        "{d} is a public suffix (Public Suffix List): no customer can hold it"
                    ),
                });
            }
        }
        if !findings.is_empty() {
            info!(contract_id = %cid, revision = rev, findings = findings.len(), "contract rejected by the rules");
            return Ok(Judgement::Answer(IntakeResult::Rejected {
                contract_id: cid,
                revision: rev,
                findings,
            }));
        }
        Ok(Judgement::Record(NewRevision {
            contract_id: cid,
            revision: rev,
            customer_id: contract.customer.id.clone(),
            service: contract.service.code().to_string(),
            active: !matches!(contract.status, crate::contract::Status::Terminated { .. }),
            envelope: body.to_vec(),
            payload: payload.to_vec(),
            received_at: now,
            judged: Judged {
                latest: view.latest.as_ref().map(|l| l.revision),
                customer_version: view.customer_version,
            },
            claims,
        }))
    }

    /// The resources a revision needs (the planner's pure part, no I/O), as
    /// intake judges them: before anything is recorded for the revision.
    pub fn derive(&self, contract: &Contract) -> Result<Vec<plan::Desired>, plan::PlanError> {
        self.derive_with(contract, &[])
    }

    /// As [`Engine::derive`], keeping the names `recorded` resources hold.
    pub fn derive_with(
        &self,
        contract: &Contract,
        recorded: &[RecordedResource],
    ) -> Result<Vec<plan::Desired>, plan::PlanError> {
        plan::desired(
            contract,
            &self.catalog,
            self.playbook_of(contract)?,
            &self.provisioning,
            &self.judging_target(),
            recorded,
        )
    }

    /// Records a refusal decided before the store was asked, and answers it.
    async fn answer(
        &self,
        result: IntakeResult,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IntakeResult, IntakeError> {
        match &result {
            IntakeResult::Stale {
                contract_id,
                revision,
                message,
                latest,
            } => {
                let kind = if revision == latest {
                    "conflict"
                } else {
                    "stale"
                };
                self.reject(
                    Some(contract_id),
                    Some(*revision),
                    kind,
                    serde_json::json!({"error": message}),
                    body,
                    now,
                )
                .await?;
            }
            IntakeResult::Rejected {
                contract_id,
                revision,
                findings,
            } => {
                let findings = serde_json::to_value(findings).expect("findings serialize");
                self.reject(
                    Some(contract_id),
                    Some(*revision),
                    "rules",
                    findings.clone(),
                    body,
                    now,
                )
                .await?;
                // The same body refused again is the same refusal: one key.
                let digest = {
                    use sha2::Digest;
                    hex::encode(sha2::Sha256::digest(body))
                };
                self.notify(self.notifier.event(
                    super::notify::Event::ContractRefused,
                    &format!("{contract_id}:{revision}:{}", &digest[..16]),
                    serde_json::json!({
                        "contract_id": contract_id,
                        "revision": revision,
                        "findings": findings,
                        "received_sha256": digest,
                    }),
                ))
                .await;
            }
            _ => {}
        }
        Ok(result)
    }

    /// Answers what recording did; a refusal the store decided (stale,
    /// names taken) is recorded like any other.
    async fn answered_outcome(
        &self,
        contract: &Contract,
        outcome: IntakeOutcome,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IntakeResult, IntakeError> {
        let cid = contract.contract_id.as_str().to_string();
        let rev = contract.revision;
        Ok(match outcome {
            IntakeOutcome::Created { job_id } => {
                info!(contract_id = %cid, revision = rev, job_id = %job_id, "contract accepted; job queued");
                self.wake_workers();
                IntakeResult::Accepted {
                    job_id,
                    contract_id: cid,
                    revision: rev,
                }
            }
            IntakeOutcome::Existing { job_id } => IntakeResult::Existing {
                job_id,
                contract_id: cid,
                revision: rev,
            },
            IntakeOutcome::Stale { latest } => {
                let message = format!(
                    "revision {rev} is not newer than the latest recorded revision {latest}"
                );
                return self
                    .answer(
                        IntakeResult::Stale {
                            contract_id: cid,
                            revision: rev,
                            latest,
                            message,
                        },
                        body,
                        now,
                    )
                    .await;
            }
            IntakeOutcome::Taken { names, domains } => {
                let findings = taken_findings(&names, &domains);
                info!(contract_id = %cid, revision = rev, taken = findings.len(), "contract refused: resources taken");
                return self
                    .answer(
                        IntakeResult::Rejected {
                            contract_id: cid,
                            revision: rev,
                            findings,
                        },
                        body,
                        now,
                    )
                    .await;
            }
            IntakeOutcome::Changed => unreachable!("intake judges a changed state again"),
        })
    }

    async fn reject(
        &self,
        contract_id: Option<&str>,
        revision: Option<u32>,
        kind: &str,
        reasons: serde_json::Value,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.store
            .record_rejection(Rejection::of_body(
                contract_id.map(str::to_string),
                revision,
                kind,
                reasons,
                body,
                now,
            ))
            .await
    }
}

/// A planner refusal as a finding: the derived name and the limit it breaks.
fn plan_finding(e: &plan::PlanError) -> Finding {
    let (path, message) = match e {
        plan::PlanError::Invalid { path, message } => (path.clone(), message.clone()),
        other => ("/service".to_string(), other.to_string()),
    };
    Finding {
        rule: "derived-name",
        article: "—".into(),
        path,
        message,
    }
}

/// Names and domains another contract holds, as findings. They say what is
/// taken, never by whom: that is another customer's business.
fn taken_findings(names: &[Claim], domains: &[String]) -> Vec<Finding> {
    let domain_findings = domains.iter().map(|d| Finding {
        rule: "domain-taken",
        article: "第8条".into(),
        path: "/domains".into(),
        message: format!(
            "the domain {d} (or a domain above or below it) is held by another customer"
        ),
    });
    let name_findings = names.iter().map(|c| Finding {
        rule: "resource-taken",
        article: "—".into(),
        path: "/contract_id".into(),
        message: format!("the {c} belongs to another contract"),
    });
    domain_findings.chain(name_findings).collect()
}
