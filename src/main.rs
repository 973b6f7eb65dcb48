//! The `hostwright` binary: a thin layer that parses the command line and maps
//! outcomes to exit codes.

mod cli;

fn main() -> anyhow::Result<()> {
    Ok(())
}
