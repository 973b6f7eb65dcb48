//! Intake of signed contracts (the approval webhook): verify the signature,
//! check the terms, record, queue. Nothing is silently dropped: every refusal
//! is recorded with its reasons before it is answered.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{info, warn};

use super::Engine;
use super::store::{IntakeOutcome, NewRevision, Rejection, StoreError};
use crate::contract::Contract;
use crate::rules::{self, Finding};
use crate::signing::{self, MAX_ENVELOPE_BYTES};

/// The answer to one submitted contract, mapped to HTTP by the API.
#[derive(Debug, Serialize)]
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
        findings: Vec<Finding>,
    },
    /// 401: signature, key or envelope refused.
    Unauthorized { error: String },
    /// 400: the envelope verified but its payload is not a valid contract.
    Malformed { error: String },
    /// 413: larger than the limit.
    TooLarge { limit: usize },
    /// 429: this address was refused too often; nothing was read or recorded.
    RateLimited {
        retry_after_seconds: u64,
        error: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
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
        let cid = contract.contract_id.as_str().to_string();
        let rev = contract.revision;

        let latest = self.store.latest_revision(&cid).await?;
        let previous: Option<Contract> = match &latest {
            Some(l) if l.revision == rev => {
                if l.payload != verified.payload {
                    let message = format!(
                        "revision {rev} of {cid} was already recorded with different content; revisions are immutable"
                    );
                    return self
                        .refuse_stale("conflict", cid, rev, l.revision, message, body, now)
                        .await
                        .map_err(Into::into);
                }
                // Same bytes again: answer with the existing job.
                return self.record(&contract, verified.payload, body, now).await;
            }
            Some(l) if l.revision > rev => {
                let message = format!(
                    "revision {rev} is older than the latest recorded revision {} (revisions strictly increase)",
                    l.revision
                );
                return self
                    .refuse_stale("stale", cid, rev, l.revision, message, body, now)
                    .await
                    .map_err(Into::into);
            }
            Some(l) => Some(Contract::from_json(&l.payload).map_err(|e| {
                StoreError::Corrupt(format!("recorded revision {} of {cid}: {e}", l.revision))
            })?),
            None => None,
        };
        let others = self.store.customer_contracts(&contract.customer.id).await?;
        let others: Vec<rules::OtherContract> = others
            .into_iter()
            .map(|o| rules::OtherContract {
                contract_id: o.contract_id,
                service: o.service,
                active: o.active,
            })
            .collect();
        let findings = rules::check(&rules::CheckInput {
            contract: &contract,
            previous: previous.as_ref(),
            others: &others,
            catalog: &self.catalog,
        });
        if !findings.is_empty() {
            info!(contract_id = %cid, revision = rev, findings = findings.len(), "contract rejected by the rules");
            self.reject(
                Some(&cid),
                Some(rev),
                "rules",
                serde_json::to_value(&findings).expect("findings serialize"),
                body,
                now,
            )
            .await?;
            return Ok(IntakeResult::Rejected {
                contract_id: cid,
                revision: rev,
                findings,
            });
        }
        self.record(&contract, verified.payload, body, now).await
    }

    async fn record(
        &self,
        contract: &Contract,
        payload: Vec<u8>,
        envelope: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IntakeResult, IntakeError> {
        let cid = contract.contract_id.as_str().to_string();
        let rev = contract.revision;
        let outcome = self
            .store
            .record_revision(NewRevision {
                contract_id: cid.clone(),
                revision: rev,
                customer_id: contract.customer.id.clone(),
                service: contract.service.code().to_string(),
                active: !matches!(contract.status, crate::contract::Status::Terminated { .. }),
                envelope: envelope.to_vec(),
                payload,
                received_at: now,
            })
            .await?;
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
                IntakeResult::Stale {
                    contract_id: cid,
                    revision: rev,
                    latest,
                    message,
                }
            }
        })
    }

    /// Records and answers a revision that cannot be applied over the
    /// recorded ones (older, or the same number with other content).
    #[allow(clippy::too_many_arguments)]
    async fn refuse_stale(
        &self,
        kind: &str,
        contract_id: String,
        revision: u32,
        latest: u32,
        message: String,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<IntakeResult, StoreError> {
        self.reject(
            Some(&contract_id),
            Some(revision),
            kind,
            serde_json::json!({"error": message}),
            body,
            now,
        )
        .await?;
        Ok(IntakeResult::Stale {
            contract_id,
            revision,
            latest,
            message,
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
