//! Everything the CLI prints goes through here, so no value can draw on the
//! operator's terminal: a customer id, a contract id, an error a server or a
//! backend sent, a file name. Lines for people ([`say!`], [`note!`]) have
//! every control character escaped (`hostwright::escape`): one call is one
//! line, whatever the values hold. JSON for scripts ([`json`]) stays the same
//! JSON, with the controls JSON allows raw written as `\uXXXX`.

use hostwright::escape::{Escaped, json_safe};

/// Prints one line to stdout, `format!`-style, every control character escaped.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::out::line(&format!($($arg)*))
    };
}
pub(crate) use say;

/// Prints one line to stderr, `format!`-style, every control character escaped.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::cli::out::eline(&format!($($arg)*))
    };
}
pub(crate) use note;

/// One line to stdout, escaped (see [`say!`]).
pub fn line(s: &str) {
    println!("{}", Escaped(s));
}

/// One line to stderr, escaped (see [`note!`]).
pub fn eline(s: &str) {
    eprintln!("{}", Escaped(s));
}

/// Several lines of text we made ourselves (e.g. a TOML entry), each escaped.
pub fn block(text: &str) {
    for l in text.lines() {
        line(l);
    }
}

/// CSV (RFC 4180 records ending in CRLF) on stdout, each record's control
/// characters escaped and its CRLF kept.
pub fn csv(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for record in text.split_terminator("\r\n") {
        let _ = write!(out, "{}\r\n", Escaped(record));
    }
}

/// JSON for scripts on stdout, pretty or on one line.
pub fn json(v: &impl serde::Serialize, pretty: bool) -> anyhow::Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    println!("{}", json_safe(&text));
    Ok(())
}
