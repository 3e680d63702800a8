//! A session's screen, emulated lazily and without the text that cannot show.
//!
//! Every byte a session prints went through the terminal emulator (vt100) as it was read:
//! about 11 ns a byte for coloured text on a 2-vCPU VM, the largest single cost of the data
//! path, though the screen is looked at only when someone attaches, previews, a viewer is
//! resynchronized, the input is checked for a password prompt, or a keyframe is due.
//!
//! So output waits in `pending` (at most [`CATCH_UP_AT`] bytes) and the emulator catches up
//! when the screen is asked for or that much has waited. On catching up, a [`Scanner`] finds
//! stretches of plain text (printable characters, CR, LF, TAB, BS, BEL and SGR colour
//! sequences, nothing that moves the cursor up or changes a mode) long enough that most of
//! it scrolls off before the screen is looked at, and feeds the emulator only what decides
//! the screen:
//!
//! a stretch `A·B` where `A` and `B` each hold at least `rows` line feeds and `A` ends with
//! CR LF leaves the same screen as `CUP(rows, 1) · SGRs(A) · B`:
//! - after `A`'s line feeds the cursor is on the bottom row, column 0 (the CR), whatever
//!   row it began on (no scroll region, no origin mode: the scanner stops skipping while
//!   either may be set);
//! - `B`'s `rows` line feeds from the bottom row then scroll every row that was on the
//!   screen off it (the screen keeps no scrollback), so no cell `A` wrote survives;
//! - the colours in force are the fold of `A`'s SGR sequences, replayed in order;
//! - nothing else of the terminal's state is touched by such text (modes, saved cursor,
//!   title, character sets, the other screen); `B` holds a printable character, so the last
//!   character printed (for REP) is `B`'s in both.
//!
//! Tests compare the two against the emulator on generated output of every kind.

use std::ops::Range;

/// Output that may wait before the emulator catches up (bytes).
pub const CATCH_UP_AT: usize = 32 << 10;

/// The screen of a session: the emulator, and the output it has not seen yet.
pub struct Screen {
    parser: vt100::Parser,
    pending: Vec<u8>,
    scanner: Scanner,
    /// Bytes of output the emulator was spared (for figures and tests).
    pub skipped: u64,
}

impl Screen {
    pub fn new(rows: u16, cols: u16) -> Screen {
        Screen {
            parser: vt100::Parser::new(nz(rows), nz(cols), 0),
            pending: Vec::new(),
            scanner: Scanner::default(),
            skipped: 0,
        }
    }

    /// Adds output; the emulator sees it when the screen is next asked for.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= CATCH_UP_AT {
            self.catch_up();
        }
    }

    /// The screen as of every byte pushed.
    pub fn now(&mut self) -> &vt100::Screen {
        self.catch_up();
        self.parser.screen()
    }

    /// The emulator, caught up (for a snapshot of it).
    pub fn parser(&mut self) -> &vt100::Parser {
        self.catch_up();
        &self.parser
    }

    /// A new size; what was printed before it is drawn at the old one first.
    pub fn set_size(&mut self, rows: u16, cols: u16) {
        self.catch_up();
        self.parser.screen_mut().set_size(nz(rows), nz(cols));
    }

    fn catch_up(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (rows, _) = self.parser.screen().size();
        for step in self.scanner.plan(&self.pending, rows.get()) {
            match step {
                Step::Feed(r) => self.parser.process(&self.pending[r]),
                Step::Skip { skipped, instead } => {
                    self.skipped += skipped as u64;
                    self.parser.process(&instead);
                }
            }
        }
        self.pending.clear();
    }
}

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}

/// What to give the emulator for one buffer of output, in order.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// These bytes of the buffer, as they are.
    Feed(Range<usize>),
    /// Bytes of the buffer left out (`skipped` of them), and what stands for them.
    Skip { skipped: usize, instead: Vec<u8> },
}

/// Where the scanner is in the grammar of escape sequences: the part of vte's state machine
/// that tells text, controls and sequences apart.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum State {
    #[default]
    Ground,
    Escape,
    /// After ESC and an intermediate byte (a character set, `ESC # 8`, ...).
    EscapeIntermediate,
    Csi,
    /// An operating system command, until BEL, ESC, CAN or SUB.
    Osc,
    /// A DCS, SOS, PM or APC string, until ESC, CAN or SUB. (The emulator also ends a DCS
    /// at a raw 0x9C in some of its states; the scanner does not, so it may think itself in
    /// the string longer than the emulator, never shorter: it then only skips less.)
    Str,
}

/// A stretch of plain text being read: where it began, its line feeds and SGR sequences.
#[derive(Debug, Default)]
struct Run {
    start: usize,
    lfs: Vec<usize>,
    sgrs: Vec<Range<usize>>,
}

/// Reads output as the emulator will, to find the plain text it need not draw. Keeps its
/// state from one buffer to the next (a sequence may be cut between them).
#[derive(Debug, Default)]
pub struct Scanner {
    state: State,
    /// Where the sequence being read began in this buffer (None: in an earlier one).
    seq_start: Option<usize>,
    /// The CSI being read: its first parameter byte if private (`?`, `>`, ...), whether it
    /// had intermediates, its parameters (the first 32 bytes).
    private: u8,
    intermediate: bool,
    params: Vec<u8>,
    /// A scroll region or origin mode may be in effect: the cursor may not reach the bottom
    /// row, nor line feeds scroll the whole screen. Nothing is skipped until a reset.
    sticky: bool,
    /// The last byte of the previous buffer was inside a multi-byte character.
    mid_char: bool,
}

impl Scanner {
    /// What to give the emulator for `buf` on a screen of `rows` rows.
    pub fn plan(&mut self, buf: &[u8], rows: u16) -> Vec<Step> {
        let rows = usize::from(rows.max(1));
        let mut steps = Vec::new();
        // Bytes before `fed` are in `steps`.
        let mut fed = 0usize;
        let mut run = self.may_start(0).then(Run::default);
        let mut i = 0usize;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                State::Ground => {
                    // Only ESC and LF matter here: every other byte is printed or is a
                    // control that moves the cursor within its row, rings, or does nothing
                    // (vt100). VT and FF move down like LF; not counting them only skips less.
                    match memchr::memchr2(0x1b, b'\n', &buf[i..]) {
                        None => break,
                        Some(k) => i += k,
                    }
                    if buf[i] == b'\n' {
                        if let Some(r) = run.as_mut() {
                            r.lfs.push(i);
                        }
                    } else {
                        self.state = State::Escape;
                        self.seq_start = Some(i);
                    }
                }
                State::Escape => match b {
                    b'[' => {
                        self.state = State::Csi;
                        self.private = 0;
                        self.intermediate = false;
                        self.params.clear();
                    }
                    b']' => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::Osc;
                    }
                    b'P' | b'X' | b'^' | b'_' => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::Str;
                    }
                    0x20..=0x2f => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::EscapeIntermediate;
                    }
                    0x18 | 0x1a => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    0x1b => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.seq_start = Some(i);
                    }
                    // Executed (C0) or ignored (DEL, high bytes) without leaving the state.
                    0x00..=0x1f | 0x7f..=0xff => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed)
                    }
                    _ => {
                        // ESC c: a full reset (no scroll region, no origin mode).
                        if b == b'c' {
                            self.sticky = false;
                        }
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                },
                State::EscapeIntermediate => match b {
                    0x20..=0x2f => {}
                    0x1b => {
                        self.state = State::Escape;
                        self.seq_start = Some(i);
                    }
                    0x18 | 0x1a | 0x30..=0x7e => {
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    _ => {}
                },
                State::Csi => match b {
                    0x30..=0x3f => {
                        if self.params.is_empty() && self.private == 0 && (0x3c..=0x3f).contains(&b)
                        {
                            self.private = b;
                        } else if self.params.len() < 32 {
                            self.params.push(b);
                        } else {
                            // Too long to read: not a plain colour sequence.
                            self.intermediate = true;
                        }
                    }
                    0x20..=0x2f => self.intermediate = true,
                    0x40..=0x7e => {
                        self.dispatch(b, i, &mut run, buf, rows, &mut steps, &mut fed);
                        self.state = State::Ground;
                        if run.is_none() {
                            run = self.may_start(i + 1).then(|| Run::at(i + 1));
                        }
                    }
                    0x1b => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::Escape;
                        self.seq_start = Some(i);
                    }
                    0x18 | 0x1a => {
                        self.end(&mut run, i, buf, rows, &mut steps, &mut fed);
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    // A control inside a sequence is executed by the emulator at once.
                    _ => self.end(&mut run, i, buf, rows, &mut steps, &mut fed),
                },
                State::Osc | State::Str => match b {
                    0x07 if self.state == State::Osc => {
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    0x18 | 0x1a => {
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    // Ends the string and begins an escape (`ESC \` is ST).
                    0x1b => {
                        self.state = State::Escape;
                        self.seq_start = Some(i);
                    }
                    _ => {}
                },
            }
            i += 1;
        }
        self.end(&mut run, buf.len(), buf, rows, &mut steps, &mut fed);
        if fed < buf.len() {
            steps.push(Step::Feed(fed..buf.len()));
        }
        self.seq_start = None;
        self.mid_char = buf.last().is_some_and(|&b| b >= 0x80);
        steps
    }

    /// Whether plain text may begin at `i` of the buffer: in the ground state, with no scroll
    /// region or origin mode possibly set, and not inside a character.
    fn may_start(&self, i: usize) -> bool {
        self.state == State::Ground && !self.sticky && (i > 0 || !self.mid_char)
    }

    /// A complete CSI sequence ending with `fin` at `i`.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        fin: u8,
        i: usize,
        run: &mut Option<Run>,
        buf: &[u8],
        rows: usize,
        steps: &mut Vec<Step>,
        fed: &mut usize,
    ) {
        let plain = self.private == 0 && !self.intermediate;
        if fin == b'm' && plain {
            match (run.as_mut(), self.seq_start) {
                (Some(r), Some(start)) if start >= r.start => r.sgrs.push(start..i + 1),
                // Begun in an earlier buffer: it cannot be replayed from this one.
                _ => self.end(run, i, buf, rows, steps, fed),
            }
            return;
        }
        self.end(run, i, buf, rows, steps, fed);
        if fin == b'r' && plain {
            // DECSTBM: without parameters, the whole screen again.
            self.sticky = !self.params.iter().all(|&p| p == b';');
        } else if self.private == b'?' && (fin == b'h' || fin == b'l') && !self.intermediate {
            // DECOM set; reset leaves a region possibly set, so stays sticky.
            if self.params.split(|&p| p == b';').any(|p| p == b"6") && fin == b'h' {
                self.sticky = true;
            }
        }
        // Anything else that resets the region (DECSTR, `CSI ! p`) leaves it sticky: only a
        // full reset or a DECSTBM without parameters clears it.
    }

    /// Ends the run of plain text (if any) just before the current byte: its skippable part
    /// becomes a `Skip`, what came before it a `Feed`.
    fn end(
        &mut self,
        run: &mut Option<Run>,
        at: usize,
        buf: &[u8],
        rows: usize,
        steps: &mut Vec<Step>,
        fed: &mut usize,
    ) {
        let Some(r) = run.take() else { return };
        let n = r.lfs.len();
        if n < 2 * rows {
            return;
        }
        // The run's text ends here, or where the sequence being read began.
        let text_end = match self.state {
            State::Ground => at,
            _ => self.seq_start.unwrap_or(at).min(at),
        };
        // The last line feed of A: at least `rows` before it (itself included) and `rows`
        // after it, preceded by CR within the run, with a printable character after it.
        let split = (rows - 1..=n - 1 - rows).rev().find(|&j| {
            let lf = r.lfs[j];
            lf > r.start && buf[lf - 1] == b'\r' && printable_in(buf, lf + 1..text_end, &r.sgrs)
        });
        let Some(j) = split else { return };
        let cut = r.lfs[j] + 1;
        if r.start > *fed {
            steps.push(Step::Feed(*fed..r.start));
        }
        let mut instead = format!("\x1b[{rows};1H").into_bytes();
        for s in r.sgrs.iter().filter(|s| s.end <= cut) {
            instead.extend_from_slice(&buf[s.clone()]);
        }
        steps.push(Step::Skip {
            skipped: cut - r.start,
            instead,
        });
        *fed = cut;
    }
}

/// Whether `range` of `buf`, less the SGR sequences in it, holds a printable ASCII
/// character: the last character printed (which REP repeats) is then one of B's. (A byte of
/// 0x80..0x9F alone is executed as a C1 control, so only ASCII is counted.)
fn printable_in(buf: &[u8], range: Range<usize>, sgrs: &[Range<usize>]) -> bool {
    let mut at = range.start;
    for s in sgrs
        .iter()
        .filter(|s| s.end > range.start && s.start < range.end)
    {
        if buf[at..s.start.max(at)]
            .iter()
            .any(|b| (0x20..0x7f).contains(b))
        {
            return true;
        }
        at = at.max(s.end);
    }
    at < range.end && buf[at..range.end].iter().any(|b| (0x20..0x7f).contains(b))
}

impl Run {
    fn at(start: usize) -> Run {
        Run {
            start,
            ..Run::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both screens, drawn with their contents and modes, must be the same.
    fn same_as_emulator(output: &[u8], rows: u16, cols: u16, chunk: usize) -> u64 {
        let mut reference = vt100::Parser::new(nz(rows), nz(cols), 0);
        reference.process(output);
        let mut lazy = Screen::new(rows, cols);
        for c in output.chunks(chunk.max(1)) {
            lazy.push(c);
        }
        let (a, b) = (reference.screen(), lazy.now().clone());
        assert_eq!(a.contents_formatted(), b.contents_formatted());
        assert_eq!(a.state_formatted(), b.state_formatted());
        assert_eq!(a.cursor_position(), b.cursor_position());
        assert_eq!(a.attributes_formatted(), b.attributes_formatted());
        lazy.skipped
    }

    /// xorshift: the same cases every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const PIECES: &[&str] = &[
        "hello",
        "wörld",
        "日本語",
        "e\u{301}",
        "  ",
        "\t",
        "\x08",
        "\x07",
        "\r\n",
        "\r\n",
        "\r\n",
        "\n",
        "\r",
        "\x1b[1m",
        "\x1b[32m",
        "\x1b[0m",
        "\x1b[38;2;1;2;3m",
        "\x1b[4:3m",
        "\x1b[m",
        "\x1b[2K",
        "\x1b[1A",
        "\x1b[G",
        "\x1b[H",
        "\x1b[2J",
        "\x1b[5;10H",
        "\x1b[3;20r",
        "\x1b[r",
        "\x1b[?6h",
        "\x1b[?6l",
        "\x1b[?1049h",
        "\x1b[?1049l",
        "\x1b7",
        "\x1b8",
        "\x1bM",
        "\x1bD",
        "\x1bE",
        "\x1b(0",
        "\x1b(B",
        "lqqk",
        "\x0e",
        "\x0f",
        "\x1b]0;title\x07",
        "\x1b]2;t\x1b\\",
        "\x1b[4h",
        "\x1b[4l",
        "\x1b[?7l",
        "\x1b[?7h",
        "\x1b[3b",
        "\x1bc",
        "\x1b[?25l",
        "\x1b[?2026h",
        "\x1b[?2026l",
        "\u{85}",
        "\x1b[1;31",
        "m",
        "\x1b[",
        "\x0b",
        "\x0c",
        "\x7f",
        "\x1b[1\n2m",
    ];

    fn noisy_output(seed: u64, pieces: usize, text_weight: usize) -> Vec<u8> {
        let mut r = Rng(seed);
        let mut out = Vec::new();
        for _ in 0..pieces {
            if r.below(100) < text_weight {
                let line = [
                    "cargo build",
                    "test a::b ... ok",
                    "x",
                    "",
                    "wörld wide 日本",
                ][r.below(5)];
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(if r.below(8) == 0 { b"\n" } else { b"\r\n" });
            } else {
                out.extend_from_slice(PIECES[r.below(PIECES.len())].as_bytes());
            }
        }
        out
    }

    #[test]
    fn a_long_coloured_log_leaves_the_screen_the_emulator_would_show_and_is_mostly_skipped() {
        let mut out = Vec::new();
        for i in 0..5000 {
            out.extend_from_slice(
                format!("\x1b[1m\x1b[32m   Compiling\x1b[0m crate{i} v0.1.{i}\r\ntest t{i} ... \x1b[32mok\x1b[0m\r\n")
                    .as_bytes(),
            );
        }
        out.extend_from_slice(b"\x1b[31mlast line, in red, no newline");
        let skipped = same_as_emulator(&out, 24, 80, 4096);
        assert!(skipped > out.len() as u64 * 9 / 10, "skipped {skipped}");
    }

    /// Every row filled with its own characters, in colour, then the cursor put on `row`.
    fn filled(rows: u16, cols: u16, row: u16) -> Vec<u8> {
        let mut out = b"\x1b[H\x1b[44m".to_vec();
        for r in 0..rows {
            let c = (b'A' + (r % 26) as u8) as char;
            out.extend_from_slice(
                format!("\x1b[{};1H{}", r + 1, c.to_string().repeat(cols as usize)).as_bytes(),
            );
        }
        out.extend_from_slice(format!("\x1b[0m\x1b[{};3H", row + 1).as_bytes());
        out
    }

    #[test]
    fn text_over_a_full_screen_from_any_row_leaves_the_same_screen_whatever_its_length() {
        let mut skipped = 0;
        for rows in 1..=6u16 {
            for row in 0..rows {
                for lines in 2 * rows as usize - 1..2 * rows as usize + 4 {
                    for ending in ["", "tail", "\x1b[31mred"] {
                        let mut out = filled(rows, 12, row);
                        for l in 0..lines {
                            out.extend_from_slice(format!("l{l}\x1b[3{}m;\r\n", l % 8).as_bytes());
                        }
                        out.extend_from_slice(ending.as_bytes());
                        for chunk in [1 << 20, 5] {
                            skipped += same_as_emulator(&out, rows, 12, chunk);
                        }
                    }
                }
            }
        }
        assert!(skipped > 0);
    }

    #[test]
    fn text_after_a_scroll_region_is_not_skipped_until_a_reset() {
        let mut out = b"\x1b[2;10r".to_vec();
        for i in 0..500 {
            out.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        assert_eq!(same_as_emulator(&out, 24, 80, 1 << 20), 0);
        out.extend_from_slice(b"\x1bc");
        for i in 0..500 {
            out.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        assert!(same_as_emulator(&out, 24, 80, 1 << 20) > 0);
    }

    #[test]
    fn lines_without_carriage_returns_are_not_cut_where_the_column_is_unknown() {
        let mut out = Vec::new();
        for i in 0..500 {
            out.extend_from_slice(format!("bare {i}\n").as_bytes());
        }
        assert_eq!(same_as_emulator(&out, 24, 80, 1 << 20), 0);
    }

    #[test]
    fn generated_output_of_every_kind_shows_the_same_screen_in_chunks_of_any_size() {
        let mut skipped = 0;
        for seed in 1..400u64 {
            let out = noisy_output(seed * 7919, 300 + (seed as usize % 7) * 200, 80);
            let rows = [1, 2, 5, 24][seed as usize % 4];
            let cols = [10, 80, 3][seed as usize % 3];
            let chunk = [1, 7, 64, 4096, 1 << 20][seed as usize % 5];
            skipped += same_as_emulator(&out, rows, cols, chunk);
        }
        // The property holds whether or not text is skipped; make sure some was.
        assert!(skipped > 0);
    }

    #[test]
    fn mostly_escape_sequences_show_the_same_screen() {
        for seed in 1..300u64 {
            let out = noisy_output(seed * 104_729, 2000, 20);
            same_as_emulator(
                &out,
                [3, 24][seed as usize % 2],
                40,
                [3, 100, 4096][seed as usize % 3],
            );
        }
    }

    #[test]
    fn a_sequence_cut_between_two_buffers_is_read_whole() {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        for i in 0..200 {
            out.extend_from_slice(format!("l{i}\r\n").as_bytes());
        }
        // An SGR begun at the end of one buffer and ended in the next.
        assert!(matches!(
            s.plan(b"abc\x1b[3", 4).as_slice(),
            [Step::Feed(_)]
        ));
        let steps = s.plan(&[b"1m".as_slice(), &out].concat(), 4);
        assert!(steps.iter().any(|s| matches!(s, Step::Skip { .. })));
        same_as_emulator(&[b"abc\x1b[3".as_slice(), b"1m", &out].concat(), 4, 80, 5);
    }
}
