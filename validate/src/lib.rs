//! Allow-list validation for every value that can reach a backend command.
//!
//! Contract-supplied strings are hostile until proven otherwise. These checks
//! accept a narrow alphabet and reject everything else, so that quoting (see
//! [`crate::shell`]) is a second line of defence, never the only one.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A value that failed an allow-list check; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what} {value:?}: {rule}")]
pub struct Invalid {
    pub what: &'static str,
    pub value: String,
    pub rule: &'static str,
}

fn invalid(what: &'static str, value: &str, rule: &'static str) -> Invalid {
    // Keep error messages bounded even for absurd input.
    let value: String = value.chars().take(80).collect();
    Invalid { what, value, rule }
}

/// A Unix/FTP account name: `[a-z][a-z0-9_-]{0,31}`.
pub fn user_name(value: &str) -> Result<&str, Invalid> {
    const RULE: &str = "must match [a-z][a-z0-9_-]{0,31}";
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 32 || !bytes[0].is_ascii_lowercase() {
        return Err(invalid("user name", value, RULE));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
    {
        return Err(invalid("user name", value, RULE));
    }
    Ok(value)
}

/// A contract id: `[A-Z][A-Z0-9-]{2,31}`. Short, upper case, safe in file
/// names, GECOS fields and nginx comments, and, in lower case, a valid
/// Unix user name. The contract document, the planner and every adapter use
/// this one rule.
pub fn contract_id(value: &str) -> Result<&str, Invalid> {
    const RULE: &str = "must match [A-Z][A-Z0-9-]{2,31}";
    let b = value.as_bytes();
    let ok = (3..=32).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(value)
    } else {
        Err(invalid("contract id", value, RULE))
    }
}

/// A DNS name in its ASCII (IDNA A-label) form: lower-case LDH labels of 1..=63
/// octets, at least two labels, 253 octets at most, no trailing dot, and a
/// top-level label that is not all digits. Unicode is rejected here on
/// purpose: conversion to A-labels happens once, in the core, so look-alike
/// characters never reach a backend.
///
/// An all-numeric TLD is not a host name (RFC 3696 §2, RFC 1123 §2.1): such
/// a "domain" is an IPv4 address in dotted (`127.0.0.1`) or shortened
/// (`10.1`) form, which must never get a virtual host or a zone.
pub fn domain_name(value: &str) -> Result<&str, Invalid> {
    const RULE: &str = "must be lower-case ASCII labels [a-z0-9-] of 1-63 octets, at least two, 253 octets at most, the last not all digits (an IP address is not a domain)";
    if value.is_empty() || value.len() > 253 || !value.is_ascii() {
        return Err(invalid("domain name", value, RULE));
    }
    let labels: Vec<&str> = value.split('.').collect();
    if labels.len() < 2 || labels[labels.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("domain name", value, RULE));
    }
    for label in labels {
        let b = label.as_bytes();
        if b.is_empty()
            || b.len() > 63
            || b[0] == b'-'
            || b[b.len() - 1] == b'-'
            || !b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        {
            return Err(invalid("domain name", value, RULE));
        }
    }
    Ok(value)
}

/// A mailbox local part: `[a-z0-9][a-z0-9._+-]{0,63}`, no `..`, no trailing
/// `.` (what the Secure MX API accepts; the contract and the planner refuse
/// the same values before anything is recorded).
pub fn mail_local_part(value: &str) -> Result<&str, Invalid> {
    const RULE: &str =
        "must match [a-z0-9][a-z0-9._+-]{0,63}, without '..' and without a trailing '.'";
    let b = value.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'+' | b'-')
        })
        && !value.contains("..")
        && !value.ends_with('.');
    if ok {
        Ok(value)
    } else {
        Err(invalid("mailbox local part", value, RULE))
    }
}

/// A relative path inside a customer's root: components of `[A-Za-z0-9._-]`,
/// none of them `.` or `..`, no leading slash, 255 octets at most.
pub fn relative_path(value: &str) -> Result<&str, Invalid> {
    const RULE: &str = "must be a relative path of [A-Za-z0-9._-] components, without '.' or '..', 255 octets at most";
    if value.is_empty() || value.len() > 255 || value.starts_with('/') {
        return Err(invalid("path", value, RULE));
    }
    for comp in value.split('/') {
        if comp.is_empty()
            || comp == "."
            || comp == ".."
            || !comp
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        {
            return Err(invalid("path", value, RULE));
        }
    }
    Ok(value)
}

/// A string that passed one allow-list: its type says which, so a value
/// that reaches a backend has been checked once, at the edge, by the one
/// rule (the contract, the planner and every adapter share these types).
/// Deserializing one checks it again: a spec read back from the store or a
/// plan cannot carry an unchecked value.
macro_rules! validated {
    ($(#[$doc:meta])* $name:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Checks `value` with [`", stringify!($check), "`].")]
            pub fn parse(value: &str) -> Result<Self, Invalid> {
                $check(value).map(|v| $name(v.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self, Invalid> {
                $check(&value)?;
                Ok($name(value))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated!(
    /// A Unix account or pure-ftpd login name ([`user_name`]).
    UnixUser,
    user_name
);
validated!(
    /// A domain name in its A-label form ([`domain_name`]).
    DomainName,
    domain_name
);
validated!(
    /// A mailbox local part ([`mail_local_part`]).
    MailLocalPart,
    mail_local_part
);
validated!(
    /// A contract id ([`contract_id`]).
    ContractId,
    contract_id
);

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "",
        "a;rm -rf /",
        "$(id)",
        "`id`",
        "a\nb",
        "../etc",
        "a b",
        "ａｄｍｉｎ", // full-width look-alikes
        "exаmple.jp", // Cyrillic 'а'
        "-leading.example",
        "x\0y",
        "a'b",
        "a\"b",
        "a|b",
        "a&b",
        "a>b",
    ];

    #[test]
    fn hostile_values_are_rejected_everywhere() {
        for v in HOSTILE {
            assert!(user_name(v).is_err(), "user_name accepted {v:?}");
            assert!(domain_name(v).is_err(), "domain_name accepted {v:?}");
            assert!(contract_id(v).is_err(), "contract_id accepted {v:?}");
        }
        for v in [
            "c-1001",
            "C",
            "C1",
            "1-ABC",
            "C_1001",
            &format!("C{}", "1".repeat(32)),
        ] {
            assert!(contract_id(v).is_err(), "contract_id accepted {v:?}");
        }
        assert!(contract_id("C-1001").is_ok());
        for v in [
            "../x",
            "a/../b",
            "/etc/passwd",
            "a b",
            "$(id)",
            "a;b",
            "a\nb",
            ".",
        ] {
            assert!(relative_path(v).is_err(), "relative_path accepted {v:?}");
        }
    }

    #[test]
    fn an_ip_address_is_not_a_domain() {
        for v in [
            "127.0.0.1",
            "10.1",
            "192.168.0.255",
            "0x7f.0.0.1",
            "1.2.3.04",
        ] {
            let e = domain_name(v).unwrap_err();
            assert!(
                e.to_string().contains("an IP address is not a domain"),
                "{e}"
            );
        }
        // Digits elsewhere are fine, and so is a TLD with a digit in it.
        assert!(domain_name("127.0.0.1.example.jp").is_ok());
        assert!(domain_name("1and1.com").is_ok());
        assert!(domain_name("example.x1").is_ok());
    }

    #[test]
    fn good_values_pass() {
        assert!(user_name("c1001").is_ok());
        assert!(user_name("web_c-1").is_ok());
        assert!(domain_name("example.co.jp").is_ok());
        assert!(domain_name("xn--eckwd4c7c.xn--zckzah").is_ok());
        assert!(relative_path("public_html/index.html").is_ok());
    }

    #[test]
    fn length_limits() {
        let long_label = format!("{}.jp", "a".repeat(64));
        assert!(domain_name(&long_label).is_err());
        let ok_label = format!("{}.jp", "a".repeat(63));
        assert!(domain_name(&ok_label).is_ok());
        assert!(user_name(&"a".repeat(33)).is_err());
        assert!(domain_name(&format!("{}a.jp", "a.".repeat(126))).is_err());
    }

    #[test]
    fn mail_local_parts_follow_the_providers_rule() {
        for ok in ["info", "a.b", "a+tag", "0", "a_b-c"] {
            assert!(mail_local_part(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-info",
            "a..b",
            "a.",
            ".a",
            "Info",
            "",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(mail_local_part(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validated_types_check_when_built_and_when_read_back() {
        let u = UnixUser::parse("c-1001").unwrap();
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            serde_json::json!("c-1001")
        );
        assert_eq!(
            serde_json::from_value::<UnixUser>(serde_json::json!("c-1001")).unwrap(),
            u
        );
        let e = serde_json::from_value::<UnixUser>(serde_json::json!("root;id")).unwrap_err();
        assert!(e.to_string().contains("[a-z][a-z0-9_-]{0,31}"), "{e}");
        assert!(DomainName::parse("a;b.jp").is_err());
        assert!(MailLocalPart::parse("a..b").is_err());
        assert_eq!(ContractId::parse("C1").unwrap_err().value, "C1");
    }

    #[test]
    fn error_names_the_rule() {
        let e = domain_name("a;b.jp").unwrap_err();
        assert!(e.to_string().contains("lower-case ASCII labels"), "{e}");
    }
}
