//! hostwright: a hosting provisioning orchestrator.
//!
//! See `ARCHITECTURE.md` for the map. The core modules (catalog, contract,
//! rules, billing, money, calendar, signing) are pure: they do no I/O beyond
//! reading the files they are handed and never touch the network. The engine
//! is the only part that talks to adapters and stores.

pub mod billing;
pub mod calendar;
pub mod catalog;
pub mod contract;
pub mod engine;
pub mod escape;
pub mod input;
pub mod logging;
pub mod money;
pub mod rules;
pub mod signing;
