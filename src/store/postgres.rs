//! The store on PostgreSQL: a pool of connections (tokio-postgres, TLS through rustls with
//! ring) driven by a runtime of its own, so that the store's methods stay synchronous for
//! every caller, async or not: a statement is spawned on the pool's runtime and waited for
//! with `futures::executor::block_on` (a tokio `block_on` inside a worker would panic).
//!
//! Connections broken (the server stopped, restarted, the network gone) are dropped and new
//! ones made at the next statement: the store recovers without a restart of the host. While
//! none can be made, every statement fails with [`DbError::Unreachable`], which names the
//! server and what to check.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio_postgres::types::{IsNull, ToSql, Type};

use super::db::{dialect, DbError, Row, Value};
use super::{Result, StoreError};

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS (a server on the same machine or a private network only).
    Disable,
    /// TLS, the server's certificate checked against `ca_file`, its name not checked.
    Require,
    /// TLS, the certificate checked against `ca_file` and for the host's name (the default).
    VerifyFull,
}

/// How to reach PostgreSQL (from `[store]`; the password is read from its file at open).
#[derive(Clone)]
pub struct PgOptions {
    /// The url's parts, its `sslmode` taken out (tokio-postgres knows no `verify-full`).
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    pub password_file: Option<std::path::PathBuf>,
    pub ca_file: Option<std::path::PathBuf>,
    pub pool: usize,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PgOptions {
    /// Never the password (the config holds it once read).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgOptions({})", self.describe())
    }
}

impl PgOptions {
    /// `host:port` (the first of each), for messages.
    pub fn endpoint(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// The database as messages name it: user, endpoint, database; never a password.
    pub fn describe(&self) -> String {
        format!(
            "postgres://{}@{}/{}",
            self.config.get_user().unwrap_or("?"),
            self.endpoint(),
            self.config.get_dbname().unwrap_or("?")
        )
    }
}

/// Parses `postgres://user@host:port/db?sslmode=...` (no password in it).
pub fn parse_url(url: &str) -> std::result::Result<(tokio_postgres::Config, SslMode), String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut sslmode = SslMode::VerifyFull;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => {
                sslmode = match v {
                    "disable" => SslMode::Disable,
                    "require" => SslMode::Require,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                    "sslmode \"{other}\" is not one cordon knows (disable, require, verify-full)"
                ))
                    }
                }
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let config: tokio_postgres::Config = url.parse().map_err(|e| {
        format!(
            "not a PostgreSQL url (postgres://user@host:port/database?sslmode=verify-full): {e}"
        )
    })?;
    if config.get_password().is_some() {
        return Err(
            "the url holds a password: put it in a file named by [store] password_file instead"
                .into(),
        );
    }
    if config.get_user().is_none() {
        return Err("the url names no user (postgres://USER@host:port/database)".into());
    }
    if config.get_dbname().is_none() {
        return Err("the url names no database (postgres://user@host:port/DATABASE)".into());
    }
    Ok((config, sslmode))
}

/// The TLS client for `opts`: roots from `ca_file`, ring as the provider.
fn tls(opts: &PgOptions) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    if opts.sslmode == SslMode::Disable {
        return Ok(None);
    }
    let Some(ca) = &opts.ca_file else {
        return Err(StoreError::Broken(
            "[store] ca_file is needed for TLS to PostgreSQL (sslmode require or verify-full, the default): name the PEM file of the CA that signed the server's certificate".into(),
        ));
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| {
        StoreError::Broken(format!("reading [store] ca_file {}: {e}", ca.display()))
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| {
            StoreError::Broken(format!("reading [store] ca_file {}: {e}", ca.display()))
        })?;
        roots
            .add(cert)
            .map_err(|e| StoreError::Broken(format!("[store] ca_file {}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(StoreError::Broken(format!(
            "[store] ca_file {} holds no certificate",
            ca.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Broken(format!("TLS to PostgreSQL: {e}")))?;
    let roots = Arc::new(roots);
    let config = match opts.sslmode {
        SslMode::Require => {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| StoreError::Broken(format!("TLS to PostgreSQL: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
                .with_no_client_auth()
        }
        _ => builder.with_root_certificates(roots).with_no_client_auth(),
    };
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// `sslmode=require`: the chain checked against the CA, the name in it not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // The chain was good (webpki checks the name last).
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The connections, and the runtime that drives them.
pub struct Pool {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    opts: PgOptions,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// Idle connections, and how many exist in all (idle or lent).
    state: Mutex<(Vec<Arc<tokio_postgres::Client>>, usize)>,
    freed: Condvar,
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Never blocks (a pool may be dropped inside an async task).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A connection lent by the pool, given back when dropped (unless it broke).
struct Lent<'a> {
    pool: &'a Pool,
    client: Option<Arc<tokio_postgres::Client>>,
    /// Taken from the idle ones (it may have died since it was last used).
    reused: bool,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.state.lock().unwrap_or_else(|e| e.into_inner());
        match self.client.take() {
            Some(c) if !c.is_closed() => st.0.push(c),
            _ => st.1 -= 1,
        }
        self.pool.freed.notify_one();
    }
}

impl Pool {
    /// Builds the pool and makes its first connection (so that a wrong url, password or
    /// certificate is found at start, not at the first login).
    pub fn open(mut opts: PgOptions) -> Result<Pool> {
        if let Some(file) = &opts.password_file {
            let password = read_password(file)?;
            opts.config.password(password.as_bytes());
        }
        opts.config.connect_timeout(opts.connect_timeout);
        let tls = tls(&opts)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cordon-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Broken(format!("starting the database's runtime: {e}")))?;
        let pool = Pool {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            opts,
            tls,
            state: Mutex::new((Vec::new(), 0)),
            freed: Condvar::new(),
        };
        drop(pool.lend()?);
        Ok(pool)
    }

    /// Runs `f` on the pool's runtime and waits for it, from any thread.
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        futures::executor::block_on(self.handle.spawn(f)).map_err(|e| {
            StoreError::Database(DbError::Unreachable(format!(
                "the database's runtime stopped: {e}"
            )))
        })
    }

    fn connect(&self) -> Result<Arc<tokio_postgres::Client>> {
        let config = self.opts.config.clone();
        let tls = self.tls.clone();
        let timeout = self.opts.connect_timeout;
        let connected = self.run(async move {
            let attempt = async {
                match tls {
                    Some(tls) => {
                        let (client, conn) = config.connect(tls).await?;
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                        Ok(client)
                    }
                    None => {
                        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                        Ok(client)
                    }
                }
            };
            match tokio::time::timeout(timeout + Duration::from_secs(1), attempt).await {
                Ok(r) => r.map_err(Some),
                Err(_) => Err(None),
            }
        })?;
        connected.map(Arc::new).map_err(|e| self.connect_error(e))
    }

    /// Why no connection could be made, naming the server and what to check.
    fn connect_error(&self, e: Option<tokio_postgres::Error>) -> StoreError {
        let at = self.opts.endpoint();
        let Some(e) = e else {
            return StoreError::Database(DbError::Unreachable(format!(
                "connecting to PostgreSQL at {at} timed out ([store] connect_timeout {}s): check that the server runs and that the network lets this host reach it",
                self.opts.connect_timeout.as_secs()
            )));
        };
        if let Some(db) = e.as_db_error() {
            // The server answered and refused: a login, a database, a permission.
            let code = db.code();
            if *code == tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                || *code == tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW
            {
                return StoreError::Database(DbError::Unreachable(format!(
                    "PostgreSQL at {at} is shutting down or starting ({})",
                    db.message()
                )));
            }
            return StoreError::Broken(format!(
                "PostgreSQL at {at} refused {}: {} (check the user and database in [store] url, the password in [store] password_file, and the server's pg_hba.conf)",
                self.opts.describe(),
                db.message()
            ));
        }
        let text = e.to_string();
        let source = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        let lower = format!("{text}{source}").to_lowercase();
        if lower.contains("tls") || lower.contains("certificate") {
            return StoreError::Broken(format!(
                "TLS to PostgreSQL at {at} failed: {text}{source} (check [store] ca_file and that the server's certificate names the host in [store] url)"
            ));
        }
        StoreError::Database(DbError::Unreachable(format!(
            "cannot connect to PostgreSQL at {at}: {text}{source}: check that the server runs and listens there, and [store] url"
        )))
    }

    /// A connection: an idle one, a new one while fewer than `pool` exist, else the next
    /// one given back.
    fn lend(&self) -> Result<Lent<'_>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(c) = st.0.pop() {
                if c.is_closed() {
                    st.1 -= 1;
                    continue;
                }
                return Ok(Lent {
                    pool: self,
                    client: Some(c),
                    reused: true,
                });
            }
            if st.1 < self.opts.pool {
                st.1 += 1;
                drop(st);
                return match self.connect() {
                    Ok(c) => Ok(Lent {
                        pool: self,
                        client: Some(c),
                        reused: false,
                    }),
                    Err(e) => {
                        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                        st.1 -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A statement's failure: a broken connection is unreachable (and not given back).
    fn statement_error(&self, lent: &mut Lent<'_>, e: tokio_postgres::Error) -> StoreError {
        let closed = e.is_closed()
            || lent.client.as_ref().is_none_or(|c| c.is_closed())
            || e.code().is_some_and(|c| {
                *c == tokio_postgres::error::SqlState::ADMIN_SHUTDOWN
                    || *c == tokio_postgres::error::SqlState::CRASH_SHUTDOWN
                    || *c == tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW
            });
        if closed {
            lent.client = None;
            return StoreError::Database(DbError::Unreachable(format!(
                "the connection to PostgreSQL at {} was lost: {e}",
                self.opts.endpoint()
            )));
        }
        StoreError::Database(DbError::Postgres(e))
    }

    fn on(
        &self,
        lent: &mut Lent<'_>,
        sql: &str,
        params: &[Value],
        rows: bool,
    ) -> Result<(u64, Vec<Row>)> {
        let client = lent.client.clone().ok_or_else(|| {
            StoreError::Database(DbError::Unreachable("the connection was lost".into()))
        })?;
        let sql = dialect::postgres(sql);
        let params = params.to_vec();
        let out = self.run(async move {
            let refs: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            if rows {
                let rows = client.query(&sql, &refs).await?;
                let rows = rows
                    .iter()
                    .map(read_row)
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok((0, rows))
            } else {
                Ok((client.execute(&sql, &refs).await?, Vec::new()))
            }
        })?;
        out.map_err(|e| self.statement_error(lent, e))
    }

    /// One statement on its own. A connection found dead when reused (the server restarted
    /// since) is dropped and the statement tried once more on a new one.
    fn auto(&self, sql: &str, params: &[Value], rows: bool) -> Result<(u64, Vec<Row>)> {
        let mut lent = self.lend()?;
        match self.on(&mut lent, sql, params, rows) {
            Err(StoreError::Database(DbError::Unreachable(_))) if lent.reused => {
                drop(lent);
                let mut lent = self.lend()?;
                self.on(&mut lent, sql, params, rows)
            }
            other => other,
        }
    }

    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        Ok(self.auto(sql, params, false)?.0)
    }

    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        Ok(self.auto(sql, params, true)?.1)
    }

    /// Begins a transaction on a connection of its own.
    pub fn begin(&self) -> Result<PgTx<'_>> {
        // A reused connection may have died since: a fresh one is tried once.
        let mut lent = self.lend()?;
        match self.on(&mut lent, "BEGIN", &[], false) {
            Err(StoreError::Database(DbError::Unreachable(_))) if lent.reused => {
                drop(lent);
                lent = self.lend()?;
                self.on(&mut lent, "BEGIN", &[], false)?;
            }
            other => {
                other?;
            }
        }
        Ok(PgTx {
            lent: std::cell::RefCell::new(lent),
            done: std::cell::Cell::new(false),
        })
    }
}

/// A transaction on PostgreSQL: rolled back when dropped without [`PgTx::commit`].
pub struct PgTx<'a> {
    lent: std::cell::RefCell<Lent<'a>>,
    done: std::cell::Cell<bool>,
}

impl PgTx<'_> {
    fn run(&self, sql: &str, params: &[Value], rows: bool) -> Result<(u64, Vec<Row>)> {
        let mut lent = self.lent.borrow_mut();
        let pool = lent.pool;
        pool.on(&mut lent, sql, params, rows)
    }

    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        Ok(self.run(sql, params, false)?.0)
    }

    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        Ok(self.run(sql, params, true)?.1)
    }

    pub fn commit(self) -> Result<()> {
        self.done.set(true);
        self.run("COMMIT", &[], false).map(|_| ())
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if !self.done.get() {
            // A connection that cannot roll back is not given back to the pool.
            if self.run("ROLLBACK", &[], false).is_err() {
                self.lent.borrow_mut().client = None;
            }
        }
    }
}

/// A value as a parameter: integers fit the column's width, or are refused.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ => Err(format!("an integer given for a column of type {ty}").into()),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A row as values, by each column's type.
fn read_row(r: &tokio_postgres::Row) -> std::result::Result<Row, tokio_postgres::Error> {
    let mut out = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match *c.type_() {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|n| Value::Int(n.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|n| Value::Int(n.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|b| Value::Int(b.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
        };
        out.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(out))
}

/// The password from its file: its first line. A file others may read is refused.
fn read_password(file: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).map_err(|e| {
        StoreError::Broken(format!("[store] password_file {}: {e}", file.display()))
    })?;
    if meta.mode() & 0o077 != 0 {
        return Err(StoreError::Broken(format!(
            "[store] password_file {} may be read by others (mode {:o}): chmod 600 it",
            file.display(),
            meta.mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        StoreError::Broken(format!("[store] password_file {}: {e}", file.display()))
    })?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(StoreError::Broken(format!(
            "[store] password_file {} is empty",
            file.display()
        )));
    }
    Ok(password)
}

/// PostgreSQL's schema versions, each the same logical schema as SQLite's of that number
/// (`migrate` in mod.rs): PostgreSQL starts at version 8, SQLite's blocks up to it written
/// as one (translated by `db::postgres_ddl`). A new version: one entry here, beside its
/// SQLite block.
fn migrations() -> Vec<(i64, String)> {
    use super::db::postgres_ddl;
    let v8 = [
        postgres_ddl(super::SCHEMA_V1),
        "ALTER TABLE users ADD COLUMN password TEXT;".into(),
        postgres_ddl(super::SCHEMA_V2),
        postgres_ddl(super::SCHEMA_CHECKPOINT),
        postgres_ddl(super::secrets::SCHEMA_V5),
        postgres_ddl(super::alerts::SCHEMA_ALERTS),
        postgres_ddl(super::totp::SCHEMA_TOTP),
        postgres_ddl(super::lockdown::SCHEMA_LOCKDOWN),
        // SQLite orders recordings by its implicit rowid; here a column of that name.
        "ALTER TABLE recordings ADD COLUMN rowid BIGSERIAL;".into(),
    ]
    .join("\n");
    vec![(8, v8), (9, postgres_ddl(super::cluster::SCHEMA_CLUSTER))]
}

/// The key of the advisory lock migrations are taken under ("cordon" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_7264_6f6e;

/// Brings the database to [`super::SCHEMA_VERSION`] in one transaction under an advisory
/// lock, so that hosts starting together migrate once; a newer schema is refused.
pub fn migrate(pool: &Pool) -> Result<()> {
    let tx = pool.begin()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(?1)",
        &[Value::Int(MIGRATION_LOCK)],
    )?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)",
        &[],
    )?;
    let version = match tx
        .query("SELECT MAX(version) FROM schema_version", &[])?
        .first()
    {
        Some(r) => r.get::<Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    };
    if version > super::SCHEMA_VERSION {
        return Err(StoreError::Broken(format!(
            "the database has schema version {version}, newer than this cordon knows ({}): upgrade cordon",
            super::SCHEMA_VERSION
        )));
    }
    for (v, sql) in migrations() {
        if v > version {
            tx.batch(&sql)?;
            tx.execute("DELETE FROM schema_version", &[])?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                &[Value::Int(v)],
            )?;
        }
    }
    tx.commit()
}

impl PgTx<'_> {
    /// Several statements, no parameters (a schema block).
    pub fn batch(&self, sql: &str) -> Result<()> {
        let mut lent = self.lent.borrow_mut();
        let pool = lent.pool;
        let client = lent.client.clone().ok_or_else(|| {
            StoreError::Database(DbError::Unreachable("the connection was lost".into()))
        })?;
        let sql = sql.to_string();
        let out = pool.run(async move { client.batch_execute(&sql).await })?;
        out.map_err(|e| pool.statement_error(&mut lent, e))
    }
}
