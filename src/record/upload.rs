//! Uploading recordings to the bucket of `[objects]` while their sessions run. The local
//! file is written and sealed first, as without a bucket; a thread of the host's own goes
//! over the spool (the recordings directory) and uploads each recording's new whole sealed
//! chunks as a part once `part_size` bytes of them wait or `upload_interval` has passed,
//! then, when no host writes the file any more, the rest and the index. What was uploaded
//! is kept beside the recording (`ID.upload`, JSON), so a restarted host goes on where it
//! stopped; a bucket that does not answer is tried again with a growing delay, and the
//! recording waits in the spool meanwhile. The local file stays: it is the source of truth
//! until every part is in the bucket, and what plays fastest after.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::format;
use super::remote::{index_name, part_name, Index, Part};
use crate::objects::{Bucket, Lock, ObjectError};

/// What was uploaded of one recording (`ID.upload` in the spool).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub parts: Vec<Part>,
    /// The recording is under legal hold: its objects are put held.
    #[serde(default)]
    pub hold: bool,
    /// Every part and the index are in the bucket.
    #[serde(default)]
    pub done: bool,
}

impl State {
    fn end(&self) -> u64 {
        self.parts.last().map(|p| p.offset + p.size).unwrap_or(0)
    }
}

fn state_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.upload"))
}

fn load(dir: &Path, id: &str) -> State {
    std::fs::read(state_path(dir, id))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// Written to a new file and renamed over the old: a host killed meanwhile leaves one or
/// the other, never half of one.
fn save(dir: &Path, id: &str, s: &State) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!("{id}.upload.new"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec(s).map_err(std::io::Error::other)?)?;
    f.sync_data()?;
    std::fs::rename(&tmp, state_path(dir, id))
}

/// A file not written for this long, whose lock no host holds, is finished: its writer
/// takes the lock a moment after creating it, and this bridges that moment.
const SETTLED: Duration = Duration::from_secs(3);
/// The largest part uploaded (a chunk larger than this goes up alone).
pub const PART_MAX: u64 = 64 << 20;
/// The longest wait before trying a bucket that did not answer again.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The uploader: the bucket, the spool, and how long objects are locked.
pub struct Uploader {
    bucket: Bucket,
    dir: PathBuf,
    retention: Option<Duration>,
    /// The catalogue's hold of a recording, when known (see [`Uploader::held_by`]).
    held: Option<Held>,
}

/// A recording's hold as the shared catalogue has it, by id (None: not known there).
type Held = Box<dyn Fn(&str) -> Option<bool> + Send + Sync>;

/// Per recording: when its last part went up, and when to try again after a failure.
#[derive(Default)]
struct Pace {
    last_part: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Uploader {
    pub fn new(bucket: Bucket, dir: PathBuf, retention: Option<Duration>) -> Uploader {
        Uploader {
            bucket,
            dir,
            retention,
            held: None,
        }
    }

    /// Reads a recording's legal hold from `held` (the shared catalogue) before each
    /// object it puts: `rec hold` on another host marks only that host's spool, so without
    /// it the parts this host uploads after the hold would go up unheld. Where `held`
    /// answers nothing (the catalogue unreachable, the entry not there yet), the spool's
    /// own mark holds.
    pub fn held_by(mut self, held: impl Fn(&str) -> Option<bool> + Send + Sync + 'static) -> Self {
        self.held = Some(Box::new(held));
        self
    }

    /// Whether the objects of `id` go up held: the catalogue's word, else the spool's.
    fn hold(&self, id: &str, state: &State) -> bool {
        self.held.as_ref().and_then(|h| h(id)).unwrap_or(state.hold)
    }

    /// Runs on a thread of its own for as long as the host does.
    pub fn start(self) -> std::io::Result<()> {
        let me = Arc::new(self);
        std::thread::Builder::new()
            .name("cordon-upload".into())
            .spawn(move || {
                let mut pace: HashMap<String, Pace> = HashMap::new();
                let mut done: std::collections::HashSet<String> = Default::default();
                let mut said = Instant::now() - Duration::from_secs(3600);
                loop {
                    for id in me.spooled() {
                        if done.contains(&id) {
                            continue;
                        }
                        let p = pace.entry(id.clone()).or_default();
                        if p.retry_at.is_some_and(|t| Instant::now() < t) {
                            continue;
                        }
                        match me.step(&id, p) {
                            Ok(true) => {
                                done.insert(id.clone());
                                pace.remove(&id);
                            }
                            Ok(false) => {
                                p.retry_at = None;
                                p.backoff = Duration::ZERO;
                            }
                            Err(e) => {
                                p.backoff =
                                    (p.backoff * 2).clamp(Duration::from_secs(1), BACKOFF_MAX);
                                p.retry_at = Some(Instant::now() + p.backoff);
                                // Said at most once a minute, not per recording and try.
                                if said.elapsed() >= Duration::from_secs(60) {
                                    said = Instant::now();
                                    eprintln!(
                                        "cordon: WARNING: recording {id} waits in the spool: {e}"
                                    );
                                }
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
            .map(drop)
    }

    /// The ids of the recordings in the spool.
    fn spooled(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let id = name.strip_suffix(".rec")?;
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit())
                    .then(|| id.to_string())
            })
            .collect()
    }

    /// Locked until the recording's start plus the retention; not locked when that date
    /// is (nearly) past, which S3 refuses: purge removes such a recording next.
    fn lock(&self, header: &format::Header) -> Option<Lock> {
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(header.started) + self.retention?;
        (until > SystemTime::now() + Duration::from_secs(5)).then(|| Lock {
            mode: self.bucket.config().retention_mode,
            until,
        })
    }

    /// Saves the state with the hold as it is on disk now: `rec hold` (another process,
    /// perhaps) may have changed it since this step read it.
    fn save(&self, id: &str, state: &mut State) -> Result<(), UploadError> {
        state.hold = load(&self.dir, id).hold;
        save(&self.dir, id, state).map_err(UploadError::Local)
    }

    /// One look at one recording: uploads a part if one is due, and the rest and the
    /// index once it is finished. Ok(true) when it is all in the bucket.
    fn step(&self, id: &str, pace: &mut Pace) -> Result<bool, UploadError> {
        let mut state = load(&self.dir, id);
        if state.done {
            return Ok(true);
        }
        let path = self.dir.join(format!("{id}.rec"));
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            // Purged or removed meanwhile: nothing left to upload.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(UploadError::Local(e)),
        };
        let modified = file.metadata().and_then(|m| m.modified()).ok();
        // Whether the writer has let go, read before the chunks: what is read after it
        // let go is all it wrote.
        let finished = !format::being_written(&path)
            && modified
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|d| d >= SETTLED);
        let header = format::header_of(&file).map_err(UploadError::Damaged)?;
        let from = (state.end() > 0).then(|| state.end());
        let (_, chunks) = format::sealed_chunks(&file, from).map_err(UploadError::Damaged)?;
        let sealed_end = chunks.last().map(|c| c.end()).unwrap_or(state.end());
        let start = state.end();
        let waiting = sealed_end.saturating_sub(start);
        let cfg = self.bucket.config();
        let due = waiting >= cfg.part_size
            || (waiting > 0
                && (finished
                    || pace
                        .last_part
                        .is_none_or(|t| t.elapsed() >= cfg.upload_interval)));
        let lock = self.lock(&header);
        if due || (start == 0 && finished) {
            // The first part holds the file header even when no chunk is sealed yet.
            // At most PART_MAX (or one chunk) a part: a backlog left by a bucket that was
            // away goes up in several, never held in memory whole.
            let end = if start == 0 && chunks.is_empty() {
                format::sealed_chunks(&file, None)
                    .map_err(UploadError::Damaged)?
                    .0
            } else {
                chunks
                    .iter()
                    .take_while(|c| c.end() - start <= PART_MAX)
                    .last()
                    .or(chunks.first())
                    .map(|c| c.end())
                    .unwrap_or(sealed_end)
            };
            let mut data = vec![0u8; (end - start) as usize];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut data, start)
                .map_err(UploadError::Local)?;
            self.bucket.put(
                &self.bucket.key(&part_name(id, start)),
                &data,
                lock.as_ref(),
                self.hold(id, &state),
            )?;
            state.parts.push(Part {
                offset: start,
                size: end - start,
            });
            self.save(id, &mut state)?;
            pace.last_part = Some(Instant::now());
        }
        if !finished || state.end() < sealed_end {
            return Ok(false);
        }
        // Finished and every sealed chunk uploaded: the index, from the local file.
        let (_, all) = format::sealed_chunks(&file, None).map_err(UploadError::Damaged)?;
        let index = Index {
            version: 1,
            id: id.to_string(),
            size: state.end(),
            parts: state.parts.clone(),
            chunks: all
                .iter()
                .filter(|c| c.end() <= state.end())
                .map(|c| (c.offset, c.len, c.start, c.flags))
                .collect(),
        };
        let body = serde_json::to_vec(&index).map_err(|e| UploadError::Local(e.into()))?;
        self.bucket.put(
            &self.bucket.key(&index_name(id)),
            &body,
            lock.as_ref(),
            self.hold(id, &state),
        )?;
        state.done = true;
        self.save(id, &mut state)?;
        Ok(true)
    }
}

/// Why a recording was not uploaded this time (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Bucket(#[from] ObjectError),
    #[error("the local recording cannot be read: {0}")]
    Local(#[source] std::io::Error),
    #[error("the local recording cannot be parsed: {0}")]
    Damaged(#[source] format::Damage),
}

/// Sets or clears the legal hold of a recording's objects, and of those still to be
/// uploaded (kept in its upload state).
pub fn hold(bucket: &Bucket, dir: &Path, id: &str, on: bool) -> Result<(), ObjectError> {
    // Kept for the parts still to come (the uploader may not have seen it yet).
    if state_path(dir, id).exists() || dir.join(format!("{id}.rec")).exists() {
        let mut s = load(dir, id);
        s.hold = on;
        let _ = save(dir, id, &s);
    }
    for o in bucket.list(&bucket.key(&format!("{id}/")))? {
        bucket.set_legal_hold(&o.key, on)?;
    }
    Ok(())
}

/// Deletes every version of every object of a recording (purge, past retention), and its
/// upload state. Refused by the bucket while an object is locked or held.
pub fn forget(bucket: &Bucket, dir: &Path, id: &str) -> Result<(), ObjectError> {
    for (key, version) in bucket.versions(&bucket.key(&format!("{id}/")))? {
        bucket.delete_version(&key, &version)?;
    }
    let _ = std::fs::remove_file(state_path(dir, id));
    Ok(())
}
