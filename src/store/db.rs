//! The store's backend: one way to run SQL whatever the database (SQLite embedded, or
//! PostgreSQL shared by several hosts), so that each store method is written once.
//!
//! How to write a store method:
//!
//! ```text
//! pub fn thing(&self, id: i64) -> Result<Option<Thing>> {
//!     self.db.opt("SELECT a, b FROM things WHERE id = ?1", args![id], |r| {
//!         Ok(Thing { a: r.get(0)?, b: r.get(1)? })
//!     })
//! }
//! ```
//!
//! - Statements are portable SQL with `?N` placeholders (rewritten to `$N` for PostgreSQL).
//!   Parameters are [`Value`]s (`args![...]` converts integers, bools, strings, bytes and
//!   options of them); rows are read by index with `r.get::<T>(i)`.
//! - [`Sql`] is what runs them: [`Db`] (each statement on its own) and [`Tx`] (inside
//!   [`Db::transaction`], committed when the closure returns `Ok`, rolled back otherwise).
//!   The helpers `execute` (rows changed), `all`, `opt`, `one` and `exists` come with it.
//! - A transaction that reads and then writes takes its rows with `... FOR UPDATE` (dropped
//!   for SQLite, whose transactions here all take the write lock first, `BEGIN IMMEDIATE`),
//!   or starts with the write that serializes it (the user-id counter).
//! - The dialects differ in a few words, rewritten in one place ([`dialect`]): write
//!   `GREATEST(a, b)` for the larger of two values, `ON CONFLICT ... DO NOTHING` (not
//!   `INSERT OR IGNORE`), `RETURNING id` (not `last_insert_rowid()`), and quote the column
//!   `"user"` (a reserved word in PostgreSQL). Integers are 64-bit, booleans are integers
//!   0/1 on both. Schema blocks are written for SQLite and translated ([`postgres_ddl`]):
//!   `INTEGER` becomes `BIGINT`, `INTEGER PRIMARY KEY` a `BIGSERIAL`, `BLOB` `BYTEA`.
//! - A new schema version: one block in `migrate` (SQLite) and the same constant in
//!   `postgres::MIGRATIONS`, both with the same version number.

use std::sync::Mutex;

use super::{Result, StoreError};

/// A value given to or read from a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(v.to_vec())
    }
}
impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Value {
        Value::Blob(v.clone())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

/// The parameters of a statement, as [`Value`]s.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::db::Value::from($v)),*] as &[$crate::store::db::Value]
    };
}
pub(crate) use args;

/// A type a column is read as.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
    const NAME: &'static str;
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<i64> {
        match v {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
    const NAME: &'static str = "an integer";
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<bool> {
        match v {
            Value::Int(n) => Some(*n != 0),
            _ => None,
        }
    }
    const NAME: &'static str = "a boolean";
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<String> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
    const NAME: &'static str = "text";
}
impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Option<Vec<u8>> {
        match v {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
    const NAME: &'static str = "bytes";
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Option<T>> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
    const NAME: &'static str = T::NAME;
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    /// Column `i` as a `T`; a column of another type (or missing) is a database error.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| {
            StoreError::Database(DbError::Type(format!(
                "column {i} holds {v:?}, not {}",
                T::NAME
            )))
        })
    }
}

/// A database's failure, whichever the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// PostgreSQL could not be reached (refused, timed out, gone): what was tried and what
    /// to check.
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
    /// A column of an unexpected type (a schema not this cordon's).
    #[error("the database: {0}")]
    Type(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(DbError::Sqlite(e))
    }
}

/// What runs statements: [`Db`] (each on its own) or [`Tx`] (one transaction).
pub trait Sql {
    /// Runs a statement; the rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64>;
    /// Runs a query; its rows.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;

    /// Every row, each read by `f`.
    fn all<T>(&self, sql: &str, params: &[Value], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>>
    where
        Self: Sized,
    {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// The first row read by `f`, if there is one.
    fn opt<T>(
        &self,
        sql: &str,
        params: &[Value],
        f: impl Fn(&Row) -> Result<T>,
    ) -> Result<Option<T>>
    where
        Self: Sized,
    {
        self.query(sql, params)?.first().map(f).transpose()
    }

    /// The first row read by `f`; none is a database error (for aggregates, `RETURNING`).
    fn one<T>(&self, sql: &str, params: &[Value], f: impl Fn(&Row) -> Result<T>) -> Result<T>
    where
        Self: Sized,
    {
        self.opt(sql, params, f)?
            .ok_or_else(|| StoreError::Database(DbError::Type(format!("no row from: {sql}"))))
    }

    /// Whether the query gives a row.
    fn exists(&self, sql: &str, params: &[Value]) -> Result<bool>
    where
        Self: Sized,
    {
        Ok(!self.query(sql, params)?.is_empty())
    }
}

/// The database: SQLite (one connection, WAL) or a pool of PostgreSQL connections.
pub enum Db {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(Box<super::postgres::Pool>),
}

fn lock(
    c: &Mutex<rusqlite::Connection>,
) -> Result<std::sync::MutexGuard<'_, rusqlite::Connection>> {
    c.lock()
        .map_err(|_| StoreError::Broken("the database lock is poisoned".into()))
}

impl Db {
    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    /// SQLite's takes the write lock first (`BEGIN IMMEDIATE`: a transaction that reads then
    /// writes would otherwise fail at once against a writer in another process);
    /// PostgreSQL's is read committed, its reads that decide a write `FOR UPDATE`.
    pub fn transaction<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match self {
            Db::Sqlite(c) => {
                let mut conn = lock(c)?;
                let tx = Tx::Sqlite(
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
                );
                let out = f(&tx)?;
                match tx {
                    Tx::Sqlite(t) => t.commit()?,
                    Tx::Postgres(_) => unreachable!(),
                }
                Ok(out)
            }
            Db::Postgres(pool) => {
                let tx = Tx::Postgres(pool.begin()?);
                let out = f(&tx)?;
                match tx {
                    Tx::Postgres(t) => t.commit()?,
                    Tx::Sqlite(_) => unreachable!(),
                }
                Ok(out)
            }
        }
    }
}

impl Sql for Db {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        match self {
            Db::Sqlite(c) => sqlite_execute(&*lock(c)?, sql, params),
            Db::Postgres(pool) => pool.execute(sql, params),
        }
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self {
            Db::Sqlite(c) => sqlite_query(&*lock(c)?, sql, params),
            Db::Postgres(pool) => pool.query(sql, params),
        }
    }
}

/// One transaction (see [`Db::transaction`]).
pub enum Tx<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Postgres(super::postgres::PgTx<'a>),
}

impl Sql for Tx<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        match self {
            Tx::Sqlite(t) => sqlite_execute(t, sql, params),
            Tx::Postgres(t) => t.execute(sql, params),
        }
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self {
            Tx::Sqlite(t) => sqlite_query(t, sql, params),
            Tx::Postgres(t) => t.query(sql, params),
        }
    }
}

impl rusqlite::types::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn sqlite_execute(c: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<u64> {
    let sql = dialect::sqlite(sql);
    let mut st = c.prepare_cached(&sql)?;
    Ok(st.execute(rusqlite::params_from_iter(params.iter()))? as u64)
}

fn sqlite_query(c: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
    use rusqlite::types::ValueRef;
    let sql = dialect::sqlite(sql);
    let mut st = c.prepare_cached(&sql)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Int(n),
                // No column here is a float; one would be a schema not this cordon's.
                ValueRef::Real(f) => Value::Int(f as i64),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(Row(row));
    }
    Ok(out)
}

/// Where the two dialects differ, each difference named once.
pub mod dialect {
    use std::borrow::Cow;

    /// For SQLite: `FOR UPDATE` dropped (its transactions take the write lock first), and
    /// `GREATEST(a, b)` is its two-argument `MAX(a, b)`.
    pub fn sqlite(sql: &str) -> Cow<'_, str> {
        if !sql.contains(" FOR UPDATE") && !sql.contains("GREATEST(") {
            return Cow::Borrowed(sql);
        }
        Cow::Owned(sql.replace(" FOR UPDATE", "").replace("GREATEST(", "MAX("))
    }

    /// For PostgreSQL: placeholders `?N` become `$N` (outside quoted text).
    pub fn postgres(sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 8);
        let mut quoted: Option<char> = None;
        for ch in sql.chars() {
            match (quoted, ch) {
                (None, '\'' | '"') => quoted = Some(ch),
                (Some(q), c) if c == q => quoted = None,
                (None, '?') => {
                    out.push('$');
                    continue;
                }
                _ => {}
            }
            out.push(ch);
        }
        out
    }
}

/// A schema block written for SQLite, as PostgreSQL takes it: 64-bit integers, keys that
/// number themselves (`BIGSERIAL`), bytes as `BYTEA`.
pub fn postgres_ddl(sqlite: &str) -> String {
    sqlite
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_dialect_words_are_rewritten_for_each_database() {
        assert_eq!(
            dialect::postgres("SELECT '?1' FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1' FROM t WHERE a = $1 AND b = $12"
        );
        assert_eq!(
            dialect::sqlite("SELECT x FROM t WHERE a = ?1 FOR UPDATE"),
            "SELECT x FROM t WHERE a = ?1"
        );
        assert_eq!(
            dialect::sqlite("UPDATE t SET a = GREATEST(a, ?1)"),
            "UPDATE t SET a = MAX(a, ?1)"
        );
        assert_eq!(
            postgres_ddl("id INTEGER PRIMARY KEY, n INTEGER NOT NULL, b BLOB"),
            "id BIGSERIAL PRIMARY KEY, n BIGINT NOT NULL, b BYTEA"
        );
    }
}
