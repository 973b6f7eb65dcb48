//! Test support: where the real backends started by `scripts/testenv/up.sh` are.
//!
//! `up.sh` writes `KEY=value` lines to `.hostwright/testenv/env` at the
//! workspace root. Integration tests call [`var`], which reads the process
//! environment first and that file second. A missing value panics with the
//! command to run: a test that needs a backend fails without it, never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace root, found by walking up from this crate to `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        if dir.join("Cargo.lock").exists() && dir.join("adapters").is_dir() {
            return dir;
        }
        if !dir.pop() {
            panic!("no workspace root above {}", env!("CARGO_MANIFEST_DIR"));
        }
    }
}

fn file_vars() -> &'static BTreeMap<String, String> {
    static VARS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    VARS.get_or_init(|| {
        let path = workspace_root().join(".hostwright/testenv/env");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let l = l.trim().trim_start_matches("export ");
                let (k, v) = l.split_once('=')?;
                Some((k.to_string(), v.trim_matches('"').to_string()))
            })
            .collect()
    })
}

/// The value of a test-environment variable, or a panic that says how to get it.
pub fn var(name: &str) -> String {
    if let Ok(v) = std::env::var(name) {
        return v;
    }
    if let Some(v) = file_vars().get(name) {
        return v.clone();
    }
    panic!(
        "test backend variable {name} is not set: run `scripts/testenv/up.sh` \
         (the README's test command does) so the real backends are started"
    )
}
