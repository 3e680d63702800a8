//! The scanner: reads output as the emulator will, to find the plain text it need not draw
//! (the rule, and why it leaves the same screen and scrollback, is in the parent module's
//! comment).

use std::ops::Range;

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

/// What must stay drawn of plain text: the screen's rows, and the lines a stretch must still
/// hold after the part left out (the rows and the scrollback above them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    rows: usize,
    keep: usize,
}

impl Rule {
    /// For a screen of `rows` rows with `scrollback` lines above them.
    pub fn new(rows: u16, scrollback: usize) -> Rule {
        let rows = usize::from(rows.max(1));
        Rule {
            rows,
            keep: rows + scrollback,
        }
    }
}

/// The most plain text held back for the next buffer (bytes): see [`Scanner::plan`].
pub const HOLD_MAX: usize = 128 << 10;

/// What to give the emulator for one buffer, and how many bytes at its end it should not be
/// given yet (they come again at the start of the next buffer).
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub held: usize,
}

impl Scanner {
    /// What to give the emulator for `buf` under `rule`. With `hold`, plain text still being
    /// written at the end of `buf` (at most [`HOLD_MAX`] bytes) is not planned but held: what
    /// follows may let more of it be left out. (With a scrollback, a stretch must hold the
    /// rows and the scrollback past the part left out, more lines than one buffer often
    /// has; read again with the next buffer, a long log is still mostly left out.)
    pub fn plan(&mut self, buf: &[u8], rule: Rule, hold: bool) -> Plan {
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
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.state = State::Osc;
                    }
                    b'P' | b'X' | b'^' | b'_' => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.state = State::Str;
                    }
                    0x20..=0x2f => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.state = State::EscapeIntermediate;
                    }
                    0x18 | 0x1a => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    0x1b => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.seq_start = Some(i);
                    }
                    // Executed (C0) or ignored (DEL, high bytes) without leaving the state.
                    0x00..=0x1f | 0x7f..=0xff => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed)
                    }
                    _ => {
                        // ESC c: a full reset (no scroll region, no origin mode).
                        if b == b'c' {
                            self.sticky = false;
                        }
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
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
                        self.dispatch(b, i, &mut run, buf, rule, &mut steps, &mut fed);
                        self.state = State::Ground;
                        if run.is_none() {
                            run = self.may_start(i + 1).then(|| Run::at(i + 1));
                        }
                    }
                    0x1b => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.state = State::Escape;
                        self.seq_start = Some(i);
                    }
                    0x18 | 0x1a => {
                        self.end(&mut run, i, buf, rule, &mut steps, &mut fed);
                        self.state = State::Ground;
                        run = self.may_start(i + 1).then(|| Run::at(i + 1));
                    }
                    // A control inside a sequence is executed by the emulator at once.
                    _ => self.end(&mut run, i, buf, rule, &mut steps, &mut fed),
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
        let held = match run.as_ref().filter(|_| hold) {
            Some(r) => self.hold(r, buf, rule, &mut steps, &mut fed),
            None => 0,
        };
        if held > 0 {
            // Read again from where the held text begins: the ground state, between
            // characters (a sequence begun in it is read whole next time).
            self.state = State::Ground;
            self.mid_char = false;
        } else {
            self.end(&mut run, buf.len(), buf, rule, &mut steps, &mut fed);
            self.mid_char = buf.last().is_some_and(|&b| b >= 0x80);
        }
        if fed < buf.len() - held {
            steps.push(Step::Feed(fed..buf.len() - held));
        }
        self.seq_start = None;
        Plan { steps, held }
    }

    /// The run of plain text open at the end of `buf`: what of it can be left out now is,
    /// and the rest is held (its length returned), unless that is more than [`HOLD_MAX`]
    /// (then 0, and the run ends as at any other place).
    fn hold(
        &self,
        r: &Run,
        buf: &[u8],
        rule: Rule,
        steps: &mut Vec<Step>,
        fed: &mut usize,
    ) -> usize {
        let cut = cut(r, self.text_end(buf.len()), buf, rule);
        let from = cut.unwrap_or(r.start);
        if buf.len() - from > HOLD_MAX {
            return 0;
        }
        match cut {
            Some(cut) => skip(r, cut, buf, rule, steps, fed),
            None if r.start > *fed => {
                steps.push(Step::Feed(*fed..r.start));
                *fed = r.start;
            }
            None => {}
        }
        buf.len() - from
    }

    /// Where the text of a run read up to `at` ends: there, or where the sequence being
    /// read began.
    fn text_end(&self, at: usize) -> usize {
        match self.state {
            State::Ground => at,
            _ => self.seq_start.unwrap_or(at).min(at),
        }
    }

    /// Whether a scroll region or origin mode may be in effect after what was read.
    pub fn may_have_scroll_region(&self) -> bool {
        self.sticky
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
        rule: Rule,
        steps: &mut Vec<Step>,
        fed: &mut usize,
    ) {
        let plain = self.private == 0 && !self.intermediate;
        if fin == b'm' && plain {
            match (run.as_mut(), self.seq_start) {
                (Some(r), Some(start)) if start >= r.start => r.sgrs.push(start..i + 1),
                // Begun in an earlier buffer: it cannot be replayed from this one.
                _ => self.end(run, i, buf, rule, steps, fed),
            }
            return;
        }
        self.end(run, i, buf, rule, steps, fed);
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
        rule: Rule,
        steps: &mut Vec<Step>,
        fed: &mut usize,
    ) {
        let Some(r) = run.take() else { return };
        if let Some(cut) = cut(&r, self.text_end(at), buf, rule) {
            skip(&r, cut, buf, rule, steps, fed);
        }
    }
}

/// Where A ends (just after its last line feed) if run `r`, whose text ends at `text_end`,
/// splits into A·B: A holds at least `rows` line feeds (itself ending with CR LF) and B at
/// least `keep` (the rows and the scrollback), with a printable character after A.
fn cut(r: &Run, text_end: usize, buf: &[u8], rule: Rule) -> Option<usize> {
    let n = r.lfs.len();
    if n < rule.rows + rule.keep {
        return None;
    }
    (rule.rows - 1..=n - 1 - rule.keep)
        .rev()
        .map(|j| r.lfs[j])
        .find(|&lf| {
            lf > r.start && buf[lf - 1] == b'\r' && printable_in(buf, lf + 1..text_end, &r.sgrs)
        })
        .map(|lf| lf + 1)
}

/// Leaves out run `r` up to `cut`: what came before the run is fed, then the cursor move
/// and A's colour changes stand for A.
fn skip(r: &Run, cut: usize, buf: &[u8], rule: Rule, steps: &mut Vec<Step>, fed: &mut usize) {
    if r.start > *fed {
        steps.push(Step::Feed(*fed..r.start));
    }
    let mut instead = format!("\x1b[{};1H", rule.rows).into_bytes();
    for s in r.sgrs.iter().filter(|s| s.end <= cut) {
        instead.extend_from_slice(&buf[s.clone()]);
    }
    steps.push(Step::Skip {
        skipped: cut - r.start,
        instead,
    });
    *fed = cut;
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
