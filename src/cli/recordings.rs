//! `cordon rec ...` and `cordon key rotate`: the recording catalog from the host's shell,
//! through the service layer as the host's own shell (see [`crate::cli`]). Every read of
//! a recording's content is audited before anything is shown.

use super::{fail, tryc, Admin};
use crate::service::Filter;
use std::io::Write;
use std::path::Path;

/// `cordon key rotate`: new recordings use a new master key; old ones stay readable.
pub fn rotate(a: &Admin) -> i32 {
    let id = tryc!(a.svc.rotate_recording_key(&a.me));
    println!("recording key {id} is now current; earlier keys are kept for earlier recordings");
    0
}

/// `--since`: a duration back from now (`2h`, `7d`) or a date and time (`2026-11-22`,
/// `2026-11-22T14:00`), as the RFC 3339 prefix recordings are compared with.
pub fn since_cutoff(since: &str) -> Result<String, String> {
    if let Ok(secs) = sandbox::profile::parse_duration(since) {
        return Ok(crate::audit::rfc3339(
            std::time::SystemTime::now() - std::time::Duration::from_secs(secs),
        ));
    }
    let b = since.as_bytes();
    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-' {
        return Ok(since.to_string());
    }
    Err(format!(
        "\"{since}\" is neither a duration (2h, 7d) nor a date (2026-11-22, 2026-11-22T14:00)"
    ))
}

fn filter(user: Option<&str>, since: Option<&str>) -> Result<Filter, String> {
    Ok(Filter {
        user: user.map(str::to_string),
        since: since.map(since_cutoff).transpose()?,
    })
}

pub fn ls(a: &Admin, user: Option<&str>, since: Option<&str>, json: bool) -> i32 {
    let f = tryc!(filter(user, since));
    let list = tryc!(a.svc.recordings(&a.me, &f));
    if json {
        println!(
            "{}",
            crate::text::json(&serde_json::to_string_pretty(&list).unwrap_or_default())
        );
        return 0;
    }
    if list.is_empty() {
        println!("no recordings");
        return 0;
    }
    println!(
        "{:<17} {:<8} {:<12} {:<10} {:<10} {:>10} {:<25} command",
        "id", "session", "user", "profile", "state", "bytes", "started"
    );
    // The command is what the user typed: escaped.
    use crate::text::printable as p;
    for r in list {
        println!(
            "{:<17} {:<8} {:<12} {:<10} {:<10} {:>10} {:<25} {}",
            r.id,
            crate::sessions::SessionId::from_number(r.session as u64).short(),
            p(&r.user),
            p(&r.profile),
            r.state,
            r.bytes,
            r.started,
            p(&r.command)
        );
    }
    0
}

pub fn info(a: &Admin, id: &str) -> i32 {
    let (r, verdict) = tryc!(a.svc.verify_recording(&a.me, id));
    println!(
        "{}",
        crate::text::json(&serde_json::to_string_pretty(&r).unwrap_or_default())
    );
    println!("{}", crate::text::printable(&verdict.to_string()));
    0
}

/// Exit 0 when every recording checked is whole (complete or interrupted), 1 otherwise.
pub fn verify(a: &Admin, id: Option<&str>) -> i32 {
    let list = match id {
        Some(id) => vec![tryc!(a.svc.verify_recording(&a.me, id))],
        None => tryc!(a.svc.verify_all(&a.me)),
    };
    for (r, verdict) in &list {
        println!("{} {verdict}", r.id);
    }
    i32::from(list.iter().any(|(_, v)| !v.is_whole()))
}

pub fn export(a: &Admin, id: &str, fmt: &str, out: Option<&Path>) -> i32 {
    let to = out
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdout".into());
    let (_, bytes) = tryc!(a.svc.export(&a.me, id, fmt, &to));
    let written = match out {
        Some(p) => std::fs::write(p, &bytes).map_err(|e| format!("writing {}: {e}", p.display())),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `cordon rec hold|release ID`: a held recording is never purged.
pub fn hold(a: &Admin, id: &str, hold: bool) -> i32 {
    let r = tryc!(a.svc.hold(&a.me, id, hold));
    println!(
        "{} {}",
        r.id,
        if hold {
            "is under legal hold: it will not be purged"
        } else {
            "is no longer held"
        }
    );
    0
}

/// `cordon rec search [--exec] PATTERN`: lines that appeared on screen (or commands that
/// sessions ran), across recordings.
pub fn search(
    a: &Admin,
    pattern: &str,
    exec: bool,
    user: Option<&str>,
    since: Option<&str>,
) -> i32 {
    let f = tryc!(filter(user, since));
    let searched = tryc!(a.svc.recordings(&a.me, &f)).len();
    let (hits, unreadable) = if exec {
        tryc!(a.svc.search_exec(&a.me, pattern, &f))
    } else {
        tryc!(a.svc.search(&a.me, pattern, &f))
    };
    for id in &unreadable {
        eprintln!("cordon: {id}: damaged or its key is missing, not searched (see `cordon rec verify {id}`)");
    }
    // A hit is a line of a session's screen: whatever the session printed, escaped.
    for h in &hits {
        println!(
            "{}  {:>9.3}s  {:<10} {}",
            h.recording,
            h.at,
            crate::text::printable(&h.user),
            crate::text::printable(&h.line)
        );
    }
    if hits.is_empty() {
        println!("no matches in {} recordings", searched - unreadable.len());
    }
    0
}

/// `cordon rec events ID`: what the session did, in order (audited as reading it).
pub fn events(a: &Admin, id: &str, json: bool) -> i32 {
    let (_, entries) = tryc!(a.svc.recording_events(&a.me, id));
    if json {
        let rows: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({"at": e.at_us as f64 / 1e6, "kind": e.kind, "event": e.data})
            })
            .collect();
        println!(
            "{}",
            crate::text::json(&serde_json::Value::Array(rows).to_string())
        );
        return 0;
    }
    if entries.is_empty() {
        println!("no events");
    }
    // The words are escaped where they are made (record::timeline).
    for e in &entries {
        println!("{:>10.3}s  {}", e.at_us as f64 / 1e6, e.words);
    }
    0
}

/// `cordon rec play ID`: replays in the terminal (audited).
pub fn play(a: &Admin, id: &str, opts: &crate::record::play::PlayOptions) -> i32 {
    let (_, reader) = tryc!(a.svc.open_reader(&a.me, id, opts.at));
    match crate::record::play::play(&mut crate::record::play::Stream::new(reader), opts) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `cordon rec screen ID --at T`: the screen at T seconds, found from the nearest keyframe
/// without reading the whole recording (audited like playback).
pub fn screen(a: &Admin, id: &str, at: f64) -> i32 {
    let (header, events) = tryc!(a.svc.screen_at(&a.me, id, at));
    let drawn = crate::filter::filter_all(&crate::record::play::render(
        header.cols,
        header.rows,
        &events,
    ));
    match std::io::stdout()
        .write_all(&drawn)
        .and_then(|_| std::io::stdout().write_all(b"\r\n"))
    {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `cordon rec files ID [--json]`: what the recorded session created, changed and deleted in
/// its workspace (audited like playback). Paths are the session's: escaped.
pub fn files(a: &Admin, id: &str, json: bool) -> i32 {
    let (_, summary) = tryc!(a.svc.recording_files(&a.me, id));
    if json {
        println!(
            "{}",
            crate::text::json(&serde_json::to_string_pretty(&summary).unwrap_or_default())
        );
    } else {
        for line in summary.lines() {
            println!("{line}");
        }
    }
    0
}
