//! `cordon claude import`: a person's Claude Code settings carried into their cordon home,
//! through the service (what is copied and what is left out: `crate::claude`).

use super::{tryc, Admin};
use std::path::{Path, PathBuf};

/// Imports from `from` (default: this account's home) into `user`'s cordon home (default:
/// the cordon user named like this account, as the embedded `cordon` names it).
pub fn import(a: &Admin, user: Option<String>, from: Option<PathBuf>) -> i32 {
    let user = user.unwrap_or_else(crate::accounts::current);
    let Some(from) = from.or_else(|| std::env::var_os("HOME").map(PathBuf::from)) else {
        return super::fail("$HOME is unset: give --from DIR (the directory holding .claude)");
    };
    let done = tryc!(a.svc.import_claude(&a.me, &user, Path::new(&from)));
    let show = crate::text::printable_lines;
    for c in &done.copied {
        println!("copied    {}", show(c));
    }
    for l in &done.left_out {
        println!("left out  {}", show(l));
    }
    for s in &done.skipped {
        println!("skipped   {}", show(s));
    }
    println!(
        "imported Claude Code's settings from {} into {user}'s cordon home",
        show(&from.display().to_string())
    );
    0
}
