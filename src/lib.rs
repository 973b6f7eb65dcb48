//! hostwright: a hosting provisioning orchestrator.
//!
//! See `ARCHITECTURE.md` for the map. The core modules (catalog, contract,
//! rules, billing) are pure: they do no I/O and never touch the network.
