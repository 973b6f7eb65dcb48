//! `hostwright completions SHELL` and `hostwright man`: generated from the
//! command definitions, so they list every command there is.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_and_man_page_name_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for cmd in ["serve", "jobs", "tokens", "audit", "bill", "completions"] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") || man.contains(".TH hostwright"),
        "{}",
        &man[..200]
    );
    for cmd in ["tokens", "audit", "jobs"] {
        assert!(man.contains(cmd), "man page lacks {cmd}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["completions", "cmd.exe"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

/// One message per cause: a missing config file is named once, with the
/// operating system's reason once.
#[test]
fn an_error_names_each_cause_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_hostwright"))
        .args(["serve", "--config", "/nonexistent/hostwright.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/hostwright.toml"), "{err}");
}
