use super::*;

/// A screen's shape, and how output reaches it.
#[derive(Debug, Clone, Copy)]
struct Case {
    rows: u16,
    cols: u16,
    scrollback: usize,
    /// The size of each push.
    chunk: usize,
    catch_up_at: usize,
}

/// A screen without scrollback, catching up as a session's does.
fn case(rows: u16, cols: u16, chunk: usize) -> Case {
    Case {
        rows,
        cols,
        scrollback: 0,
        chunk,
        catch_up_at: CATCH_UP_AT,
    }
}

/// The whole of a screen: its scrollback then its rows, with their colours.
fn everything(s: &vt100::Screen) -> String {
    let mut out = String::new();
    s.write_contents_formatted_basic(
        &mut out,
        vt100::capture::BasicFormattedCaptureRange::Full(&mut Default::default()),
    )
    .unwrap();
    out
}

/// Both screens, drawn with their contents and modes, and their scrollbacks must be the
/// same; what the lazy one held back never passes its bound. Returns the bytes skipped.
fn same_as_emulator(output: &[u8], c: Case) -> u64 {
    let mut reference = vt100::Parser::new(nz(c.rows), nz(c.cols), c.scrollback);
    reference.process(output);
    let mut lazy = Screen::with(c.rows, c.cols, c.scrollback, c.catch_up_at);
    for piece in output.chunks(c.chunk.max(1)) {
        lazy.push(piece);
        assert!(
            lazy.held <= scanner::HOLD_MAX,
            "{} bytes held back",
            lazy.held
        );
    }
    let (a, b) = (reference.screen(), lazy.now().clone());
    assert_eq!(a.contents_formatted(), b.contents_formatted(), "{c:?}");
    assert_eq!(a.state_formatted(), b.state_formatted(), "{c:?}");
    assert_eq!(a.cursor_position(), b.cursor_position(), "{c:?}");
    assert_eq!(a.attributes_formatted(), b.attributes_formatted(), "{c:?}");
    assert_eq!(a.scrollback_len(), b.scrollback_len(), "{c:?}");
    assert_eq!(everything(a), everything(&b), "the scrollback, {c:?}");
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
    let skipped = same_as_emulator(&out, case(24, 80, 4096));
    assert!(skipped > out.len() as u64 * 9 / 10, "skipped {skipped}");
}

#[test]
fn a_long_log_keeps_a_session_s_scrollback_and_is_still_mostly_skipped() {
    let mut out = Vec::new();
    for i in 0..20_000 {
        out.extend_from_slice(
            format!("\x1b[1m\x1b[32m   Compiling\x1b[0m crate{i} v0.1.{i}\r\ntest t{i} ... \x1b[32mok\x1b[0m\r\n")
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"last line");
    let c = Case {
        scrollback: SCROLLBACK,
        ..case(24, 80, 4096)
    };
    let skipped = same_as_emulator(&out, c);
    // A thousand lines kept in a buffer of 32 KiB would leave nothing out; held back and
    // read again with what follows, all but the last lines are.
    assert!(skipped > out.len() as u64 * 8 / 10, "skipped {skipped}");
    // As a session's reader feeds it: reads of 4 KiB, the screen asked for at each
    // keyframe (every 1 MiB), which catches up whatever is held.
    let mut s = Screen::with(24, 80, SCROLLBACK, CATCH_UP_AT);
    let mut since = 0;
    for piece in out.chunks(4096) {
        s.push(piece);
        since += piece.len();
        if since >= 1 << 20 {
            since = 0;
            s.now();
        }
    }
    s.now();
    let share = s.skipped as f64 / out.len() as f64;
    eprintln!("{:.1} % of {} bytes left out", share * 100.0, out.len());
    assert!(share > 0.8, "{share}");
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
fn text_over_a_full_screen_and_scrollback_from_any_row_leaves_the_same_of_both_whatever_its_length()
{
    let mut skipped = 0;
    for scrollback in [0, 1, 3] {
        for rows in 1..=6u16 {
            for row in 0..rows {
                let least = 2 * rows as usize + scrollback;
                for lines in least - 1..least + 4 {
                    for ending in ["", "tail", "\x1b[31mred"] {
                        // The scrollback full of the screen's colours first.
                        let mut out = filled(rows, 12, 0);
                        out.extend_from_slice("\r\n".repeat(scrollback + 1).as_bytes());
                        out.extend_from_slice(&filled(rows, 12, row));
                        for l in 0..lines {
                            out.extend_from_slice(format!("l{l}\x1b[3{}m;\r\n", l % 8).as_bytes());
                        }
                        out.extend_from_slice(ending.as_bytes());
                        for (chunk, catch_up_at) in
                            [(1 << 20, CATCH_UP_AT), (5, CATCH_UP_AT), (3, 7)]
                        {
                            let c = Case {
                                scrollback,
                                catch_up_at,
                                ..case(rows, 12, chunk)
                            };
                            skipped += same_as_emulator(&out, c);
                        }
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
    assert_eq!(same_as_emulator(&out, case(24, 80, 1 << 20)), 0);
    out.extend_from_slice(b"\x1bc");
    for i in 0..500 {
        out.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    assert!(same_as_emulator(&out, case(24, 80, 1 << 20)) > 0);
}

#[test]
fn lines_without_carriage_returns_are_not_cut_where_the_column_is_unknown() {
    let mut out = Vec::new();
    for i in 0..500 {
        out.extend_from_slice(format!("bare {i}\n").as_bytes());
    }
    assert_eq!(same_as_emulator(&out, case(24, 80, 1 << 20)), 0);
}

#[test]
fn generated_output_of_every_kind_shows_the_same_screen_in_chunks_of_any_size() {
    let mut skipped = 0;
    for seed in 1..400u64 {
        let out = noisy_output(seed * 7919, 300 + (seed as usize % 7) * 200, 80);
        let rows = [1, 2, 5, 24][seed as usize % 4];
        let cols = [10, 80, 3][seed as usize % 3];
        let chunk = [1, 7, 64, 4096, 1 << 20][seed as usize % 5];
        // Scrollbacks of every size against the chunks, and catch-ups that hold text back
        // in the middle of it.
        let c = Case {
            scrollback: [0, 1, 5, 40, 7][seed as usize / 5 % 5],
            catch_up_at: [CATCH_UP_AT, 50, 700][seed as usize % 3],
            ..case(rows, cols, chunk)
        };
        skipped += same_as_emulator(&out, c);
    }
    // The property holds whether or not text is skipped; make sure some was.
    assert!(skipped > 0);
}

#[test]
fn mostly_escape_sequences_show_the_same_screen() {
    for seed in 1..300u64 {
        let out = noisy_output(seed * 104_729, 2000, 20);
        let c = Case {
            scrollback: [0, 10][seed as usize / 2 % 2],
            catch_up_at: [CATCH_UP_AT, 300][seed as usize / 3 % 2],
            ..case(
                [3, 24][seed as usize % 2],
                40,
                [3, 100, 4096][seed as usize % 3],
            )
        };
        same_as_emulator(&out, c);
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
    let rule = Rule::new(4, 0);
    assert!(matches!(
        s.plan(b"abc\x1b[3", rule, false).steps.as_slice(),
        [Step::Feed(_)]
    ));
    let plan = s.plan(&[b"1m".as_slice(), &out].concat(), rule, false);
    assert!(plan.steps.iter().any(|s| matches!(s, Step::Skip { .. })));
    same_as_emulator(
        &[b"abc\x1b[3".as_slice(), b"1m", &out].concat(),
        case(4, 80, 5),
    );
}

#[test]
fn a_held_back_stretch_is_read_again_with_what_follows_and_never_grows_past_its_bound() {
    let mut s = Scanner::default();
    let rule = Rule::new(4, 10);
    let lines = |from: usize, to: usize| {
        (from..to)
            .flat_map(|i| format!("line {i}\r\n").into_bytes())
            .collect::<Vec<u8>>()
    };
    // Too short to cut: held whole.
    let first = lines(0, 8);
    let plan = s.plan(&first, rule, true);
    assert_eq!(plan.held, first.len(), "{plan:?}");
    // With what follows: A is left out, B (rows + scrollback lines) held again.
    let again = [first, lines(8, 60)].concat();
    let plan = s.plan(&again, rule, true);
    assert!(
        matches!(plan.steps.as_slice(), [Step::Skip { .. }]),
        "{plan:?}"
    );
    let held = &again[again.len() - plan.held..];
    assert_eq!(
        held.iter().filter(|&&b| b == b'\n').count(),
        14,
        "the rows and the scrollback stay for the emulator"
    );
    // A stretch longer than the bound is planned as it stands.
    let long = vec![b'x'; scanner::HOLD_MAX + 1];
    let plan = s.plan(&long, rule, true);
    assert_eq!(plan.held, 0);
    assert_eq!(plan.steps, vec![Step::Feed(0..long.len())]);
}

/// A window's lines without their trailing blanks.
fn texts(w: &Window) -> Vec<String> {
    w.lines.iter().map(|l| l.trim_end().to_string()).collect()
}

#[test]
fn scrolling_back_shows_the_lines_that_scrolled_off_the_top() {
    let mut s = Screen::with(5, 20, 50, CATCH_UP_AT);
    for i in 0..30 {
        s.push(format!("line {i}\r\n").as_bytes());
    }
    s.push(b"$ ");
    // The live screen: the last lines.
    let live = s.window(0, 3);
    assert_eq!(texts(&live), ["line 28", "line 29", "$"]);
    assert_eq!(live.most, 28, "every line above the window");
    // Ten lines up: lines that left the screen long ago.
    let back = s.window(10, 3);
    assert_eq!(texts(&back), ["line 18", "line 19", "line 20"]);
    assert_eq!(back.back, 10);
    // As far as it goes: the first line printed.
    let top = s.window(1000, 4);
    assert_eq!(texts(&top), ["line 0", "line 1", "line 2", "line 3"]);
    assert_eq!(top.back, top.most);
    // A window taller than the screen: live, the screen; two lines back, the two lines
    // above it and the screen, at once.
    assert_eq!(texts(&s.window(0, 12)).len(), 5);
    let tall = s.window(2, 12);
    assert_eq!(
        texts(&tall),
        ["line 24", "line 25", "line 26", "line 27", "line 28", "line 29", "$"]
    );
    // And the screen is live again afterwards.
    assert_eq!(s.now().scrollback(), 0);
    assert_eq!(s.window(0, 3), live);
}

#[test]
fn a_screen_that_has_not_filled_shows_from_its_top() {
    let mut s = Screen::with(24, 80, 50, CATCH_UP_AT);
    s.push(b"one\r\ntwo\r\n");
    let w = s.window(0, 10);
    assert_eq!(texts(&w), ["one", "two"]);
    assert_eq!((w.back, w.most), (0, 0));
    assert_eq!(s.window(5, 10), w, "nothing to scroll back to");
}

#[test]
fn the_alternate_screen_has_no_scrollback_to_show() {
    let mut s = Screen::with(3, 20, 50, CATCH_UP_AT);
    for i in 0..10 {
        s.push(format!("line {i}\r\n").as_bytes());
    }
    s.push(b"\x1b[?1049h\x1b[Hfull screen");
    let w = s.window(5, 3);
    assert_eq!(texts(&w), ["full screen"]);
    assert_eq!(w.most, 0);
}
