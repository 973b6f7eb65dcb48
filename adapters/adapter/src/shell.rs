//! The one quoting function for remote shell commands.
//!
//! Every adapter that runs a command over SSH builds it with [`command`] (or
//! [`quote`] for a single word). Values are validated first (see
//! [`crate::validate`]); quoting makes even a value that slipped through inert.

/// Quotes one word for a POSIX shell: wrapped in single quotes, with each
/// embedded `'` written as `'\''`. The result is always exactly one word whose
/// value is `word`, whatever it contains (`;`, `$()`, backticks, newlines).
pub fn quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Builds a command line from a program and its arguments, quoting each one.
pub fn command<I, S>(program: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut line = quote(program);
    for a in args {
        line.push(' ');
        line.push_str(&quote(a.as_ref()));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `printf '%s\n' <quoted>` through a real `sh` and returns what it printed.
    fn through_sh(word: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote(word)))
            .output()
            .expect("sh runs");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn hostile_words_come_back_unchanged_through_a_real_shell() {
        for w in [
            "plain",
            "a b",
            "'",
            "a'b'c",
            "$(touch /tmp/hostwright-pwned)",
            "`touch /tmp/hostwright-pwned`",
            "a;touch /tmp/hostwright-pwned",
            "line1\nline2",
            "\\",
            "*",
            "$HOME",
            "",
        ] {
            assert_eq!(through_sh(w), w);
        }
        assert!(!std::path::Path::new("/tmp/hostwright-pwned").exists());
    }

    #[test]
    fn command_quotes_every_argument() {
        assert_eq!(command("ls", ["-l", "a b"]), "'ls' '-l' 'a b'");
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_one_inert_word(w in "[^\\x00]{0,40}") {
            proptest::prop_assert_eq!(through_sh(&w), w);
        }
    }
}
