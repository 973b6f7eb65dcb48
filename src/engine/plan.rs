//! The planner: from a contract revision to the ordered steps that make the
//! backends match it.
//!
//! Two pure functions. [`desired`] turns a contract into the resources it
//! needs (kind, key, spec) following its service type's playbook; [`diff`]
//! compares them with the resources recorded for the contract and emits
//! create / update / suspend / resume / delete steps: deletions first (reverse
//! dependency order), then the rest in dependency order. Each step also lists
//! the earlier steps it waits for ([`PlannedStep::after`]), so the worker can
//! run independent steps at the same time. A revision that changes nothing
//! plans nothing.

use std::collections::BTreeMap;

use hostwright_adapter::validate::{self, DomainName, MailLocalPart, UnixUser};
use hostwright_adapter::{Resource, Spec};
use hostwright_dns::spec::{RecordSpec, ZoneSpec};
use hostwright_ftp::FtpAccountSpec;
use hostwright_securemx::{Administrator, Mailbox, MailboxesSpec, TenantSpec};
use hostwright_webhost::{VhostSpec, WebspaceSpec};
use serde_json::Value;

use super::config::ProvisioningConfig;
use super::fleet::WebTarget;
use super::playbook::Playbook;
use super::store::{Action, PlannedStep, RecordedResource};
use crate::catalog::Catalog;
use crate::contract::{Contract, Status};

/// A resource the contract needs, before it becomes a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub kind: String,
    pub key: String,
    pub adapter: String,
    pub spec: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no playbook for service type `{0}`")]
    NoPlaybook(String),
    #[error("the playbook {playbook} lists `{kind}`, which the planner cannot derive")]
    UnknownKind { playbook: String, kind: String },
    #[error("contract {contract}: {message}")]
    Contract { contract: String, message: String },
    /// A name the planner derives from the contract would not pass its
    /// backend's allow-list: refused at intake, before anything is recorded.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The Unix user (and FTP owner) of a contract: its id in lower case, which
/// the contract id's own pattern keeps inside the user-name allow-list.
pub fn unix_user(contract: &Contract) -> String {
    contract.contract_id.as_str().to_ascii_lowercase()
}

/// The FTP login of a contract's `n`th account: the Unix user for the
/// first, `{user}_{n}` for the others. `_` cannot occur in a contract id, so
/// no contract's login can be another's (`C-COL`'s second login was once
/// `c-col-2`, the first login of contract `C-COL-2`). A login of that older
/// form already recorded for the contract keeps its name.
pub fn ftp_login(user: &str, n: u32, recorded: &[RecordedResource]) -> String {
    if n == 1 {
        return user.to_string();
    }
    let legacy = format!("{user}-{n}");
    if recorded
        .iter()
        .any(|r| r.kind == "ftp_account" && r.key == legacy)
    {
        return legacy;
    }
    format!("{user}_{n}")
}

/// The resources `contract` needs under `playbook`, in playbook order.
/// `recorded`: what the contract has now (names of an older form it holds
/// are kept); intake, which judges a revision before anything is recorded
/// for it, passes none. `web`: the host its web resources live on (their
/// steps' adapters and the zone's A/AAAA records).
///
/// Every spec is the typed spec its adapter exports, and every key and
/// value passes the adapter's allow-list here: a revision this accepts is
/// one every step can do (intake runs it before recording).
pub fn desired(
    contract: &Contract,
    catalog: &Catalog,
    playbook: &Playbook,
    prov: &ProvisioningConfig,
    web: &WebTarget,
    recorded: &[RecordedResource],
) -> Result<Vec<Desired>, PlanError> {
    if matches!(contract.status, Status::Terminated { .. }) {
        return Ok(Vec::new());
    }
    let suspended = matches!(contract.status, Status::Suspended { .. });
    let ent = contract.entitlements(catalog);
    let cid = contract.contract_id.as_str().to_string();
    let user = UnixUser::parse(&unix_user(contract)).map_err(|e| invalid("/contract_id", e))?;
    let domain = |d: &str, path: &str| DomainName::parse(d).map_err(|e| invalid(path, e));
    let web_domains: Vec<DomainName> = if contract.service.has_web() {
        contract
            .domains
            .iter()
            .enumerate()
            .map(|(i, d)| domain(&d.name, &format!("/domains/{i}/name")))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let mail_domains: Vec<String> = contract
        .secure_mx
        .as_ref()
        .map(|m| m.target_domains.clone())
        .unwrap_or_default();
    let secure_mx = || {
        contract
            .secure_mx
            .as_ref()
            .ok_or_else(|| PlanError::Contract {
                contract: cid.clone(),
                message: "the service needs a secure_mx section (第8条, 第9条)".into(),
            })
    };

    let mut out = Vec::new();
    for rule in &playbook.resources {
        // Whether this kind follows the contract's suspension.
        let suspend = rule.suspend && suspended;
        let mut push = |key: &str, spec: Value| {
            out.push(Desired {
                kind: rule.kind.clone(),
                key: key.to_string(),
                adapter: web.adapter(&rule.adapter),
                spec,
            });
        };
        match rule.kind.as_str() {
            "webspace" => push(
                &user,
                WebspaceSpec {
                    quota_mb: ent.web_disk_mb,
                    suspended: suspend,
                }
                .to_stored(),
            ),
            "vhost" => {
                for (i, d) in web_domains.iter().enumerate() {
                    let alias = domain(&format!("www.{d}"), &format!("/domains/{i}/name"))?;
                    push(
                        d,
                        VhostSpec {
                            user: user.clone(),
                            aliases: vec![alias],
                            tls: ent.tls,
                            suspended: suspend,
                        }
                        .to_stored(),
                    );
                }
            }
            "ftp_account" => {
                for n in 1..=ent.ftp_accounts {
                    let login = ftp_login(&user, n, recorded);
                    if let Err(e) = validate::user_name(&login) {
                        return Err(PlanError::Invalid {
                            path: "/contract_id".into(),
                            message: format!(
                                "FTP account {n} of {} would log in as `{login}` ({} characters): {} \
                                 (a contract id of {} characters leaves room for {} FTP accounts)",
                                ent.ftp_accounts,
                                login.len(),
                                e.rule,
                                cid.len(),
                                max_ftp_accounts(user.len()),
                            ),
                        });
                    }
                    push(
                        &login,
                        FtpAccountSpec {
                            user: user.clone(),
                            quota_mb: ent.web_disk_mb,
                            suspended: suspend,
                        }
                        .to_stored(),
                    );
                }
            }
            "dns_zone" => {
                for zone in &ent.dns_zones {
                    let mut records = Vec::new();
                    let record = |name: &str, rtype: &str, data: String| RecordSpec {
                        name: name.into(),
                        rtype: rtype.into(),
                        ttl: prov.ttl,
                        data,
                    };
                    if web_domains.iter().any(|d| d.as_str() == zone) {
                        for name in ["@", "www"] {
                            records.push(record(name, "A", web.ipv4.to_string()));
                            if let Some(v6) = web.ipv6 {
                                records.push(record(name, "AAAA", v6.to_string()));
                            }
                        }
                    }
                    if mail_domains.contains(zone) {
                        for mx in &prov.mx {
                            records.push(record("@", "MX", mx.clone()));
                        }
                        records.push(record("@", "TXT", prov.spf.clone()));
                    }
                    let spec = ZoneSpec {
                        records,
                        suspended: None,
                    };
                    // The adapter's own validation of a zone, run now.
                    hostwright_dns::spec::desired_zone(zone, &spec, &[])
                        .map_err(|e| invalid_text("/domains", e.to_string()))?;
                    push(zone, spec.to_stored());
                }
            }
            "mx_tenant" => {
                let mx = secure_mx()?;
                let domains = mx
                    .target_domains
                    .iter()
                    .enumerate()
                    .map(|(i, d)| domain(d, &format!("/secure_mx/target_domains/{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                push(
                    &cid,
                    TenantSpec {
                        domains,
                        ips: mx.target_ips.clone(),
                        administrator: Administrator {
                            name: mx.administrator.name.clone(),
                            email: mx.administrator.email.clone(),
                        },
                        accounts_limit: ent.mail_accounts_limit,
                        disk_units: ent.mx_disk_units,
                        options: ent.mx_options.clone(),
                        iij_id: contract.external.iij_id.clone(),
                        dox: contract.external.dox.clone(),
                        suspended: suspend,
                        // What the tenant keeps, so that a revision that lowers
                        // the account limit and drops mailboxes can retire them
                        // before the limit is lowered.
                        mailboxes: Some(mailboxes(mx)?),
                    }
                    .to_stored(),
                );
            }
            "mx_mailboxes" => {
                let mx = secure_mx()?;
                let Some(first) = mx.target_domains.first() else {
                    return Err(PlanError::Contract {
                        contract: cid,
                        message: "secure_mx.target_domains is empty (第8条)".into(),
                    });
                };
                let mut local_parts = local_parts(mx)?;
                local_parts.sort();
                push(
                    &cid,
                    MailboxesSpec {
                        domain: domain(first, "/secure_mx/target_domains/0")?,
                        local_parts,
                    }
                    .to_stored(),
                );
            }
            other => {
                return Err(PlanError::UnknownKind {
                    playbook: playbook.file.display().to_string(),
                    kind: other.to_string(),
                });
            }
        }
    }
    Ok(out)
}

fn invalid(path: &str, e: validate::Invalid) -> PlanError {
    invalid_text(path, e.to_string())
}

fn invalid_text(path: &str, message: String) -> PlanError {
    PlanError::Invalid {
        path: path.to_string(),
        message,
    }
}

/// How many FTP accounts a Unix user of `user_len` characters can have
/// whose logins (`{user}_{n}`) fit the 32-character allow-list.
fn max_ftp_accounts(user_len: usize) -> u32 {
    let room = 32usize.saturating_sub(user_len + 1);
    if room == 0 {
        1
    } else {
        10u32.saturating_pow(room.min(9) as u32) - 1
    }
}

/// The contract's mailbox local parts, each the provider's allow-list.
fn local_parts(mx: &crate::contract::SecureMx) -> Result<Vec<MailLocalPart>, PlanError> {
    mx.mailboxes
        .iter()
        .enumerate()
        .map(|(i, lp)| {
            MailLocalPart::parse(lp).map_err(|e| invalid(&format!("/secure_mx/mailboxes/{i}"), e))
        })
        .collect()
}

/// The contract's mailbox addresses, on the first target domain (第8条).
fn mailboxes(mx: &crate::contract::SecureMx) -> Result<Vec<Mailbox>, PlanError> {
    let Some(first) = mx.target_domains.first() else {
        return Ok(Vec::new());
    };
    let domain = DomainName::parse(first).map_err(|e| invalid("/secure_mx/target_domains/0", e))?;
    let mut out: Vec<Mailbox> = local_parts(mx)?
        .into_iter()
        .map(|lp| Mailbox::new(lp, domain.clone()))
        .collect();
    out.sort();
    Ok(out)
}

/// A recorded spec in the shape the planner writes today: specs of older
/// plans (which repeated their key) compare equal to the same spec now, so
/// an upgrade plans no spurious updates. Kinds the planner does not know
/// stay as they were.
pub fn normalized(kind: &str, spec: &Value) -> Value {
    fn again<T: Spec>(spec: &Value) -> Option<Value> {
        T::from_stored(spec).ok().map(|s| s.to_stored())
    }
    match kind {
        WebspaceSpec::KIND => again::<WebspaceSpec>(spec),
        VhostSpec::KIND => again::<VhostSpec>(spec),
        FtpAccountSpec::KIND => again::<FtpAccountSpec>(spec),
        ZoneSpec::KIND => again::<ZoneSpec>(spec),
        TenantSpec::KIND => again::<TenantSpec>(spec),
        MailboxesSpec::KIND => again::<MailboxesSpec>(spec),
        _ => None,
    }
    .unwrap_or_else(|| spec.clone())
}

/// The steps that take the recorded resources to the desired ones.
pub fn diff(
    contract_id: &str,
    playbook: &Playbook,
    desired: &[Desired],
    recorded: &[RecordedResource],
) -> Vec<PlannedStep> {
    let rec: BTreeMap<(&str, &str), &RecordedResource> = recorded
        .iter()
        .map(|r| ((r.kind.as_str(), r.key.as_str()), r))
        .collect();
    let want: BTreeMap<(&str, &str), &Desired> = desired
        .iter()
        .map(|d| ((d.kind.as_str(), d.key.as_str()), d))
        .collect();
    let resource = |kind: &str, key: &str, spec: &Value| Resource {
        kind: kind.to_string(),
        key: key.to_string(),
        contract_id: contract_id.to_string(),
        spec: spec.clone(),
    };
    let step = |action: Action, adapter: &str, res: Resource| PlannedStep {
        id: format!("{}:{}:{}", action.as_str(), res.kind, res.key),
        adapter: adapter.to_string(),
        action,
        resource: res,
        after: Some(Vec::new()),
        from: None,
    };

    // Deletions: resources recorded but no longer wanted, dependents first.
    let mut deletions: Vec<&RecordedResource> = recorded
        .iter()
        .filter(|r| !want.contains_key(&(r.kind.as_str(), r.key.as_str())))
        .collect();
    deletions.sort_by(|a, b| {
        playbook
            .order(&b.kind)
            .cmp(&playbook.order(&a.kind))
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut steps: Vec<PlannedStep> = deletions
        .into_iter()
        .map(|r| {
            step(
                Action::Delete,
                &r.adapter,
                resource(&r.kind, &r.key, &r.spec),
            )
        })
        .collect();

    // Relocations: resources recorded on another instance of their adapter
    // than the one the contract wants them on (its web space moves to
    // another host), taken over in playbook order, before any other change
    // (the zone's switch to the new host's addresses comes after the site
    // answers there), and retired from the old instance after everything
    // else, dependents first.
    let mut retirements: Vec<PlannedStep> = Vec::new();
    for d in desired {
        let Some(r) = rec.get(&(d.kind.as_str(), d.key.as_str())) else {
            continue;
        };
        if relocated(r, d) {
            let mut take = step(
                Action::Relocate,
                &d.adapter,
                resource(&d.kind, &d.key, &d.spec),
            );
            take.from = Some(r.adapter.clone());
            steps.push(take);
            retirements.push(step(
                Action::Retire,
                &r.adapter,
                resource(&r.kind, &r.key, &r.spec),
            ));
        }
    }
    retirements.reverse();

    // Creations and changes, in dependency order (desired is in playbook order).
    for d in desired {
        let action = match rec.get(&(d.kind.as_str(), d.key.as_str())) {
            None => Some(Action::Create),
            Some(r) if relocated(r, d) => None,
            Some(r) => {
                let was = normalized(&r.kind, &r.spec);
                (was != d.spec).then(|| change_action(&was, &d.spec))
            }
        };
        if let Some(action) = action {
            steps.push(step(action, &d.adapter, resource(&d.kind, &d.key, &d.spec)));
        }
    }
    steps.extend(retirements);
    link(playbook, &mut steps);
    steps
}

/// Whether `r` is recorded on another instance of the adapter `d` wants
/// it on (another host): a relocation, not a change.
fn relocated(r: &RecordedResource, d: &Desired) -> bool {
    r.adapter != d.adapter && adapter_base(&r.adapter) == adapter_base(&d.adapter)
}

/// An adapter's name without its instance (`webhost@web2` → `webhost`).
fn adapter_base(adapter: &str) -> &str {
    adapter.split_once('@').map_or(adapter, |(base, _)| base)
}

/// Fills in each step's `after`: the steps of this plan that must succeed
/// before it starts. The order [`diff`] emits stays a valid sequential order
/// (every dependency comes earlier in the plan); the dependencies only say
/// which steps may run at the same time.
///
/// - A deletion waits for the deletions of resources that depend on its
///   resource (dependents are removed first, the reverse of creation). A kind
///   the playbook does not list (the service type changed) has no known
///   dependencies, so its deletion keeps the plan's sequential order against
///   every deletion of another kind before it.
/// - Every other step waits for every deletion (deletions first, as the
///   plan's order has always said: a removed domain's vhost is gone before a
///   new one is made) and for the steps of the kinds its kind comes `after`,
///   transitively.
/// - Steps of one kind (several vhosts, FTP accounts, zones) are independent.
fn link(playbook: &Playbook, steps: &mut [PlannedStep]) {
    let listed = |kind: &str| playbook.rule(kind).is_some();
    let deps: Vec<Vec<String>> = (0..steps.len())
        .map(|j| {
            let sj = &steps[j];
            steps[..j]
                .iter()
                .filter(|si| {
                    let (ki, kj) = (si.resource.kind.as_str(), sj.resource.kind.as_str());
                    match (si.action, sj.action) {
                        (Action::Delete, Action::Delete) => {
                            ki != kj && (!listed(ki) || !listed(kj) || playbook.depends_on(ki, kj))
                        }
                        (Action::Delete, _) => true,
                        (_, Action::Delete) => false,
                        // Retirements: after everything else; among
                        // themselves dependents first, like deletions.
                        (Action::Retire, Action::Retire) => playbook.depends_on(ki, kj),
                        (_, Action::Retire) => true,
                        (Action::Retire, _) => false,
                        // Every other change waits for every relocation.
                        (Action::Relocate, Action::Relocate) => playbook.depends_on(kj, ki),
                        (Action::Relocate, _) => true,
                        _ => playbook.depends_on(kj, ki),
                    }
                })
                .map(|si| si.id.clone())
                .collect()
        })
        .collect();
    for (s, d) in steps.iter_mut().zip(deps) {
        s.after = Some(d);
    }
}

/// Suspend/resume when only the `suspended` flag differs, update otherwise.
fn change_action(old: &Value, new: &Value) -> Action {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("suspended");
        }
        v
    };
    if strip(old) == strip(new) {
        match new.get("suspended").and_then(Value::as_bool) {
            Some(true) => Action::Suspend,
            _ => Action::Resume,
        }
    } else {
        Action::Update
    }
}
