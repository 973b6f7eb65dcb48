//! Bounded reads of the files hostwright is handed: never more than the
//! documented limit of what the file should hold, so `/dev/zero`, a FIFO or a
//! runaway file ends in a clear error instead of filling the memory.
//!
//! The limits, one per kind of file (`docs/contract-format.md`, "Size limits"):
//! a signed envelope ([`crate::signing::MAX_ENVELOPE_BYTES`]), a contract
//! document ([`crate::contract::MAX_CONTRACT_BYTES`]), a trusted-keys file
//! ([`MAX_TRUSTED_KEYS_BYTES`]) and a small secret such as a signing key or a
//! token ([`MAX_SECRET_FILE_BYTES`]).

use std::io::Read;
use std::path::Path;

/// Largest trusted-keys file read: about 1,000 keys.
pub const MAX_TRUSTED_KEYS_BYTES: usize = 256 * 1024;

/// Largest key, token or shared-secret file read.
pub const MAX_SECRET_FILE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {limit} bytes, the limit for {what}; reading stopped there")]
    TooLarge {
        path: String,
        what: &'static str,
        limit: usize,
    },
    #[error("{path} is not UTF-8 text ({what})")]
    NotText { path: String, what: &'static str },
}

/// Reads at most `limit` bytes of `path` (`what` names the kind of file in
/// the error). A file with more is refused after reading `limit + 1` bytes.
pub fn read_file(path: &Path, limit: usize, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > limit {
        return Err(ReadError::TooLarge {
            path: path.display().to_string(),
            what,
            limit,
        });
    }
    Ok(bytes)
}

/// [`read_file`] of a text file.
pub fn read_text(path: &Path, limit: usize, what: &'static str) -> Result<String, ReadError> {
    String::from_utf8(read_file(path, limit, what)?).map_err(|_| ReadError::NotText {
        path: path.display().to_string(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_after_the_limit_naming_it() {
        let t = std::time::Instant::now();
        let e = read_file(Path::new("/dev/zero"), 1000, "a signed contract envelope").unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        let msg = e.to_string();
        assert!(
            msg.contains(
                "/dev/zero is larger than 1000 bytes, the limit for a signed contract envelope"
            ),
            "{msg}"
        );
    }

    #[test]
    fn a_file_up_to_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![b'x'; 1000]).unwrap();
        assert_eq!(read_file(&p, 1000, "x").unwrap().len(), 1000);
        assert!(matches!(
            read_file(&p, 999, "x"),
            Err(ReadError::TooLarge { limit: 999, .. })
        ));
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_text(&p, 10, "x"),
            Err(ReadError::NotText { .. })
        ));
        assert!(matches!(
            read_file(&dir.path().join("missing"), 10, "x"),
            Err(ReadError::Io { .. })
        ));
    }
}
