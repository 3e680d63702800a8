//! The harness cordon's integration tests (`tests/`) and benchmarks (`benches/`) share, one
//! home for each piece:
//!
//! - [`host`]: a `cordon serve` of the caller's own (data directory, configuration, users
//!   with fresh keys, OpenSSH's `ssh`, tmux windows, the audit log and recordings);
//! - [`sandbox`]: `cordon sandbox` runs in a fresh workspace, with a place outside every grant;
//! - [`keyring`]: a host's data keys, opened with the master key the harness gave it;
//! - [`objects`]: a real S3-compatible server (moto) with a bucket of the test's own;
//! - [`process`], [`wait`], [`net`], [`ssh`], [`tmux`], [`http`]: what those are made of, and
//!   what a test or a benchmark needs beside them.
//!
//! The `cordon` binary comes from the caller. Cargo says where it built it only to the cordon
//! package's own test and bench targets (`env!("CARGO_BIN_EXE_cordon")`), never to another
//! crate, so each of them names it once and hands it to what it starts:
//!
//! ```ignore
//! const CORDON: &str = env!("CARGO_BIN_EXE_cordon");
//!
//! let h = Host::start(CORDON);
//! let env = Env::new(CORDON);
//! ```

pub mod host;
pub mod http;
pub mod keyring;
pub mod net;
pub mod objects;
pub mod postgres;
pub mod process;
pub mod sandbox;
pub mod ssh;
pub mod tmux;
pub mod wait;
