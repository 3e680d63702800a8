//! `[store]`: which database holds the store. Absent, SQLite at `<data dir>/cordon.db` (the
//! embedded default); `sqlite:/abs/path.db`, SQLite elsewhere; `postgres://...`, PostgreSQL
//! shared by several hosts, its password in a file, TLS checked against a CA file.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::postgres::{parse_url, PgOptions};

/// `[store]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    url: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    pool: Option<usize>,
    connect_timeout: Option<String>,
}

/// Which database holds the store.
#[derive(Debug, Clone, Default)]
pub enum StoreConfig {
    /// SQLite: at the path given, or (None) at `<data dir>/cordon.db`.
    #[default]
    #[allow(clippy::enum_variant_names)]
    SqliteDefault,
    Sqlite(PathBuf),
    Postgres(Box<PgOptions>),
}

impl StoreConfig {
    /// Reads `[store]`; the error names the key and what is wrong (never the password).
    pub fn load(file: StoreFile) -> Result<StoreConfig, (&'static str, String)> {
        let Some(url) = file.url.filter(|u| !u.is_empty()) else {
            if file.password_file.is_some() || file.ca_file.is_some() {
                return Err((
                    "store.url",
                    "password_file and ca_file are for PostgreSQL: give its url (postgres://user@host:port/database)".into(),
                ));
            }
            return Ok(StoreConfig::SqliteDefault);
        };
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err((
                    "store.url",
                    format!(
                        "\"{}\" is not an absolute path (sqlite:/abs/path.db)",
                        path.display()
                    ),
                ));
            }
            return Ok(StoreConfig::Sqlite(path));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err((
                "store.url",
                "not a store url: sqlite:/abs/path.db or postgres://user@host:port/database?sslmode=verify-full".into(),
            ));
        }
        let (config, sslmode) = parse_url(&url).map_err(|e| ("store.url", e))?;
        for (key, p) in [
            ("store.password_file", &file.password_file),
            ("store.ca_file", &file.ca_file),
        ] {
            if let Some(p) = p {
                if !p.is_absolute() {
                    return Err((key, format!("\"{}\" is not an absolute path", p.display())));
                }
            }
        }
        let pool = match file.pool {
            Some(0) => return Err(("store.pool", "must be at least 1".into())),
            Some(n) if n > 1000 => return Err(("store.pool", "at most 1000 connections".into())),
            Some(n) => n,
            None => 8,
        };
        let connect_timeout =
            sandbox::profile::parse_duration(file.connect_timeout.as_deref().unwrap_or("5s"))
                .map_err(|e| ("store.connect_timeout", e))?;
        if connect_timeout == 0 {
            return Err(("store.connect_timeout", "must be at least 1s".into()));
        }
        Ok(StoreConfig::Postgres(Box::new(PgOptions {
            config,
            sslmode,
            password_file: file.password_file,
            ca_file: file.ca_file,
            pool,
            connect_timeout: Duration::from_secs(connect_timeout),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(url: &str) -> Result<StoreConfig, (&'static str, String)> {
        StoreConfig::load(StoreFile {
            url: Some(url.into()),
            ..StoreFile::default()
        })
    }

    #[test]
    fn store_urls_are_checked_and_a_password_in_one_is_refused_without_repeating_it() {
        assert!(matches!(
            StoreConfig::load(StoreFile::default()),
            Ok(StoreConfig::SqliteDefault)
        ));
        assert!(matches!(
            load("sqlite:/srv/c.db"),
            Ok(StoreConfig::Sqlite(_))
        ));
        assert!(load("sqlite:rel.db").is_err());
        assert!(load("mysql://x@h/d").is_err());
        let (key, why) = load("postgres://cordon:hunter2@db:5432/cordon").unwrap_err();
        assert_eq!(key, "store.url");
        assert!(
            why.contains("password_file") && !why.contains("hunter2"),
            "{why}"
        );
        assert!(load("postgres://cordon@db:5432/cordon?sslmode=prefer").is_err());
        match load("postgres://cordon@db:5433/cordon?sslmode=require&application_name=x") {
            Ok(StoreConfig::Postgres(o)) => {
                assert_eq!(o.sslmode, super::super::postgres::SslMode::Require);
                assert_eq!(o.endpoint(), "db:5433");
                assert_eq!(o.pool, 8);
            }
            _ => panic!("a postgres url"),
        }
        match load("postgres://cordon@db/cordon") {
            Ok(StoreConfig::Postgres(o)) => {
                assert_eq!(o.sslmode, super::super::postgres::SslMode::VerifyFull)
            }
            _ => panic!("a postgres url"),
        }
    }
}
