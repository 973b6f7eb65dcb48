//! Construction of the real adapters from their `[adapters.NAME]` sections.
//! Each adapter crate owns its config type; this is the only place that knows
//! every adapter crate.

use std::sync::Arc;

use super::registry::Registry;
use super::server::StartError;

/// Parses an adapter's own config type out of its TOML section.
pub fn config<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &toml::Value,
) -> Result<T, StartError> {
    value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| StartError::Adapter {
            name: name.to_string(),
            message: e.to_string(),
        })
}

fn failed(name: &str, e: impl std::fmt::Display) -> StartError {
    StartError::Adapter {
        name: name.to_string(),
        message: e.to_string(),
    }
}

/// Keys of `[adapters.NAME]` that name files on hostwright's side; the
/// config loader resolves them against the config file's directory like every
/// other path in it. (Paths on a backend host, such as BIND's zone directory,
/// are not listed: they mean nothing here.)
/// A dotted key names a key of a sub-table (`ssh.private_key_file`).
pub const LOCAL_PATH_KEYS: &[(&str, &[&str])] = &[
    ("scripted", &["log", "control_file"]),
    ("dns", &["rndc_key_file", "tsig_secret_file"]),
    ("securemx", &["api_key_file", "ca_file"]),
    (
        "webhost",
        &[
            "ssh.private_key_file",
            "ssh.known_hosts_file",
            "tls_ca_cert",
            "tls_ca_key",
        ],
    ),
    ("ftp", &["ssh.private_key_file", "ssh.known_hosts_file"]),
];

/// The adapter names a config may configure.
pub const KNOWN: &[&str] = &["webhost", "ftp", "dns", "securemx"];

/// Registers the adapter configured under `[adapters.<name>]`.
pub fn register(reg: &mut Registry, name: &str, value: &toml::Value) -> Result<(), StartError> {
    match name {
        "webhost" => {
            let cfg = config::<hostwright_webhost::WebhostConfig>(name, value)?;
            let adapter =
                hostwright_webhost::WebhostAdapter::new(cfg).map_err(|e| failed(name, e))?;
            reg.register(Arc::new(adapter));
        }
        "ftp" => {
            let cfg = config::<hostwright_ftp::FtpConfig>(name, value)?;
            let adapter = hostwright_ftp::FtpAdapter::new(cfg).map_err(|e| failed(name, e))?;
            reg.register(Arc::new(adapter));
        }
        "dns" => {
            let cfg = config::<hostwright_dns::DnsConfig>(name, value)?;
            let adapter = hostwright_dns::DnsAdapter::new(cfg).map_err(|e| failed(name, e))?;
            reg.register(Arc::new(adapter));
        }
        "securemx" => {
            let cfg = config::<hostwright_securemx::SecureMxConfig>(name, value)?;
            let adapter =
                hostwright_securemx::SecureMxAdapter::new(cfg).map_err(|e| failed(name, e))?;
            reg.register(Arc::new(adapter));
        }
        other => {
            return Err(failed(
                name,
                format!(
                    "unknown adapter `{other}` (known: {}, scripted)",
                    KNOWN.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
