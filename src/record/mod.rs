//! Recordings: every session recorded from its first byte, encrypted and tamper-evident
//! (the container is in `format`), listed in the store's catalog, verified and exported
//! (asciicast v2 and v3 for asciinema's tools, or the raw output bytes), searched (`search`)
//! and played back (`play`).

mod error;
pub mod format;
pub mod play;
pub mod remote;
mod search;
pub mod source;
pub mod timeline;
pub mod upload;

pub use error::RecordError;
pub use search::{screen_lines, search, Hit, Target};

use format::{Damage, Ending, Event, Header, Writer, EXIT, OUTPUT, RESIZE};
use std::path::{Path, PathBuf};

/// The bucket of `[objects]` and the spool its recordings are uploaded from, once this
/// process has one.
static BUCKET: std::sync::OnceLock<(crate::objects::Bucket, PathBuf)> = std::sync::OnceLock::new();

/// Recordings go to (and are read from, once their local copy is gone) `bucket` too;
/// `spool` is the recordings directory. Once per process.
pub fn use_bucket(bucket: crate::objects::Bucket, spool: PathBuf) {
    source::register(std::sync::Arc::new(remote::BucketRemote(bucket.clone())));
    let _ = BUCKET.set((bucket, spool));
}

/// The bucket and spool given to [`use_bucket`], if any.
pub fn bucket() -> Option<&'static (crate::objects::Bucket, PathBuf)> {
    BUCKET.get()
}

/// What happens when a recording cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The session ends, with a message to its users and an audit event.
    Strict,
    /// The session goes on; the gap is audited and marked in the recording.
    BestEffort,
}

/// Failed recording writes since the host started (for /metrics).
pub static ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What a recording's header says about its session.
#[derive(Debug, Clone)]
pub struct Meta {
    pub user: String,
    pub profile: String,
    /// The command as run (masked before it is written).
    pub command: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    pub term: String,
}

/// Where recordings go and the key they are sealed with.
pub struct Recorder {
    pub dir: PathBuf,
    keys: Keyring,
    pub policy: FailurePolicy,
    /// Record what users type (off by default; never while the terminal does not echo).
    pub input: bool,
    /// Record at all (on by default; off is audited at every start of the host).
    pub enabled: bool,
}

impl Recorder {
    pub fn new(
        dir: PathBuf,
        keys: Keyring,
        policy: FailurePolicy,
        input: bool,
        enabled: bool,
    ) -> Result<Recorder, RecordError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(RecordError::file("creating", &dir))?;
        keys.current()?;
        Ok(Recorder {
            dir,
            keys,
            policy,
            input,
            enabled,
        })
    }

    /// Starts a recording for a session.
    pub fn start(
        &self,
        session: u64,
        meta: &Meta,
    ) -> Result<(Header, PathBuf, Writer), RecordError> {
        let random = |n, what| {
            crate::secrets::random_bytes(n)
                .map(|b| crate::secrets::hex(&b))
                .map_err(|source| RecordError::Random { what, source })
        };
        let id = random(8, "a recording id")?;
        let salt = random(16, "a salt")?;
        // Read per recording, so that `cordon key rotate` applies without a restart.
        let (key_id, master) = self.keys.current()?;
        let started = crate::audit::unix_seconds().max(0) as u64;
        let header = Header {
            id: id.clone(),
            session,
            user: meta.user.clone(),
            profile: meta.profile.clone(),
            command: crate::masking::mask_argv(&meta.command),
            cols: meta.cols,
            rows: meta.rows,
            term: meta.term.clone(),
            started,
            key_id,
            salt,
            compression: format::COMPRESSION.into(),
        };
        let path = self.dir.join(format!("{id}.rec"));
        let w = Writer::create(&path, &header, &master)?;
        Ok((header, path, w))
    }
}

/// The recording master keys, kept wrapped in the key ring (`crate::keys`, purpose
/// `recording`), one of them current for new recordings. Rotating adds a key and makes it
/// current; old keys stay, so old recordings stay readable. Not the audit key.
#[derive(Clone)]
pub struct Keyring {
    keys: std::sync::Arc<crate::keys::Keys>,
}

impl Keyring {
    pub fn new(keys: std::sync::Arc<crate::keys::Keys>) -> Keyring {
        Keyring { keys }
    }

    /// The current key (made on first use) and its id.
    pub fn current(&self) -> Result<(String, Vec<u8>), RecordError> {
        let (id, key) = self.keys.random_current(crate::keys::Purpose::Recording)?;
        Ok((id, key.to_vec()))
    }

    /// The key with this id.
    pub fn get(&self, id: &str) -> Result<Vec<u8>, RecordError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RecordError::NotKeyId(id.to_string()));
        }
        match self.keys.get(crate::keys::Purpose::Recording, id) {
            Ok(k) => Ok(k.to_vec()),
            Err(crate::keys::KeyError::Missing { path, .. }) => Err(RecordError::NoKey {
                key_id: id.to_string(),
                dir: path,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a new key current; returns its id.
    pub fn rotate(&self) -> Result<String, RecordError> {
        let key = zeroize::Zeroizing::new(crate::secrets::random_bytes(32).map_err(|source| {
            RecordError::Random {
                what: "a key",
                source,
            }
        })?);
        Ok(self
            .keys
            .add_current(crate::keys::Purpose::Recording, &key)?)
    }

    /// The key a recording file was sealed with.
    pub fn for_file(&self, path: &Path) -> Result<Vec<u8>, RecordError> {
        let id = format::header_key_id(path)?;
        self.get(&id)
    }
}

/// What `verify` concludes about a recording. Whole ones (complete, or interrupted by the
/// host stopping) are fine; the rest say what is wrong and where. Shown as the words of
/// `cordon rec verify`.
#[derive(Debug)]
pub enum Verdict {
    /// Every chunk is there and authentic, the final one included.
    Complete { events: usize, seconds: f64 },
    /// No final chunk yet: a host is recording it now. Readable up to here.
    Live { chunks: u64, seconds: f64 },
    /// No final chunk, and the host stopped while recording: readable up to where it stopped.
    Interrupted { chunks: u64, seconds: f64 },
    /// No final chunk, though the session ended cleanly: the end was cut off.
    Truncated { chunks: u64 },
    /// A chunk (or the header) fails verification.
    Damaged(Damage),
    /// The recording's key could not be found or read, so it was not checked.
    Unreadable(RecordError),
}

impl Verdict {
    /// Whether the recording reads back whole (complete, or interrupted by the host).
    pub fn is_whole(&self) -> bool {
        matches!(
            self,
            Verdict::Complete { .. } | Verdict::Live { .. } | Verdict::Interrupted { .. }
        )
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Complete { events, seconds } => {
                write!(f, "ok: complete, {events} events, {seconds:.1} s")
            }
            Verdict::Live { chunks, seconds } => {
                write!(f, "ok so far: still being recorded; authentic up to {seconds:.1} s ({chunks} chunks sealed)")
            }
            Verdict::Interrupted { chunks, seconds } => {
                write!(f, "interrupted: the host stopped while recording; readable up to {seconds:.1} s ({chunks} chunks)")
            }
            Verdict::Truncated { chunks } => {
                write!(f, "TRUNCATED: the session ended cleanly but the recording stops after chunk {chunks}")
            }
            Verdict::Damaged(d) => write!(f, "DAMAGED: {d}"),
            Verdict::Unreadable(e) => write!(f, "{e}"),
        }
    }
}

/// Verifies the recording at `path` with the key it names in `keys`; `ended_cleanly` when
/// its host finished sealing it (then a missing final chunk is truncation, not interruption).
pub fn verdict(keys: &Keyring, path: &Path, ended_cleanly: bool) -> Verdict {
    let master = match keys.for_file(path) {
        Ok(k) => k,
        Err(e) => return Verdict::Unreadable(e),
    };
    match format::read(path, &master) {
        Ok(r) => match (r.ending, ended_cleanly) {
            (Ending::Complete, _) => Verdict::Complete {
                events: r.events.len(),
                seconds: duration(&r.events),
            },
            (Ending::NoFinalChunk { chunks }, false) if format::being_written(path) => {
                Verdict::Live {
                    chunks,
                    seconds: duration(&r.events),
                }
            }
            (Ending::NoFinalChunk { chunks }, false) => Verdict::Interrupted {
                chunks,
                seconds: duration(&r.events),
            },
            (Ending::NoFinalChunk { chunks }, true) => Verdict::Truncated { chunks },
        },
        Err(d) => Verdict::Damaged(d),
    }
}

fn duration(events: &[Event]) -> f64 {
    events.last().map(|e| e.at_us as f64 / 1e6).unwrap_or(0.0)
}

/// Output bytes decoded as UTF-8 across event boundaries: an incomplete sequence at the end
/// of one event waits for the next; invalid bytes become U+FFFD.
struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    fn feed(&mut self, data: &[u8]) -> String {
        self.0.extend_from_slice(data);
        let mut out = String::new();
        let mut rest: &[u8] = &self.0;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{fffd}');
                            rest = &bad[n..];
                        }
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.to_vec();
        self.0 = keep;
        out
    }
}

/// Exports to asciicast v2 (absolute times) or v3 (intervals, rounded to milliseconds with
/// the rounding error carried forward, and the exit status last).
pub fn asciicast(rec: &format::Recording, version: u8) -> String {
    let h = &rec.header;
    let mut out = String::new();
    let title = format!(
        "cordon session {} ({}, {})",
        crate::session_id::SessionId::from_number(h.session),
        h.user,
        h.profile
    );
    let header = if version == 2 {
        serde_json::json!({"version": 2, "width": h.cols, "height": h.rows, "timestamp": h.started, "title": title, "env": {"TERM": h.term, "SHELL": "/bin/sh"}})
    } else {
        serde_json::json!({"version": 3, "term": {"cols": h.cols, "rows": h.rows, "type": h.term}, "timestamp": h.started, "title": title, "command": crate::masking::mask_argv(&h.command).join(" ")})
    };
    out.push_str(&header.to_string());
    out.push('\n');
    let mut utf8 = Utf8Carry(Vec::new());
    let mut emitted_ms: u64 = 0;
    for e in &rec.events {
        let code = match e.kind {
            OUTPUT => "o",
            RESIZE => "r",
            format::INPUT => "i",
            format::MARKER | format::GAP | format::NET | format::FILES => "m",
            // Programs started, not each exit: a marker per process would bury the rest.
            format::EXEC if timeline::is_exec(&e.data) => "m",
            EXIT if version == 3 => "x",
            _ => continue,
        };
        let text = if e.kind == OUTPUT {
            utf8.feed(&e.data)
        } else if e.kind == format::NET {
            timeline::timeline_words(&e.data)
        } else if e.kind == format::EXEC {
            timeline::exec_words(&e.data)
        } else if e.kind == format::FILES {
            crate::changes::headline_of(&e.data)
        } else {
            String::from_utf8_lossy(&e.data).into_owned()
        };
        if e.kind == OUTPUT && text.is_empty() {
            continue;
        }
        let line = if version == 2 {
            serde_json::json!([e.at_us as f64 / 1e6, code, text])
        } else {
            let now_ms = (e.at_us + 500) / 1000;
            let interval = now_ms.saturating_sub(emitted_ms);
            emitted_ms += interval;
            serde_json::json!([interval as f64 / 1000.0, code, text])
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Purges recordings that started before `max_age` ago, unless held or still recording.
/// Returns the ids purged; each purge is audited.
pub fn purge(
    store: &crate::store::Store,
    audit: &crate::audit::AuditLog,
    max_age: std::time::Duration,
) -> Vec<String> {
    let cutoff = crate::audit::rfc3339(std::time::SystemTime::now() - max_age);
    let mut purged = Vec::new();
    for r in store.recordings(None).unwrap_or_default() {
        if r.hold || r.state == crate::store::RecordingState::Recording || r.started >= cutoff {
            continue;
        }
        // Its objects first: a bucket that refuses (away, or an object still locked or
        // held there) keeps the whole recording until the next purge.
        if let Some((bucket, spool)) = bucket() {
            if let Err(e) = upload::forget(bucket, spool, &r.id) {
                eprintln!("cordon: recording {} is kept past its retention: {e}", r.id);
                continue;
            }
        }
        let gone = match std::fs::remove_file(&r.path) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if gone && store.remove_recording(&r.id).is_ok() {
            audit.report(
                crate::audit::AuditEvent::new(crate::audit::Kind::RecordingPurge, "cordon")
                    .with("recording", r.id.clone())
                    .with("started", r.started.clone()),
            );
            purged.push(r.id);
        }
    }
    purged
}

/// A recording in an export format: `asciicast-v2`, `asciicast-v3` or `raw`.
pub fn encode(rec: &format::Recording, fmt: &str) -> Result<Vec<u8>, RecordError> {
    match fmt {
        "raw" => Ok(raw(rec)),
        "asciicast-v2" => Ok(asciicast(rec, 2).into_bytes()),
        "asciicast-v3" => Ok(asciicast(rec, 3).into_bytes()),
        other => Err(RecordError::UnknownFormat(other.to_string())),
    }
}

/// The output bytes exactly as the session wrote them.
pub fn raw(rec: &format::Recording) -> Vec<u8> {
    rec.events
        .iter()
        .filter(|e| e.kind == OUTPUT)
        .flat_map(|e| e.data.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purging_removes_old_recordings_but_never_held_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("db")).unwrap();
        let audit = crate::audit::AuditLog::open(
            &dir.path().join("audit.log"),
            vec![1; 32],
            Default::default(),
            false,
        )
        .unwrap();
        for (id, hold) in [("old-held", true), ("old", false)] {
            let path = dir.path().join(id);
            std::fs::write(&path, b"x").unwrap();
            let e = crate::store::RecordingEntry {
                id: id.into(),
                session: 1,
                user: "a".into(),
                user_id: 1,
                profile: "p".into(),
                command: String::new(),
                started: "2020-01-01T00:00:00.000Z".into(),
                ended: None,
                exit_status: Some(0),
                state: crate::store::RecordingState::Complete,
                path: path.display().to_string(),
                bytes: 1,
                key_id: "00".into(),
                hold: false,
            };
            store.add_recording(&e).unwrap();
            store.set_hold(id, hold).unwrap();
        }
        let purged = purge(&store, &audit, std::time::Duration::from_secs(86400));
        assert_eq!(purged, vec!["old".to_string()]);
        assert!(!dir.path().join("old").exists() && dir.path().join("old-held").exists());
        assert_eq!(store.recordings(None).unwrap().len(), 1);
        assert!(std::fs::read_to_string(dir.path().join("audit.log"))
            .unwrap()
            .contains("recording.purge"));
    }

    #[test]
    fn seeking_from_a_keyframe_draws_the_same_screen_as_replaying_from_the_start() {
        let key = [5u8; 32];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let mut w = format::Writer::create(&path, &format::tests::header(&key), &key).unwrap();
        let nz = |n: u16| std::num::NonZeroU16::new(n).unwrap();
        let mut screen = vt100::Parser::new(nz(24), nz(80), 0);
        for i in 0..400 {
            let line = format!("\x1b[3{}mline {i}\x1b[0m\r\n", i % 8);
            w.event(OUTPUT, line.as_bytes()).unwrap();
            screen.process(line.as_bytes());
            if i % 50 == 49 {
                let mut frame = b"80x24\n".to_vec();
                frame.extend(b"\x1b[H\x1b[2J");
                frame.extend(screen.screen().state_formatted().into_bytes());
                w.keyframe_at(w.clock().elapsed().as_micros() as u64, &frame)
                    .unwrap();
            }
        }
        w.finish().unwrap();
        let full = format::read(&path, &key).unwrap();
        let contents = |drawn: Vec<u8>| {
            let mut p = vt100::Parser::new(nz(24), nz(80), 0);
            p.process(&drawn);
            p.screen().contents()
        };
        for t_idx in [10usize, 120, 260, 399] {
            let t = full
                .events
                .iter()
                .filter(|e| e.kind == OUTPUT)
                .nth(t_idx)
                .unwrap()
                .at_us;
            let (header, from_keyframe) = format::seek(&path, &key, t).unwrap();
            assert!(
                from_keyframe.len() < full.events.len() / 2 || t_idx < 50,
                "seek decoded too much for {t_idx}"
            );
            let upto: Vec<Event> = full
                .events
                .iter()
                .filter(|e| e.at_us <= t)
                .cloned()
                .collect();
            assert_eq!(
                contents(play::render(header.cols, header.rows, &from_keyframe)),
                contents(play::render(80, 24, &upto)),
                "at line {t_idx}"
            );
        }
    }

    #[test]
    fn seeking_in_a_gib_of_output_reads_from_the_nearest_keyframe_only() {
        let key = [6u8; 32];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let mut w = format::Writer::create(&path, &format::tests::header(&key), &key).unwrap();
        // Terminal-like text: lines of a directory listing, 4 KiB per event, from a pool of
        // 256 blocks (1 MiB, past deflate's window, so it compresses like real output).
        let mut pool = Vec::new();
        let mut n = 0u64;
        for _ in 0..256 {
            let mut block = Vec::new();
            while block.len() < 4096 {
                n += 1;
                block.extend_from_slice(
                    format!(
                        "-rw-r--r-- 1 root root {:>8} Nov 22 12:00 file-{n}.txt\r\n",
                        n * 37 % 100_000
                    )
                    .as_bytes(),
                );
            }
            pool.push(block);
        }
        let mut written = 0usize;
        let mut since_keyframe = 0usize;
        let mut at = 0u64;
        for i in 0.. {
            if written >= 1 << 30 {
                break;
            }
            let block = &pool[i % pool.len()];
            at += 50;
            w.event_at(at, OUTPUT, block).unwrap();
            written += block.len();
            since_keyframe += block.len();
            if since_keyframe >= 1 << 20 {
                since_keyframe = 0;
                let frame = format!("80x24\n\x1b[H\x1b[2Jscreen after line {n}");
                w.keyframe_at(at, frame.as_bytes()).unwrap();
            }
        }
        w.finish().unwrap();
        let total_us = at;
        let mut worst = std::time::Duration::ZERO;
        for k in 1..=10u64 {
            let t = total_us * k / 11;
            let start = std::time::Instant::now();
            let (header, events) = format::seek(&path, &key, t).unwrap();
            let drawn = play::render(header.cols, header.rows, &events);
            worst = worst.max(start.elapsed());
            assert!(!drawn.is_empty());
            assert_eq!(
                events.first().map(|e| e.kind),
                Some(format::KEYFRAME),
                "seek starts at a keyframe"
            );
            // What makes a seek cheap, whatever the machine's speed: it decodes at most the
            // output written since the nearest keyframe (1 MiB, and one more block), not
            // the GiB before it.
            let decoded: usize = events.iter().map(|e| e.data.len()).sum();
            assert!(
                decoded <= (1 << 20) + 2 * 4096 + 256,
                "a seek decoded {decoded} bytes"
            );
        }
        // Reported, not asserted: a test does not time anything (benches/recording.rs does).
        eprintln!("slowest seek in 1 GiB of output: {worst:?}");
    }

    #[test]
    fn utf8_split_across_events_is_kept_whole() {
        let mut c = Utf8Carry(Vec::new());
        let snow = "☃".as_bytes();
        assert_eq!(c.feed(&[b'a', snow[0]]), "a");
        assert_eq!(c.feed(&snow[1..]), "☃");
        assert_eq!(c.feed(&[0xff, b'b']), "\u{fffd}b");
    }

    #[test]
    fn v3_intervals_do_not_drift() {
        let key = [1u8; 32];
        let header = format::tests::header(&key);
        let events: Vec<Event> = (1..=1000)
            .map(|i| Event {
                at_us: i * 1_400,
                kind: OUTPUT,
                data: b"x".to_vec(),
            })
            .collect();
        let rec = format::Recording {
            header,
            events,
            ending: Ending::Complete,
        };
        let cast = asciicast(&rec, 3);
        let total: f64 = cast
            .lines()
            .skip(1)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()[0]
                    .as_f64()
                    .unwrap()
            })
            .sum();
        assert!(
            (total - 1.4).abs() < 0.0015,
            "intervals sum to {total}, not 1.4 s"
        );
        let v2 = asciicast(&rec, 2);
        assert!(v2.lines().next().unwrap().contains("\"version\":2"));
    }
}
