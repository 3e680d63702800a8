//! `cordon key ...`: the key hierarchy from the host's shell. Rotations, status and backups
//! go through the service (audited); a restore adds the backup's keys to the ring before the
//! service opens (a data directory whose keys were lost cannot open its audit log), then
//! records itself through it.

use super::{fail, tryc, Admin};
use crate::keys::{backup, Keys};
use crate::paths::DataDir;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// `cordon key rotate --master [--new-key-file FILE]`.
pub fn rotate_master(a: &Admin, new_file: Option<&Path>) -> i32 {
    let r = tryc!(a.svc.rotate_master_key(&a.me, new_file));
    println!(
        "master key {} now wraps the {} data keys (nothing was re-encrypted)",
        r.id, r.count
    );
    if r.moved {
        println!(
            "it replaced {}; a running cordon serve picks it up by itself",
            r.file.display()
        );
    } else {
        println!(
            "give cordon the key in {} from now on (point $CORDON_MASTER_KEY_FILE, [keys] master_key_file or the systemd credential at it), and restart running hosts",
            r.file.display()
        );
    }
    0
}

/// `cordon key rotate --secrets`.
pub fn rotate_secrets(a: &Admin) -> i32 {
    let (id, n) = tryc!(a.svc.rotate_secrets_key(&a.me));
    println!("secrets key {id} is now current; {n} stored secret(s) sealed again with it");
    0
}

/// `cordon key status [--json]`: the master key's source, each current key's age.
pub fn status(a: &Admin, json: bool) -> i32 {
    let s = tryc!(a.svc.key_status(&a.me));
    let day = |d: std::time::Duration| d.as_secs() / 86_400;
    if json {
        let keys: Vec<_> = s
            .ages
            .iter()
            .map(|k| {
                serde_json::json!({
                    "key": k.key, "id": k.id, "age_seconds": k.age.as_secs(),
                    "period_seconds": k.period.map(|p| p.as_secs()), "overdue": k.overdue(),
                })
            })
            .collect();
        let v = serde_json::json!({
            "master": { "id": s.master_id, "source": s.master_source.to_string() },
            "keys": keys,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    println!("master key {} from {}", s.master_id, s.master_source);
    for k in &s.ages {
        let period = match k.period {
            Some(p) => format!("rotate every {} days", day(p)),
            None => "not rotated in place".into(),
        };
        let state = if k.overdue() {
            format!("OVERDUE: {}", k.fix())
        } else {
            "ok".into()
        };
        println!(
            "{:<10} {:<16} {:>4} days old  {period:<22} {state}",
            k.key,
            k.id,
            day(k.age)
        );
    }
    if s.ages.iter().any(|k| k.overdue()) {
        return 3;
    }
    0
}

/// A passphrase: a no-echo prompt (twice when `confirm`) on a terminal, else the first line
/// of standard input.
fn passphrase(confirm: bool) -> Result<Zeroizing<String>, String> {
    let stdin = std::io::stdin();
    let read = |prompt: &str| -> Result<Zeroizing<String>, String> {
        let mut line = Zeroizing::new(String::new());
        if stdin.is_terminal() {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
            let _quiet = super::secrets::NoEcho::on(0);
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            eprintln!();
        } else {
            stdin
                .lock()
                .take(4096)
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
        }
        let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_string());
        if trimmed.is_empty() {
            return Err("give the passphrase on standard input (one line)".into());
        }
        Ok(trimmed)
    };
    let first = read("passphrase for the key backup (not shown): ")?;
    if confirm && stdin.is_terminal() {
        let again = read("the same passphrase again: ")?;
        if *again != *first {
            return Err("the two passphrases differ; nothing was written".into());
        }
    }
    Ok(first)
}

/// `cordon key backup -o FILE`: every data key, sealed with a passphrase.
pub fn backup(a: &Admin, out: &Path) -> i32 {
    let pass = match passphrase(true) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Some(why) = backup::weak(&pass) {
        return fail(why);
    }
    let bytes = tryc!(a.svc.key_backup(&a.me, &pass));
    if let Err(e) = crate::secrets::write_private(out, &bytes) {
        return fail(format!(
            "{e} (the backup is written to a new file, never over one)"
        ));
    }
    println!(
        "wrote {}: every data key, sealed with the passphrase (Argon2id, AES-256-GCM). Keep it, and the passphrase, apart from the host",
        out.display()
    );
    0
}

/// `cordon key restore FILE [--replace]`: adds the backup's keys to this data directory's
/// ring, wrapped by its master key (a fresh one is generated where none is configured).
pub fn restore(dir: &DataDir, config: Option<&Path>, file: &Path, replace: bool) -> i32 {
    let cfg = tryc!(crate::config::Config::load(config, &dir.root));
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(format!("reading {}: {e}", file.display())),
    };
    let pass = match passphrase(false) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let opened = tryc!(backup::open(&bytes, &pass));
    tryc!(dir.ensure());
    let keys = match Keys::open(dir, &cfg.master) {
        Ok(k) => k,
        Err(e @ (crate::keys::KeyError::WrongMaster { .. } | crate::keys::KeyError::NoMaster { .. })) => {
            return fail(format!(
                "{e}\nto restore into this data directory anyway, move {} aside first: a new key ring is made, wrapped by the master key cordon finds now",
                dir.root.join("keys/keyring.json").display()
            ))
        }
        Err(e) => return fail(e),
    };
    for n in &keys.notes {
        eprintln!("cordon: {n}");
    }
    let added = tryc!(backup::restore(&keys, &opened, replace));
    println!(
        "restored {added} of the backup's {} keys into {}, wrapped by master key {}",
        opened.count,
        keys.path().display(),
        keys.master_id()
    );
    drop(keys);
    match Admin::open(dir.clone(), config) {
        Ok(a) => tryc!(a.svc.key_restored(&a.me, added, opened.created)),
        Err(e) => {
            return fail(format!(
                "the keys were restored, but the host did not open: {e}"
            ))
        }
    }
    0
}
