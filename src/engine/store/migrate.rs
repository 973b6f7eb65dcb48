//! Which migrations a store has, checked against this build's before any
//! is applied.
//!
//! Every applied migration is recorded in `hw_schema_migrations` with its
//! version and the SHA-256 of the SQL text that ran (`checksum`). At open,
//! before anything is written, a store is refused:
//! - when it records a version this build does not ship (it was written by
//!   a newer hostwright: running older code over a newer schema would
//!   silently drop or misread what the newer one records), and
//! - when an applied version's checksum differs from this build's text (the
//!   migration was edited after it shipped, or the store came from another
//!   fork): the schema is not the one the code was written against.
//!
//! Stores written before checksums were recorded (the column is NULL) get
//! the checksums of this build's texts: those are the texts that ran, since
//! shipped migrations are never edited.

use sha2::{Digest, Sha256};

use super::{Result, StoreError};

/// Hex SHA-256 of a migration's text, as recorded in the store.
pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// Checks the migrations a store recorded (`applied`: version and checksum,
/// NULL for stores older than checksums) against this build's `known`
/// list. Returns the versions whose checksum is to be recorded (applied,
/// known, no checksum yet), or the refusal naming the version.
pub fn check_applied(
    known: &[(i64, &str)],
    applied: &[(i64, Option<String>)],
) -> Result<Vec<(i64, String)>> {
    let newest_known = known.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let mut backfill = Vec::new();
    // Unknown versions first, highest first: "newer than this build" is
    // the refusal an operator can act on (run the newer hostwright).
    let mut unknown: Vec<i64> = applied
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !known.iter().any(|(k, _)| k == v))
        .collect();
    unknown.sort_unstable();
    if let Some(version) = unknown.last() {
        return Err(StoreError::SchemaNewer {
            version: *version,
            known: newest_known,
        });
    }
    for (version, recorded) in applied {
        let sql = known
            .iter()
            .find(|(k, _)| k == version)
            .map(|(_, sql)| *sql)
            .expect("unknown versions were refused above");
        let ours = checksum(sql);
        match recorded {
            None => backfill.push((*version, ours)),
            Some(theirs) if *theirs == ours => {}
            Some(theirs) => {
                return Err(StoreError::MigrationChanged {
                    version: *version,
                    recorded: theirs.clone(),
                    ours,
                });
            }
        }
    }
    Ok(backfill)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[(i64, &str)] = &[(1, "CREATE TABLE a (x BIGINT);"), (2, "CREATE INDEX b;")];

    #[test]
    fn a_store_without_checksums_gets_them_recorded() {
        let todo = check_applied(KNOWN, &[(1, None), (2, None)]).unwrap();
        assert_eq!(
            todo,
            vec![(1, checksum(KNOWN[0].1)), (2, checksum(KNOWN[1].1))]
        );
        // Recorded and equal: nothing to do.
        let ok = check_applied(KNOWN, &[(1, Some(checksum(KNOWN[0].1)))]).unwrap();
        assert!(ok.is_empty());
    }

    #[test]
    fn a_newer_schema_is_refused_naming_its_version() {
        let e = check_applied(KNOWN, &[(1, None), (2, None), (3, None), (9, None)]).unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::SchemaNewer {
                    version: 9,
                    known: 2
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("migration 9"), "{e}");
    }

    #[test]
    fn a_changed_migration_is_refused_naming_its_version() {
        let e = check_applied(
            KNOWN,
            &[
                (1, Some(checksum(KNOWN[0].1))),
                (2, Some(checksum("CREATE INDEX c;"))),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(e, StoreError::MigrationChanged { version: 2, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("migration 2"), "{e}");
    }

    #[test]
    fn the_checksum_is_sha256_hex_of_the_text() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
