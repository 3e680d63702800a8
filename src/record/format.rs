//! The recording container, byte for byte in docs/recording-format.md: a header bound as
//! associated data, then AES-256-GCM chunks whose nonce is a chunk counter plus a last-chunk
//! flag (age's STREAM construction), so that tampering, reordering and truncation are each
//! detected. Each chunk holds a deflate-compressed batch of events.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Instant;

use super::source::Source;
use super::RecordError;

pub const MAGIC: &[u8; 8] = b"CORDREC\x01";
/// The clear start of a file: the magic, then the JSON header's length (4 bytes, big-endian).
const PREFIX: usize = 12;
/// A header this long or longer is not believed (a corrupt length field).
const HEADER_MAX: usize = 1 << 20;
const INFO: &[u8] = b"cordon recording v1";
/// Events are sealed at the latest when this much is pending.
const CHUNK_TARGET: usize = 256 << 10;
/// Pending events are sealed (written) once the oldest is this old, whatever the output
/// pattern: with the writer's ticks every quarter second, a killed host loses at most
/// three quarters of a second of output.
pub const SEAL_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// A chunk larger than this is not believed (a corrupt length field).
const CHUNK_MAX: u32 = 16 << 20;
/// A chunk's clear header: sealed length (4), time of its first event in µs (8), flags (1).
const CHUNK_HEAD: usize = 13;
/// The chunk begins with a keyframe event (the whole screen), so reading can start there.
pub const FLAG_KEYFRAME: u8 = 1;

/// What a recording says about itself, in the clear but authenticated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub id: String,
    pub session: u64,
    pub user: String,
    pub profile: String,
    pub command: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    pub term: String,
    /// Unix seconds when recording started.
    pub started: u64,
    /// Which master key: the first 8 hex digits of its SHA-256.
    pub key_id: String,
    /// HKDF salt, hex.
    pub salt: String,
    /// How event batches are compressed: "zstd" (written since 0.1), or "deflate" when
    /// absent (recordings made before).
    #[serde(default = "deflate", skip_serializing_if = "is_deflate")]
    pub compression: String,
}

fn deflate() -> String {
    "deflate".into()
}

fn is_deflate(s: &str) -> bool {
    s == "deflate"
}

/// The compression new recordings use.
pub const COMPRESSION: &str = "zstd";

/// An event batch may not decompress to more than this (a chunk holds 256 KiB of events
/// plus one read or one keyframe).
const BATCH_LIMIT: u64 = 16 << 20;

/// A chunk's events decompressed, or why not (as `damage` of that chunk).
fn decompress(
    method: &str,
    data: &[u8],
    damage: impl Fn(&str) -> Damage,
) -> Result<Vec<u8>, Damage> {
    let mut raw = Vec::new();
    let result = match method {
        "zstd" => zstd::stream::read::Decoder::new(data)
            .and_then(|d| d.take(BATCH_LIMIT + 1).read_to_end(&mut raw)),
        "deflate" => flate2::read::DeflateDecoder::new(data)
            .take(BATCH_LIMIT + 1)
            .read_to_end(&mut raw),
        other => return Err(damage(&format!("unknown compression {other:?}"))),
    };
    match result {
        Ok(_) if raw.len() as u64 > BATCH_LIMIT => {
            Err(damage("decompresses to more than a chunk can hold"))
        }
        Ok(_) => Ok(raw),
        Err(_) => Err(damage("does not decompress")),
    }
}

/// One event: microseconds since the recording began, a kind, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at_us: u64,
    pub kind: u8,
    pub data: Vec<u8>,
}

/// Event kinds.
pub const OUTPUT: u8 = b'o';
pub const INPUT: u8 = b'i';
pub const RESIZE: u8 = b'r';
pub const MARKER: u8 = b'm';
pub const EXIT: u8 = b'x';
/// Recording was interrupted for a while (best-effort policy); data says why.
pub const GAP: u8 = b'g';
/// The whole screen, as bytes that draw it: where seeking starts.
pub const KEYFRAME: u8 = b'k';
/// An egress event (network mode "proxy"), JSON: a connection made, an attempt's record,
/// a question to the owner and its answer (`sessions::egress::timeline_entry`).
pub const NET: u8 = b'n';
/// An exec event (`sandbox::exec_events`), JSON: a program started (`exec`: pid, ppid,
/// path, resolved, argv, argc, cwd, outcome, why) or a process's exit (`exit`: pid,
/// status).
pub const EXEC: u8 = b'e';
/// What the session created, changed and deleted in its workspace, JSON
/// (`changes::Summary`): written once, after its last process ended and just before the
/// exit status, so that it is sealed with the rest.
pub const FILES: u8 = b'f';

/// The associated data of one chunk: the header's hash, the chunk's time and flags.
fn chunk_aad(header_hash: &[u8; 32], start_us: u64, flags: u8) -> [u8; 41] {
    let mut a = [0u8; 41];
    a[..32].copy_from_slice(header_hash);
    a[32..40].copy_from_slice(&start_us.to_be_bytes());
    a[40] = flags;
    a
}

/// The id of a master key.
pub fn key_id(master: &[u8]) -> String {
    crate::secrets::hex(&Sha256::digest(master)[..4])
}

/// The recording key of one recording: HKDF of the master key with the recording's own
/// salt. It opens that recording only (HKDF cannot be run backwards to the master key), so an
/// evidence bundle can carry it.
fn derive(master: &[u8], salt: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, RecordError> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), master);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    hk.expand(INFO, key.as_mut())
        .map_err(|_| RecordError::Crypto("key derivation"))?;
    Ok(key)
}

fn cipher(master: &[u8], salt: &[u8]) -> Result<Aes256Gcm, RecordError> {
    let key = derive(master, salt)?;
    Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| RecordError::Crypto("setting the key"))
}

/// The key given to open a recording: the master key its header names, or the recording's
/// own derived key (what an evidence bundle discloses).
#[derive(Clone, Copy)]
pub enum KeyGiven<'a> {
    Master(&'a [u8]),
    Recording(&'a [u8]),
}

/// The recording key of the recording at `path` (see [`derive`]), from its master key.
pub fn recording_key(path: &Path, master: &[u8]) -> Result<zeroize::Zeroizing<[u8; 32]>, Damage> {
    let src = super::source::open(path).map_err(Damage::unreadable(None, 0))?;
    let (header, _, _) = read_header(src.as_ref(), src.size())?;
    let salt = hex_decode(&header.salt).ok_or_else(|| Damage::header(PREFIX as u64, "bad salt"))?;
    derive(master, &salt).map_err(|e| Damage::header(0, e.to_string()))
}

fn nonce(counter: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Whether a host is writing the recording at `path` now: its writer holds an exclusive
/// lock on the file for as long as it has it open ([`Writer::create`]). A file that cannot be
/// opened is not being written.
pub fn being_written(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; a shared lock taken is dropped with the file.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Writes a recording. Not thread-safe: one session's reader thread owns it.
pub struct Writer {
    file: File,
    /// zstd level 1 (twice deflate's speed at a better ratio), or None for deflate.
    compressor: Option<zstd::bulk::Compressor<'static>>,
    cipher: Aes256Gcm,
    aad: [u8; 32],
    counter: u64,
    pending: Vec<u8>,
    started: Instant,
    last_us: u64,
    /// When the oldest pending event was added (None: nothing pending).
    pending_since: Option<Instant>,
    /// When data was last forced to disk, and whether some was written since.
    last_sync: Instant,
    unsynced: bool,
    /// A failed write left bytes that could not be cut off: nothing more may be written.
    broken: bool,
    finished: bool,
    /// Time of the first pending event, and the flags of the chunk being filled.
    chunk_start: Option<u64>,
    chunk_flags: u8,
    /// Bytes written to disk so far.
    pub bytes: u64,
}

impl Writer {
    /// Creates `path` (mode 0600) and writes the header.
    pub fn create(path: &Path, header: &Header, master: &[u8]) -> Result<Writer, RecordError> {
        use std::os::fd::AsRawFd;
        let salt = hex_decode(&header.salt).ok_or(RecordError::BadSalt)?;
        let cipher = cipher(master, &salt)?;
        let json = serde_json::to_vec(header).map_err(RecordError::Header)?;
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&(json.len() as u32).to_be_bytes());
        head.extend_from_slice(&json);
        let aad: [u8; 32] = Sha256::digest(&head).into();
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(RecordError::file("creating", path))?;
        // Held while the file is open: how `verify` tells a live recording from one whose
        // host stopped (the kernel drops the lock with the process, however it ends).
        // SAFETY: flock on the descriptor we just opened; no other holder exists yet.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(RecordError::file("locking", path)(
                std::io::Error::last_os_error(),
            ));
        }
        file.write_all(&head)
            .map_err(RecordError::file("writing", path))?;
        let compressor = match header.compression.as_str() {
            "zstd" => Some(zstd::bulk::Compressor::new(1).map_err(RecordError::Compress)?),
            "deflate" => None,
            other => return Err(RecordError::UnknownCompression(other.to_string())),
        };
        Ok(Writer {
            file,
            compressor,
            cipher,
            aad,
            counter: 0,
            pending: Vec::new(),
            started: Instant::now(),
            last_us: 0,
            pending_since: None,
            last_sync: Instant::now(),
            unsynced: true,
            broken: false,
            finished: false,
            chunk_start: None,
            chunk_flags: 0,
            bytes: head.len() as u64,
        })
    }

    /// Adds an event stamped now.
    pub fn event(&mut self, kind: u8, data: &[u8]) -> Result<(), RecordError> {
        let at = self.started.elapsed().as_micros() as u64;
        self.event_at(at, kind, data)
    }

    /// When the recording started: events are timed from here.
    pub fn clock(&self) -> Instant {
        self.started
    }

    /// Adds an event stamped `at_us` microseconds after `clock()` (never before the last one).
    pub fn event_at(&mut self, at_us: u64, kind: u8, data: &[u8]) -> Result<(), RecordError> {
        let at_us = at_us.max(self.last_us);
        // The first event of a chunk is timed from the chunk's header, so that a chunk can
        // be read on its own.
        let prev = match self.chunk_start {
            Some(_) => self.last_us,
            None => {
                self.chunk_start = Some(at_us);
                at_us
            }
        };
        self.pending_since.get_or_insert_with(Instant::now);
        self.pending.push(kind);
        put_varint(&mut self.pending, at_us - prev);
        put_varint(&mut self.pending, data.len() as u64);
        self.pending.extend_from_slice(data);
        self.last_us = at_us;
        if self.pending.len() >= CHUNK_TARGET {
            self.seal(false)?;
        }
        Ok(())
    }

    /// Seals pending events once the oldest is [`SEAL_AFTER`] old, and forces written chunks
    /// to disk if the last sync is a second old. Call it a few times a second whatever the
    /// output does (a trickle of output never fills a chunk): a killed host then loses at
    /// most the last [`SEAL_AFTER`] plus one tick; a machine that loses power, at most the
    /// last two seconds.
    pub fn tick(&mut self) -> Result<(), RecordError> {
        if self
            .pending_since
            .is_some_and(|t| t.elapsed() >= SEAL_AFTER)
        {
            self.seal(false)?;
        }
        self.sync(false)
    }

    /// fdatasync, at most once a second unless `now`: a sync per sealed chunk would cost
    /// bulk output a fifth of its throughput.
    fn sync(&mut self, now: bool) -> Result<(), RecordError> {
        if self.unsynced && (now || self.last_sync.elapsed().as_millis() >= 1000) {
            self.file.sync_data().map_err(RecordError::Write)?;
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Starts a new chunk with the whole screen, so that reading can begin there; stamped
    /// `at_us` after `clock()`.
    pub fn keyframe_at(&mut self, at_us: u64, screen: &[u8]) -> Result<(), RecordError> {
        if !self.pending.is_empty() {
            self.seal(false)?;
        }
        self.chunk_flags = FLAG_KEYFRAME;
        self.event_at(at_us, KEYFRAME, screen)
    }

    fn seal(&mut self, last: bool) -> Result<(), RecordError> {
        if self.broken {
            return Err(RecordError::Broken);
        }
        let plain = match self.compressor.as_mut() {
            Some(z) => z.compress(&self.pending).map_err(RecordError::Compress)?,
            None => {
                let mut z =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
                z.write_all(&self.pending)
                    .and_then(|_| z.finish())
                    .map_err(RecordError::Compress)?
            }
        };
        let start = self.chunk_start.unwrap_or(self.last_us);
        let flags = self.chunk_flags;
        let aad = chunk_aad(&self.aad, start, flags);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce(self.counter, last)),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| RecordError::Crypto("encryption"))?;
        let mut out = (sealed.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&start.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&sealed);
        if let Err(e) = self.file.write_all(&out) {
            // Cut a partly written chunk off again: its nonce is used again by the next
            // attempt, and two ciphertexts under one nonce must never both be on disk.
            let bytes = self.bytes;
            if self
                .file
                .set_len(bytes)
                .and_then(|_| self.file.seek(std::io::SeekFrom::Start(bytes)))
                .is_err()
            {
                self.broken = true;
            }
            return Err(RecordError::Write(e));
        }
        self.unsynced = true;
        self.sync(last)?;
        self.bytes += out.len() as u64;
        self.counter += 1;
        self.pending.clear();
        self.pending_since = None;
        self.chunk_start = None;
        self.chunk_flags = 0;
        Ok(())
    }

    /// Forgets events not yet sealed (after a failed write, under the best-effort policy).
    pub fn discard_pending(&mut self) {
        self.pending.clear();
        self.pending_since = None;
        self.chunk_start = None;
        self.chunk_flags = 0;
    }

    /// Seals the final chunk: the recording is complete.
    pub fn finish(&mut self) -> Result<(), RecordError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.seal(true)
    }
}

/// How reading a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The final chunk is there.
    Complete,
    /// It stops after `chunks` whole chunks without a final one: the host stopped while
    /// recording, or the end was cut off.
    NoFinalChunk { chunks: u64 },
}

/// A recording read back and verified.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub events: Vec<Event>,
    pub ending: Ending,
}

/// Where and why a recording failed verification: the chunk (None: the file header), the
/// byte offset, and the reason; an I/O error that stopped the reading is kept as the source.
#[derive(Debug, thiserror::Error)]
#[error("{}at byte {offset}: {reason}", chunk.map(|c| format!("chunk {c} ")).unwrap_or_default())]
pub struct Damage {
    pub chunk: Option<u64>,
    pub offset: u64,
    pub reason: String,
    #[source]
    pub source: Option<std::io::Error>,
}

impl Damage {
    /// Damage in the file header.
    fn header(offset: u64, reason: impl Into<String>) -> Damage {
        Damage {
            chunk: None,
            offset,
            reason: reason.into(),
            source: None,
        }
    }

    /// Damage in chunk `chunk`, which starts at `offset`.
    fn chunk(chunk: u64, offset: u64, reason: impl Into<String>) -> Damage {
        Damage {
            chunk: Some(chunk),
            offset,
            reason: reason.into(),
            source: None,
        }
    }

    /// The file could not be read at `offset` (in `chunk`, or the header).
    fn unreadable(chunk: Option<u64>, offset: u64) -> impl FnOnce(std::io::Error) -> Damage {
        move |e| Damage {
            chunk,
            offset,
            reason: format!("cannot read: {e}"),
            source: Some(e),
        }
    }
}

/// The key id a recording names in its header.
pub fn header_key_id(path: &Path) -> Result<String, Damage> {
    let src = super::source::open(path).map_err(Damage::unreadable(None, 0))?;
    read_header(src.as_ref(), src.size()).map(|(h, _, _)| h.key_id)
}

/// The header of an open recording file (what the uploader needs: its start, for the
/// retention date of its objects).
pub fn header_of(file: &File) -> Result<Header, Damage> {
    let size = file.metadata().map_err(Damage::unreadable(None, 0))?.len();
    read_header(file, size).map(|(h, _, _)| h)
}

/// The length of the JSON header, from the file's first bytes (at least [`PREFIX`] of them
/// unless the file is shorter).
fn header_len(prefix: &[u8]) -> Result<usize, Damage> {
    if prefix.len() < PREFIX || &prefix[..8] != MAGIC {
        return Err(Damage::header(0, "not a cordon recording (bad magic)"));
    }
    let len = u32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize;
    if len >= HEADER_MAX {
        return Err(Damage::header(8, "header length runs past the file"));
    }
    Ok(len)
}

/// The recording header at the start of `data`: the header, where the chunks begin, and the
/// header's hash (bound into every chunk as associated data). The one parser of the header:
/// [`read_header`] reads a file's into memory and hands it here.
fn parse_header(data: &[u8]) -> Result<(Header, usize, [u8; 32]), Damage> {
    let end = PREFIX + header_len(data)?;
    if end > data.len() {
        return Err(Damage::header(8, "header length runs past the file"));
    }
    let header: Header = serde_json::from_slice(&data[PREFIX..end])
        .map_err(|e| Damage::header(PREFIX as u64, format!("header is not valid: {e}")))?;
    let aad: [u8; 32] = Sha256::digest(&data[..end]).into();
    Ok((header, end, aad))
}

/// The header of an open recording of `size` bytes (see [`parse_header`]), read without
/// reading further.
fn read_header(file: &dyn Source, size: u64) -> Result<(Header, usize, [u8; 32]), Damage> {
    let mut head = vec![0u8; PREFIX.min(size as usize)];
    file.read_exact_at(&mut head, 0)
        .map_err(Damage::unreadable(None, 0))?;
    // As much of the header as the file holds: a length past its end is parse_header's to say.
    let len = header_len(&head)?.min(size as usize - PREFIX);
    head.resize(PREFIX + len, 0);
    file.read_exact_at(&mut head[PREFIX..], PREFIX as u64)
        .map_err(Damage::unreadable(None, PREFIX as u64))?;
    parse_header(&head)
}

/// Decrypts and decodes chunk `counter` (sealed bytes `sealed`, clear `start`/`flags`):
/// its events with absolute times, and whether it is the final chunk.
fn open_chunk(
    o: &Opened,
    counter: u64,
    c: &ChunkRef,
    sealed: &[u8],
) -> Result<(Vec<Event>, bool), Damage> {
    let (cipher, header_hash, start, flags, offset) =
        (&o.cipher, &o.header_hash, c.start, c.flags, c.offset);
    let damage = |reason: &str| Damage::chunk(counter, offset, reason);
    let aad = chunk_aad(header_hash, start, flags);
    let (plain, last) = match cipher.decrypt(
        Nonce::from_slice(&nonce(counter, false)),
        Payload {
            msg: sealed,
            aad: &aad,
        },
    ) {
        Ok(p) => (p, false),
        Err(_) => match cipher.decrypt(
            Nonce::from_slice(&nonce(counter, true)),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        ) {
            Ok(p) => (p, true),
            Err(_) => {
                return Err(damage(
                    "fails authentication: altered, reordered, or from another recording",
                ))
            }
        },
    };
    let raw = decompress(&o.header.compression, &plain, damage)?;
    let mut events = Vec::new();
    let (mut p, mut at) = (0, start);
    while p < raw.len() {
        let kind = raw[p];
        p += 1;
        let delta = get_varint(&raw, &mut p).ok_or_else(|| damage("malformed event"))?;
        let n = get_varint(&raw, &mut p).ok_or_else(|| damage("malformed event"))? as usize;
        let bytes = raw
            .get(p..p + n)
            .ok_or_else(|| damage("malformed event"))?
            .to_vec();
        p += n;
        at += delta;
        events.push(Event {
            at_us: at,
            kind,
            data: bytes,
        });
    }
    Ok((events, last))
}

/// A chunk's place in the file, from its clear header (or a bucket's index of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub offset: u64,
    pub len: u32,
    pub start: u64,
    pub flags: u8,
}

impl ChunkRef {
    /// Where the chunk ends (its clear header and sealed bytes included).
    pub fn end(&self) -> u64 {
        self.offset + CHUNK_HEAD as u64 + u64::from(self.len)
    }
}

/// The sealed chunks of a recording being written, from the byte after the file header or
/// from `from` (the end of a chunk already seen): only whole chunks, so a part uploaded
/// from them never holds one being written. Also returns where the chunks begin.
pub fn sealed_chunks(f: &File, from: Option<u64>) -> Result<(u64, Vec<ChunkRef>), Damage> {
    let size = f.metadata().map_err(Damage::unreadable(None, 0))?.len();
    let (_, end, _) = read_header(f, size)?;
    let pos = from.unwrap_or(end as u64).max(end as u64);
    Ok((end as u64, scan(f, pos, size)?))
}

/// The chunk headers after the file header, read with positioned reads (no decryption),
/// up to the first incomplete chunk.
fn scan(f: &dyn Source, mut pos: u64, size: u64) -> Result<Vec<ChunkRef>, Damage> {
    let mut out = Vec::new();
    let mut head = [0u8; CHUNK_HEAD];
    while pos + CHUNK_HEAD as u64 <= size {
        f.read_exact_at(&mut head, pos)
            .map_err(Damage::unreadable(Some(out.len() as u64), pos))?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if !(16..=CHUNK_MAX).contains(&len) {
            return Err(Damage::chunk(
                out.len() as u64,
                pos,
                "impossible chunk length: the file was altered",
            ));
        }
        if pos + CHUNK_HEAD as u64 + u64::from(len) > size {
            break;
        }
        let start = u64::from_be_bytes(head[4..12].try_into().unwrap_or([0; 8]));
        out.push(ChunkRef {
            offset: pos,
            len,
            start,
            flags: head[12],
        });
        pos += CHUNK_HEAD as u64 + u64::from(len);
    }
    Ok(out)
}

struct Opened {
    file: Box<dyn Source>,
    size: u64,
    header: Header,
    header_hash: [u8; 32],
    cipher: Aes256Gcm,
    chunks: Vec<ChunkRef>,
}

fn open(path: &Path, master: &[u8]) -> Result<Opened, Damage> {
    open_with(path, KeyGiven::Master(master))
}

fn open_with(path: &Path, key: KeyGiven) -> Result<Opened, Damage> {
    let src = super::source::open(path).map_err(Damage::unreadable(None, 0))?;
    open_file(src, key)
}

/// The chunks of a source: its index when it has one (a bucket's), else scanned.
fn chunks_of(src: &dyn Source, end: u64, size: u64) -> Result<Vec<ChunkRef>, Damage> {
    match src.index() {
        Some(chunks) => Ok(chunks),
        None => scan(src, end, size),
    }
}

fn open_file(file: Box<dyn Source>, key: KeyGiven) -> Result<Opened, Damage> {
    let size = file.size();
    let (header, end, header_hash) = read_header(file.as_ref(), size)?;
    let master = match key {
        KeyGiven::Master(m) => m,
        KeyGiven::Recording(k) => {
            let cipher = Aes256Gcm::new_from_slice(k)
                .map_err(|_| Damage::header(0, "a recording key is 32 bytes"))?;
            let chunks = chunks_of(file.as_ref(), end as u64, size)?;
            return Ok(Opened {
                file,
                size,
                header,
                header_hash,
                cipher,
                chunks,
            });
        }
    };
    if header.key_id != key_id(master) {
        return Err(Damage::header(
            0,
            format!(
                "recorded with key {}, not the key given ({})",
                header.key_id,
                key_id(master)
            ),
        ));
    }
    let salt = hex_decode(&header.salt).ok_or_else(|| Damage::header(PREFIX as u64, "bad salt"))?;
    let cipher = cipher(master, &salt).map_err(|e| Damage::header(0, e.to_string()))?;
    let chunks = chunks_of(file.as_ref(), end as u64, size)?;
    Ok(Opened {
        file,
        size,
        header,
        header_hash,
        cipher,
        chunks,
    })
}

/// A recording opened for reading chunk by chunk (playback, seeking).
pub struct Reader(Opened);

impl Reader {
    pub fn open(path: &Path, master: &[u8]) -> Result<Reader, Damage> {
        open(path, master).map(Reader)
    }
    pub fn header(&self) -> &Header {
        &self.0.header
    }
    pub fn chunks(&self) -> usize {
        self.0.chunks.len()
    }
    /// The time of chunk `i`'s first event, in µs.
    pub fn chunk_start(&self, i: usize) -> u64 {
        self.0.chunks[i].start
    }
    /// The chunk to start from to draw the screen at `at_us`: the last keyframe at or before it.
    pub fn keyframe_for(&self, at_us: u64) -> usize {
        self.0
            .chunks
            .iter()
            .rposition(|c| c.flags & FLAG_KEYFRAME != 0 && c.start <= at_us)
            .unwrap_or(0)
    }
    /// The events of chunk `i`, verified.
    pub fn events(&self, i: usize) -> Result<Vec<Event>, Damage> {
        self.0.chunk(i).map(|(e, _)| e)
    }
}

impl Opened {
    fn chunk(&self, i: usize) -> Result<(Vec<Event>, bool), Damage> {
        let c = self.chunks[i];
        let mut framed = vec![0u8; CHUNK_HEAD + c.len as usize];
        self.file
            .read_exact_at(&mut framed, c.offset)
            .map_err(Damage::unreadable(Some(i as u64), c.offset))?;
        // The clear header read again with the chunk: an index (a bucket's) that places a
        // chunk elsewhere than its own header says is refused here.
        let mut head = (c.len).to_be_bytes().to_vec();
        head.extend_from_slice(&c.start.to_be_bytes());
        head.push(c.flags);
        if framed[..CHUNK_HEAD] != head[..] {
            return Err(Damage::chunk(
                i as u64,
                c.offset,
                "its clear header is not what the index says: the index or the chunk was altered",
            ));
        }
        open_chunk(self, i as u64, &c, &framed[CHUNK_HEAD..])
    }
}

/// Reads and verifies a whole recording with `master` (the key whose id the header names).
pub fn read(path: &Path, master: &[u8]) -> Result<Recording, Damage> {
    read_with(path, KeyGiven::Master(master))
}

/// Reads and verifies a whole recording with the key given.
pub fn read_with(path: &Path, key: KeyGiven) -> Result<Recording, Damage> {
    read_opened(open_with(path, key)?)
}

/// Reads and verifies a whole recording from an open file (an evidence bundle's member, in
/// memory) with the key given.
pub fn read_file_with(file: File, key: KeyGiven) -> Result<Recording, Damage> {
    read_opened(open_file(Box::new(file), key)?)
}

fn read_opened(o: Opened) -> Result<Recording, Damage> {
    o.file.whole();
    let mut events: Vec<Event> = Vec::new();
    for i in 0..o.chunks.len() {
        let c = o.chunks[i];
        if events.last().is_some_and(|e| c.start < e.at_us) {
            return Err(Damage::chunk(
                i as u64,
                c.offset,
                "starts before the previous chunk ends: reordered",
            ));
        }
        let (mut evs, last) = o.chunk(i)?;
        events.append(&mut evs);
        if last {
            let end = c.offset + CHUNK_HEAD as u64 + u64::from(c.len);
            if end != o.size {
                return Err(Damage::chunk(
                    i as u64 + 1,
                    end,
                    "data after the final chunk",
                ));
            }
            return Ok(Recording {
                header: o.header,
                events,
                ending: Ending::Complete,
            });
        }
    }
    Ok(Recording {
        ending: Ending::NoFinalChunk {
            chunks: o.chunks.len() as u64,
        },
        header: o.header,
        events,
    })
}

/// The data of the last event of `kind` in the last `chunks` chunks, each verified (a chunk
/// is authenticated at its place, so it cannot come from elsewhere), without reading the
/// rest: what is written at the end (the files summary) is found there.
pub fn last_event(
    path: &Path,
    master: &[u8],
    kind: u8,
    chunks: usize,
) -> Result<Option<Vec<u8>>, Damage> {
    let r = Reader::open(path, master)?;
    for i in (r.chunks().saturating_sub(chunks)..r.chunks()).rev() {
        if let Some(e) = r.events(i)?.into_iter().rev().find(|e| e.kind == kind) {
            return Ok(Some(e.data));
        }
    }
    Ok(None)
}

/// What is needed to draw the screen at `at_us` without reading the whole recording: the
/// events from the last keyframe at or before it (the keyframe first) up to `at_us`. Only
/// the chunks from that keyframe on are decrypted.
pub fn seek(path: &Path, master: &[u8], at_us: u64) -> Result<(Header, Vec<Event>), Damage> {
    let r = Reader::open(path, master)?;
    let mut events = Vec::new();
    for i in r.keyframe_for(at_us)..r.chunks() {
        if r.chunk_start(i) > at_us {
            break;
        }
        events.extend(r.events(i)?.into_iter().filter(|e| e.at_us <= at_us));
    }
    Ok((r.0.header, events))
}

pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn header(key: &[u8]) -> Header {
        Header {
            id: "t".into(),
            session: 1,
            user: "alice".into(),
            profile: "default".into(),
            command: vec!["bash".into()],
            cols: 80,
            rows: 24,
            term: "xterm".into(),
            started: 0,
            key_id: key_id(key),
            salt: "00112233445566778899aabbccddeeff".into(),
            compression: COMPRESSION.into(),
        }
    }

    /// xorshift: deterministic "arbitrary" bytes without a dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    fn output_of(r: &Recording) -> Vec<u8> {
        r.events
            .iter()
            .filter(|e| e.kind == OUTPUT)
            .flat_map(|e| e.data.clone())
            .collect()
    }

    #[test]
    fn a_write_cut_short_by_a_full_disk_is_cut_off_and_writing_resumes_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let small = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !small {
            eprintln!("cannot mount a small tmpfs here (not root?); skipping");
            return;
        }
        let mut seed = 0x9E3779B97F4A7C15;
        let mut noise = |n: usize| (0..n).map(|_| rng(&mut seed) as u8).collect::<Vec<u8>>();
        let key = [4u8; 32];
        let filler = dir.path().join("filler");
        std::fs::write(&filler, vec![0u8; 200 << 10]).unwrap();
        let path = dir.path().join("r");
        let mut w = Writer::create(&path, &header(&key), &key).unwrap();
        let (first, lost, last) = (noise(300 << 10), noise(300 << 10), noise(100 << 10));
        w.event_at(1, OUTPUT, &first).unwrap();
        let failed = w.event_at(2, OUTPUT, &lost);
        w.discard_pending();
        std::fs::remove_file(&filler).unwrap();
        let resumed = w.event_at(3, OUTPUT, &last).and_then(|_| w.finish());
        let read_back = read(&path, &key);
        // The writer's file must be closed, or the tmpfs stays mounted (busy) for good.
        drop(w);
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
        assert!(failed.is_err(), "the second chunk does not fit");
        resumed.unwrap();
        let r = read_back.unwrap();
        assert_eq!(r.ending, Ending::Complete);
        assert_eq!(output_of(&r), [first, last].concat());
    }

    #[test]
    fn recordings_compressed_with_deflate_before_zstd_still_read() {
        let key = [3u8; 32];
        for method in ["deflate", "zstd"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r");
            let mut h = header(&key);
            h.compression = method.into();
            let mut w = Writer::create(&path, &h, &key).unwrap();
            w.event_at(5, OUTPUT, b"hello ").unwrap();
            w.event_at(9, OUTPUT, &[b'x'; 300 << 10]).unwrap();
            w.finish().unwrap();
            let text = std::fs::read(&path).unwrap();
            let json = String::from_utf8_lossy(&text[12..text.len().min(400)]).to_string();
            assert_eq!(
                json.contains("\"compression\""),
                method != "deflate",
                "{json}"
            );
            let r = read(&path, &key).unwrap();
            assert_eq!(r.header.compression, method);
            assert_eq!(output_of(&r), [&b"hello "[..], &[b'x'; 300 << 10]].concat());
        }
    }

    #[test]
    fn arbitrary_bytes_survive_a_round_trip() {
        let key = [9u8; 32];
        let mut seed = 0x2545F4914F6CDD1D;
        for case in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r");
            let mut w = Writer::create(&path, &header(&key), &key).unwrap();
            let mut expect = Vec::new();
            for _ in 0..(rng(&mut seed) % 200) {
                let n = (rng(&mut seed) % if case % 5 == 0 { 20_000 } else { 300 }) as usize;
                let chunk: Vec<u8> = (0..n).map(|_| rng(&mut seed) as u8).collect();
                w.event(OUTPUT, &chunk).unwrap();
                expect.extend_from_slice(&chunk);
                if rng(&mut seed) % 7 == 0 {
                    w.seal(false).unwrap();
                }
            }
            w.finish().unwrap();
            let r = read(&path, &key).unwrap();
            assert_eq!(r.ending, Ending::Complete);
            assert_eq!(output_of(&r), expect, "case {case}");
        }
    }

    fn three_chunks(dir: &Path, key: &[u8]) -> (std::path::PathBuf, Vec<(usize, usize)>) {
        let path = dir.join("r");
        let mut w = Writer::create(&path, &header(key), key).unwrap();
        for i in 0..3 {
            w.event(OUTPUT, format!("part {i}\n").as_bytes()).unwrap();
            if i < 2 {
                w.seal(false).unwrap();
            }
        }
        w.finish().unwrap();
        let data = std::fs::read(&path).unwrap();
        let (_, mut pos, _) = parse_header(&data).unwrap();
        let mut spans = Vec::new();
        while pos < data.len() {
            let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            spans.push((pos, pos + CHUNK_HEAD + len));
            pos += CHUNK_HEAD + len;
        }
        (path, spans)
    }

    #[test]
    fn the_sealed_chunks_of_a_file_being_written_stop_before_a_chunk_not_yet_whole() {
        let key = [3u8; 32];
        let dir = tempfile::tempdir().unwrap();
        let (path, spans) = three_chunks(dir.path(), &key);
        let good = std::fs::read(&path).unwrap();
        // The third chunk half written, as a writer in the middle of its write leaves it.
        let cut = spans[2].0 + (spans[2].1 - spans[2].0) / 2;
        std::fs::write(&path, &good[..cut]).unwrap();
        let f = File::open(&path).unwrap();
        let (start, chunks) = sealed_chunks(&f, None).unwrap();
        assert_eq!(start as usize, spans[0].0);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].end() as usize, spans[1].1);
        // From the end of the first: only the second.
        let (_, rest) = sealed_chunks(&f, Some(chunks[0].end())).unwrap();
        assert_eq!(rest, vec![chunks[1]]);
    }

    #[test]
    fn tampering_reordering_truncation_and_a_wrong_key_are_each_detected() {
        let key = [3u8; 32];
        let dir = tempfile::tempdir().unwrap();
        let (path, spans) = three_chunks(dir.path(), &key);
        let good = std::fs::read(&path).unwrap();
        assert_eq!(spans.len(), 3);

        let mut bad = good.clone();
        bad[spans[1].0 + 10] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let e = read(&path, &key).unwrap_err();
        assert_eq!(e.chunk, Some(1), "{e}");

        let mut swapped = good[..spans[0].0].to_vec();
        swapped.extend_from_slice(&good[spans[1].0..spans[1].1]);
        swapped.extend_from_slice(&good[spans[0].0..spans[0].1]);
        swapped.extend_from_slice(&good[spans[2].0..]);
        std::fs::write(&path, &swapped).unwrap();
        assert_eq!(read(&path, &key).unwrap_err().chunk, Some(0));

        std::fs::write(&path, &good[..spans[2].0]).unwrap();
        assert_eq!(
            read(&path, &key).unwrap().ending,
            Ending::NoFinalChunk { chunks: 2 }
        );

        let mut header_changed = good.clone();
        let i = header_changed
            .windows(5)
            .position(|w| w == b"alice")
            .unwrap();
        header_changed[i] = b'A';
        std::fs::write(&path, &header_changed).unwrap();
        assert_eq!(
            read(&path, &key).unwrap_err().chunk,
            Some(0),
            "the header is bound to every chunk"
        );

        std::fs::write(&path, &good).unwrap();
        assert!(read(&path, &[4u8; 32]).unwrap_err().reason.contains("key"));
        assert_eq!(read(&path, &key).unwrap().ending, Ending::Complete);
    }
}
