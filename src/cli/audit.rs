//! `cordon audit verify|tail`: they read the log's files themselves, without opening it for
//! writing (the service would refuse a broken log, and these must work on one). Reading the
//! audit log from the shell is the data directory owner's right.

use super::fail;
use crate::audit;
use crate::paths::DataDir;
use std::io::Write;

/// `cordon audit verify [--against COPY]`: 0 when the chain holds, 1 naming the first bad
/// line (or the first event a forwarded copy holds and the log lacks) otherwise. It reads
/// the files itself, without opening the log for writing: it must work on a broken log.
pub fn verify(
    dir: &DataDir,
    config: &crate::config::Config,
    against: Option<&std::path::Path>,
) -> i32 {
    let log = dir.audit_log();
    // Never made (no key ring, hence no audit key, and no log): nothing to check. A ring
    // without its log is checked below, against the host's checkpoint.
    if !dir.root.join("keys/keyring.json").exists() {
        if !log.exists() {
            println!("no audit log yet at {}", log.display());
            return 0;
        }
        return fail(format!(
            "{} exists but there is no key ring to check it with: restore a key backup (cordon key restore)",
            log.display()
        ));
    }
    let keys = match crate::keys::Keys::open(dir, &config.master) {
        Ok(k) => k,
        Err(e) => return fail(format!("opening the keys: {e}")),
    };
    let key = match keys.current(crate::keys::Purpose::Audit) {
        Ok(Some((_, k))) => k.to_vec(),
        Ok(None) if !log.exists() => {
            println!("no audit log yet at {}", log.display());
            return 0;
        }
        Ok(None) => {
            return fail(format!(
                "the key ring {} holds no audit key: restore a key backup (cordon key restore)",
                keys.path().display()
            ))
        }
        Err(e) => return fail(format!("reading the audit key: {e}")),
    };
    // The event the host last saw, if it has recorded one: a log cut or replaced together
    // with its head still falls short of it.
    let checkpoint = crate::store::Store::open_config(&config.store, &dir.database())
        .ok()
        .and_then(|s| s.audit_checkpoint(&config.cluster.name).ok().flatten());
    let verdict = audit::verify_log(&log, &key, checkpoint);
    let mut code = 0;
    match &verdict {
        Ok(p) => println!(
            "ok: {} events, chain intact to event {} ({})",
            p.events,
            p.seq,
            log.display()
        ),
        Err(b) => {
            println!("BROKEN: {}", crate::text::printable(&b.to_string()));
            code = 1;
        }
    }
    if let Some(copy) = against {
        match audit::chain::verify_against(&log, copy) {
            Ok(n) => println!(
                "ok: the {n} events of {} are all in the log",
                copy.display()
            ),
            Err(b) => {
                println!("BROKEN: {}", crate::text::printable(&b.to_string()));
                code = 1;
            }
        }
    }
    code
}

/// `cordon audit tail`: the last `n` events, then (with `follow`) new ones as they come.
pub fn tail(dir: &DataDir, n: usize, follow: bool, json: bool) -> i32 {
    // Events hold what users and sessions typed (commands, labels, names): escaped.
    let show = |v: &serde_json::Value| {
        if json {
            println!("{}", crate::text::json(&v.to_string()));
        } else {
            let mut extra: Vec<String> = Vec::new();
            if let Some(obj) = v.as_object() {
                for (k, val) in obj {
                    if !matches!(
                        k.as_str(),
                        "seq" | "time" | "event" | "actor" | "prev" | "mac"
                    ) {
                        let val = val
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| val.to_string());
                        extra.push(format!(
                            "{}={}",
                            crate::text::printable(k),
                            crate::text::printable(&val)
                        ));
                    }
                }
            }
            let s = |k: &str| {
                crate::text::printable(v.get(k).and_then(|x| x.as_str()).unwrap_or("")).into_owned()
            };
            println!(
                "{} {:<16} {:<20} {}",
                s("time"),
                s("event"),
                s("actor"),
                extra.join(" ")
            );
        }
        let _ = std::io::stdout().flush();
    };
    // Read from the end of the log, however long it is.
    let seq = |v: &serde_json::Value| v.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
    let latest = |n: usize| audit::read::latest(&dir.audit_log(), n, None, u64::MAX);
    let mut seen = 0;
    for v in latest(n).iter().rev() {
        show(v);
        seen = seen.max(seq(v));
    }
    if !follow {
        return 0;
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let mut fresh: Vec<serde_json::Value> = latest(1000)
            .into_iter()
            .take_while(|v| seq(v) > seen)
            .collect();
        fresh.reverse();
        for v in &fresh {
            show(v);
            seen = seen.max(seq(v));
        }
    }
}
