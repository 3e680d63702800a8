//! Removes a session's secret values (API keys handed to the session) from its output before
//! the output is recorded, so that they never reach a recording, its keyframes or the search
//! index. It is pure: bytes in, bytes out, no I/O, no clock.
//!
//! **What is redacted.** Each occurrence of a secret value, byte for byte, and of its base64
//! encodings, standard (`+/`) and URL-safe (`-_`), padded or not, becomes [`MARKER`]. Base64
//! of a secret embedded in a longer text (`Authorization: Basic base64(user:key)`, a JSON
//! blob, `printf 'x%s' "$KEY" | base64`) depends on where the secret falls modulo 3 bytes;
//! for each of the three offsets the redactor looks for the run of characters that depends on
//! the secret alone, so the first and last character of an encoding, which mix a few bits
//! of the secret (at most 6 bits at each end) with the bytes around it, stay in the recording.
//! Overlapping or adjacent occurrences become one marker. An occurrence split across any
//! number of reads is found: the redactor holds back the bytes that could begin one (at most
//! [`Redactor::hold`], usually none) until the next read shows whether they do.
//!
//! **What is not.**
//! - Values shorter than [`MIN_SECRET`] bytes: short values occur in ordinary output by
//!   chance (a 4-digit PIN appears in timestamps and line numbers), so replacing them would
//!   mangle the recording and, by where the markers fall, disclose the value anyway. Values
//!   longer than [`MAX_SECRET`] bytes and secrets past the first [`MAX_SECRETS`] are not
//!   redacted either, which bounds the search's memory. [`Redactor::skipped`] lists them.
//! - Other encodings: hex (`xxd`, `od`), URL-encoding (`%2F`), quoted-printable, base32,
//!   JSON or shell escaping that changes a byte of the value (`\/`, `\u002b`), a compressed
//!   or encrypted copy, other character case, a value reversed or cut into pieces.
//! - Base64 wrapped across lines: `base64` wraps at 76 columns by default (57 bytes of input
//!   per line), and each line break interrupts the encoding, so only lines whose characters
//!   hold a whole core of the secret are redacted.
//! - A secret that does not reach the terminal as one contiguous run of bytes: typed out with
//!   cursor movement between its characters, redrawn in place, echoed character by character
//!   with escape sequences (colours, cursor positioning) between them, wrapped by the
//!   terminal with a line break inserted, or with `\n` turned into `\r\n` inside a multi-line
//!   value (a PEM key). Escape sequences interleaved inside a secret defeat it.
//! - A secret printed only in part (a prefix, or cut off when the session ends): a part is
//!   not the value, so it stays.
//!
//! It removes values from recorded output only: what the session prints to its viewers, what
//! a user types, and the process's environment are not its business.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::nfa::contiguous::NFA;
use aho_corasick::{Anchored, MatchKind};
use std::collections::{BTreeSet, HashMap};

/// What replaces a secret in recorded output.
pub const MARKER: &[u8] = b"[redacted]";
/// Values shorter than this many bytes are not redacted (see the module's documentation).
pub const MIN_SECRET: usize = 8;
/// Values longer than this many bytes are not redacted: API keys and tokens are well under
/// it, and it bounds the memory of the search.
pub const MAX_SECRET: usize = 1024;
/// At most this many values are redacted; those after it are skipped.
pub const MAX_SECRETS: usize = 256;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A streaming redactor of one output stream: the same secrets removed from every read,
/// including an occurrence that spans reads.
pub struct Redactor {
    /// `None` when there is nothing to redact.
    search: Option<Search>,
    skipped: Vec<usize>,
}

struct Search {
    // A contiguous NFA rather than a DFA: a DFA's table costs hundreds of bytes per state
    // (per pattern byte), for every session; the NFA is a few bytes per state and still
    // scans output at hundreds of megabytes a second.
    nfa: NFA,
    /// The length of the text each state stands for (the pattern prefix it has matched), to
    /// know how much of the output's tail could still begin an occurrence.
    depth: HashMap<StateID, usize>,
    hold: usize,
    start: StateID,
    state: StateID,
    /// Bytes read so far: positions below are absolute offsets in the stream.
    pos: u64,
    /// The bytes `pos - held.len() .. pos`, not yet written: they may begin an occurrence.
    held: Vec<u8>,
    /// Occurrences found but not yet written (their start is held), sorted, disjoint and
    /// not adjacent: overlapping or touching ones are merged as they are found.
    found: Vec<(u64, u64)>,
    /// The end of the last range written as a marker: a later occurrence that starts at or
    /// before it extends that marker instead of writing another.
    covered: Option<u64>,
}

impl Redactor {
    /// `secrets`: the values to remove. Values shorter than [`MIN_SECRET`] or longer than
    /// [`MAX_SECRET`] bytes, and values past the first [`MAX_SECRETS`], are not redacted;
    /// [`Redactor::skipped`] gives their indices so that the caller can warn.
    pub fn new<I, S>(secrets: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut patterns = BTreeSet::new();
        let mut skipped = Vec::new();
        let mut taken = 0;
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if !(MIN_SECRET..=MAX_SECRET).contains(&secret.len()) || taken == MAX_SECRETS {
                skipped.push(index);
                continue;
            }
            taken += 1;
            patterns.extend(patterns_of(secret));
        }
        let search = (!patterns.is_empty()).then(|| Search::new(patterns));
        Redactor { search, skipped }
    }

    /// True when there is nothing to redact: callers skip all work.
    pub fn is_empty(&self) -> bool {
        self.search.is_none()
    }

    /// The indices, in the order given to [`Redactor::new`], of the values that are not
    /// redacted (too short, too long, or too many). Indices rather than values, so that
    /// a warning names the secret without printing it.
    pub fn skipped(&self) -> &[usize] {
        &self.skipped
    }

    /// Feeds `input`; appends to `out` every byte that can no longer be part of a secret
    /// (redacted). Holds back at most `self.hold()` bytes that might start one, and only
    /// while they do: output that ends outside any partial occurrence is written whole.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        match &mut self.search {
            None => out.extend_from_slice(input),
            Some(search) => search.push(input, out),
        }
    }

    /// Everything held back, redacted as far as it can be (end of stream). The redactor is
    /// then ready for a new stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(search) = &mut self.search {
            search.finish(out);
        }
    }

    /// The most bytes it may hold back (longest pattern - 1); 0 when it is empty.
    pub fn hold(&self) -> usize {
        self.search.as_ref().map_or(0, |s| s.hold)
    }
}

impl std::fmt::Debug for Redactor {
    // Never the patterns: they are the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field(
                "patterns",
                &self.search.as_ref().map_or(0, |s| s.nfa.patterns_len()),
            )
            .field("hold", &self.hold())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

/// The byte strings that reveal `secret`: itself, and for each of the three offsets modulo 3
/// at which it can begin in base64's input, the characters of the encoding that depend on
/// the secret alone, in both alphabets.
fn patterns_of(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![secret.to_vec()];
    for offset in 0..3 {
        for alphabet in [STANDARD, URL_SAFE] {
            out.push(base64_core(secret, offset, alphabet));
        }
    }
    out
}

/// The base64 characters determined by `secret` alone when it starts `offset` bytes (0..3)
/// into a 3-byte group: character `i` of the encoding holds bits `6i .. 6i+6` of the input,
/// and the secret holds bits `8·offset .. 8·(offset+len)`.
fn base64_core(secret: &[u8], offset: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let (first_bit, end_bit) = (8 * offset, 8 * (offset + secret.len()));
    let first = first_bit.div_ceil(6);
    let end = end_bit / 6;
    (first..end)
        .map(|i| {
            // Bit offset within the secret; the 6 bits lie in at most two bytes.
            let bit = 6 * i - first_bit;
            let (byte, shift) = (bit / 8, bit % 8);
            let hi = u16::from(secret[byte]) << 8;
            let lo = secret.get(byte + 1).copied().map_or(0, u16::from);
            let value = ((hi | lo) >> (10 - shift)) & 0x3f;
            alphabet[usize::from(value)]
        })
        .collect()
}

impl Search {
    fn new(patterns: BTreeSet<Vec<u8>>) -> Search {
        let nfa = NFA::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            // At most MAX_SECRETS secrets of MAX_SECRET bytes, 7 patterns each: a few million
            // states, far below the automaton's limit.
            .expect("bounded patterns always build an automaton");
        let start = nfa
            .start_state(Anchored::No)
            .expect("an unanchored automaton has an unanchored start");
        // Every state is a prefix of some pattern, reached from the start by following that
        // prefix, so walking the patterns gives each state its depth.
        let mut depth = HashMap::from([(start, 0)]);
        for pattern in &patterns {
            let mut sid = start;
            for (i, &b) in pattern.iter().enumerate() {
                sid = nfa.next_state(Anchored::No, sid, b);
                depth.insert(sid, i + 1);
            }
        }
        let hold = patterns.iter().map(Vec::len).max().unwrap_or(0) - 1;
        Search {
            nfa,
            depth,
            hold,
            start,
            state: start,
            pos: 0,
            held: Vec::new(),
            found: Vec::new(),
            covered: None,
        }
    }

    fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let from = self.pos;
        let mut sid = self.state;
        for (i, &b) in input.iter().enumerate() {
            sid = self.nfa.next_state(Anchored::No, sid, b);
            if self.nfa.is_match(sid) {
                let end = from + i as u64 + 1;
                for k in 0..self.nfa.match_len(sid) {
                    let len = self.nfa.pattern_len(self.nfa.match_pattern(sid, k));
                    self.found_at(end - len as u64, end);
                }
            }
        }
        self.state = sid;
        self.pos = from + input.len() as u64;
        // A later occurrence ends after `pos`, so it starts within the last `hold` bytes, and
        // within the prefix the automaton is in the middle of.
        let depth = self.depth.get(&sid).copied().unwrap_or(self.hold);
        let safe = self.pos - depth.min(self.hold) as u64;
        self.write(input, safe, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.write(&[], self.pos, out);
        debug_assert!(self.held.is_empty() && self.found.is_empty());
        self.state = self.start;
        self.covered = None;
    }

    /// Occurrences are found in order of their end; an earlier-starting one may come later
    /// (a long pattern ending after a short one inside it), so merge from the back.
    fn found_at(&mut self, mut start: u64, mut end: u64) {
        while let Some(&(s, e)) = self.found.last() {
            if e < start {
                break;
            }
            start = start.min(s);
            end = end.max(e);
            self.found.pop();
        }
        self.found.push((start, end));
    }

    /// Writes what lies before `safe` (redacted) from the held bytes followed by `input`, and
    /// keeps the rest held.
    fn write(&mut self, input: &[u8], safe: u64, out: &mut Vec<u8>) {
        let split = self.pos - input.len() as u64; // where `input` begins
        let begin = split - self.held.len() as u64; // where the held bytes begin
        let bytes = |from: u64, to: u64, out: &mut Vec<u8>| {
            let at = |p: u64| (p - begin) as usize;
            if from < split {
                out.extend_from_slice(&self.held[at(from)..at(to.min(split))]);
            }
            if to > split {
                let at = |p: u64| (p - split) as usize;
                out.extend_from_slice(&input[at(from.max(split))..at(to)]);
            }
        };
        let mut cursor = begin;
        let mut done = 0;
        for &(start, end) in &self.found {
            match self.covered {
                Some(covered) if start <= covered => {
                    // Touches the last marker written: the marker stands for this one too.
                    self.covered = Some(covered.max(end));
                }
                _ if start >= safe => break,
                _ => {
                    debug_assert!(start >= cursor);
                    bytes(cursor, start, out);
                    out.extend_from_slice(MARKER);
                    self.covered = Some(end);
                }
            }
            cursor = cursor.max(self.covered.unwrap_or(0));
            done += 1;
        }
        self.found.drain(..done);
        if cursor < safe {
            bytes(cursor, safe, out);
            cursor = safe;
        }
        // Keep `cursor .. pos`.
        if cursor >= split {
            self.held.clear();
            self.held
                .extend_from_slice(&input[(cursor - split) as usize..]);
        } else {
            self.held.drain(..(cursor - begin) as usize);
            self.held.extend_from_slice(input);
        }
    }
}

#[cfg(test)]
mod tests;
