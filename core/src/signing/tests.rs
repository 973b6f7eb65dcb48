//! Signed envelopes: the round trip, every refusal, and key rotation.

use super::*;
use chrono::TimeZone;

const CONTRACT: &[u8] = include_bytes!("../../../examples/contracts/securemx.json");

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

fn entry(
    id: &str,
    seed: u8,
    from: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    revoked: bool,
) -> TrustedKey {
    TrustedKey {
        not_after: until,
        revoked,
        ..TrustedKeys::entry(id, &key(seed).verifying_key(), from)
    }
}

fn trusted(entries: Vec<TrustedKey>) -> TrustedKeys {
    TrustedKeys::from_toml(&render_trusted_keys(entries)).unwrap()
}

fn one_key() -> TrustedKeys {
    trusted(vec![entry(
        "contracts-2026",
        1,
        at(2026, 1, 1),
        Some(at(2027, 3, 31)),
        false,
    )])
}

/// The envelope as a JSON value, to tamper with.
fn envelope_value(env: &[u8]) -> serde_json::Value {
    serde_json::from_slice(env).unwrap()
}

#[test]
fn round_trip() {
    let env = sign(CONTRACT, "contracts-2026", &key(1));
    let v = verify(&env, &one_key(), at(2026, 11, 10)).unwrap();
    assert_eq!(v.key_id, "contracts-2026");
    assert_eq!(
        v.payload, CONTRACT,
        "the exact bytes signed are the bytes handed back"
    );
    assert_eq!(v.contract.contract_id.as_str(), "C-2001");
    // The envelope has exactly its three fields.
    let obj = envelope_value(&env);
    let mut keys: Vec<_> = obj.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["key_id", "payload", "signature"]);
}

#[test]
fn the_signed_examples_verify_with_the_example_key() {
    let keys =
        TrustedKeys::from_toml(include_str!("../../../examples/keys/trusted-keys.toml")).unwrap();
    let env = include_bytes!("../../../examples/signed/securemx.json");
    let v = verify(env, &keys, at(2026, 11, 10)).unwrap();
    assert_eq!(v.key_id, "example-only-2026");
    assert_eq!(v.payload, CONTRACT);
    // Before the key's validity: refused.
    assert!(matches!(
        verify(env, &keys, at(2025, 12, 31)),
        Err(SigningError::KeyNotYetValid { .. })
    ));
}

#[test]
fn unknown_key_id() {
    let env = sign(CONTRACT, "contracts-2099", &key(1));
    let e = verify(&env, &one_key(), at(2026, 11, 10)).unwrap_err();
    assert!(
        matches!(&e, SigningError::UnknownKey(id) if id == "contracts-2099"),
        "{e}"
    );
    assert!(!e.is_payload_error());
    // A very long key id is cut in the error.
    let env = sign(CONTRACT, &"k".repeat(500), &key(1));
    match verify(&env, &one_key(), at(2026, 11, 10)).unwrap_err() {
        SigningError::UnknownKey(id) => assert_eq!(id.len(), 64),
        e => panic!("{e}"),
    }
}

#[test]
fn bad_signature() {
    // Signed by another key under the trusted id.
    let env = sign(CONTRACT, "contracts-2026", &key(2));
    assert!(
        matches!(verify(&env, &one_key(), at(2026, 11, 10)), Err(SigningError::BadSignature(k)) if k == "contracts-2026")
    );
    // A tampered payload: one byte of the contract changed after signing.
    let env = sign(CONTRACT, "contracts-2026", &key(1));
    let mut v = envelope_value(&env);
    let tampered = String::from_utf8(CONTRACT.to_vec())
        .unwrap()
        .replace("\"quantity\": 5", "\"quantity\": 9");
    assert_ne!(tampered.as_bytes(), CONTRACT);
    v["payload"] = serde_json::json!(B64.encode(tampered.as_bytes()));
    let e = verify(
        &serde_json::to_vec(&v).unwrap(),
        &one_key(),
        at(2026, 11, 10),
    )
    .unwrap_err();
    assert!(matches!(e, SigningError::BadSignature(_)), "{e}");
    // A flipped signature bit.
    let mut v = envelope_value(&env);
    let mut sig = B64.decode(v["signature"].as_str().unwrap()).unwrap();
    sig[10] ^= 1;
    v["signature"] = serde_json::json!(B64.encode(&sig));
    let e = verify(
        &serde_json::to_vec(&v).unwrap(),
        &one_key(),
        at(2026, 11, 10),
    )
    .unwrap_err();
    assert!(matches!(e, SigningError::BadSignature(_)), "{e}");
    // A signature of the wrong length, and base64 that is not.
    let mut v = envelope_value(&env);
    v["signature"] = serde_json::json!(B64.encode([0u8; 63]));
    let e = verify(
        &serde_json::to_vec(&v).unwrap(),
        &one_key(),
        at(2026, 11, 10),
    )
    .unwrap_err();
    assert!(matches!(e, SigningError::BadSignatureLength), "{e}");
    for field in ["payload", "signature"] {
        let mut v = envelope_value(&env);
        v[field] = serde_json::json!("not base64!");
        let e = verify(
            &serde_json::to_vec(&v).unwrap(),
            &one_key(),
            at(2026, 11, 10),
        )
        .unwrap_err();
        assert!(matches!(e, SigningError::BadBase64(f) if f == field), "{e}");
    }
}

#[test]
fn key_validity_window() {
    let env = sign(CONTRACT, "contracts-2026", &key(1));
    let keys = one_key();
    let e = verify(&env, &keys, at(2025, 12, 31)).unwrap_err();
    assert!(
        matches!(&e, SigningError::KeyNotYetValid { key, from } if key == "contracts-2026" && *from == at(2026, 1, 1)),
        "{e}"
    );
    // Both ends of the window are inclusive.
    assert!(verify(&env, &keys, at(2026, 1, 1) - chrono::Duration::seconds(1)).is_err());
    assert!(verify(&env, &keys, at(2026, 1, 1)).is_ok());
    assert!(verify(&env, &keys, at(2027, 3, 31)).is_ok());
    let e = verify(&env, &keys, at(2027, 3, 31) + chrono::Duration::seconds(1)).unwrap_err();
    assert!(
        matches!(&e, SigningError::KeyExpired { key, .. } if key == "contracts-2026"),
        "{e}"
    );
}

#[test]
fn revoked_key() {
    let keys = trusted(vec![entry("contracts-2026", 1, at(2026, 1, 1), None, true)]);
    let env = sign(CONTRACT, "contracts-2026", &key(1));
    let e = verify(&env, &keys, at(2026, 11, 10)).unwrap_err();
    assert!(
        matches!(&e, SigningError::RevokedKey(k) if k == "contracts-2026"),
        "{e}"
    );
}

#[test]
fn malformed_envelopes() {
    for bad in [
        &b"not json"[..],
        b"[]",
        b"{}",
        b"{\"key_id\": \"k\", \"payload\": \"\"}",
        b"",
    ] {
        let e = verify(bad, &one_key(), at(2026, 11, 10)).unwrap_err();
        assert!(
            matches!(e, SigningError::MalformedEnvelope(_)),
            "{:?}: {e}",
            String::from_utf8_lossy(bad)
        );
    }
    // Unknown fields in the envelope are refused, even with a good signature.
    let mut v = envelope_value(&sign(CONTRACT, "contracts-2026", &key(1)));
    v["alg"] = serde_json::json!("none");
    let e = verify(
        &serde_json::to_vec(&v).unwrap(),
        &one_key(),
        at(2026, 11, 10),
    )
    .unwrap_err();
    assert!(
        matches!(&e, SigningError::MalformedEnvelope(m) if m.contains("unknown field `alg`")),
        "{e}"
    );
}

#[test]
fn signed_but_invalid_payload_is_a_payload_error() {
    let env = sign(b"{\"contract_id\": \"C-1\"}", "contracts-2026", &key(1));
    let e = verify(&env, &one_key(), at(2026, 11, 10)).unwrap_err();
    assert!(e.is_payload_error(), "{e}");
    assert!(matches!(e, SigningError::Contract(ContractError::Json(_))));
}

#[test]
fn oversized_payloads_and_envelopes() {
    // A payload over 1 MiB: the signature verifies, the contract limit refuses it.
    let mut big =
        serde_json::to_value(serde_json::from_slice::<serde_json::Value>(CONTRACT).unwrap())
            .unwrap();
    big["customer"]["name"] = serde_json::json!("x".repeat(MAX_CONTRACT_BYTES));
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > MAX_CONTRACT_BYTES);
    let env = sign(&big, "contracts-2026", &key(1));
    assert!(
        env.len() <= MAX_ENVELOPE_BYTES,
        "the envelope limit leaves room for a 1 MiB payload"
    );
    let e = verify(&env, &one_key(), at(2026, 11, 10)).unwrap_err();
    assert!(
        matches!(e, SigningError::Contract(ContractError::TooLarge)),
        "{e}"
    );
    // An envelope over its own limit is refused before any parsing.
    let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
    assert!(matches!(
        verify(&huge, &one_key(), at(2026, 11, 10)),
        Err(SigningError::EnvelopeTooLarge)
    ));
}

#[test]
fn rotation_with_two_keys() {
    // 2026 key until 2027-03-31; 2027 key from 2027-03-01: both valid in March.
    let keys = trusted(vec![
        entry(
            "contracts-2026",
            1,
            at(2026, 1, 1),
            Some(at(2027, 3, 31)),
            false,
        ),
        entry("contracts-2027", 2, at(2027, 3, 1), None, false),
    ]);
    let old = sign(CONTRACT, "contracts-2026", &key(1));
    let new = sign(CONTRACT, "contracts-2027", &key(2));
    assert!(verify(&old, &keys, at(2027, 3, 15)).is_ok());
    assert_eq!(
        verify(&new, &keys, at(2027, 3, 15)).unwrap().key_id,
        "contracts-2027"
    );
    // Before the overlap only the old key, after it only the new one.
    assert!(verify(&old, &keys, at(2027, 2, 1)).is_ok());
    assert!(matches!(
        verify(&new, &keys, at(2027, 2, 1)),
        Err(SigningError::KeyNotYetValid { .. })
    ));
    assert!(matches!(
        verify(&old, &keys, at(2027, 4, 2)),
        Err(SigningError::KeyExpired { .. })
    ));
    assert!(verify(&new, &keys, at(2027, 4, 2)).is_ok());
    // Each key only verifies its own signatures: the new key's id with the old key's signature fails.
    let mixed = sign(CONTRACT, "contracts-2027", &key(1));
    assert!(matches!(
        verify(&mixed, &keys, at(2027, 3, 15)),
        Err(SigningError::BadSignature(_))
    ));
    // The file round-trips.
    let again = TrustedKeys::from_toml(&keys.to_toml()).unwrap();
    assert!(verify(&new, &again, at(2027, 4, 2)).is_ok());
}

#[test]
fn trusted_keys_file_errors() {
    let good = entry("k", 1, at(2026, 1, 1), None, false);
    let dup = render_trusted_keys(vec![good.clone(), good.clone()]);
    assert!(
        matches!(TrustedKeys::from_toml(&dup), Err(SigningError::TrustedKeys(m)) if m.contains("listed twice"))
    );
    for (public_key, needle) in [("not base64!", "not base64"), ("AAAA", "not 32 bytes")] {
        let text = render_trusted_keys(vec![TrustedKey {
            public_key: public_key.into(),
            ..good.clone()
        }]);
        let e = TrustedKeys::from_toml(&text).unwrap_err();
        assert!(
            matches!(&e, SigningError::TrustedKeys(m) if m.contains(needle)),
            "{e}"
        );
    }
    let text = format!(
        "{}\nextra = 1\n",
        render_trusted_keys(vec![good.clone()]).replace("[[key]]", "[[key]]\nalgo = \"x\"")
    );
    assert!(matches!(
        TrustedKeys::from_toml(&text),
        Err(SigningError::TrustedKeys(_))
    ));
    assert!(matches!(
        TrustedKeys::load(Path::new("/nonexistent/keys.toml")),
        Err(SigningError::TrustedKeys(_))
    ));
    // An empty file trusts nobody.
    let nobody = TrustedKeys::from_toml("").unwrap();
    let env = sign(CONTRACT, "k", &key(1));
    assert!(matches!(
        verify(&env, &nobody, at(2026, 11, 10)),
        Err(SigningError::UnknownKey(_))
    ));
}

#[test]
fn signing_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let k = generate_key();
    let path = dir.path().join("k.key");
    std::fs::write(&path, format!("{}\n", encode_signing_key(&k))).unwrap();
    let back = read_signing_key(&path).unwrap();
    assert_eq!(back.to_bytes(), k.to_bytes());
    std::fs::write(&path, "short").unwrap();
    assert!(read_signing_key(&path).is_err());
    // Two generated keys differ.
    assert_ne!(generate_key().to_bytes(), generate_key().to_bytes());
}

#[test]
fn a_bad_signing_key_file_is_named_as_a_signing_key() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let e = read_signing_key(&bad).unwrap_err().to_string();
    assert!(e.starts_with("signing key: "), "{e}");
    assert!(!e.contains("trusted"), "{e}");
    let short = dir.path().join("short.key");
    std::fs::write(
        &short,
        base64::engine::general_purpose::STANDARD.encode([1u8; 8]),
    )
    .unwrap();
    let e = read_signing_key(&short).unwrap_err().to_string();
    assert!(
        e.starts_with("signing key: ") && e.contains("32-byte"),
        "{e}"
    );
    let e = read_signing_key(&dir.path().join("missing.key"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("signing key: "), "{e}");
}
