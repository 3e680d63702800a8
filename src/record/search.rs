//! Search across recordings: the text each recording put on screen, line by line, or the
//! command lines its session started (its exec events), and the lines that contain a
//! pattern. The text comes from playing the output into a terminal
//! (vt100) of the recorded size, so a line reads as the terminal showed it: carriage-return
//! redraws, erasures, cursor moves and colours applied, not merely stripped.

use std::num::NonZeroU16;
use std::path::Path;

use super::format::{self, OUTPUT, RESIZE};
use super::Keyring;

/// A line of a recording that matched a search.
#[derive(Debug, Clone)]
pub struct Hit {
    pub recording: String,
    pub user: String,
    /// Seconds from the recording's start.
    pub at: f64,
    pub line: String,
}

/// What a search across recordings found.
pub struct Found {
    pub hits: Vec<Hit>,
    pub searched: usize,
    /// Recordings that could not be read (damaged, or their key is missing).
    pub unreadable: Vec<String>,
}

/// What a search looks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The lines that appeared on screen.
    Screen,
    /// The command lines of the programs the session started (its exec events).
    Exec,
}

/// Searches the recordings in `list` for `pattern` (plain text) in `target`: a hit's line
/// is the screen line, or the command line (`exec: ...`) with the time it was started.
pub fn search(
    keys: &Keyring,
    list: &[crate::store::RecordingEntry],
    pattern: &str,
    target: Target,
) -> Found {
    let mut found = Found {
        hits: Vec::new(),
        searched: 0,
        unreadable: Vec::new(),
    };
    for r in list {
        let path = Path::new(&r.path);
        let Some(rec) = keys
            .for_file(path)
            .ok()
            .and_then(|key| format::read(path, &key).ok())
        else {
            found.unreadable.push(r.id.clone());
            continue;
        };
        found.searched += 1;
        let lines = match target {
            Target::Screen => screen_lines(&rec),
            Target::Exec => super::timeline::entries(&rec)
                .into_iter()
                .filter(|e| e.kind == "exec")
                .map(|e| (e.at_us as f64 / 1e6, e.words))
                .collect(),
        };
        for (at, line) in lines {
            if line.contains(pattern) {
                found.hits.push(Hit {
                    recording: r.id.clone(),
                    user: r.user.clone(),
                    at,
                    line,
                });
            }
        }
    }
    found
}

/// The lines of text that appeared on a recording's screen, in time order, each with the
/// time (seconds from the start) it was last drawn. A line is taken when it leaves the
/// screen (scrolled off the top, erased, or overwritten by text that does not just continue
/// it) and, at the end, from what is still on screen; rows the terminal wrapped are one
/// line. The screen is looked at as someone watching would have seen it, at most once per
/// [`FRAME`]: text overwritten sooner is found only as it was left.
pub fn screen_lines(rec: &format::Recording) -> Vec<(f64, String)> {
    let mut text = ScreenText::new(rec.header.cols, rec.header.rows);
    for e in &rec.events {
        text.event(e);
    }
    text.finish()
        .into_iter()
        .map(|(at, line)| (at as f64 / 1e6, line))
        .collect()
}

/// How often (in µs of the recording) the screen is looked at: a state shown for less than
/// a frame was not seen, and looking after every event of bulk output would cost more than
/// playing it.
const FRAME: u64 = 40_000;

fn nz(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// Whether a row that showed `old` and now shows `new` lost what it showed (rather than
/// going on with it, as a line being typed or printed does).
fn overwritten(old: &str, new: &str) -> bool {
    let old = old.trim_end();
    !old.is_empty() && !new.trim_end().starts_with(old)
}

/// A row of the screen as last seen: its text, whether it wraps onto the next row, and
/// when (µs) its text last changed.
#[derive(Debug, Clone, Default)]
struct Row {
    text: String,
    wrapped: bool,
    at: u64,
}

/// The rows the terminal pushes off the top of its screen, as it pushes them.
#[derive(Default)]
struct Scrolled {
    /// Each row's text, whether it begins a line (the row before it did not wrap onto it),
    /// and whether it came from the alternate screen.
    rows: Vec<(String, bool, bool)>,
    capture: vt100::capture::BasicFormattedCaptureState,
}

impl vt100::Callbacks for Scrolled {
    fn on_scroll(&mut self, row: vt100::capture::RowContents<'_>, alternate: bool) {
        // The capture writes a newline before a row unless the row before wrapped onto it:
        // the one place vt100 says whether a scrolled row goes on a line.
        let mut formatted = String::new();
        let _ = row.write_formatted_basic(&mut formatted, &mut self.capture);
        let (begins, body) = match formatted.strip_prefix('\n') {
            Some(body) => (true, body),
            None => (false, formatted.as_str()),
        };
        self.rows.push((
            vt100::capture::basic_formatted_to_plain(body).collect(),
            begins,
            alternate,
        ));
    }
}

/// A recording's output played into a terminal, and the lines taken from it so far.
struct ScreenText {
    parser: vt100::Parser<Scrolled>,
    /// The screen in view, as last seen.
    rows: Vec<Row>,
    /// The main screen while the alternate one is in view (it comes back as it was).
    hidden: Vec<Row>,
    alternate: bool,
    /// When the screen was last looked at, and the time of the last event played since (None:
    /// nothing played since).
    looked: u64,
    unseen: Option<u64>,
    /// A line scrolled off whose last row wrapped: the rest of it is still to come.
    open: Option<(u64, String)>,
    lines: Vec<(u64, String)>,
}

impl ScreenText {
    fn new(cols: u16, rows: u16) -> ScreenText {
        ScreenText {
            parser: vt100::Parser::new_with_callbacks(nz(rows), nz(cols), 0, Scrolled::default()),
            rows: vec![Row::default(); usize::from(rows.max(1))],
            hidden: Vec::new(),
            alternate: false,
            looked: 0,
            unseen: None,
            open: None,
            lines: Vec::new(),
        }
    }

    /// Plays an event, first looking at the screen if a frame has passed since the last look.
    fn event(&mut self, e: &format::Event) {
        let resize = if e.kind == RESIZE {
            super::play::size_of(&e.data)
        } else {
            None
        };
        // Keyframes draw again what the output drew.
        if e.kind != OUTPUT && resize.is_none() {
            return;
        }
        if self.unseen.is_some() && e.at_us >= self.looked + FRAME {
            self.look();
        }
        match resize {
            Some((cols, rows)) => self.parser.set_size(nz(rows), nz(cols)),
            None => self.parser.process(&e.data),
        }
        self.unseen = Some(e.at_us);
    }

    /// Looks at the screen as the last event played left it.
    fn look(&mut self) {
        if let Some(at) = self.unseen.take() {
            self.looked = at;
            self.settle(at);
        }
    }

    /// Takes the lines that left the screen since the last look, and notes when each row
    /// still on it last changed (`at`, if it did since).
    fn settle(&mut self, at: u64) {
        let scrolled = std::mem::take(&mut self.parser.callbacks_mut().rows);
        let screen = self.parser.screen();
        let alternate = screen.alternate_screen();
        let now: Vec<(String, bool)> = screen
            .rows(0, screen.size().1.get())
            .enumerate()
            .map(|(i, text)| (text, screen.row_wrapped(i as u16)))
            .collect();
        let mut before = std::mem::take(&mut self.rows);
        let switched = alternate != self.alternate;
        if switched {
            if alternate {
                self.hidden = std::mem::replace(&mut before, vec![Row::default(); now.len()]);
            } else {
                // What the alternate screen showed is gone with it.
                self.take_rows(&before, 0..before.len());
                before = std::mem::take(&mut self.hidden);
            }
            self.alternate = alternate;
        }

        // The first rows scrolled off are the top rows seen at the last look (unless the
        // screens were switched since); the rest were drawn and scrolled off since.
        let k = scrolled.len();
        for (j, (text, begins, from_alternate)) in scrolled.into_iter().enumerate() {
            let seen = before
                .get(j)
                .filter(|_| !switched && from_alternate == alternate);
            let mut drawn = at;
            if let Some(b) = seen {
                if b.text.trim_end() == text.trim_end() {
                    drawn = b.at;
                } else if overwritten(&b.text, &text) {
                    self.take(b.at, b.text.clone());
                }
            }
            self.scroll(text, begins, drawn);
        }

        // Every other row seen before is still on screen (where the scroll moved it, where it
        // was, or anywhere else: a resize or an inserted line moves rows), or is gone.
        let mut claimed = vec![false; now.len()];
        let mut drawn = vec![at; now.len()];
        let mut gone = Vec::new();
        let skip = if switched { 0 } else { k };
        for (i, b) in before.iter().enumerate().skip(skip) {
            let old = b.text.trim_end();
            if old.is_empty() {
                continue;
            }
            let likely = [i.checked_sub(skip), Some(i)]
                .into_iter()
                .flatten()
                .filter(|&n| n < now.len());
            let shows = |n: &usize| !claimed[*n] && now[*n].0.trim_end().starts_with(old);
            match likely.chain(0..now.len()).find(shows) {
                Some(n) => {
                    claimed[n] = true;
                    if now[n].0.trim_end() == old {
                        drawn[n] = b.at;
                    }
                }
                None => gone.push(i),
            }
        }
        for run in gone.chunk_by(|a, b| b == &(a + 1) && before[*a].wrapped) {
            self.take_rows(&before, run[0]..run[run.len() - 1] + 1);
        }
        self.rows = now
            .into_iter()
            .zip(drawn)
            .map(|((text, wrapped), at)| Row { text, wrapped, at })
            .collect();
    }

    /// A row scrolled off the top: it begins a line, or goes on with the one open.
    fn scroll(&mut self, text: String, begins: bool, at: u64) {
        if let (Some((t, line)), false) = (self.open.as_mut(), begins) {
            line.push_str(&text);
            *t = (*t).max(at);
            return;
        }
        if let Some((t, line)) = self.open.replace((at, text)) {
            self.take(t, line);
        }
    }

    /// Rows `range` of `rows` as lines: a row that wraps goes on with the next.
    fn take_rows(&mut self, rows: &[Row], range: std::ops::Range<usize>) {
        let mut line: Option<(u64, String)> = None;
        for row in &rows[range] {
            let (t, text) = line.get_or_insert_with(|| (row.at, String::new()));
            text.push_str(&row.text);
            *t = (*t).max(row.at);
            if !row.wrapped {
                if let Some((t, text)) = line.take() {
                    self.take(t, text);
                }
            }
        }
        if let Some((t, text)) = line {
            self.take(t, text);
        }
    }

    fn take(&mut self, at: u64, line: String) {
        let line = line.trim_end();
        if !line.is_empty() {
            self.lines.push((at, line.to_string()));
        }
    }

    /// The lines taken, and those still on screen, in time order.
    fn finish(mut self) -> Vec<(u64, String)> {
        self.look();
        // Whether the last row scrolled off wraps onto the top row still on screen: the
        // capture goes on with a newline unless it does.
        let (screen, scrolled) = self.parser.screen_and_callbacks_mut();
        let mut rest = String::new();
        let _ = screen.write_contents_formatted_basic(
            &mut rest,
            vt100::capture::BasicFormattedCaptureRange::Full(&mut scrolled.capture),
        );
        let continues = !self.alternate && !rest.starts_with('\n');
        let mut rows = std::mem::take(&mut self.rows);
        match self.open.take() {
            Some((at, line)) if continues && !rows.is_empty() => {
                rows[0].text.insert_str(0, &line);
                rows[0].at = rows[0].at.max(at);
            }
            Some((at, line)) => self.take(at, line),
            None => {}
        }
        self.take_rows(&rows, 0..rows.len());
        let hidden = std::mem::take(&mut self.hidden);
        self.take_rows(&hidden, 0..hidden.len());
        // Stable: lines drawn in one event keep the order they had on screen.
        self.lines.sort_by_key(|(at, _)| *at);
        self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use format::{Ending, Event, Recording};

    fn recording(cols: u16, rows: u16, events: &[(u64, u8, &str)]) -> Recording {
        let mut header = format::tests::header(&[1u8; 32]);
        (header.cols, header.rows) = (cols, rows);
        let events = events
            .iter()
            .map(|&(s, kind, data)| Event {
                at_us: s * 1_000_000,
                kind,
                data: data.as_bytes().to_vec(),
            })
            .collect();
        Recording {
            header,
            events,
            ending: Ending::Complete,
        }
    }

    fn lines(rec: &Recording) -> Vec<(f64, String)> {
        screen_lines(rec)
    }

    fn texts(rec: &Recording) -> Vec<String> {
        screen_lines(rec).into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn screen_lines_drop_escape_sequences() {
        let key = [1u8; 32];
        let events = vec![Event {
            at_us: 1_000_000,
            kind: OUTPUT,
            data: b"\x1b[1;32mgreen\x1b[0m text\r\n\x1b]0;title\x07next".to_vec(),
        }];
        let rec = format::Recording {
            header: format::tests::header(&key),
            events,
            ending: Ending::Complete,
        };
        let lines: Vec<String> = screen_lines(&rec).into_iter().map(|(_, l)| l).collect();
        assert_eq!(lines, vec!["green text".to_string(), "next".to_string()]);
    }

    #[test]
    fn a_progress_line_redrawn_with_carriage_returns_reads_as_the_terminal_left_it() {
        // Stripping escapes and carriage returns ran the three states together into
        // "Downloading  10%Downloading  55%Downloading 100%", a line no terminal showed.
        let rec = recording(
            80,
            24,
            &[(
                1,
                OUTPUT,
                "Downloading  10%\rDownloading  55%\rDownloading 100%\r\ndone\r\n",
            )],
        );
        assert_eq!(texts(&rec), ["Downloading 100%", "done"]);
    }

    #[test]
    fn text_drawn_at_cursor_positions_is_found_on_the_rows_it_was_drawn_on() {
        // A full-screen program draws with cursor moves, not newlines: stripped, this was the
        // one line "PID USER  42 alicerunning".
        let rec = recording(
            80,
            24,
            &[(
                1,
                OUTPUT,
                "\x1b[H\x1b[2J\x1b[1;1HPID USER\x1b[2;3H42 alice\x1b[2;20Hrunning",
            )],
        );
        assert_eq!(texts(&rec), ["PID USER", "  42 alice         running"]);
    }

    #[test]
    fn erasing_and_backspacing_leave_the_text_that_was_left_on_screen() {
        let rec = recording(
            80,
            24,
            &[(1, OUTPUT, "$ git comit\x08\x08\x08\x1b[Kmmit -m wip\r\n")],
        );
        assert_eq!(texts(&rec), ["$ git commit -m wip"]);
    }

    #[test]
    fn a_line_overwritten_by_a_later_event_is_found_as_each_event_left_it() {
        let rec = recording(
            80,
            24,
            &[
                (1, OUTPUT, "step 1 of 3"),
                (2, OUTPUT, "\rstep 2 of 3"),
                (3, OUTPUT, "\rstep 3 of 3\r\n"),
            ],
        );
        assert_eq!(
            lines(&rec),
            [
                (1.0, "step 1 of 3".into()),
                (2.0, "step 2 of 3".into()),
                (3.0, "step 3 of 3".into())
            ]
        );
    }

    #[test]
    fn a_line_typed_over_several_events_is_one_line_timed_when_it_was_finished() {
        let rec = recording(
            80,
            24,
            &[
                (1, OUTPUT, "$ ec"),
                (2, OUTPUT, "ho hi"),
                (3, OUTPUT, "\r\nhi\r\n"),
            ],
        );
        assert_eq!(lines(&rec), [(2.0, "$ echo hi".into()), (3.0, "hi".into())]);
    }

    #[test]
    fn lines_scrolled_off_the_top_keep_the_time_they_were_drawn() {
        let rec = recording(
            80,
            2,
            &[
                (1, OUTPUT, "first\r\n"),
                (2, OUTPUT, "second\r\n"),
                (3, OUTPUT, "third\r\n"),
            ],
        );
        assert_eq!(
            lines(&rec),
            [
                (1.0, "first".into()),
                (2.0, "second".into()),
                (3.0, "third".into())
            ]
        );
    }

    #[test]
    fn a_long_line_the_terminal_wrapped_is_one_line_on_screen_and_scrolled_off() {
        let on_screen = recording(10, 4, &[(1, OUTPUT, "abcdefghijklmnop\r\n")]);
        assert_eq!(texts(&on_screen), ["abcdefghijklmnop"]);
        let scrolled = recording(10, 2, &[(1, OUTPUT, "0123456789abcdef\r\nx\r\ny\r\n")]);
        assert_eq!(texts(&scrolled), ["0123456789abcdef", "x", "y"]);
        let straddling = recording(10, 2, &[(1, OUTPUT, "0123456789abcdefghijklmno")]);
        assert_eq!(texts(&straddling), ["0123456789abcdefghijklmno"]);
    }

    #[test]
    fn a_full_screen_program_is_found_once_and_the_shell_around_it_is_not_repeated() {
        let rec = recording(
            80,
            24,
            &[
                (1, OUTPUT, "$ vim notes\r\n"),
                (2, OUTPUT, "\x1b[?1049h\x1b[H\x1b[2Jfirst note\r\n"),
                (3, OUTPUT, "second note"),
                (4, OUTPUT, "\x1b[2;1H\x1b[Kthird note"),
                (5, OUTPUT, "\x1b[?1049l$ exit\r\n"),
            ],
        );
        assert_eq!(
            lines(&rec),
            [
                (1.0, "$ vim notes".into()),
                (2.0, "first note".into()),
                (3.0, "second note".into()),
                (4.0, "third note".into()),
                (5.0, "$ exit".into())
            ]
        );
    }

    #[test]
    fn resizing_the_terminal_does_not_find_a_line_twice() {
        // Shrinking pushes rows off the top; growing again puts blank rows above the rest.
        let rec = recording(
            80,
            4,
            &[
                (1, OUTPUT, "a\r\nb\r\nc\r\nkeep me"),
                (2, RESIZE, "80x2"),
                (3, RESIZE, "80x4"),
                (4, OUTPUT, "\r\nafter\r\n"),
            ],
        );
        assert_eq!(texts(&rec), ["a", "b", "c", "keep me", "after"]);
    }

    #[test]
    fn a_cleared_screen_keeps_what_it_showed() {
        let rec = recording(
            80,
            24,
            &[
                (1, OUTPUT, "secret plans\r\n$ clear\r\n"),
                (2, OUTPUT, "\x1b[H\x1b[2J$ "),
            ],
        );
        assert_eq!(texts(&rec), ["secret plans", "$ clear", "$"]);
    }
}
