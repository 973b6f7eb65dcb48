//! Placeholder: keys, contract and bill commands (issue #2).
