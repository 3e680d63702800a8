//! The store's tests on both databases: [`store_tests!`] makes two tests of each body, one
//! on SQLite in a temporary directory and one on a fresh database of a private PostgreSQL
//! server (started once per test process, TLS on, checked with verify-full).

use super::Store;

#[path = "../../support/src/postgres.rs"]
#[allow(dead_code)]
pub mod server;

/// What keeps a test's database alive (its directory).
pub struct Guard {
    _dir: tempfile::TempDir,
}

/// A new store on SQLite.
pub fn sqlite() -> (Store, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("db")).unwrap();
    (s, Guard { _dir: dir })
}

/// A new store on a fresh PostgreSQL database (the private server started on first use).
pub fn postgres() -> (Store, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let server = server::PgServer::shared();
    let db = server.create_database();
    // `[store]` as a host's configuration file gives it.
    #[derive(serde::Deserialize)]
    struct File {
        store: super::StoreFile,
    }
    let file: File = toml::from_str(&server.store_toml(&db)).unwrap();
    let config = super::StoreConfig::load(file.store).unwrap();
    let s = Store::open_config(&config, &dir.path().join("unused.db")).unwrap();
    (s, Guard { _dir: dir })
}

/// Each `fn name(s) { body }` becomes `name::sqlite` and `name::postgres`, the body run
/// with `s` a new store on each.
macro_rules! store_tests {
    ($( $(#[$m:meta])* fn $name:ident($s:ident) $body:block )*) => {
        $(
            $(#[$m])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[test]
                fn sqlite() {
                    let ($s, _guard) = $crate::store::testing::sqlite();
                    $body
                }
                #[test]
                fn postgres() {
                    let ($s, _guard) = $crate::store::testing::postgres();
                    $body
                }
            }
        )*
    };
}
pub(crate) use store_tests;
