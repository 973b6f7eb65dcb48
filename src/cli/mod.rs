//! The command line: parsing into typed arguments and mapping outcomes to exit
//! codes. `anyhow` lives here and in `main.rs` only.

pub mod billing;
pub mod contracts;
pub mod drift;
pub mod engine;
pub mod hosts;
pub mod ops;
pub mod out;
pub mod store;
pub mod terms;
