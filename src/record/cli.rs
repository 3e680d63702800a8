//! `cordon rec ...`: the recording catalog from the host's shell. Every read of a
//! recording's content is audited.

use super::format;
use crate::admin::Admin;
use crate::audit::AuditEvent;
use crate::store::RecordingEntry;
use std::io::Write;
use std::path::Path;

fn fail(e: impl std::fmt::Display) -> i32 {
    eprintln!("cordon: {e}");
    1
}

fn key_for(a: &Admin, path: &str) -> Result<Vec<u8>, String> {
    super::Keyring::new(&a.dir).for_file(Path::new(path))
}

/// `cordon key rotate`: new recordings use a new master key; old ones stay readable.
pub fn rotate(a: &Admin) -> i32 {
    match super::Keyring::new(&a.dir).rotate() {
        Ok(id) => {
            let _ = a.audit.record(AuditEvent::new("key.rotate", &a.actor).with("key", "recording").with("key_id", id.clone()));
            println!("recording key {id} is now current; earlier keys are kept for earlier recordings");
            0
        }
        Err(e) => fail(e),
    }
}

/// `--since`: a duration back from now (`2h`, `7d`) or a date and time (`2026-11-22`,
/// `2026-11-22T14:00`), as the RFC 3339 prefix recordings are compared with.
pub fn since_cutoff(since: &str) -> Result<String, String> {
    if let Ok(secs) = sandbox::profile::parse_duration(since) {
        return Ok(crate::audit::rfc3339(std::time::SystemTime::now() - std::time::Duration::from_secs(secs)));
    }
    let b = since.as_bytes();
    if b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-' {
        return Ok(since.to_string());
    }
    Err(format!("\"{since}\" is neither a duration (2h, 7d) nor a date (2026-11-22, 2026-11-22T14:00)"))
}

fn listed(a: &Admin, user: Option<&str>, since: Option<&str>) -> Result<Vec<RecordingEntry>, String> {
    let cutoff = since.map(since_cutoff).transpose()?;
    let list = a.store.recordings(user).map_err(|e| e.to_string())?;
    Ok(list.into_iter().filter(|r| cutoff.as_deref().is_none_or(|c| r.started.as_str() >= c)).collect())
}

pub fn ls(a: &Admin, user: Option<&str>, since: Option<&str>, json: bool) -> i32 {
    let list = match listed(a, user, since) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
        return 0;
    }
    if list.is_empty() {
        println!("no recordings");
        return 0;
    }
    println!("{:<17} {:<5} {:<12} {:<10} {:<10} {:>10} {:<25} command", "id", "sess", "user", "profile", "state", "bytes", "started");
    for r in list {
        println!(
            "{:<17} {:<5} {:<12} {:<10} {:<10} {:>10} {:<25} {}",
            r.id, r.session, r.user, r.profile, r.state, r.bytes, r.started, r.command
        );
    }
    0
}

fn verdict_of(a: &Admin, r: &RecordingEntry) -> Result<String, String> {
    let key = key_for(a, &r.path)?;
    // A recording the host finished sealing must be complete; one still "recording" in
    // the catalog whose host is gone was interrupted.
    super::verdict(Path::new(&r.path), &key, r.state == "complete")
}

pub fn info(a: &Admin, id: &str) -> i32 {
    let r = match a.store.recording(id) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    match verdict_of(a, &r) {
        Ok(v) => println!("{v}"),
        Err(v) => println!("{v}"),
    }
    0
}

/// Exit 0 when every recording checked is whole (complete or interrupted), 1 otherwise.
pub fn verify(a: &Admin, id: Option<&str>) -> i32 {
    let list = match id {
        Some(id) => match a.store.recording(id) {
            Ok(r) => vec![r],
            Err(e) => return fail(e),
        },
        None => match a.store.recordings(None) {
            Ok(l) => l,
            Err(e) => return fail(e),
        },
    };
    let mut bad = 0;
    for r in &list {
        match verdict_of(a, r) {
            Ok(v) => println!("{} {v}", r.id),
            Err(v) => {
                bad += 1;
                println!("{} {v}", r.id);
            }
        }
    }
    let _ = a.audit.record(AuditEvent::new("recording.verify", &a.actor).with("count", list.len()).with("damaged", bad));
    i32::from(bad > 0)
}

pub fn export(a: &Admin, id: &str, fmt: &str, out: Option<&Path>) -> i32 {
    let r = match a.store.recording(id) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let key = match key_for(a, &r.path) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let rec = match format::read(Path::new(&r.path), &key) {
        Ok(rec) => rec,
        Err(d) => return fail(format!("recording {} is damaged: {d}", r.id)),
    };
    let bytes = match super::encode(&rec, fmt) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if let Err(e) =
        a.audit.record(AuditEvent::new("recording.export", &a.actor).with("recording", r.id.clone()).with("format", fmt.to_string()))
    {
        return fail(e);
    }
    let written = match out {
        Some(p) => std::fs::write(p, &bytes).map_err(|e| format!("writing {}: {e}", p.display())),
        None => std::io::stdout().write_all(&bytes).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `cordon rec hold|release ID`: a held recording is never purged.
pub fn hold(a: &Admin, id: &str, hold: bool) -> i32 {
    let r = match a.store.recording(id) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Err(e) = a.store.set_hold(&r.id, hold) {
        return fail(e);
    }
    let _ = a
        .audit
        .record(AuditEvent::new(if hold { "recording.hold" } else { "recording.release" }, &a.actor).with("recording", r.id.clone()));
    println!("{} {}", r.id, if hold { "is under legal hold: it will not be purged" } else { "is no longer held" });
    0
}

/// `cordon rec search PATTERN`: lines that appeared on screen, across recordings.
pub fn search(a: &Admin, pattern: &str, user: Option<&str>, since: Option<&str>) -> i32 {
    let list = match listed(a, user, since) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let found = super::search(&a.dir, &list, pattern);
    for id in &found.unreadable {
        eprintln!("cordon: {id}: damaged or its key is missing, not searched (see `cordon rec verify {id}`)");
    }
    let mut matched: Vec<&str> = Vec::new();
    for h in &found.hits {
        if matched.last() != Some(&h.recording.as_str()) {
            matched.push(&h.recording);
        }
    }
    // Every hit shows part of a recording: the access is audited, with which ones, before
    // anything is shown.
    let (hits, searched) = (found.hits.len(), found.searched);
    let event = AuditEvent::new("recording.search", &a.actor)
        .with("pattern", pattern.to_string())
        .with("recordings", searched)
        .with("hits", hits)
        .with("matched", matched);
    if let Err(e) = a.audit.record(event) {
        return fail(e);
    }
    for h in &found.hits {
        println!("{}  {:>9.3}s  {:<10} {}", h.recording, h.at, h.user, h.line);
    }
    if hits == 0 {
        println!("no matches in {searched} recordings");
    }
    0
}

/// `cordon rec play ID`: replays in the terminal (audited).
pub fn play(a: &Admin, id: &str, opts: &super::play::PlayOptions) -> i32 {
    let r = match a.store.recording(id) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let reader = match key_for(a, &r.path)
        .and_then(|k| format::Reader::open(Path::new(&r.path), &k).map_err(|d| format!("recording {} is damaged: {d}", r.id)))
    {
        Ok(reader) => reader,
        Err(e) => return fail(e),
    };
    if let Err(e) = a.audit.record(AuditEvent::new("recording.play", &a.actor).with("recording", r.id.clone()).with("at", opts.at)) {
        return fail(e);
    }
    match super::play::play(&mut super::play::Stream::new(reader), opts) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `cordon rec screen ID --at T`: the screen at T seconds, found from the nearest keyframe
/// without reading the whole recording (audited like playback).
pub fn screen(a: &Admin, id: &str, at: f64) -> i32 {
    let r = match a.store.recording(id) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let found = key_for(a, &r.path).and_then(|k| {
        format::seek(Path::new(&r.path), &k, (at.max(0.0) * 1e6) as u64).map_err(|d| format!("recording {} is damaged: {d}", r.id))
    });
    let (header, events) = match found {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    if let Err(e) =
        a.audit.record(AuditEvent::new("recording.play", &a.actor).with("recording", r.id.clone()).with("at", at).with("screen_only", true))
    {
        return fail(e);
    }
    let drawn = super::play::render(header.cols, header.rows, &events);
    match std::io::stdout().write_all(&drawn).and_then(|_| std::io::stdout().write_all(b"\r\n")) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}
