//! Signed contracts: an Ed25519 signature over the exact payload bytes, and
//! the trusted-keys file that says which keys may sign, when.
//!
//! Envelope (JSON): `{"key_id": "...", "payload": "<base64 of the contract
//! bytes>", "signature": "<base64 of the 64-byte signature>"}`. Signing the
//! exact bytes avoids canonicalising JSON: what is verified is what is parsed.
//!
//! Trusted keys (TOML), several at once for rotation:
//! ```toml
//! [[key]]
//! id = "contracts-2026"
//! public_key = "<base64 of the 32-byte Ed25519 public key>"
//! not_before = "2026-01-01T00:00:00Z"
//! not_after = "2027-03-31T23:59:59Z"   # optional
//! revoked = false                        # optional
//! ```

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::contract::{Contract, ContractError, MAX_CONTRACT_BYTES};

/// Largest envelope accepted: the contract limit plus base64 and framing.
pub const MAX_ENVELOPE_BYTES: usize = MAX_CONTRACT_BYTES * 4 / 3 + 4096;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("envelope is larger than {MAX_ENVELOPE_BYTES} bytes")]
    EnvelopeTooLarge,
    #[error("envelope is not valid JSON of the form {{key_id, payload, signature}}: {0}")]
    MalformedEnvelope(String),
    #[error("envelope field `{0}` is not valid base64")]
    BadBase64(&'static str),
    #[error("signature is not 64 bytes")]
    BadSignatureLength,
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    #[error("signing key `{0}` is revoked")]
    RevokedKey(String),
    #[error("signing key `{key}` is not valid yet (from {from})")]
    KeyNotYetValid { key: String, from: DateTime<Utc> },
    #[error("signing key `{key}` expired at {until}")]
    KeyExpired { key: String, until: DateTime<Utc> },
    #[error("signature does not verify with key `{0}`")]
    BadSignature(String),
    #[error("signed payload is not a valid contract: {0}")]
    Contract(#[from] ContractError),
    #[error("trusted keys: {0}")]
    TrustedKeys(String),
    /// The private key a contract is signed with (`contract sign --key`),
    /// not the trusted-keys file: named as what it is.
    #[error("signing key: {0}")]
    SigningKeyFile(String),
}

impl SigningError {
    /// The signature verified but the payload is not a valid contract (400,
    /// not 401: the sender is who they say, the document is wrong).
    pub fn is_payload_error(&self) -> bool {
        matches!(self, SigningError::Contract(_))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    key_id: String,
    payload: String,
    signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    pub id: String,
    pub public_key: String,
    pub not_before: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustedKeysFile {
    #[serde(default)]
    key: Vec<TrustedKey>,
}

/// The keys allowed to sign contracts.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: Vec<(TrustedKey, VerifyingKey)>,
}

impl TrustedKeys {
    pub fn load(path: &Path) -> Result<TrustedKeys, SigningError> {
        let text = crate::input::read_text(
            path,
            crate::input::MAX_TRUSTED_KEYS_BYTES,
            "a trusted-keys file",
        )
        .map_err(|e| SigningError::TrustedKeys(e.to_string()))?;
        TrustedKeys::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<TrustedKeys, SigningError> {
        let file: TrustedKeysFile =
            toml::from_str(text).map_err(|e| SigningError::TrustedKeys(e.to_string()))?;
        let mut keys = Vec::new();
        for k in file.key {
            let bytes = B64.decode(&k.public_key).map_err(|_| {
                SigningError::TrustedKeys(format!("key `{}`: public_key is not base64", k.id))
            })?;
            let arr: [u8; 32] = bytes.try_into().map_err(|_| {
                SigningError::TrustedKeys(format!("key `{}`: public_key is not 32 bytes", k.id))
            })?;
            let vk = VerifyingKey::from_bytes(&arr).map_err(|_| {
                SigningError::TrustedKeys(format!("key `{}`: not a valid Ed25519 public key", k.id))
            })?;
            if keys
                .iter()
                .any(|(t, _): &(TrustedKey, VerifyingKey)| t.id == k.id)
            {
                return Err(SigningError::TrustedKeys(format!(
                    "key `{}` listed twice",
                    k.id
                )));
            }
            keys.push((k, vk));
        }
        Ok(TrustedKeys { keys })
    }

    pub fn to_toml(&self) -> String {
        render_trusted_keys(self.keys.iter().map(|(k, _)| k.clone()).collect())
    }

    pub fn entry(key_id: &str, vk: &VerifyingKey, not_before: DateTime<Utc>) -> TrustedKey {
        TrustedKey {
            id: key_id.to_string(),
            public_key: B64.encode(vk.as_bytes()),
            not_before,
            not_after: None,
            revoked: false,
        }
    }

    fn find(&self, id: &str, now: DateTime<Utc>) -> Result<&VerifyingKey, SigningError> {
        let (k, vk) = self
            .keys
            .iter()
            .find(|(k, _)| k.id == id)
            .ok_or_else(|| SigningError::UnknownKey(id.chars().take(64).collect()))?;
        if k.revoked {
            return Err(SigningError::RevokedKey(k.id.clone()));
        }
        if now < k.not_before {
            return Err(SigningError::KeyNotYetValid {
                key: k.id.clone(),
                from: k.not_before,
            });
        }
        if let Some(until) = k.not_after
            && now > until
        {
            return Err(SigningError::KeyExpired {
                key: k.id.clone(),
                until,
            });
        }
        Ok(vk)
    }
}

/// Renders entries in the trusted-keys file format.
pub fn render_trusted_keys(key: Vec<TrustedKey>) -> String {
    toml::to_string(&TrustedKeysFile { key }).expect("trusted keys serialize")
}

/// A verified envelope: who signed, the exact bytes, the parsed contract.
#[derive(Debug, Clone)]
pub struct Verified {
    pub key_id: String,
    pub payload: Vec<u8>,
    pub contract: Contract,
}

/// Verifies an envelope as received and parses its contract.
pub fn verify(
    envelope: &[u8],
    keys: &TrustedKeys,
    now: DateTime<Utc>,
) -> Result<Verified, SigningError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(SigningError::EnvelopeTooLarge);
    }
    let env: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| SigningError::MalformedEnvelope(e.to_string()))?;
    let payload = B64
        .decode(&env.payload)
        .map_err(|_| SigningError::BadBase64("payload"))?;
    let sig = B64
        .decode(&env.signature)
        .map_err(|_| SigningError::BadBase64("signature"))?;
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| SigningError::BadSignatureLength)?;
    let vk = keys.find(&env.key_id, now)?;
    vk.verify_strict(&payload, &Signature::from_bytes(&sig))
        .map_err(|_| SigningError::BadSignature(env.key_id.clone()))?;
    let contract = Contract::from_json(&payload)?;
    Ok(Verified {
        key_id: env.key_id,
        payload,
        contract,
    })
}

/// Wraps contract bytes in a signed envelope.
pub fn sign(payload: &[u8], key_id: &str, key: &SigningKey) -> Vec<u8> {
    let sig = key.sign(payload);
    let env = Envelope {
        key_id: key_id.to_string(),
        payload: B64.encode(payload),
        signature: B64.encode(sig.to_bytes()),
    };
    let mut out = serde_json::to_vec_pretty(&env).expect("envelope serializes");
    out.push(b'\n');
    out
}

/// A new signing key from the OS random source.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    SigningKey::from_bytes(&seed)
}

/// Reads a signing key file (base64 of the 32-byte seed).
pub fn read_signing_key(path: &Path) -> Result<SigningKey, SigningError> {
    let text = crate::input::read_text(path, crate::input::MAX_SECRET_FILE_BYTES, "a signing key")
        .map_err(|e| SigningError::SigningKeyFile(e.to_string()))?;
    let bytes = B64
        .decode(text.trim())
        .map_err(|_| SigningError::SigningKeyFile(format!("{}: not base64 (a signing key file holds the base64 of a 32-byte Ed25519 seed, as `hostwright keys generate` writes it)", path.display())))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| {
        SigningError::SigningKeyFile(format!("{}: not a 32-byte key", path.display()))
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn encode_signing_key(key: &SigningKey) -> String {
    B64.encode(key.to_bytes())
}

#[cfg(test)]
mod tests;
