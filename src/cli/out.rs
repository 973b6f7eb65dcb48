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
/// A closed stdout (`hostwright jobs list | head`) is not an error worth a
/// panic: what is left to print is dropped.
pub fn line(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{}", Escaped(s));
}

/// One line to stderr, escaped (see [`note!`]).
pub fn eline(s: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", Escaped(s));
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

/// `s` padded with spaces to `width` terminal columns, counted by display
/// width: a Japanese character takes two columns, so `{:<N}` (which counts
/// characters) would misalign a table. Longer text is kept whole.
pub fn pad(s: &str, width: usize) -> String {
    let w = unicode_width::UnicodeWidthStr::width(s);
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// JSON for scripts on stdout, pretty or on one line.
pub fn json(v: &impl serde::Serialize, pretty: bool) -> anyhow::Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        serde_json::to_string(v)?
    };
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{}", json_safe(&text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pad;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn pad_counts_display_columns() {
        assert_eq!(pad("ab", 4), "ab  ");
        assert_eq!(pad("追加", 6), "追加  ");
        assert_eq!(pad("パック (MX)", 14).width(), 14);
        assert_eq!(pad("toolong", 3), "toolong");
    }
}
