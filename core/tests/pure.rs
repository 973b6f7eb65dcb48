//! The core is pure (ARCHITECTURE.md): it cannot reach the network, run an
//! async runtime or call an adapter, because nothing of the kind is in its
//! dependency closure. This test reads that closure from cargo itself, so a
//! dependency added to the core that would break the invariant fails here.

use std::process::Command;

/// Crates whose presence in the core's normal dependencies would mean I/O
/// beyond reading the files it is handed.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "mio",
    "reqwest",
    "hyper",
    "sqlx",
    "rusqlite",
    "ssh2",
    "hickory-proto",
    "hostwright-adapter",
    "hostwright-ssh",
];

#[test]
fn the_core_depends_on_no_runtime_network_store_or_adapter() {
    let out = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args([
            "tree",
            "--locked",
            "-p",
            "hostwright-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"hostwright-core"), "{tree}");
    assert!(crates.contains(&"hostwright-validate"), "{tree}");
    for bad in FORBIDDEN {
        assert!(
            !crates.contains(bad),
            "the core depends on {bad}, which breaks its purity:\n{tree}"
        );
    }
}
