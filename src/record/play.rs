//! `cordon rec play`: a recording replayed in the terminal at its own pace. Keys (when
//! standard input is a terminal): space pauses and resumes, `.` steps one event while paused,
//! `+` and `-` double and halve the speed, the left and right arrows seek 5 s back and
//! forward, `]` and `[` jump to the next and previous marker, `q` quits. `--at T` starts at T seconds, `--idle-limit S` shortens pauses.

use super::format::{Damage, Event, OUTPUT, RESIZE};
use std::io::{IsTerminal, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Options for one playback.
pub struct PlayOptions {
    pub speed: f64,
    pub idle_limit: Option<f64>,
    pub at: f64,
}

enum Key {
    Pause,
    Step,
    Faster,
    Slower,
    Back,
    Forward,
    NextMarker,
    PrevMarker,
    Quit,
}

/// The terminal in raw mode (keys arrive one by one, unechoed) while this lives; its mode
/// before is put back when it is dropped, on every way out of playback.
struct RawMode;

impl RawMode {
    /// Raw mode on standard input's terminal; None when standard input is not a terminal
    /// (then playback takes no keys) or its mode cannot be changed.
    fn enter() -> Option<RawMode> {
        // crossterm falls back to /dev/tty when standard input is not a terminal: playback
        // piped or redirected must leave the controlling terminal alone.
        if !std::io::stdin().is_terminal() {
            return None;
        }
        crossterm::terminal::enable_raw_mode()
            .ok()
            .map(|()| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

fn keys() -> mpsc::Receiver<Key> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut b = [0u8; 8];
        while let Ok(n) = stdin.read(&mut b) {
            if n == 0 {
                return;
            }
            let k = match &b[..n] {
                b" " => Key::Pause,
                b"." => Key::Step,
                b"+" | b"=" => Key::Faster,
                b"-" => Key::Slower,
                b"\x1b[D" => Key::Back,
                b"\x1b[C" => Key::Forward,
                b"]" => Key::NextMarker,
                b"[" => Key::PrevMarker,
                b"q" | b"\x03" => Key::Quit,
                _ => continue,
            };
            if tx.send(k).is_err() {
                return;
            }
        }
    });
    rx
}

/// A recording read lazily: chunks are decrypted as playback reaches them, and seeking
/// starts from the nearest keyframe.
pub struct Stream {
    reader: super::format::Reader,
    next_chunk: usize,
    buffered: std::collections::VecDeque<Event>,
    markers: Option<Vec<f64>>,
    /// The first damaged chunk met, if any: playback stops there and says so.
    pub damage: Option<Damage>,
}

impl Stream {
    pub fn new(reader: super::format::Reader) -> Stream {
        Stream {
            reader,
            next_chunk: 0,
            buffered: Default::default(),
            markers: None,
            damage: None,
        }
    }

    fn decode(&mut self, i: usize) -> Vec<Event> {
        match self.reader.events(i) {
            Ok(e) => e,
            Err(d) => {
                self.damage.get_or_insert(d);
                self.next_chunk = self.reader.chunks();
                Vec::new()
            }
        }
    }

    /// Draws the screen at `t` seconds; playback continues after it.
    fn seek(&mut self, t: f64) -> Vec<u8> {
        let at = (t.max(0.0) * 1e6) as u64;
        let mut upto = Vec::new();
        self.buffered.clear();
        let mut i = self.reader.keyframe_for(at);
        while i < self.reader.chunks()
            && (self.reader.chunk_start(i) <= at || upto.is_empty() && i == 0)
        {
            for e in self.decode(i) {
                if e.at_us <= at {
                    upto.push(e);
                } else {
                    self.buffered.push_back(e);
                }
            }
            i += 1;
        }
        self.next_chunk = i;
        let h = self.reader.header();
        render(h.cols, h.rows, &upto)
    }

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.buffered.pop_front() {
                return Some(e);
            }
            if self.next_chunk >= self.reader.chunks() {
                return None;
            }
            let i = self.next_chunk;
            self.next_chunk += 1;
            self.buffered = self.decode(i).into();
        }
    }

    /// Marker times (read once, on first use).
    fn markers(&mut self) -> Vec<f64> {
        if self.markers.is_none() {
            let mut m = Vec::new();
            for i in 0..self.reader.chunks() {
                m.extend(
                    self.reader
                        .events(i)
                        .unwrap_or_default()
                        .iter()
                        .filter(|e| e.kind == super::format::MARKER)
                        .map(|e| e.at_us as f64 / 1e6),
                );
            }
            self.markers = Some(m);
        }
        self.markers.clone().unwrap_or_default()
    }
}

/// A terminal screen that recorded events are played into (keyframes redraw it whole).
pub struct Screen {
    pub parser: vt100::Parser,
    cols: u16,
    rows: u16,
    scrollback: usize,
}

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}

/// "COLSxROWS" (a resize event's data, a keyframe's first line).
pub(super) fn size_of(text: &[u8]) -> Option<(u16, u16)> {
    let (c, r) = std::str::from_utf8(text).ok()?.split_once('x')?;
    Some((c.trim().parse().ok()?, r.trim().parse().ok()?))
}

impl Screen {
    pub fn new(cols: u16, rows: u16) -> Screen {
        Screen::with_scrollback(cols, rows, 0)
    }

    /// A screen that keeps `scrollback` lines above its rows (the TUI's player). A keyframe
    /// then redraws the screen it meets without starting a new one, so that the lines
    /// scrolled off before it stay above it.
    pub fn with_scrollback(cols: u16, rows: u16, scrollback: usize) -> Screen {
        let (cols, rows) = (cols.max(1), rows.max(1));
        Screen {
            parser: vt100::Parser::new(nz(rows), nz(cols), scrollback),
            cols,
            rows,
            scrollback,
        }
    }

    pub fn apply(&mut self, e: &Event) {
        match e.kind {
            super::format::KEYFRAME => {
                let Some(nl) = e.data.iter().position(|&b| b == b'\n') else {
                    return;
                };
                if let Some((c, r)) = size_of(&e.data[..nl]) {
                    (self.cols, self.rows) = (c.max(1), r.max(1));
                }
                if self.scrollback == 0 {
                    self.parser = vt100::Parser::new(nz(self.rows), nz(self.cols), 0);
                } else {
                    // Played up to here, this screen is the keyframe's already; its bytes
                    // draw every row and set every mode they name, over the same size.
                    self.parser
                        .screen_mut()
                        .set_size(nz(self.rows), nz(self.cols));
                }
                self.parser.process(&e.data[nl + 1..]);
            }
            OUTPUT => self.parser.process(&e.data),
            RESIZE => {
                if let Some((c, r)) = size_of(&e.data) {
                    (self.cols, self.rows) = (c.max(1), r.max(1));
                    self.parser
                        .screen_mut()
                        .set_size(nz(self.rows), nz(self.cols));
                }
            }
            _ => {}
        }
    }
}

/// Draws the screen that `events` (starting at the beginning, or at a keyframe) leave.
pub fn render(cols: u16, rows: u16, events: &[Event]) -> Vec<u8> {
    let mut screen = Screen::new(cols, rows);
    for e in events {
        screen.apply(e);
    }
    let mut out = b"\x1b[H\x1b[2J".to_vec();
    out.extend(screen.parser.screen().state_formatted().into_bytes());
    out
}

/// Playback met a damaged chunk and stopped before it.
#[derive(Debug, thiserror::Error)]
#[error("the recording is damaged at {0}; playback stopped there")]
struct Stopped(#[source] Damage);

/// Plays a recording to standard output.
pub fn play(stream: &mut Stream, opts: &PlayOptions) -> std::io::Result<()> {
    let raw = RawMode::enter();
    let input = raw.as_ref().map(|_| keys());
    let mut out = std::io::stdout();
    // The recording's output reaches the auditor's own terminal: what would act on their
    // machine (clipboard, titles, queries their terminal would answer into this very
    // shell) is dropped. `rec export --raw` keeps every byte.
    let mut filter = crate::filter::OutputFilter::new();
    let mut speed = opts.speed.max(0.01);
    let screen = stream.seek(opts.at);
    if opts.at > 0.0 {
        out.write_all(&crate::filter::filter_all(&screen))?;
    }
    let mut clock = opts.at;
    let mut paused = false;
    let mut next = stream.next();
    'events: while let Some(e) = next.take() {
        let mut wait = (e.at_us as f64 / 1e6 - clock).max(0.0);
        if let Some(limit) = opts.idle_limit {
            wait = wait.min(limit);
        }
        let deadline = Instant::now() + Duration::from_secs_f64(wait / speed);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let key = match &input {
                Some(rx) => rx
                    .recv_timeout(if paused {
                        Duration::from_secs(3600)
                    } else {
                        left
                    })
                    .ok(),
                None => {
                    std::thread::sleep(left);
                    None
                }
            };
            match key {
                Some(Key::Quit) => return out.flush(),
                Some(Key::Pause) => paused = !paused,
                Some(Key::Step) if paused => break,
                Some(Key::Faster) => speed *= 2.0,
                Some(Key::Slower) => speed /= 2.0,
                Some(k @ (Key::Back | Key::Forward | Key::NextMarker | Key::PrevMarker)) => {
                    let to = match k {
                        Key::Back => (clock - 5.0).max(0.0),
                        Key::Forward => clock + 5.0,
                        Key::NextMarker => stream
                            .markers()
                            .into_iter()
                            .filter(|&t| t > clock + 0.001)
                            .reduce(f64::min)
                            .unwrap_or(clock),
                        _ => stream
                            .markers()
                            .into_iter()
                            .filter(|&t| t < clock - 0.5)
                            .reduce(f64::max)
                            .unwrap_or(0.0),
                    };
                    filter = crate::filter::OutputFilter::new();
                    out.write_all(&crate::filter::filter_all(&stream.seek(to)))?;
                    out.flush()?;
                    clock = to;
                    next = stream.next();
                    continue 'events;
                }
                _ => {}
            }
            if !paused && Instant::now() >= deadline {
                break;
            }
        }
        if e.kind == OUTPUT {
            out.write_all(&filter.filter(&e.data))?;
            out.flush()?;
        }
        clock = e.at_us as f64 / 1e6;
        next = stream.next();
    }
    out.flush()?;
    if let Some(d) = stream.damage.take() {
        return Err(std::io::Error::other(Stopped(d)));
    }
    Ok(())
}
