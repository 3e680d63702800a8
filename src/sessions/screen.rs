//! A session's screen, emulated lazily and without the text that cannot show.
//!
//! Every byte a session prints went through the terminal emulator (vt100) as it was read:
//! about 11 ns a byte for coloured text on a 2-vCPU VM, the largest single cost of the data
//! path, though the screen is looked at only when someone attaches, previews, a viewer is
//! resynchronized, the input is checked for a password prompt, or a keyframe is due.
//!
//! So output waits in `pending` (at most [`CATCH_UP_AT`] bytes, and the plain text held
//! back below) and the emulator catches up when the screen is asked for or that much has
//! waited. On catching up, a [`Scanner`] finds stretches of plain text (printable
//! characters, CR, LF, TAB, BS, BEL and SGR colour sequences, nothing that moves the cursor
//! up or changes a mode) long enough that most of it scrolls off, past the scrollback,
//! before the screen is looked at, and feeds the emulator only what decides the screen and
//! the scrollback:
//!
//! on a screen of `rows` rows keeping `scrollback` lines above them, a stretch `A·B` where
//! `A` holds at least `rows` line feeds and ends with CR LF, and `B` at least
//! `rows + scrollback`, leaves the same screen and scrollback as `CUP(rows, 1) · SGRs(A) · B`:
//! - after `A`'s line feeds the cursor is on the bottom row, column 0 (the CR), whatever
//!   row it began on (no scroll region, no origin mode: the scanner stops skipping while
//!   either may be set);
//! - `B`'s line feeds from the bottom row then scroll every row that was on the screen off
//!   it and on through the scrollback: the last `scrollback` rows scrolled off and the
//!   `rows` on screen are all `B`'s (the bottom row `B` began on, which may still hold
//!   cells from before the cursor move, is the `rows`-th to scroll off, so it is gone too),
//!   and no cell `A` wrote survives;
//! - the colours in force are the fold of `A`'s SGR sequences, replayed in order;
//! - nothing else of the terminal's state is touched by such text (modes, saved cursor,
//!   title, character sets, the other screen); `B` holds a printable character, so the last
//!   character printed (for REP) is `B`'s in both.
//!
//! One count differs: how many rows scrolled off in all, which vt100 uses to pull rows back
//! when the screen grows. The emulator has seen at least `rows + scrollback` of them since
//! any cut, so the two differ only on a screen grown by more than that, beyond any
//! terminal's height.
//!
//! A stretch cut by the end of a catch-up that waited [`CATCH_UP_AT`] bytes is held (at
//! most [`scanner::HOLD_MAX`] bytes) and read again with the output that follows, so that a
//! long log is left out past its last lines even when they do not fit one buffer.
//!
//! Tests compare the two against the emulator on generated output of every kind, the
//! scrollback included.

mod scanner;

pub use scanner::{Rule, Scanner, Step};

/// Output that may wait before the emulator catches up (bytes).
pub const CATCH_UP_AT: usize = 32 << 10;

/// Lines a session's screen keeps above its rows (the TUI's preview scrolls back through
/// them). vt100 keeps them as rows of 32-byte cells, trailing blanks trimmed, and only as
/// lines scroll off: nothing for a session that printed less than a screen, about 1.3 MiB
/// for one that printed a thousand lines of 40 characters, at most 2.5 MiB at 80 columns.
pub const SCROLLBACK: usize = 1000;

/// The screen of a session: the emulator, and the output it has not seen yet.
pub struct Screen {
    parser: vt100::Parser,
    pending: Vec<u8>,
    /// Bytes at the start of `pending` the scanner has read and held back.
    held: usize,
    scanner: Scanner,
    scrollback: usize,
    catch_up_at: usize,
    /// Bytes of output the emulator was spared (for figures and tests).
    pub skipped: u64,
}

impl Screen {
    /// A screen without scrollback (a recording's own, for keyframes).
    pub fn new(rows: u16, cols: u16) -> Screen {
        Screen::with(rows, cols, 0, CATCH_UP_AT)
    }

    /// A screen keeping `scrollback` lines above its rows, catching up after `catch_up_at`
    /// bytes.
    pub fn with(rows: u16, cols: u16, scrollback: usize, catch_up_at: usize) -> Screen {
        Screen {
            parser: vt100::Parser::new(nz(rows), nz(cols), scrollback),
            pending: Vec::new(),
            held: 0,
            scanner: Scanner::default(),
            scrollback,
            catch_up_at: catch_up_at.max(1),
            skipped: 0,
        }
    }

    /// Adds output; the emulator sees it when the screen is next asked for.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() - self.held >= self.catch_up_at {
            self.catch_up(true);
        }
    }

    /// The screen as of every byte pushed.
    pub fn now(&mut self) -> &vt100::Screen {
        self.catch_up(false);
        self.parser.screen()
    }

    /// The emulator, caught up (for a snapshot of it).
    pub fn parser(&mut self) -> &vt100::Parser {
        self.catch_up(false);
        &self.parser
    }

    /// A new size; what was printed before it is drawn at the old one first.
    pub fn set_size(&mut self, rows: u16, cols: u16) {
        self.catch_up(false);
        self.parser.screen_mut().set_size(nz(rows), nz(cols));
    }

    /// At most `height` lines of the screen and its scrollback, `back` lines up from the
    /// live view (see [`window`]).
    pub fn window(&mut self, back: usize, height: usize) -> Window {
        self.catch_up(false);
        window(self.parser.screen_mut(), back, height)
    }

    /// What the output so far has switched on in a terminal, for [`super::restore`].
    pub fn modes(&mut self) -> super::restore::Modes {
        self.catch_up(false);
        super::restore::Modes::of(self.parser.screen(), self.scanner.may_have_scroll_region())
    }

    fn catch_up(&mut self, hold: bool) {
        if self.pending.is_empty() {
            return;
        }
        let (rows, _) = self.parser.screen().size();
        let rule = Rule::new(rows.get(), self.scrollback);
        let plan = self.scanner.plan(&self.pending, rule, hold);
        for step in plan.steps {
            match step {
                Step::Feed(r) => self.parser.process(&self.pending[r]),
                Step::Skip { skipped, instead } => {
                    self.skipped += skipped as u64;
                    self.parser.process(&instead);
                }
            }
        }
        self.pending.drain(..self.pending.len() - plan.held);
        self.held = plan.held;
        // A burst of output leaves its buffer behind; an idle session keeps what it holds.
        let enough = self.held + self.catch_up_at;
        if self.pending.capacity() > 2 * enough {
            self.pending.shrink_to(enough);
        }
    }
}

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n).unwrap_or(std::num::NonZeroU16::MIN)
}

/// Some lines of a screen and its scrollback, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub lines: Vec<String>,
    /// How many lines above the live view its top is (what was asked, within what there is).
    pub back: usize,
    /// The most it can be: the lines above the live view.
    pub most: usize,
}

/// At most `height` lines of `screen`, `back` lines up from the live view. The live view
/// (`back` 0) is the screen's rows down to the last with content, the last `height` of them
/// if they do not all fit (where the cursor and the newest output are); the screen's rows
/// below the last with content are left out, as a preview has no use for them. Scrolled
/// back, the scrollback and those rows are one list, and the window's top moves up it.
///
/// vt100 shows scrollback only through its view offset: it is moved here and put back to
/// the live screen. (Seen rows are widened to the screen's width, within the bound of a
/// scrollback of full lines.)
pub fn window(screen: &mut vt100::Screen, back: usize, height: usize) -> Window {
    let (screen_rows, cols) = screen.size();
    let (screen_rows, cols) = (usize::from(screen_rows.get()), cols.get());
    screen.set_scrollback(0);
    let rows: Vec<String> = screen.rows(0, cols).collect();
    let used = rows
        .iter()
        .rposition(|r| !r.trim_end().is_empty())
        .map_or(0, |i| i + 1);
    let above = screen.scrollback_len();
    let total = above + used;
    let most = above + used.saturating_sub(height);
    let back = back.min(most);
    let mut at = most - back;
    let end = (at + height).min(total);
    let mut lines = Vec::with_capacity(end - at);
    while at < end.min(above) {
        // At offset `above - at`, the top rows shown are the scrollback from line `at` on.
        let offset = above - at;
        screen.set_scrollback(offset);
        let n = offset.min(end - at).min(screen_rows);
        lines.extend(screen.rows(0, cols).take(n));
        at += n;
    }
    screen.set_scrollback(0);
    if end > above {
        lines.extend(rows[at - above..end - above].iter().cloned());
    }
    Window { lines, back, most }
}

#[cfg(test)]
mod tests;
