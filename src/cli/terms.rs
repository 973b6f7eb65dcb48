//! `hostwright keys | contract | bill`: the terms as code, from the shell.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use hostwright::billing;
use hostwright::calendar::YearMonth;
use hostwright::catalog::Catalog;
use hostwright::contract::Contract;
use hostwright::contract::MAX_CONTRACT_BYTES;
use hostwright::input::read_file;
use hostwright::money::format_yen;
use hostwright::rules::{self, CheckInput, Finding};
use hostwright::signing::{self, MAX_ENVELOPE_BYTES, TrustedKeys};

use super::out::{self, note, say};

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Make a signing key pair: KEY_ID.key (secret seed, mode 0600) and a
    /// trusted-keys entry printed (or appended to --trusted-keys).
    Generate {
        /// Key id, e.g. contracts-2026.
        #[arg(long)]
        id: String,
        /// Folder for the secret key file.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// Append the public key to this trusted-keys file.
        #[arg(long)]
        trusted_keys: Option<PathBuf>,
        /// Print `{key_id, secret_key_file, public_key, trusted_keys_entry,
        /// appended_to}` instead of the entry.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContractCmd {
    /// Wrap a contract JSON file in a signed envelope.
    Sign {
        file: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        key_id: String,
        /// Output file (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Verify a signed envelope against the trusted keys.
    Verify {
        file: PathBuf,
        #[arg(long)]
        trusted_keys: PathBuf,
        /// Print `{file, valid, key_id, contract_id, revision, error}`.
        #[arg(long)]
        json: bool,
    },
    /// Verify and check against the terms: every finding at once; exit 1 if any.
    Check {
        file: PathBuf,
        #[arg(long)]
        trusted_keys: PathBuf,
        /// The latest recorded revision of the same contract (signed or plain JSON).
        #[arg(long)]
        previous: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BillArgs {
    /// The contract's revisions (signed envelopes or plain JSON), any order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: String,
    #[arg(long)]
    pub json: bool,
}

/// Reads a contract from a signed envelope (not verified here) or plain JSON.
fn read_contract(path: &Path) -> anyhow::Result<Contract> {
    let bytes = read_file(
        path,
        MAX_ENVELOPE_BYTES,
        "a contract (signed envelope or JSON)",
    )?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let payload = match v.get("payload").and_then(|p| p.as_str()) {
        Some(b64) if v.get("signature").is_some() => {
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                .with_context(|| format!("{}: payload is not base64", path.display()))?
        }
        _ => bytes,
    };
    Contract::from_json(&payload).with_context(|| path.display().to_string())
}

pub fn keys(cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCmd::Generate {
            id,
            out_dir,
            trusted_keys,
            json,
        } => {
            check_key_id(&id)?;
            let key = signing::generate_key();
            std::fs::create_dir_all(&out_dir)?;
            let path = out_dir.join(format!("{id}.key"));
            write_private(&path, &signing::encode_signing_key(&key))?;
            let entry = TrustedKeys::entry(&id, &key.verifying_key(), chrono::Utc::now());
            let text = signing::render_trusted_keys(vec![entry]);
            if json {
                if let Some(tk) = &trusted_keys {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(tk)?;
                    writeln!(f, "\n{text}")?;
                    TrustedKeys::load(tk)?;
                }
                out::json(
                    &serde_json::json!({
                        "key_id": id,
                        "secret_key_file": path,
                        "public_key": base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            key.verifying_key().to_bytes()
                        ),
                        "trusted_keys_entry": text,
                        "appended_to": trusted_keys,
                    }),
                    true,
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            match trusted_keys {
                Some(tk) => {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&tk)?;
                    writeln!(f, "\n{text}")?;
                    // Refuse to leave a broken file behind.
                    TrustedKeys::load(&tk)?;
                    note!("secret key: {}", path.display());
                    note!("public key appended to {}", tk.display());
                }
                None => {
                    note!("secret key: {}", path.display());
                    out::block(&text);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Key ids travel in every envelope and in log lines: `[A-Za-z0-9_-]`, 1-64.
fn check_key_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("key id must match [A-Za-z0-9_-]{{1,64}}");
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}

fn print_findings(findings: &[Finding]) {
    for f in findings {
        say!("  [{}] {} at {}: {}", f.rule, f.article, f.path, f.message);
    }
}

pub fn contract(cmd: ContractCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ContractCmd::Sign {
            file,
            key,
            key_id,
            out,
        } => {
            check_key_id(&key_id)?;
            let bytes = read_file(&file, MAX_CONTRACT_BYTES, "a contract document")?;
            // Refuse to sign what would not parse.
            Contract::from_json(&bytes).with_context(|| file.display().to_string())?;
            let key = signing::read_signing_key(&key)?;
            let env = signing::sign(&bytes, &key_id, &key);
            match out {
                Some(o) => {
                    std::fs::write(&o, env).with_context(|| format!("writing {}", o.display()))?
                }
                None => std::io::Write::write_all(&mut std::io::stdout(), &env)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        ContractCmd::Verify {
            file,
            trusted_keys,
            json,
        } => {
            let keys = TrustedKeys::load(&trusted_keys)?;
            let bytes = read_file(&file, MAX_ENVELOPE_BYTES, "a signed contract envelope")?;
            let verified = signing::verify(&bytes, &keys, chrono::Utc::now());
            if json {
                let v = match &verified {
                    Ok(v) => serde_json::json!({
                        "file": file,
                        "valid": true,
                        "key_id": v.key_id,
                        "contract_id": v.contract.contract_id.as_str(),
                        "revision": v.contract.revision,
                        "error": null,
                    }),
                    Err(e) => serde_json::json!({
                        "file": file,
                        "valid": false,
                        "key_id": null,
                        "contract_id": null,
                        "revision": null,
                        "error": e.to_string(),
                    }),
                };
                out::json(&v, true)?;
                return Ok(if verified.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            match verified {
                Ok(v) => {
                    say!(
                        "{}: signed by `{}`: contract {} revision {}",
                        file.display(),
                        v.key_id,
                        v.contract.contract_id,
                        v.contract.revision
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    say!("{}: {e}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        ContractCmd::Check {
            file,
            trusted_keys,
            previous,
            json,
        } => {
            let keys = TrustedKeys::load(&trusted_keys)?;
            let bytes = read_file(&file, MAX_ENVELOPE_BYTES, "a signed contract envelope")?;
            let catalog = Catalog::builtin()?;
            let verified = match signing::verify(&bytes, &keys, chrono::Utc::now()) {
                Ok(v) => v,
                Err(e) => {
                    if json {
                        out::json(
                            &serde_json::json!({"file": file, "ok": false, "error": e.to_string()}),
                            false,
                        )?;
                    } else {
                        say!("{}: refused: {e}", file.display());
                    }
                    return Ok(ExitCode::from(1));
                }
            };
            let previous = previous.map(|p| read_contract(&p)).transpose()?;
            let findings = rules::check(&CheckInput {
                contract: &verified.contract,
                previous: previous.as_ref(),
                others: &[],
                catalog: &catalog,
            });
            let events = rules::events(&verified.contract, previous.as_ref());
            if json {
                out::json(
                    &serde_json::json!({
                        "file": file, "ok": findings.is_empty(), "contract_id": verified.contract.contract_id,
                        "revision": verified.contract.revision, "findings": findings, "events": events,
                    }),
                    true,
                )?;
            } else if findings.is_empty() {
                say!(
                    "{}: ok (contract {} revision {}, signed by `{}`)",
                    file.display(),
                    verified.contract.contract_id,
                    verified.contract.revision,
                    verified.key_id
                );
                for e in &events {
                    say!("  {e}");
                }
            } else {
                say!("{}: {} finding(s)", file.display(), findings.len());
                print_findings(&findings);
            }
            Ok(if findings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

pub fn bill(args: BillArgs) -> anyhow::Result<ExitCode> {
    let month = YearMonth::parse(&args.month)
        .with_context(|| format!("--month {:?} is not YYYY-MM", args.month))?;
    let mut history = args
        .files
        .iter()
        .map(|f| read_contract(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    history.sort_by_key(|c| c.revision);
    let catalog = Catalog::builtin()?;
    let st = billing::statement(&history, &catalog, month)?;
    if args.json {
        out::json(&st, true)?;
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "Statement {} for contract {} (revision {})",
        st.month,
        st.contract_id,
        st.revision
    );
    for l in &st.lines {
        say!(
            "  {} {:>4} × {:>10} = {:>12}   [{} / {}]",
            out::pad(&l.description, 46),
            l.quantity,
            format_yen(l.unit_price),
            format_yen(l.amount),
            l.row,
            l.article
        );
    }
    say!(
        "  {} {:>12}",
        out::pad("subtotal", 66),
        format_yen(st.subtotal)
    );
    say!(
        "  {} {:>12}",
        out::pad(
            &format!(
                "consumption tax {}% (第36条)",
                st.tax_rate * rust_decimal::Decimal::from(100)
            ),
            66
        ),
        format_yen(st.tax)
    );
    say!("  {} {:>12}", out::pad("total", 66), format_yen(st.total));
    for n in &st.notes {
        say!("  note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
