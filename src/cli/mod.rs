//! The command line's host-shell commands (`cordon user|secret|token|key|rec|audit ...`), the
//! sandbox's (`cordon sandbox|profile|doctor`) and `cordon completions`: faces like SSH and
//! the API. Whoever can open
//! the data directory (mode 0700) administers cordon; the host-shell commands act through the
//! service layer as the host's own shell (a local-admin principal, `local:<account>` in the
//! audit log), so that each rule and each audit event is the one every other face goes
//! through. What they print that users or sessions control is escaped ([`crate::text`]).

pub mod alerts;
pub mod audit;
pub mod claude;
pub mod completions;
pub mod evidence;
pub mod keys;
pub mod lockdown;
#[cfg(test)]
mod manual;
pub mod recordings;
pub mod sandbox;
pub mod secrets;
pub mod totp;
pub mod users;

use crate::paths::DataDir;
use crate::service::{Principal, Service};
use std::sync::Arc;

/// The service, and the host's shell as its caller.
pub struct Admin {
    pub svc: Arc<Service>,
    pub me: Principal,
}

impl Admin {
    pub fn open(dir: DataDir, config: Option<&std::path::Path>) -> Result<Admin, String> {
        let config = crate::config::Config::load(config, &dir.root).map_err(|e| e.to_string())?;
        let (svc, tightened) = Service::open(dir, config).map_err(|e| e.to_string())?;
        for t in tightened {
            eprintln!("cordon: {t}");
        }
        Ok(Admin {
            svc,
            me: Principal::local_admin(),
        })
    }
}

/// An error for the person at the shell; exit status 1.
pub fn fail(e: impl std::fmt::Display) -> i32 {
    eprintln!("cordon: {}", crate::text::printable_lines(&e.to_string()));
    1
}

/// The value, or the error said and the command ended with status 1.
macro_rules! tryc {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::cli::fail(e),
        }
    };
}
pub(crate) use tryc;
