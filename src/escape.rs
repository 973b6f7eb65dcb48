//! Control characters never reach a person's terminal or a log line as
//! themselves.
//!
//! Text that came from outside (a contract field, an envelope's `key_id`, an
//! error message that quotes either, a backend's answer) can carry a newline
//! that starts a forged log line, a carriage return that overwrites the line
//! shown, or an ANSI/ECMA-48 escape sequence (ESC, or the 8-bit CSI U+009B)
//! that recolours, moves the cursor or clears the screen. This module is the
//! one place that decides which characters are unsafe ([`is_unsafe`]) and how
//! they are written instead; the human log (`crate::logging`), the JSON log
//! and every line the CLI prints use it.
//!
//! Escapes are visible and unambiguous enough for a reader: `\n`, `\r`, `\t`,
//! `\x1b` for the other C0 controls and DEL, `\u{9b}` above ASCII. A backslash
//! is left as it is: a literal `\n` typed by someone is two harmless
//! characters, and doubling every backslash would make Debug-quoted fields
//! unreadable.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` must be escaped before it reaches a terminal or a log line:
/// the C0 controls (newline, carriage return and tab included), DEL, the C1
/// controls (U+0080-U+009F; U+009B is CSI), the Unicode line and paragraph
/// separators (U+2028, U+2029), and the bidirectional marks, embeddings,
/// overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E,
/// U+2066-U+2069), which reorder what a reader sees.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Writes the visible escape of an unsafe character.
fn write_escape(out: &mut impl Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if c.is_ascii() => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// Writes `s` with every unsafe character escaped.
fn write_escaped(out: &mut impl Write, s: &str) -> fmt::Result {
    let mut rest = s;
    while let Some(i) = rest.find(is_unsafe) {
        out.write_str(&rest[..i])?;
        let c = rest[i..]
            .chars()
            .next()
            .expect("find returned a char boundary");
        write_escape(out, c)?;
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// `s` with every unsafe character escaped (borrowed when there is none).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    write_escaped(&mut out, s).expect("writing to a String cannot fail");
    Cow::Owned(out)
}

/// Displays a string with every unsafe character escaped.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0)
    }
}

/// A [`fmt::Write`] that escapes every unsafe character written through it,
/// however the text is split into writes.
pub struct EscapingWriter<W>(pub W);

impl<W: Write> Write for EscapingWriter<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(&mut self.0, s)
    }
}

/// JSON text with every unsafe character that JSON allows raw written as a
/// `\uXXXX` escape instead, so a JSON document or log line shown on a
/// terminal cannot carry an escape sequence either. `serde_json` already
/// escapes the C0 controls; this covers DEL, C1, the separators and the
/// bidirectional controls. Those characters can only occur inside JSON
/// strings, where `\uXXXX` means the same character: the document parses to
/// exactly the same value.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    // Below U+0020 serde_json escapes inside strings; outside them it is a
    // document's own whitespace (a log line's newline), which stays.
    let raw_unsafe = |c: char| is_unsafe(c) && c >= ' ';
    if !json.contains(raw_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if raw_unsafe(c) {
            // Every unsafe character above ASCII is in the BMP.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_visibly_and_nothing_else_changes() {
        assert_eq!(escape("C-1001 ok"), "C-1001 ok");
        assert!(matches!(escape("さくら"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\nb\rc\td\x1b[31me\x07\x7f"),
            "a\\nb\\rc\\td\\x1b[31me\\x07\\x7f"
        );
        assert_eq!(escape("\u{9b}2J\u{85}"), "\\u{9b}2J\\u{85}");
        assert_eq!(escape("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(escape("l1\u{2028}l2"), "l1\\u{2028}l2");
        // A backslash stays: `\n` typed as text is harmless.
        assert_eq!(escape("a\\nb"), "a\\nb");
    }

    #[test]
    fn nothing_unsafe_survives_any_input() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = escape(&all);
        assert!(!out.contains(is_unsafe), "{out:?}");
        let mut w = EscapingWriter(String::new());
        for c in all.chars() {
            // One char per write: the writer escapes however text arrives.
            w.write_char(c).unwrap();
        }
        assert_eq!(w.0, out);
        assert_eq!(Escaped(&all).to_string(), out);
    }

    #[test]
    fn json_stays_the_same_value_without_raw_controls() {
        let v = serde_json::json!({"k": "a\u{1b}[2J\u{9b}1;1H\u{7f}\u{2028}\u{202e}\nz"});
        let text = serde_json::to_string(&v).unwrap();
        let safe = json_safe(&text);
        assert!(!safe.contains(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        assert!(matches!(json_safe("{\"a\":1}"), Cow::Borrowed(_)));
    }
}
