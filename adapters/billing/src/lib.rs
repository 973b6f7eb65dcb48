//! Placeholder: implemented under issue #4.
