//! The terms of service as code: what hostwright sells (the catalog of
//! 別表①②③), what a contract says, the rules it must keep, what it bills,
//! and the signed envelope it arrives in.
//!
//! Architecture invariant: this crate is pure. It does no I/O beyond reading
//! the files it is handed (bounded, `input`), never touches the network, and
//! depends on no async runtime and no adapter; `tests/pure.rs` checks its
//! dependency closure, so the compiler and the test suite keep it that way.

pub mod billing;
pub mod calendar;
pub mod catalog;
pub mod contract;
pub mod input;
pub mod money;
pub mod rules;
pub mod signing;
