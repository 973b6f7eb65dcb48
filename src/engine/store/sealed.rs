//! Secrets at rest: sealed with XChaCha20-Poly1305 under a key kept outside
//! the store.
//!
//! A credential an adapter made (an FTP password) waits in the store until
//! the contract system takes it once. A store file, a backup or a database
//! dump must not give it away, so the store only ever holds it sealed: the
//! key lives in its own file (mode 0600, made at first start), and each
//! sealed value is bound to its job and name (the AEAD's associated data),
//! so it cannot be moved to another job and opened there.
//!
//! The key file holds one key per line, `KEY_ID BASE64_32_BYTES`; the first
//! is the current key, the others only open what older keys sealed.
//! Rotation: put a new line first and restart; the engine re-seals at start
//! every secret sealed under an older key, after which the old line can go
//! (docs/schema.md).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hostwright_adapter::Secret;

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("secrets key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secrets key file {path} line {line}: {message}")]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("secrets key file {path} holds no key")]
    Empty { path: PathBuf },
    #[error("secrets key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    Mode { path: PathBuf, mode: u32 },
    #[error(
        "no key `{0}` in the secrets key file: a secret sealed under it cannot be opened (every hostwright sharing one store needs the same key file)"
    )]
    UnknownKey(String),
    #[error("a sealed secret does not open under key `{0}` (wrong key, or the value was altered)")]
    Open(String),
}

/// The keys that seal and open secrets.
#[derive(Clone)]
pub struct SecretKeys {
    /// `(id, cipher)` of the current key: every new secret is sealed with it.
    current: (String, XChaCha20Poly1305),
    all: BTreeMap<String, XChaCha20Poly1305>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys")
            .field("current", &self.current.0)
            .field("ids", &self.all.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SealError + '_ {
    move |source| SealError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SecretKeys {
    /// Reads the key file, creating it (mode 0600, one fresh key) when it
    /// does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<SecretKeys, SealError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SealError::Mode {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io(dir))?;
                }
                let line = new_key_line();
                // create_new: two processes starting at once never both
                // write a key (the loser reads the winner's).
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(mut f) => {
                        f.write_all(line.as_bytes()).map_err(io(path))?;
                        f.sync_all().map_err(io(path))?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(path)(e)),
                }
            }
            Err(e) => return Err(io(path)(e)),
        }
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        Self::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> Result<SecretKeys, SealError> {
        let mut current = None;
        let mut all = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| SealError::Format {
                path: path.to_path_buf(),
                line: i + 1,
                message: message.to_string(),
            };
            let (id, b64) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `KEY_ID BASE64_KEY`"))?;
            if id.is_empty()
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(bad("the key id must be [A-Za-z0-9._-]"));
            }
            let bytes = B64
                .decode(b64.trim())
                .map_err(|_| bad("the key is not base64"))?;
            if bytes.len() != 32 {
                return Err(bad("the key must be 32 bytes"));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| bad("the key must be 32 bytes"))?;
            if all.insert(id.to_string(), cipher.clone()).is_some() {
                return Err(bad("the key id appears twice"));
            }
            if current.is_none() {
                current = Some((id.to_string(), cipher));
            }
        }
        let current = current.ok_or_else(|| SealError::Empty {
            path: path.to_path_buf(),
        })?;
        Ok(SecretKeys { current, all })
    }

    /// A key that lives in memory only (tests, and commands that never
    /// touch secrets).
    pub fn ephemeral() -> SecretKeys {
        Self::parse(Path::new("(memory)"), &new_key_line()).expect("a fresh key parses")
    }

    /// The id of the key new secrets are sealed with.
    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    /// Seals `secret` for `(job, name)`: the current key's id and
    /// `nonce || ciphertext`.
    pub fn seal(&self, job: &str, name: &str, secret: &Secret) -> (String, Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let aad = aad(job, name);
        let ct = self
            .current
            .1
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length we store");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        (self.current.0.clone(), out)
    }

    /// Opens what [`SecretKeys::seal`] made for `(job, name)` under `key_id`.
    pub fn open(
        &self,
        key_id: &str,
        job: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<Secret, SealError> {
        let cipher = self
            .all
            .get(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_string()))?;
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open(key_id.to_string()));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        let aad = aad(job, name);
        let clear = cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| SealError::Open(key_id.to_string()))?;
        let text = String::from_utf8(clear).map_err(|_| SealError::Open(key_id.to_string()))?;
        Ok(Secret::new(text))
    }
}

fn aad(job: &str, name: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(job.len() + name.len() + 1);
    a.extend_from_slice(job.as_bytes());
    a.push(0);
    a.extend_from_slice(name.as_bytes());
    a
}

/// One line of a key file: a new random key under a dated id.
pub fn new_key_line() -> String {
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let id = format!(
        "k{}-{:08x}",
        chrono::Utc::now().format("%Y%m%d"),
        rand::random::<u32>()
    );
    format!(
        "# hostwright secrets key: keep it apart from the store and its backups (docs/schema.md)\n{id} {}\n",
        B64.encode(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_bound_to_job_and_name() {
        let k = SecretKeys::ephemeral();
        let s = Secret::new("pässword-1");
        let (id, sealed) = k.seal("job-1", "ftp_account/c-1/password", &s);
        assert!(
            !sealed.windows(8).any(|w| w == b"password"),
            "the clear text is not in the sealed value"
        );
        let back = k.open(&id, "job-1", "ftp_account/c-1/password", &sealed);
        assert_eq!(back.unwrap().expose(), "pässword-1");
        // Moved to another job or name, it does not open.
        assert!(
            k.open(&id, "job-2", "ftp_account/c-1/password", &sealed)
                .is_err()
        );
        assert!(k.open(&id, "job-1", "other", &sealed).is_err());
        // Under an unknown key, the error names it.
        let e = k.open("nope", "job-1", "x", &sealed).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn the_key_file_is_made_0600_and_older_keys_still_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/secrets.key");
        let first = SecretKeys::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (old_id, sealed) = first.seal("j", "n", &Secret::new("v"));
        // Rotation: a new key first, the old one kept below it.
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{}{old}", new_key_line())).unwrap();
        let rotated = SecretKeys::load_or_create(&path).unwrap();
        assert_ne!(rotated.current_id(), old_id);
        assert_eq!(
            rotated.open(&old_id, "j", "n", &sealed).unwrap().expose(),
            "v"
        );
        // A key file others may read is refused, naming the rule.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretKeys::load_or_create(&path).unwrap_err();
        assert!(e.to_string().contains("0600"), "{e}");
    }

    #[test]
    fn a_malformed_key_file_names_the_line() {
        let e = SecretKeys::parse(Path::new("k"), "# c\nid notbase64!\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(matches!(
            SecretKeys::parse(Path::new("k"), "# only a comment\n"),
            Err(SealError::Empty { .. })
        ));
    }
}
