//! The one line cordon draws over an attached session (SSH `attach`, `new` and `observe`,
//! and the TUI's attach): for a few seconds after attaching, which session this is and how
//! to leave it; while the session's proxy waits for its owner's answer (`[network] unknown =
//! "ask"`), the question, which `o`, `s` or `d` answer. Once neither is up (the notice's time
//! is over or a key was typed; the question answered here or elsewhere, or its wait ran
//! out) the row is drawn again from the session's screen.
//!
//! Why the last row for the notice: printed before the session's screen is drawn, it would
//! be wiped by that drawing at once (which begins by clearing the screen); in the terminal's
//! title, programs overwrite it (Claude Code sets its own) and many terminals and
//! multiplexers do not show it. Over the last row, as GNU screen shows its messages, it is
//! seen where the user looks, and leaves the program's screen as it was once gone.
//!
//! It disturbs the screen no more than it must: only the last row, drawn only where the
//! output sent so far ends between escape sequences, and without DECSC/DECRC (the program
//! may hold a saved cursor of its own): the cursor and the drawing attributes are put back
//! from the session's screen, which matches what the client has, because the overlay is
//! made under the same lock as the drain ([`Session::drain_with`]).

use std::time::{Duration, Instant};

use crate::sessions::{Session, Viewer};
use sandbox::egress::Answer;

/// Keys typed this soon after the question appears are not taken as an answer: they were
/// typed for the program, before its owner could read the question.
const GUARD: Duration = Duration::from_millis(600);

/// How long the notice on attaching stays up, unless a key comes first.
pub const NOTICE_FOR: Duration = Duration::from_secs(4);

/// The least wait before the line is tried again when it is due: output that stopped inside
/// an escape sequence leaves it as it is until more comes, and the wait must not spin.
pub const AGAIN: Duration = Duration::from_millis(20);

/// What a key does while the question line is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// No question shown: the bytes go to the session.
    Pass,
    /// Held back: the question is shown, and this is not an answer.
    Held,
    /// The owner answered question `ask`.
    Answer(u64, Answer),
}

/// What the line shows on the client's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Nothing,
    Notice,
    /// Question `ask`, since when.
    Question(u64, Instant),
}

/// The line of one attached viewer.
pub struct AskLine {
    shown: Shown,
    /// The notice on attaching and until when it stays up (None: gone for good).
    notice: Option<(String, Instant)>,
    /// Where the output sent so far leaves the client's parser.
    state: Parse,
    /// Whether this viewer is the session's owner, typing: only they are asked.
    asks: bool,
    /// The line was drawn on the main screen and the program has since gone to the
    /// alternate one: the client's main screen still shows it there, for when it is back.
    main_stale: bool,
    /// The client has a terminal to draw on and to give back.
    terminal: bool,
}

/// The notice on attaching: which session (its name, and its id as lists show it) and the
/// key that leaves it.
pub fn notice(s: &Session, writer: bool, detach_key: &str) -> String {
    let name = s.name();
    let id = s.id.short();
    if writer {
        format!("[cordon] attached to \"{name}\" (id {id}) \u{2014} {detach_key} detaches")
    } else {
        format!("[cordon] observing \"{name}\" (id {id}), read-only \u{2014} {detach_key} stops")
    }
}

impl AskLine {
    /// The line of `viewer` on a terminal, beginning with the notice on attaching
    /// (`detach_key` named).
    pub fn new(s: &Session, viewer: &Viewer, detach_key: &str) -> AskLine {
        AskLine {
            shown: Shown::Nothing,
            notice: Some((
                notice(s, viewer.writer, detach_key),
                Instant::now() + NOTICE_FOR,
            )),
            state: Parse::Ground,
            asks: viewer.writer && viewer.user_id == s.owner_id,
            main_stale: false,
            terminal: true,
        }
    }

    /// For a client without a terminal (`ssh HOST observe ID > log`): the session's output
    /// alone, without a line, and nothing to give back at the end.
    pub fn without_terminal(s: &Session, viewer: &Viewer) -> AskLine {
        AskLine {
            notice: None,
            terminal: false,
            ..AskLine::new(s, viewer, "")
        }
    }

    /// The session's pending output for this viewer, and after it the line drawn, redrawn
    /// (the output may have written over it) or taken away.
    pub fn drain(&mut self, s: &Session, viewer: &Viewer) -> Vec<u8> {
        let asking = self.asks
            && (matches!(self.shown, Shown::Question(..)) || !s.egress.questions().is_empty());
        if !asking && self.notice.is_none() && self.shown == Shown::Nothing && !self.main_stale {
            let out = viewer.drain();
            self.state = self.state.after_tail(&out);
            return out;
        }
        s.drain_with(viewer, |screen, out| {
            self.state = self.state.after_tail(out);
            if self.state != Parse::Ground {
                // Inside an escape sequence: drawn after a later drain.
                return Vec::new();
            }
            self.draw(s, screen, !out.is_empty())
        })
    }

    /// The line as it should be now: the question first, else the notice while it lasts,
    /// else the session's own row (drawn again once, after either). Redrawn only when the
    /// output may have written over it (`written`) or what it shows changes.
    fn draw(&mut self, s: &Session, screen: &vt100::Screen, written: bool) -> Vec<u8> {
        let text = self.text(s, written);
        let main = !screen.alternate_screen();
        match text {
            Some(Some(text)) => {
                self.main_stale |= main;
                overlay(screen, Some(&text))
            }
            Some(None) => {
                if main {
                    self.main_stale = false;
                }
                overlay(screen, None)
            }
            None if self.main_stale && main && self.shown == Shown::Nothing => {
                // Back on the main screen, where an old line still shows.
                self.main_stale = false;
                overlay(screen, None)
            }
            None => Vec::new(),
        }
    }

    /// What to draw now: `Some(Some(text))` the line, `Some(None)` the session's own row,
    /// `None` nothing.
    fn text(&mut self, s: &Session, written: bool) -> Option<Option<String>> {
        let question = if self.asks {
            s.egress.questions().into_iter().next()
        } else {
            None
        };
        if let Some(q) = question {
            // A question ends the notice: once answered, the row is the program's again.
            self.notice = None;
            match self.shown {
                Shown::Question(ask, _) if ask == q.ask => {
                    if !written {
                        return None;
                    }
                }
                _ => self.shown = Shown::Question(q.ask, Instant::now()),
            }
            // The keys first: on a narrow terminal the host's name is what is cut.
            // The session is the one on this screen: its id would only take room.
            return Some(Some(format!(
                " cordon: o allow once, s allow for the session, d deny: it asks to connect to {}:{} ({} s left) ",
                q.host,
                q.port,
                q.seconds_left()
            )));
        }
        if self
            .notice
            .as_ref()
            .is_some_and(|(_, until)| Instant::now() >= *until)
        {
            self.notice = None;
        }
        if let Some((text, _)) = &self.notice {
            if self.shown == Shown::Notice && !written {
                return None;
            }
            self.shown = Shown::Notice;
            return Some(Some(text.clone()));
        }
        if self.shown != Shown::Nothing {
            self.shown = Shown::Nothing;
            return Some(None);
        }
        None
    }

    /// When the line must be drawn again though no output comes: the notice's end (past,
    /// once it is over and still on screen; a face waits at least [`AGAIN`]).
    pub fn due(&self) -> Option<Instant> {
        match (&self.notice, self.shown) {
            (Some((_, until)), _) => Some(*until),
            (None, Shown::Notice) => Some(Instant::now()),
            _ => None,
        }
    }

    /// What a client leaving gets last: the session's pending output, the line taken away,
    /// and the bytes that give its terminal back ([`Session::leave`]).
    pub fn leave(&mut self, s: &Session, viewer: &Viewer) -> Vec<u8> {
        if !self.terminal {
            return viewer.drain();
        }
        let shown = self.shown != Shown::Nothing;
        self.shown = Shown::Nothing;
        self.notice = None;
        let mut stale_row = None;
        let mut bytes = s.leave(viewer, |screen, out| {
            self.state = self.state.after_tail(out);
            if self.main_stale && screen.alternate_screen() {
                stale_row = Some(screen.size().0.get());
            }
            if !shown {
                return Vec::new();
            }
            // CAN first: the output may have stopped inside a sequence.
            let mut bytes = vec![0x18];
            bytes.extend(overlay(screen, None));
            bytes
        });
        if let Some(row) = stale_row {
            // Back on the main screen (the restore leaves the alternate one), the line drawn
            // there before the program left it goes; what the row held is not known.
            bytes.extend_from_slice(format!("\x1b7\x1b[{row};1H\x1b[2K\x1b8").as_bytes());
        }
        bytes
    }

    /// What typed bytes do while the line may be up: a key for the program ends the notice
    /// (the row may be where the program echoes it).
    pub fn key(&mut self, bytes: &[u8]) -> KeyOutcome {
        let Shown::Question(ask, since) = self.shown else {
            if !bytes.is_empty() {
                if let Some(notice) = self.notice.as_mut() {
                    notice.1 = Instant::now();
                }
            }
            return KeyOutcome::Pass;
        };
        if since.elapsed() < GUARD {
            return KeyOutcome::Held;
        }
        let answer = bytes.iter().rev().find_map(|b| match b {
            b'o' | b'O' => Some(Answer::Once),
            b's' | b'S' => Some(Answer::Session),
            b'd' | b'D' => Some(Answer::Deny),
            _ => None,
        });
        match answer {
            Some(a) => KeyOutcome::Answer(ask, a),
            None => KeyOutcome::Held,
        }
    }
}

/// Bytes that draw `text` (reversed, cut to the width) on the screen's last row, or draw
/// that row again from the screen, then put back the cursor and the drawing attributes.
fn overlay(screen: &vt100::Screen, text: Option<&str>) -> Vec<u8> {
    let (rows, cols) = screen.size();
    let (rows, cols) = (rows.get(), cols.get());
    let mut out = format!("\x1b[{rows};1H\x1b[0m").into_bytes();
    match text {
        Some(t) => {
            // One column short of the edge: a character in the last column would leave the
            // terminal waiting to wrap.
            let width = usize::from(cols.saturating_sub(1));
            let t = crate::text::printable(t);
            let mut line: String = t.chars().take(width).collect();
            let len = line.chars().count();
            line.extend(std::iter::repeat_n(' ', width - len));
            out.extend_from_slice(b"\x1b[7m");
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\x1b[0m");
        }
        None => {
            out.extend_from_slice(b"\x1b[2K");
            if let Some(row) = screen.rows_formatted(0, cols).nth(usize::from(rows - 1)) {
                out.extend_from_slice(row.as_bytes());
            }
            out.extend_from_slice(b"\x1b[0m");
        }
    }
    out.extend_from_slice(screen.attributes_formatted().as_bytes());
    out.extend_from_slice(screen.cursor_state_formatted().as_bytes());
    out
}

/// Where a terminal's parser is after some output: between sequences (`Ground`) or in the
/// middle of one (an escape, a CSI, an OSC/DCS string, a UTF-8 character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    Ground,
    Escape,
    Csi,
    /// OSC, DCS, SOS, PM, APC: ended by BEL or ESC \.
    String,
    StringEscape,
    /// Continuation bytes still due.
    Utf8(u8),
}

impl Parse {
    /// [`Parse::after`], reading only the end of `bytes` when it can: from `Ground`, what
    /// comes before the last ESC (or before the last few bytes, for a UTF-8 character)
    /// cannot leave a sequence open. This runs on every drain of the owner's viewer, so it
    /// must not walk the whole output.
    fn after_tail(self, bytes: &[u8]) -> Parse {
        if self != Parse::Ground {
            return self.after(bytes);
        }
        // memrchr: vectorized, so a drain of plain text costs next to nothing.
        let from = memchr::memrchr(0x1b, bytes).unwrap_or(bytes.len().saturating_sub(4));
        Parse::Ground.after(&bytes[from..])
    }

    fn after(mut self, bytes: &[u8]) -> Parse {
        for &b in bytes {
            self = match (self, b) {
                (Parse::String, 0x07) => Parse::Ground,
                (Parse::String, 0x1b) => Parse::StringEscape,
                (Parse::String, _) => Parse::String,
                (Parse::StringEscape, b'\\') => Parse::Ground,
                (Parse::StringEscape, _) => Parse::String,
                (_, 0x18 | 0x1a) => Parse::Ground,
                (_, 0x1b) => Parse::Escape,
                (Parse::Escape, b'[') => Parse::Csi,
                (Parse::Escape, b']' | b'P' | b'X' | b'^' | b'_') => Parse::String,
                // Intermediates (ESC ( B, ESC # 8) wait for their final byte.
                (Parse::Escape, 0x20..=0x2f) => Parse::Escape,
                (Parse::Escape, _) => Parse::Ground,
                (Parse::Csi, 0x40..=0x7e) => Parse::Ground,
                (Parse::Csi, _) => Parse::Csi,
                (Parse::Utf8(n), 0x80..=0xbf) if n > 1 => Parse::Utf8(n - 1),
                (Parse::Utf8(_), 0x80..=0xbf) => Parse::Ground,
                (_, 0xc0..=0xdf) => Parse::Utf8(1),
                (_, 0xe0..=0xef) => Parse::Utf8(2),
                (_, 0xf0..=0xf7) => Parse::Utf8(3),
                _ => Parse::Ground,
            };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_state_knows_when_output_stops_inside_a_sequence() {
        let g = Parse::Ground;
        assert_eq!(g.after(b"plain text\r\n"), Parse::Ground);
        assert_eq!(g.after(b"\x1b[1;3"), Parse::Csi);
        assert_eq!(g.after(b"\x1b[1;31mred"), Parse::Ground);
        assert_eq!(g.after(b"\x1b]0;title"), Parse::String);
        assert_eq!(g.after(b"\x1b]0;title\x07"), Parse::Ground);
        assert_eq!(g.after(b"\x1b]52;c;QQ==\x1b\\"), Parse::Ground);
        assert_eq!(g.after(b"\x1b("), Parse::Escape);
        assert_eq!(g.after(b"\x1b(B"), Parse::Ground);
        assert_eq!(g.after("é".as_bytes()), Parse::Ground);
        assert_eq!(g.after(&"€".as_bytes()[..2]), Parse::Utf8(1));
        assert_eq!(
            g.after(b"\x1b[1;3").after(b"1m"),
            Parse::Ground,
            "across drains"
        );
    }

    #[test]
    fn the_overlay_draws_the_last_row_and_puts_the_cursor_and_colours_back() {
        let mut p = vt100::Parser::new(
            std::num::NonZeroU16::new(5).unwrap(),
            std::num::NonZeroU16::new(30).unwrap(),
            0,
        );
        p.process(b"line one\r\n\x1b[5;1Hbottom row\x1b[2;4H\x1b[32m");
        let before = p.screen().clone();
        let drawn = overlay(p.screen(), Some("cordon: a question \x1b]52;c;x\x07 here"));
        let mut client = vt100::Parser::new(
            std::num::NonZeroU16::new(5).unwrap(),
            std::num::NonZeroU16::new(30).unwrap(),
            0,
        );
        client.process(p.screen().state_formatted().as_bytes());
        client.process(&drawn);
        let s = client.screen();
        let last = s.rows(0, 30).nth(4).unwrap();
        assert!(last.starts_with("cordon: a question"), "{last:?}");
        assert!(
            !last.contains('\x1b'),
            "the question's text is escaped: {last:?}"
        );
        assert!(s.cell(4, 0).unwrap().inverse());
        assert_eq!(s.cursor_position(), before.cursor_position(), "cursor back");
        assert_eq!(s.fgcolor(), vt100::Color::Idx(2), "attributes back");
        assert_eq!(s.rows(0, 30).next().unwrap(), "line one");
        // Taken away: the row is the session's again.
        client.process(&overlay(p.screen(), None));
        let s = client.screen();
        assert_eq!(s.rows(0, 30).nth(4).unwrap(), "bottom row");
        assert!(!s.cell(4, 0).unwrap().inverse());
        assert_eq!(s.cursor_position(), before.cursor_position());
    }
}
