//! The process's logs (stderr): human-readable or JSON, filtered by
//! `RUST_LOG`, and safe to read whatever the logged values hold.
//!
//! Log fields carry text from outside: an envelope's `key_id` in a signature
//! error, an unknown field's name in a refused contract, a backend's error
//! message. tracing-subscriber 0.3.23 escapes ESC, BEL, BS, FF, DEL and C1 in
//! an event's message only; a `%` (Display) field, or a newline or carriage
//! return anywhere, reaches the human log raw, so an unauthenticated post
//! could forge log lines. Here every field (the message, every event field,
//! every span field) of the human log goes through one formatter,
//! [`EscapingFields`], which writes each character
//! [`crate::escape::is_unsafe`] names as a visible escape: one event is one
//! line. The JSON log is escaped by serde_json (C0) and by [`JsonSafe`] (the
//! rest), so each line stays one valid JSON document holding exactly the
//! logged values.

use std::fmt;
use std::io;

use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultFields, FormatFields, Writer};
use tracing_subscriber::util::SubscriberInitExt;

use crate::engine::config::LogFormat;
use crate::escape::{EscapingWriter, json_safe};

/// Field formatter of the human log: tracing-subscriber's default layout
/// (`name=value`, the message first), with every unsafe character of every
/// field escaped. Field names are identifiers in our code; values are not.
#[derive(Debug, Default)]
pub struct EscapingFields {
    inner: DefaultFields,
}

impl<'writer> FormatFields<'writer> for EscapingFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // The inner writer is plain (no ANSI styling of field names): what
        // passes through the escaper must hold no escape sequence of ours.
        let mut escaping = EscapingWriter(&mut writer);
        self.inner.format_fields(Writer::new(&mut escaping), fields)
    }
}

/// Wraps the JSON log's writer: characters JSON allows raw but a terminal
/// would obey (DEL, C1, separators, bidirectional controls) are written as
/// `\uXXXX`, which is the same JSON value (see [`json_safe`]).
#[derive(Debug, Clone)]
pub struct JsonSafe<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for JsonSafe<M> {
    type Writer = JsonSafeWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        JsonSafeWriter(self.0.make_writer())
    }
}

/// See [`JsonSafe`]. tracing-subscriber writes each event as one buffer, so
/// a write holds whole characters; a write that is not UTF-8 passes as is.
pub struct JsonSafeWriter<W>(W);

impl<W: io::Write> io::Write for JsonSafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf).map(json_safe) {
            Ok(std::borrow::Cow::Owned(safe)) => {
                self.0.write_all(safe.as_bytes())?;
                Ok(buf.len())
            }
            _ => self.0.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The log subscriber for `format`, filtered by `filter`, writing to
/// `writer`; `ansi`: the human log's level and timestamp in colour (for a
/// terminal; the values are escaped either way).
pub fn dispatch<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Human => builder
            .with_ansi(ansi)
            .with_writer(writer)
            .fmt_fields(EscapingFields::default())
            .finish()
            .into(),
        LogFormat::Json => builder.json().with_writer(JsonSafe(writer)).finish().into(),
    }
}

/// Logs to stderr for the rest of the process, filtered by `RUST_LOG`
/// (default `info`); colours only when stderr is a terminal.
pub fn init(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    dispatch(format, filter, io::stderr, io::stderr().is_terminal()).init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer into a shared buffer, to read what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// What an attacker puts in a `key_id` or an unknown field's name: a
    /// forged "accepted" line after a newline, colours, a cursor move, the
    /// 8-bit CSI, a bidirectional override.
    const HOSTILE: &str = "k\n2026-12-01T00:00:00Z  INFO hostwright: contract accepted\r\x1b[32mok\x1b[0m\u{9b}2K\u{202e}\x7f\t";

    /// Logs one event (and one span) carrying `HOSTILE` in every way a
    /// field can be written, and returns the output.
    fn log_hostile(format: LogFormat, ansi: bool) -> String {
        let buf = Buf::default();
        let d = dispatch(format, EnvFilter::new("info"), buf.clone(), ansi);
        tracing::dispatcher::with_default(&d, || {
            let span = tracing::info_span!("intake", peer = %HOSTILE);
            let _g = span.enter();
            let err = std::io::Error::other(HOSTILE);
            tracing::warn!(
                error = %HOSTILE,
                debug = ?HOSTILE,
                text = HOSTILE,
                source = &err as &(dyn std::error::Error + 'static),
                "refused {}",
                HOSTILE
            );
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    /// `line` without the formatter's own colour codes (`ESC [ digits ; m`).
    fn without_sgr(line: &str) -> String {
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find("\x1b[") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find(|c: char| !(c.is_ascii_digit() || c == ';')) {
                Some(j) if after[j..].starts_with('m') => rest = &after[j + 1..],
                _ => {
                    out.push_str(&rest[i..i + 2]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn the_human_log_escapes_every_field_one_event_is_one_line() {
        let coloured = log_hostile(LogFormat::Human, true);
        assert_eq!(coloured.matches('\n').count(), 1, "{coloured:?}");
        let plain = without_sgr(coloured.strip_suffix('\n').unwrap());
        assert!(!plain.contains(crate::escape::is_unsafe), "{plain:?}");

        let out = log_hostile(LogFormat::Human, false);
        assert_eq!(out.matches('\n').count(), 1, "one event, one line: {out:?}");
        let line = out.strip_suffix('\n').unwrap();
        assert!(!line.contains(crate::escape::is_unsafe), "{line:?}");
        // The values are still there, readable.
        assert!(line.contains("error=k\\n2026-12-01"), "{line}");
        assert!(line.contains("\\x1b[32mok"), "{line}");
        assert!(line.contains("peer=k\\n"), "the span's field too: {line}");
        assert!(line.contains("refused k\\n"), "the message too: {line}");
    }

    #[test]
    fn the_json_log_stays_one_valid_document_per_event_with_the_exact_values() {
        let out = log_hostile(LogFormat::Json, false);
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        let line = out.strip_suffix('\n').unwrap();
        assert!(!line.contains(crate::escape::is_unsafe), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["fields"]["error"], HOSTILE);
        assert_eq!(v["fields"]["text"], HOSTILE);
        assert_eq!(v["fields"]["message"], format!("refused {HOSTILE}"));
        assert_eq!(v["span"]["peer"], HOSTILE);
    }
}
