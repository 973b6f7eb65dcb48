//! Every adapter hostwright can drive, in one table: its config section's
//! name, the keys of that section that name files on hostwright's side, and
//! how to build it. This is the only place that knows every adapter crate
//! (the planner knows their spec types, which the compiler checks). It
//! depends on nothing of the engine's but the registry, so the config
//! loader and the server both use it without a circle.

use std::sync::Arc;

use hostwright_adapter::Adapter;

use super::fleet::{FleetConfig, host_adapter};
use super::registry::Registry;
use super::scripted::{Script, ScriptedAdapter, ScriptedConfig};

/// Why an `[adapters.NAME]` section could not become an adapter.
#[derive(Debug, thiserror::Error)]
#[error("adapter `{name}`: {message}")]
pub struct AdapterConfigError {
    pub name: String,
    pub message: String,
}

fn failed(name: &str, e: impl std::fmt::Display) -> AdapterConfigError {
    AdapterConfigError {
        name: name.to_string(),
        message: e.to_string(),
    }
}

/// Parses an adapter's own config type out of its TOML section.
pub fn config<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &toml::Value,
) -> Result<T, AdapterConfigError> {
    value
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| failed(name, e))
}

/// Reads every known `[adapters.*]` section of a config file's text with
/// its adapter's own config type, so a wrong key or value there is named
/// with the file's line like any other config error (building the adapter
/// later reads the already-parsed value, which has no lines any more).
/// Sections of other names are left to [`registry`].
pub fn check_sections(text: &str) -> Result<(), toml::de::Error> {
    #[derive(serde::Deserialize)]
    struct Sections {
        #[serde(default)]
        #[allow(dead_code)]
        webhost: Option<hostwright_webhost::WebhostConfig>,
        #[serde(default)]
        #[allow(dead_code)]
        ftp: Option<hostwright_ftp::FtpConfig>,
        #[serde(default)]
        #[allow(dead_code)]
        dns: Option<hostwright_dns::DnsConfig>,
        #[serde(default)]
        #[allow(dead_code)]
        securemx: Option<hostwright_securemx::SecureMxConfig>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        #[allow(dead_code)]
        adapters: Option<Sections>,
    }
    toml::from_str::<File>(text).map(drop)
}

/// One kind of adapter a config can name.
pub struct AdapterKind {
    /// The `[adapters.NAME]` section (and the name playbooks use).
    pub name: &'static str,
    /// Keys of the section that name files on hostwright's side; the config
    /// loader resolves them against the config file's folder like every
    /// other path in it (paths on a backend host, such as BIND's zone
    /// directory, are not listed: they mean nothing here). A dotted key
    /// names a key of a sub-table (`ssh.private_key_file`).
    pub local_paths: &'static [&'static str],
    build: fn(&toml::Value) -> Result<Arc<dyn Adapter>, AdapterConfigError>,
}

fn build<T, A>(
    name: &'static str,
    value: &toml::Value,
    new: impl FnOnce(T) -> Result<A, String>,
) -> Result<Arc<dyn Adapter>, AdapterConfigError>
where
    T: serde::de::DeserializeOwned,
    A: Adapter,
{
    let cfg = config::<T>(name, value)?;
    Ok(Arc::new(new(cfg).map_err(|e| failed(name, e))?))
}

/// Every adapter hostwright can drive.
pub const ADAPTERS: &[AdapterKind] = &[
    AdapterKind {
        name: "webhost",
        local_paths: &[
            "ssh.private_key_file",
            "ssh.known_hosts_file",
            "tls_ca_cert",
            "tls_ca_key",
            "acme.account_file",
            "acme.ca_file",
        ],
        build: |v| {
            build("webhost", v, |c: hostwright_webhost::WebhostConfig| {
                hostwright_webhost::WebhostAdapter::new(c).map_err(|e| e.to_string())
            })
        },
    },
    AdapterKind {
        name: "ftp",
        local_paths: &["ssh.private_key_file", "ssh.known_hosts_file"],
        build: |v| {
            build("ftp", v, |c: hostwright_ftp::FtpConfig| {
                hostwright_ftp::FtpAdapter::new(c).map_err(|e| e.to_string())
            })
        },
    },
    AdapterKind {
        name: "dns",
        local_paths: &["rndc_key_file", "tsig_secret_file"],
        build: |v| {
            build("dns", v, |c: hostwright_dns::DnsConfig| {
                hostwright_dns::DnsAdapter::new(c).map_err(|e| e.to_string())
            })
        },
    },
    AdapterKind {
        name: "securemx",
        local_paths: &["api_key_file", "ca_file"],
        build: |v| {
            build("securemx", v, |c: hostwright_securemx::SecureMxConfig| {
                hostwright_securemx::SecureMxAdapter::new(c).map_err(|e| e.to_string())
            })
        },
    },
];

/// `[adapters.scripted]`: the stand-in that replaces every real adapter
/// (tests, the no-op benchmark).
pub const SCRIPTED: AdapterKind = AdapterKind {
    name: "scripted",
    local_paths: &["log", "control_file"],
    build: |_| Err(failed("scripted", "built by `registry`, not alone")),
};

/// The local-path keys of the section `name`.
pub fn local_paths(name: &str) -> &'static [&'static str] {
    ADAPTERS
        .iter()
        .chain(std::iter::once(&SCRIPTED))
        .find(|k| k.name == name)
        .map(|k| k.local_paths)
        .unwrap_or(&[])
}

/// The registry the `[adapters.*]` sections and the fleet's hosts
/// describe. `[adapters.scripted]` replaces every real adapter, the hosts'
/// too, with the scripted stand-ins and answers their script.
///
/// Each fleet host's adapters are registered as `webhost@HOST` and
/// `ftp@HOST`; the first host's also under the plain names, which
/// resources recorded before the fleet carry (`engine::fleet`).
pub fn registry(
    sections: &std::collections::BTreeMap<String, toml::Value>,
    fleet: Option<&FleetConfig>,
) -> Result<(Registry, Option<Script>), AdapterConfigError> {
    let mut reg = Registry::new();
    if let Some(v) = sections.get(SCRIPTED.name) {
        let sc: ScriptedConfig = config(SCRIPTED.name, v)?;
        let script = Script::with_files(sc.log, sc.control_file)
            .map_err(|e| failed(SCRIPTED.name, format!("call log: {e}")))?;
        for a in ScriptedAdapter::all(&script) {
            reg.register(a);
        }
        for host in fleet.map(|f| f.hosts.as_slice()).unwrap_or_default() {
            for (name, a) in ScriptedAdapter::on_host(&script, &host.name) {
                reg.register_as(name, a);
            }
        }
        return Ok((reg, Some(script)));
    }
    if let Some(fleet) = fleet {
        for (i, host) in fleet.hosts.iter().enumerate() {
            for (base, section) in [("webhost", &host.webhost), ("ftp", &host.ftp)] {
                let kind = ADAPTERS
                    .iter()
                    .find(|k| k.name == base)
                    .expect("placed adapters are in the table");
                let label = host_adapter(base, &host.name);
                let adapter = (kind.build)(section).map_err(|e| AdapterConfigError {
                    name: format!("fleet host {}: {}", host.name, e.name),
                    message: e.message,
                })?;
                if i == 0 {
                    reg.register(adapter.clone());
                }
                reg.register_as(label, adapter);
            }
        }
    }
    for (name, value) in sections {
        let Some(kind) = ADAPTERS.iter().find(|k| k.name == name) else {
            let known: Vec<&str> = ADAPTERS.iter().map(|k| k.name).collect();
            return Err(failed(
                name,
                format!(
                    "unknown adapter `{name}` (known: {}, scripted)",
                    known.join(", ")
                ),
            ));
        };
        reg.register((kind.build)(value)?);
    }
    Ok((reg, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_adapter_is_named_with_the_known_ones() {
        let mut sections = std::collections::BTreeMap::new();
        sections.insert("mail".to_string(), toml::Value::Table(Default::default()));
        let Err(e) = registry(&sections, None) else {
            panic!("an unknown adapter was accepted")
        };
        assert_eq!(e.name, "mail");
        assert!(
            e.message.contains("webhost, ftp, dns, securemx, scripted"),
            "{e}"
        );
    }

    #[test]
    fn local_paths_come_from_the_one_table() {
        assert_eq!(local_paths("dns"), ["rndc_key_file", "tsig_secret_file"]);
        assert_eq!(local_paths("scripted"), ["log", "control_file"]);
        assert!(local_paths("nope").is_empty());
    }
}
