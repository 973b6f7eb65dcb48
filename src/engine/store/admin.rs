//! The store as an operator's database: backup and restore of a SQLite
//! store, and the copy of a SQLite store into an empty PostgreSQL database
//! (`hostwright store backup | restore | copy`).
//!
//! - **Backup** (`VACUUM INTO`) reads one consistent snapshot through its own
//!   connection, so a running `serve` goes on writing (WAL: readers never
//!   wait for the writer). The copy holds no free pages: bytes a wipe
//!   zeroed, or older versions of rows, are not in it.
//! - **Restore** replaces the store file only when no hostwright has it
//!   open: every [`super::sqlite::SqliteStore`] holds a shared `flock` on the
//!   database file for its life (SQLite's own locks are POSIX record locks,
//!   which `flock` does not touch), and restore needs it exclusively.
//! - **Copy** reads every table of the SQLite store in one snapshot and
//!   writes it into PostgreSQL in one transaction, then reads the copy back
//!   and compares counts and per-table content digests. It refuses a target
//!   that has any table already.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};
use sqlx::{Connection as _, Row};

use super::queries as q;
use super::{SecretKeys, StoreError};

/// Errors of the store's admin commands.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is in use by a running hostwright: stop it first")]
    InUse(String),
    #[error("{0} exists and is not empty: refusing to overwrite it")]
    NotEmpty(String),
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0} is not a hostwright store (it has no hw_schema_migrations table)")]
    NotAStore(String),
    #[error(
        "the PostgreSQL database {database} is not empty (it has the table {table}): \
         store copy only writes into an empty database"
    )]
    TargetNotEmpty { database: String, table: String },
    #[error("the copy of table {table} does not match: {detail}")]
    Mismatch { table: String, detail: String },
    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = AdminError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AdminError + '_ {
    move |source| AdminError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The file of a `sqlite:PATH` store URL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite:")
        .map(|p| PathBuf::from(p.trim_start_matches("//")))
}

/// The shared lock a store holds on its database file while open: a
/// restore (which needs it exclusively) is refused while any is held.
pub(super) fn hold_shared(path: &Path) -> std::result::Result<File, StoreError> {
    let f =
        File::open(path).map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
    match f.try_lock_shared() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Database(format!(
            "{} is being restored or copied (hostwright store restore/copy holds it): try again when it is done",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
            "locking {}: {e}",
            path.display()
        ))),
    }
}

/// The exclusive lock on an existing store file: no hostwright has it open.
fn hold_exclusive(path: &Path) -> Result<File> {
    let f = File::open(path).map_err(io(path))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(AdminError::InUse(path.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(path)(e)),
    }
}

fn open_existing(path: &Path, flags: OpenFlags) -> Result<Connection> {
    if !path.exists() {
        return Err(AdminError::Missing(path.display().to_string()));
    }
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Checks that `conn` is a hostwright store whose schema this build knows
/// (no newer or changed migration).
fn check_schema(conn: &Connection, what: &Path) -> Result<()> {
    let has: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'hw_schema_migrations'",
        [],
        |r| r.get(0),
    )?;
    if has == 0 {
        return Err(AdminError::NotAStore(what.display().to_string()));
    }
    let has_sum: i64 = conn.query_row(q::HAS_CHECKSUM_SQLITE, [], |r| r.get(0))?;
    let sql = if has_sum == 0 {
        "SELECT version, NULL FROM hw_schema_migrations ORDER BY version"
    } else {
        q::APPLIED_MIGRATIONS
    };
    let mut st = conn.prepare(sql)?;
    let applied: Vec<(i64, Option<String>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    super::migrate::check_applied(q::MIGRATIONS_SQLITE, &applied)?;
    Ok(())
}

/// Creates `path` empty with mode 0600 (refusing one that has content):
/// a backup holds every contract and, sealed, the secrets.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 => return Err(AdminError::NotEmpty(path.display().to_string())),
        Ok(_) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io(path))?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io(path))?;
        }
        Err(e) => return Err(io(path)(e)),
    }
    Ok(())
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Row counts of every table of a SQLite database, by name.
fn table_counts(conn: &Connection) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for t in user_tables(conn)? {
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| r.get(0))?;
        out.push((t, n as u64));
    }
    Ok(out)
}

/// What a backup or a restore wrote: the file and its tables' row counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub file: PathBuf,
    pub bytes: u64,
    pub tables: Vec<(String, u64)>,
}

/// Writes a consistent copy of the SQLite store at `store` to `dest` (made
/// 0600; refused if it has content), while the store may be in use, and
/// checks the copy (`PRAGMA integrity_check`). Blocking.
pub fn backup_sqlite(store: &Path, dest: &Path) -> Result<Snapshot> {
    let src = open_existing(store, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    check_schema(&src, store)?;
    create_private(dest)?;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| AdminError::Unsupported(format!("{}: not UTF-8", dest.display())))?;
    if let Err(e) = src.execute("VACUUM INTO ?1", [dest_text]) {
        let _ = std::fs::remove_file(dest);
        return Err(e.into());
    }
    sync_file(dest)?;
    let copy = open_existing(dest, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    verify_integrity(&copy, dest)?;
    Ok(Snapshot {
        file: dest.to_path_buf(),
        bytes: std::fs::metadata(dest).map_err(io(dest))?.len(),
        tables: table_counts(&copy)?,
    })
}

fn verify_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(AdminError::Mismatch {
            table: path.display().to_string(),
            detail: format!("integrity_check: {check}"),
        });
    }
    Ok(())
}

/// Replaces the SQLite store at `store` with the backup at `backup`.
/// Refused while any hostwright has the store open, and when the store has
/// content unless `overwrite`. The backup is checked first (a hostwright
/// store of a schema this build knows, intact); the store is then replaced
/// in one rename, its old WAL removed. Blocking.
pub fn restore_sqlite(backup: &Path, store: &Path, overwrite: bool) -> Result<Snapshot> {
    let src = open_existing(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check_schema(&src, backup)?;
    verify_integrity(&src, backup)?;
    // Held until the new file is in place: a hostwright starting meanwhile
    // is refused instead of opening the old file.
    let _lock = match std::fs::metadata(store) {
        Ok(m) => {
            let lock = hold_exclusive(store)?;
            if m.len() > 0 && !overwrite {
                return Err(AdminError::NotEmpty(store.display().to_string()));
            }
            Some(lock)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(io(store)(e)),
    };
    let tmp = PathBuf::from(format!("{}.restoring", store.display()));
    let _ = std::fs::remove_file(&tmp);
    create_private(&tmp)?;
    let tmp_text = tmp
        .to_str()
        .ok_or_else(|| AdminError::Unsupported(format!("{}: not UTF-8", tmp.display())))?;
    if let Err(e) = src.execute("VACUUM INTO ?1", [tmp_text]) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    sync_file(&tmp)?;
    for suffix in ["-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", store.display()));
        match std::fs::remove_file(&f) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&f)(e)),
        }
    }
    std::fs::rename(&tmp, store).map_err(io(store))?;
    if let Some(dir) = store.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    let restored = open_existing(store, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(Snapshot {
        file: store.to_path_buf(),
        bytes: std::fs::metadata(store).map_err(io(store))?.len(),
        tables: table_counts(&restored)?,
    })
}

// --- copy into PostgreSQL ---------------------------------------------------------

/// One table as copied: rows and content digest on both sides (equal, or
/// the copy failed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCopy {
    pub table: String,
    pub rows: u64,
    /// Hex SHA-256 over the table's rows, independent of their order: the
    /// 256-bit wrapping sum of each row's SHA-256 over its values in the
    /// SQLite column order (NULL, integer, text/bytes each tagged), then
    /// hashed with the row count.
    pub digest: String,
}

/// Order-independent digest of a multiset of rows.
#[derive(Default)]
struct TableDigest {
    rows: u64,
    sum: [u64; 4],
}

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
}

impl TableDigest {
    fn add(&mut self, row: &[Cell]) {
        let mut h = Sha256::new();
        for c in row {
            match c {
                Cell::Null => h.update([0u8]),
                Cell::Int(i) => {
                    h.update([1u8]);
                    h.update(i.to_be_bytes());
                }
                Cell::Bytes(b) => {
                    h.update([2u8]);
                    h.update((b.len() as u64).to_be_bytes());
                    h.update(b);
                }
            }
        }
        let d = h.finalize();
        let mut carry = 0u128;
        for (i, limb) in self.sum.iter_mut().enumerate() {
            let part = u64::from_be_bytes(d[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            let s = u128::from(*limb) + u128::from(part) + carry;
            *limb = s as u64;
            carry = s >> 64;
        }
        self.rows += 1;
    }

    fn finish(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.rows.to_be_bytes());
        for limb in self.sum {
            h.update(limb.to_be_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// The tables to copy (everything but SQLite's own and the record of
/// migrations, which the target keeps for itself), referenced tables first.
fn user_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name != 'hw_schema_migrations' ORDER BY name",
    )?;
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut deps = std::collections::BTreeMap::new();
    for n in &names {
        let mut st = conn.prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1)")?;
        let refs: Vec<String> = st
            .query_map([n], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        deps.insert(n.clone(), refs);
    }
    let mut ordered: Vec<String> = Vec::new();
    while ordered.len() < names.len() {
        let before = ordered.len();
        for n in &names {
            if !ordered.contains(n)
                && deps[n]
                    .iter()
                    .all(|d| d == n || ordered.contains(d) || !names.contains(d))
            {
                ordered.push(n.clone());
            }
        }
        if ordered.len() == before {
            return Err(AdminError::Unsupported(
                "the store's tables reference each other in a cycle".into(),
            ));
        }
    }
    Ok(ordered)
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let cols: Vec<String> = st
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(cols)
}

/// A name from the store's own schema, safe to quote.
fn ident(name: &str) -> Result<&str> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(name)
    } else {
        Err(AdminError::Unsupported(format!(
            "unexpected table or column name {name:?}"
        )))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PgType {
    Int,
    Text,
    Bytes,
}

fn pg_type(data_type: &str, table: &str, col: &str) -> Result<PgType> {
    Ok(match data_type {
        "bigint" | "integer" | "smallint" => PgType::Int,
        "text" | "character varying" => PgType::Text,
        "bytea" => PgType::Bytes,
        other => {
            return Err(AdminError::Unsupported(format!(
                "{table}.{col}: PostgreSQL type {other} is not one store copy knows"
            )));
        }
    })
}

fn cell(v: Value, table: &str, col: &str) -> Result<Cell> {
    Ok(match v {
        Value::Null => Cell::Null,
        Value::Integer(i) => Cell::Int(i),
        Value::Text(s) => Cell::Bytes(s.into_bytes()),
        Value::Blob(b) => Cell::Bytes(b),
        Value::Real(_) => {
            return Err(AdminError::Unsupported(format!(
                "{table}.{col}: a floating-point value (the store has none)"
            )));
        }
    })
}

/// Rows read from SQLite, sent to the PostgreSQL side in batches.
enum Batch {
    Table { name: String, columns: Vec<String> },
    Rows(Vec<Vec<Cell>>),
    End { digest: String, rows: u64 },
}

const COPY_BATCH: usize = 500;

/// Reads every table of the store in one snapshot, sending its rows.
fn read_tables(path: &Path, tx: tokio::sync::mpsc::Sender<Result<Batch>>) {
    let run = || -> Result<()> {
        let conn = open_existing(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.execute_batch("BEGIN")?;
        for table in user_tables(&conn)? {
            ident(&table)?;
            let cols = columns(&conn, &table)?;
            for c in &cols {
                ident(c)?;
            }
            if tx
                .blocking_send(Ok(Batch::Table {
                    name: table.clone(),
                    columns: cols.clone(),
                }))
                .is_err()
            {
                return Ok(());
            }
            let list = cols
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let mut st = conn.prepare(&format!("SELECT {list} FROM \"{table}\""))?;
            let mut rows = st.query([])?;
            let mut digest = TableDigest::default();
            let mut batch = Vec::with_capacity(COPY_BATCH);
            while let Some(r) = rows.next()? {
                let mut row = Vec::with_capacity(cols.len());
                for (i, c) in cols.iter().enumerate() {
                    row.push(cell(r.get::<_, Value>(i)?, &table, c)?);
                }
                digest.add(&row);
                batch.push(row);
                if batch.len() == COPY_BATCH
                    && tx
                        .blocking_send(Ok(Batch::Rows(std::mem::take(&mut batch))))
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !batch.is_empty() && tx.blocking_send(Ok(Batch::Rows(batch))).is_err() {
                return Ok(());
            }
            if tx
                .blocking_send(Ok(Batch::End {
                    digest: digest.finish(),
                    rows: digest.rows,
                }))
                .is_err()
            {
                return Ok(());
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(())
    };
    if let Err(e) = run() {
        let _ = tx.blocking_send(Err(e));
    }
}

/// The columns of a PostgreSQL table and their types, by name.
async fn pg_columns(
    conn: &mut sqlx::PgConnection,
    table: &str,
) -> Result<std::collections::BTreeMap<String, PgType>> {
    let mut out = std::collections::BTreeMap::new();
    for r in sqlx::query(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?
    {
        let (c, t): (String, String) = (r.get(0), r.get(1));
        let ty = pg_type(&t, table, &c)?;
        out.insert(c, ty);
    }
    Ok(out)
}

fn bind_cell<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    cell: Cell,
    ty: PgType,
    table: &str,
    col: &str,
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>> {
    Ok(match (ty, cell) {
        (PgType::Int, Cell::Null) => query.bind(None::<i64>),
        (PgType::Text, Cell::Null) => query.bind(None::<String>),
        (PgType::Bytes, Cell::Null) => query.bind(None::<Vec<u8>>),
        (PgType::Int, Cell::Int(i)) => query.bind(i),
        (PgType::Bytes, Cell::Bytes(b)) => query.bind(b),
        (PgType::Text, Cell::Bytes(b)) => query.bind(String::from_utf8(b).map_err(|_| {
            AdminError::Unsupported(format!("{table}.{col}: a value that is not UTF-8 text"))
        })?),
        (ty, c) => {
            return Err(AdminError::Unsupported(format!(
                "{table}.{col}: {c:?} does not fit the PostgreSQL column ({ty:?})"
            )));
        }
    })
}

async fn insert_rows(
    tx: &mut sqlx::PgConnection,
    table: &str,
    cols: &[String],
    types: &[PgType],
    rows: Vec<Vec<Cell>>,
) -> Result<()> {
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("INSERT INTO \"{table}\" ({list}) VALUES ");
    let mut n = 0;
    for (i, _) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..cols.len() {
            if j > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push_str(&format!("${n}"));
        }
        sql.push(')');
    }
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        for ((c, ty), col) in row.into_iter().zip(types).zip(cols) {
            query = bind_cell(query, c, *ty, table, col)?;
        }
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// The digest of a PostgreSQL table read back, over `cols` in that order.
async fn pg_digest(
    conn: &mut sqlx::PgConnection,
    table: &str,
    cols: &[String],
    types: &[PgType],
) -> Result<(u64, String)> {
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // A cursor, so a table of any size is read in bounded pages. One name
    // per table: sqlx caches a statement's row description by its text, so
    // one `FETCH` text for every table would decode with the first's.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DECLARE hw_check_{table} NO SCROLL CURSOR FOR SELECT {list} FROM \"{table}\""
    )))
    .execute(&mut *tx)
    .await?;
    let mut digest = TableDigest::default();
    loop {
        let page = sqlx::query(sqlx::AssertSqlSafe(format!(
            "FETCH 1000 FROM hw_check_{table}"
        )))
        .fetch_all(&mut *tx)
        .await?;
        if page.is_empty() {
            break;
        }
        for r in page {
            let mut row = Vec::with_capacity(cols.len());
            for (i, ty) in types.iter().enumerate() {
                let bad = |e: sqlx::Error| AdminError::Mismatch {
                    table: table.to_string(),
                    detail: format!("reading {} back: {e}", cols[i]),
                };
                row.push(match ty {
                    PgType::Int => r
                        .try_get::<Option<i64>, _>(i)
                        .map_err(bad)?
                        .map_or(Cell::Null, Cell::Int),
                    PgType::Text => r
                        .try_get::<Option<String>, _>(i)
                        .map_err(bad)?
                        .map_or(Cell::Null, |s| Cell::Bytes(s.into_bytes())),
                    PgType::Bytes => r
                        .try_get::<Option<Vec<u8>>, _>(i)
                        .map_err(bad)?
                        .map_or(Cell::Null, Cell::Bytes),
                });
            }
            digest.add(&row);
        }
    }
    tx.commit().await?;
    Ok((digest.rows, digest.finish()))
}

/// What `store copy` did: every table with its rows and digest, equal on
/// both sides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyReport {
    pub tables: Vec<TableCopy>,
}

/// Copies the SQLite store at `from` into the empty PostgreSQL database at
/// `to`: migrates the target to this build's schema, copies every table in
/// one transaction, moves each id sequence past the copied ids (and past
/// ids SQLite handed out and deleted since, so none is reused), then reads
/// every table back and compares row counts and content digests.
///
/// Refused while a hostwright has the SQLite store open (a copy of a store
/// still being written would be out of date at once), and when the target
/// has any table. Sealed secrets are copied sealed: the new store needs the
/// same key file (`store.secrets_key_file`).
pub async fn copy_sqlite_to_postgres(from: &Path, to: &str) -> Result<CopyReport> {
    let _lock = hold_exclusive(from)?;
    {
        let src = open_existing(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        check_schema(&src, from)?;
        // Every migration this build ships must have run on the source: the
        // target gets all of them, and the tables must match column for column.
        let applied: i64 = src.query_row("SELECT COUNT(*) FROM hw_schema_migrations", [], |r| {
            r.get(0)
        })?;
        if applied as usize != q::MIGRATIONS_SQLITE.len() {
            return Err(AdminError::Unsupported(format!(
                "{} has {applied} of this build's {} migrations: open it once with this build \
                 (`hostwright serve`, or `store copy`, which migrates it first) before copying",
                from.display(),
                q::MIGRATIONS_SQLITE.len()
            )));
        }
    }
    let mut conn = sqlx::PgConnection::connect(to).await?;
    let database: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut conn)
        .await?;
    if let Some(table) = sqlx::query_scalar::<_, String>(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() ORDER BY table_name LIMIT 1",
    )
    .fetch_optional(&mut conn)
    .await?
    {
        return Err(AdminError::TargetNotEmpty { database, table });
    }
    // The target's schema, made by this build's own migrations (no secret
    // is sealed or opened here: the key is not needed).
    drop(super::sql::SqlStore::connect_postgres(to, 2, SecretKeys::ephemeral()).await?);

    let (tx_rows, mut rx) = tokio::sync::mpsc::channel::<Result<Batch>>(4);
    let path = from.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_tables(&path, tx_rows));
    let mut pg = sqlx::Connection::begin(&mut conn).await?;
    // (table, columns, their PostgreSQL types, rows, digest) as read from SQLite.
    type Copied = (String, Vec<String>, Vec<PgType>, u64, String);
    let mut copied: Vec<Copied> = Vec::new();
    let mut current: Option<(String, Vec<String>, Vec<PgType>)> = None;
    while let Some(batch) = rx.recv().await {
        match batch? {
            Batch::Table { name, columns } => {
                let types = pg_columns(&mut pg, &name).await?;
                if types.is_empty() {
                    return Err(AdminError::Mismatch {
                        table: name,
                        detail: "the table does not exist in PostgreSQL".into(),
                    });
                }
                let mut ordered = Vec::new();
                for c in &columns {
                    ordered.push(*types.get(c).ok_or_else(|| AdminError::Mismatch {
                        table: name.clone(),
                        detail: format!("column {c} does not exist in PostgreSQL"),
                    })?);
                }
                if let Some(extra) = types.keys().find(|k| !columns.contains(k)) {
                    return Err(AdminError::Mismatch {
                        table: name,
                        detail: format!("PostgreSQL has a column {extra} the store lacks"),
                    });
                }
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM \"{name}\""
                )))
                .fetch_one(&mut *pg)
                .await?;
                if n > 0 {
                    return Err(AdminError::TargetNotEmpty {
                        database: database.clone(),
                        table: name,
                    });
                }
                current = Some((name, columns, ordered));
            }
            Batch::Rows(rows) => {
                let (name, cols, types) = current.as_ref().expect("rows follow their table");
                // PostgreSQL takes at most 65,535 parameters per statement.
                let per = (60_000 / cols.len().max(1)).max(1);
                let mut rows = rows;
                while !rows.is_empty() {
                    let rest = rows.split_off(rows.len().min(per));
                    insert_rows(&mut pg, name, cols, types, rows).await?;
                    rows = rest;
                }
            }
            Batch::End { digest, rows } => {
                let (name, cols, types) = current.take().expect("end follows its table");
                copied.push((name, cols, types, rows, digest));
            }
        }
    }
    reader
        .await
        .map_err(|e| AdminError::Unsupported(format!("the SQLite reader failed: {e}")))?;
    // Sequences continue after the highest id ever handed out.
    let src = open_existing(from, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    for (table, _, _, _, _) in &copied {
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 \
             AND column_default LIKE 'nextval(%'",
        )
        .bind(table)
        .fetch_all(&mut *pg)
        .await?;
        for col in serials {
            ident(&col)?;
            let handed_out: i64 = src
                .query_row(
                    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0)",
                    [table],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{col}'), \
                 GREATEST(COALESCE((SELECT MAX(\"{col}\") FROM \"{table}\"), 0), $1, 1), \
                 GREATEST(COALESCE((SELECT MAX(\"{col}\") FROM \"{table}\"), 0), $1) > 0)"
            )))
            .bind(handed_out)
            .execute(&mut *pg)
            .await?;
        }
    }
    pg.commit().await?;
    let mut tables = Vec::new();
    for (table, cols, types, rows, digest) in copied {
        let (n, d) = pg_digest(&mut conn, &table, &cols, &types).await?;
        if n != rows || d != digest {
            return Err(AdminError::Mismatch {
                detail: format!(
                    "SQLite {rows} rows, digest {digest}; PostgreSQL {n} rows, digest {d}"
                ),
                table,
            });
        }
        tables.push(TableCopy {
            table,
            rows,
            digest,
        });
    }
    Ok(CopyReport { tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_row_order_and_sees_every_value() {
        let a = vec![Cell::Int(1), Cell::Bytes(b"x".to_vec()), Cell::Null];
        let b = vec![Cell::Int(2), Cell::Bytes(b"y".to_vec()), Cell::Int(0)];
        let mut d1 = TableDigest::default();
        d1.add(&a);
        d1.add(&b);
        let mut d2 = TableDigest::default();
        d2.add(&b);
        d2.add(&a);
        assert_eq!(d1.finish(), d2.finish());
        let mut d3 = TableDigest::default();
        d3.add(&a);
        d3.add(&[Cell::Int(2), Cell::Bytes(b"y".to_vec()), Cell::Null]);
        assert_ne!(d1.finish(), d3.finish(), "NULL and 0 differ");
        let mut d4 = TableDigest::default();
        d4.add(&a);
        assert_ne!(d1.finish(), d4.finish(), "a missing row shows");
    }

    #[test]
    fn only_the_stores_own_names_are_quoted_into_sql() {
        assert!(ident("outbox").is_ok());
        assert!(ident("audit_log").is_ok());
        assert!(ident("x\"; DROP TABLE jobs; --").is_err());
        assert!(ident("").is_err());
    }
}
