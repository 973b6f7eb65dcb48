//! hostwright: a hosting provisioning orchestrator.
//!
//! See `ARCHITECTURE.md` for the map. The core (catalog, contract, rules,
//! billing, money, calendar, signing) lives in the crate `hostwright-core`,
//! which cannot reach the network or an adapter; it is re-exported here. The
//! engine is the only part that talks to adapters and stores.

pub mod engine;
pub mod escape;
pub mod logging;

/// The pure core (crate `hostwright-core`), under the paths the engine and
/// the CLI have always used.
pub use hostwright_core::{billing, calendar, catalog, contract, input, money, rules, signing};
