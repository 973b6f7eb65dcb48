//! Placeholder: serve, submit, plan, jobs commands (issue #3).
