//! What a client's terminal needs once a session no longer has it (a detach, the end of an
//! observation, the session's end): the modes a program may have left switched on, put
//! back to a terminal's defaults, so that the shell the client returns to works without
//! `reset`.
//!
//! Most of it is sent whatever the session's screen says (a cursor shown, attributes, paste
//! and mouse reports, keypad and cursor keys, character sets): each is harmless on a
//! terminal already so, and the client may hold modes the screen does not (a viewer
//! resynchronized from a snapshot, the TUI's own). What is not harmless is decided by the
//! screen: leaving the alternate screen restores a saved cursor (on a terminal not in it,
//! whatever was saved last), and resetting a scroll region moves the cursor home.

/// The state of a session's terminal that decides what [`restore`] sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Modes {
    /// The program is on the alternate screen (and the client with it: attaching enters it
    /// too, see `sessions::snapshot`).
    pub alternate_screen: bool,
    /// A scroll region or origin mode may be set.
    pub scroll_region: bool,
    /// The program chose a cursor shape.
    pub cursor_style: bool,
}

impl Modes {
    /// The modes of `screen`; `scroll_region` from the scanner (vt100 does not say).
    pub fn of(screen: &vt100::Screen, scroll_region: bool) -> Modes {
        Modes {
            alternate_screen: screen.alternate_screen(),
            scroll_region,
            cursor_style: screen.cursor_style() != vt100::CursorStyle::Default,
        }
    }
}

/// Sent whatever the screen says, in this order: attributes; the cursor shown;
/// bracketed paste, focus reports, and every mouse mode and encoding off (X10, normal,
/// button, any-event; UTF-8, SGR, urxvt); the keypad and the cursor keys in normal mode;
/// autowrap on; G0 as ASCII and shifted in (a program killed while drawing boxes).
const ALWAYS: &[u8] = b"\x1b[0m\x1b[?25h\x1b[?2004l\x1b[?1004l\
\x1b[?9l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1005l\x1b[?1006l\x1b[?1015l\
\x1b>\x1b[?1l\x1b[?7h\x1b(B\x0f";

/// The bytes that give a client's terminal back after a session whose terminal is in
/// `modes`.
pub fn restore(modes: &Modes) -> Vec<u8> {
    let mut out = Vec::with_capacity(ALWAYS.len() + 16);
    // CAN first: it ends a sequence the output may have stopped in, so that what follows
    // is not read as part of it (a terminal between sequences ignores it).
    out.push(0x18);
    if modes.alternate_screen {
        // Back to the main screen, and the cursor saved on entering the alternate one.
        out.extend_from_slice(b"\x1b[?1049l");
    }
    if modes.scroll_region {
        // DECSTBM homes the cursor: saved and restored around it (origin mode, which DECRC
        // brings back, then addresses the whole screen, as without it).
        out.extend_from_slice(b"\x1b7\x1b[r\x1b8");
    }
    if modes.cursor_style {
        out.extend_from_slice(b"\x1b[0 q");
    }
    out.extend_from_slice(ALWAYS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terminal() -> vt100::Parser {
        let n = |v| std::num::NonZeroU16::new(v).unwrap();
        vt100::Parser::new(n(10), n(40), 0)
    }

    /// What a program leaves switched on, read back as a client's terminal would have it.
    const EVERYTHING: &[u8] = b"\x1b[?25l\x1b[?1049h\x1b[?2004h\x1b[?1000h\x1b[?1002h\
\x1b[?1006h\x1b=\x1b[?1h\x1b[3;8r\x1b[5 q\x1b[1;31mfull screen";

    #[test]
    fn a_terminal_a_program_left_in_every_mode_is_given_back_with_its_shell_screen() {
        let mut client = terminal();
        client.process(b"$ ssh -t host attach build\r\n");
        let before = client.screen().clone();
        client.process(EVERYTHING);
        let program = client.screen().clone();
        assert!(program.alternate_screen() && program.hide_cursor());
        client.process(&restore(&Modes::of(&program, true)));
        let s = client.screen();
        assert!(!s.alternate_screen(), "the main screen is back");
        assert!(!s.hide_cursor(), "the cursor is shown");
        assert!(!s.bracketed_paste());
        assert!(!s.application_keypad() && !s.application_cursor());
        assert_eq!(s.mouse_protocol_mode(), vt100::MouseProtocolMode::None);
        assert_eq!(
            s.mouse_protocol_encoding(),
            vt100::MouseProtocolEncoding::Default
        );
        assert_eq!(s.cursor_style(), vt100::CursorStyle::Default);
        assert_eq!(s.attributes_formatted(), "\x1b[m", "attributes reset");
        assert_eq!(s.contents(), before.contents(), "the shell's screen");
        assert_eq!(s.cursor_position(), before.cursor_position());
        // The scroll region is gone: a line feed on the last row scrolls the whole screen.
        client.process(b"\x1b[10;1Hlast\n");
        assert!(client.screen().contents().contains("last"));
        assert_eq!(client.screen().cursor_position(), (9, 4));
    }

    #[test]
    fn the_cursor_stays_where_the_program_left_it_on_the_main_screen() {
        let mut client = terminal();
        let program = b"\x1b[?25l\x1b[2;5r\x1b[4;7Hhere";
        client.process(program);
        let at = client.screen().cursor_position();
        let modes = Modes::of(client.screen(), true);
        assert!(!modes.alternate_screen);
        client.process(&restore(&modes));
        assert_eq!(client.screen().cursor_position(), at);
        assert!(!client.screen().hide_cursor());
    }

    #[test]
    fn a_sequence_the_output_stopped_in_does_not_swallow_the_restore() {
        for cut in [&b"\x1b[?10"[..], b"\x1b]0;tit", b"\x1b", b"\x1bP1$"] {
            let mut client = terminal();
            client.process(b"\x1b[?25l");
            client.process(cut);
            client.process(&restore(&Modes::default()));
            assert!(!client.screen().hide_cursor(), "after {cut:?}");
        }
    }

    #[test]
    fn only_what_the_screen_says_moves_the_cursor() {
        let plain = restore(&Modes::default());
        let text = String::from_utf8_lossy(&plain);
        assert!(!text.contains("1049") && !text.contains("\x1b[r") && !text.contains(" q"));
        let all = restore(&Modes {
            alternate_screen: true,
            scroll_region: true,
            cursor_style: true,
        });
        let text = String::from_utf8_lossy(&all);
        assert!(text.contains("\x1b[?1049l") && text.contains("\x1b7\x1b[r\x1b8"));
    }
}
