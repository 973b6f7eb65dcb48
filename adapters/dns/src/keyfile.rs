//! Reading BIND key files as `tsig-keygen` writes them:
//!
//! ```text
//! key "hostwright-update" {
//!         algorithm hmac-sha256;
//!         secret "base64...";
//! };
//! ```

use base64::Engine as _;
use hostwright_adapter::Secret;

/// A TSIG key read from a file. The secret stays a [`Secret`] so it cannot be
/// printed by accident.
#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    pub algorithm: String,
    pub secret: Secret,
}

impl TsigKey {
    /// The decoded key bytes.
    pub fn secret_bytes(&self) -> Vec<u8> {
        // Checked to decode when the key was parsed.
        base64::engine::general_purpose::STANDARD
            .decode(self.secret.expose())
            .unwrap_or_default()
    }
}

/// Parses the first `key` clause of a key file. Errors never quote the file's
/// text (it holds the secret), only what is missing.
pub fn parse(text: &str) -> Result<TsigKey, String> {
    let rest = text
        .trim_start()
        .strip_prefix("key")
        .ok_or("does not start with a `key \"NAME\" {` clause")?;
    let head = rest
        .split_once('{')
        .map(|(h, _)| h)
        .ok_or("the key clause has no `{`")?;
    let name = quoted(head)
        .filter(|n| !n.is_empty())
        .ok_or("the key clause has no quoted name")?;
    let algorithm = value_after(text, "algorithm")
        .ok_or("no `algorithm` statement")?
        .to_ascii_lowercase();
    let secret = value_after(text, "secret").ok_or("no `secret \"...\";` statement")?;
    let secret = secret.trim_matches('"');
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .map_err(|_| "the secret is not valid base64")?;
    if bytes.len() < 16 {
        return Err("the secret is shorter than 16 octets".into());
    }
    Ok(TsigKey {
        name: name.to_string(),
        algorithm,
        secret: Secret::new(secret),
    })
}

/// The first `"..."` in `s`.
fn quoted(s: &str) -> Option<&str> {
    let start = s.find('"')? + 1;
    let len = s[start..].find('"')?;
    Some(&s[start..start + len])
}

/// The value of the first `WORD value;` statement.
fn value_after<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    for stmt in text.split([';', '{', '}']) {
        let stmt = stmt.trim();
        if let Some(v) = stmt.strip_prefix(word)
            && v.starts_with(char::is_whitespace)
        {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "key \"hostwright-update\" {\n\talgorithm hmac-sha256;\n\tsecret \"q6GftUMq9Ym1BvWKNsSmrZKWmlbZL/AvD8vHNuGu5lY=\";\n};\n";

    #[test]
    fn parses_tsig_keygen_output() {
        let k = parse(GOOD).unwrap();
        assert_eq!(k.name, "hostwright-update");
        assert_eq!(k.algorithm, "hmac-sha256");
        assert_eq!(k.secret_bytes().len(), 32);
        assert!(!format!("{k:?}").contains("q6Gf"), "Debug leaks the secret");
    }

    #[test]
    fn garbled_files_are_refused_without_echoing_the_secret() {
        for bad in [
            "",
            "garbage",
            "key { algorithm hmac-sha256; secret \"q6GftUMq9Ym1BvWKNsSmrZKWmlbZL/AvD8vHNuGu5lY=\"; };",
            "key \"k\" { secret \"q6GftUMq9Ym1BvWKNsSmrZKWmlbZL/AvD8vHNuGu5lY=\"; };",
            "key \"k\" { algorithm hmac-sha256; };",
            "key \"k\" { algorithm hmac-sha256; secret \"not base64!!\"; };",
            "key \"k\" { algorithm hmac-sha256; secret \"c2hvcnQ=\"; };",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(!e.contains("q6Gf"), "{e}");
        }
    }
}
