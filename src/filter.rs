//! What of a session's output may reach the terminal of someone who is not its owner: an
//! auditor observing, an admin attached to another user's session, `cordon rec play`.
//! Output can act on the viewer's machine, not only on their screen: OSC 52 fills the
//! clipboard, titles and window operations change the desktop, DCS/SOS/PM/APC strings reach
//! terminal features (DECRQSS, sixel, tmux passthrough), and queries (DA, DSR, DECRQM, ...)
//! make the viewer's terminal type an answer into whatever has its input. [`OutputFilter`]
//! passes what draws the screen, byte for byte, and drops the rest, one whole sequence at a
//! time. It is not a terminal emulator and keeps no screen.
//!
//! The parser follows the DEC VT500 states over ECMA-48 syntax. The safety rests on one
//! invariant: every piece it emits takes the viewer's terminal from ground state back to
//! ground state, so a dropped sequence never leaves that terminal half-way into something the
//! next bytes could complete. Hence a sequence is held until it is complete, and one that
//! ends oddly (an ESC inside a CSI, CAN, SUB, a byte that cannot belong) is dropped whole.
//! The same holds for UTF-8: a character is held until it is complete, and one cut short
//! goes out as U+FFFD, so that what is dropped between its lead byte and the bytes after
//! cannot join them into another character (`C2`, a dropped query, `9B` would make CSI).

const BEL: u8 = 0x07;
const ENQ: u8 = 0x05;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
const ESC: u8 = 0x1b;
const DEL: u8 = 0x7f;
/// UTF-8 lead byte of U+0080..U+00BF, among which are the C1 controls (U+0080..U+009F).
const C1_LEAD: u8 = 0xc2;
/// U+FFFD, what a terminal shows for a character cut short.
const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// Longest CSI or escape sequence kept. Real ones are a few dozen bytes; longer ones are
/// dropped without being buffered.
const SEQUENCE_MAX: usize = 256;
/// Longest OSC kept, introducer included. Only hyperlinks pass, and a longer link is not one
/// anybody meant to click.
const STRING_MAX: usize = 8 * 1024;

/// A streaming filter over the output of one session, as shown to one viewer. Sequences
/// may be split across calls: an incomplete one is held (at most [`STRING_MAX`] bytes) until
/// its end decides whether it passes.
#[derive(Debug)]
pub struct OutputFilter {
    state: State,
    /// The raw bytes of the sequence in progress, emitted unchanged if it passes. Empty in
    /// ground state and in strings that are dropped whatever they hold.
    seq: Vec<u8>,
    /// The OSC in progress outgrew [`STRING_MAX`]: skipped to its end, then dropped.
    overflowed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ground,
    /// Ground inside a UTF-8 character, which is held until it is complete.
    Char(Partial),
    /// After ESC, before any intermediate byte.
    Escape,
    /// After ESC and at least one intermediate (0x20..=0x2F).
    EscapeIntermediate,
    /// Inside a CSI: which parts have been seen, since the syntax depends on their order.
    Csi {
        params: bool,
        intermediates: bool,
    },
    /// Skipping a malformed or oversized sequence up to its final byte (`finals_from..=0x7E`),
    /// having emitted nothing of it.
    Ignore {
        finals_from: u8,
    },
    /// Inside an OSC (`osc`, buffered) or a DCS/SOS/PM/APC (never passed, so never kept).
    Str {
        osc: bool,
        after: After,
    },
}

/// The bytes so far of a UTF-8 character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Partial {
    bytes: [u8; 4],
    len: u8,
    /// The character's length, from its lead byte.
    total: u8,
}

impl Partial {
    /// A character begun by `lead`, if it can begin one (0xC0, 0xC1 and 0xF5.. cannot).
    fn begin(lead: u8) -> Option<Partial> {
        let total = match lead {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return None,
        };
        Some(Partial {
            bytes: [lead, 0, 0, 0],
            len: 1,
            total,
        })
    }

    /// Whether `b` may come next. The second byte's range excludes overlong forms and
    /// surrogates, as in `str::from_utf8`: a lax terminal could decode `E0 82 9B` as CSI.
    fn accepts(&self, b: u8) -> bool {
        let range = match (self.len, self.bytes[0]) {
            (1, 0xe0) => 0xa0..=0xbf,
            (1, 0xed) => 0x80..=0x9f,
            (1, 0xf0) => 0x90..=0xbf,
            (1, 0xf4) => 0x80..=0x8f,
            _ => 0x80..=0xbf,
        };
        range.contains(&b)
    }
}

/// What the last byte of a string was, when it may begin its terminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Payload,
    /// ESC: a backslash makes ST.
    Esc,
    /// 0xC2: 0x9C makes C1 ST.
    C1Lead,
}

/// What a rule wants of a CSI's private marker or intermediates.
#[derive(Clone, Copy)]
enum Want {
    Any,
    Absent,
    Is(u8),
}

/// A CSI that makes the viewer's terminal answer, act on its window, or print.
struct Rule {
    private: Want,
    intermediate: Want,
    final_byte: u8,
}

const fn rule(private: Want, intermediate: Want, final_byte: u8) -> Rule {
    Rule {
        private,
        intermediate,
        final_byte,
    }
}

/// The CSI sequences dropped; every other well-formed CSI draws and passes. Policy as data:
/// a query found later is one line here and one in the test that lists them.
const DROPPED_CSI: &[Rule] = &[
    // DA1, DA2 (`>`), DA3 (`=`): device attributes.
    rule(Want::Any, Want::Any, b'c'),
    // DSR and CPR in all forms (`5n`, `6n`, `?6n`, `?996n`, ...), all of which answer.
    rule(Want::Any, Want::Any, b'n'),
    // XTWINOPS: move, resize, iconify, raise, report size or title (`21t`), title stack.
    rule(Want::Any, Want::Absent, b't'),
    // DECREQTPARM.
    rule(Want::Any, Want::Absent, b'x'),
    // XTVERSION.
    rule(Want::Is(b'>'), Want::Any, b'q'),
    // Kitty keyboard flags query.
    rule(Want::Is(b'?'), Want::Any, b'u'),
    // DECRQTSR (terminal state report).
    rule(Want::Any, Want::Is(b'$'), b'u'),
    // DECRQUPSS (user-preferred supplemental set).
    rule(Want::Any, Want::Is(b'&'), b'u'),
    // DECRQM, ANSI and DEC modes.
    rule(Want::Any, Want::Is(b'$'), b'p'),
    // DECSR: a secure reset answers with DECSRC.
    rule(Want::Any, Want::Is(b'+'), b'p'),
    // XTSMGRAPHICS: sixel/ReGIS graphics attributes, set or read back.
    rule(Want::Is(b'?'), Want::Any, b'S'),
    // XTQMODKEYS (SGR has no private marker, so nothing is lost).
    rule(Want::Is(b'?'), Want::Any, b'm'),
    // DECRQCRA: a checksum of a screen rectangle, i.e. the screen read back.
    rule(Want::Any, Want::Is(b'*'), b'y'),
    // DECRQPSR (presentation state report).
    rule(Want::Any, Want::Is(b'$'), b'w'),
    // DECRQDE (displayed extent).
    rule(Want::Any, Want::Is(b'"'), b'v'),
    // XTREPORTCOLORS.
    rule(Want::Any, Want::Is(b'#'), b'R'),
    // DECRQLP (`'|`), XTREPORTSGR (`#|`), and DECSCPP/DECSNLS (`$|`, `*|`), which resize the
    // window.
    rule(Want::Any, Want::Any, b'|'),
    // MC, media copy: the viewer's printer, or a file or command on their machine.
    rule(Want::Any, Want::Any, b'i'),
];

impl Want {
    /// Against the private marker (`<=>?`) that opens the parameters, if any.
    fn matches_private(self, found: Option<u8>) -> bool {
        match self {
            Want::Any => true,
            Want::Absent => found.is_none(),
            Want::Is(b) => found == Some(b),
        }
    }

    /// Against the set of intermediates (0x20..=0x2F), one bit each: [`intermediate_bit`].
    fn matches_intermediates(self, found: u16) -> bool {
        match self {
            Want::Any => true,
            Want::Absent => found == 0,
            Want::Is(b) => found & intermediate_bit(b) != 0,
        }
    }
}

fn intermediate_bit(b: u8) -> u16 {
    1 << (b & 0x0f)
}

/// Whether a complete CSI (introducer, parameters, intermediates, final) is dropped.
fn csi_is_dropped(seq: &[u8]) -> bool {
    let Some((&final_byte, body)) = seq.split_last() else {
        return true;
    };
    // Both introducers, ESC [ and C2 9B, are two bytes long.
    let mut syntax = body
        .get(2..)
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|b| (0x20..DEL).contains(b))
        .peekable();
    let private = syntax.next_if(|b| (0x3c..=0x3f).contains(b));
    let intermediates = syntax
        .filter(|b| (0x20..=0x2f).contains(b))
        .fold(0, |set, b| set | intermediate_bit(b));
    DROPPED_CSI.iter().any(|r| {
        r.final_byte == final_byte
            && r.private.matches_private(private)
            && r.intermediate.matches_intermediates(intermediates)
    })
}

/// Whether a complete escape sequence (ESC, intermediates, final) is dropped.
fn escape_is_dropped(seq: &[u8]) -> bool {
    let mut syntax = seq
        .iter()
        .skip(1)
        .copied()
        .filter(|b| (0x20..DEL).contains(b));
    match (syntax.next(), syntax.next()) {
        // DECID: the terminal answers as to DA.
        (Some(b'Z'), None) => true,
        // ST with no string to end does nothing; dropped so that the end of a dropped string
        // (tmux passthrough, say) leaves no trace.
        (Some(b'\\'), None) => true,
        // DOCS: leaving UTF-8 would make the terminal read raw C1 bytes (0x9B, 0x9D), which
        // pass here as invalid UTF-8, as CSI and OSC.
        (Some(b'%'), _) => true,
        _ => false,
    }
}

/// Whether an OSC payload (after the introducer, before the terminator) is a hyperlink
/// (`8;params;URI`), the only OSC that passes.
fn is_hyperlink(payload: &[u8]) -> bool {
    let Some(rest) = payload.strip_prefix(b"8;") else {
        return false;
    };
    // No control characters at all: a terminal that ends strings at some other control (raw
    // 8-bit ST, say) would otherwise see the rest of the link as plain output.
    std::str::from_utf8(rest).is_ok_and(|s| s.contains(';') && !s.chars().any(char::is_control))
}

impl Default for OutputFilter {
    fn default() -> OutputFilter {
        OutputFilter::new()
    }
}

impl OutputFilter {
    /// A filter for a stream that starts in ground state, as a fresh terminal does.
    pub fn new() -> OutputFilter {
        OutputFilter {
            state: State::Ground,
            seq: Vec::new(),
            overflowed: false,
        }
    }

    /// Filters the next bytes of the stream and returns what may reach the viewer's
    /// terminal. Sequences may be split across calls: the output is the same however the
    /// stream is cut.
    pub fn filter(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut rest = input;
        while let Some((&b, tail)) = rest.split_first() {
            if self.state == State::Ground {
                // Plain text is most of any stream: copy ASCII in runs.
                let run = rest
                    .iter()
                    .position(|&b| matches!(b, ESC | ENQ | 0x80..))
                    .unwrap_or(rest.len());
                if run > 0 {
                    out.extend_from_slice(&rest[..run]);
                    rest = &rest[run..];
                    continue;
                }
            }
            self.step(b, &mut out);
            rest = tail;
        }
        out
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Ground => self.ground(b, out),
            State::Char(partial) => self.character(b, out, partial),
            State::Escape | State::EscapeIntermediate => self.escape(b, out),
            State::Csi {
                params,
                intermediates,
            } => self.csi(b, out, params, intermediates),
            State::Ignore { finals_from } => self.ignore(b, out, finals_from),
            State::Str { osc, after } => self.string(b, out, osc, after),
        }
    }

    fn ground(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            ESC => self.begin(State::Escape, &[ESC]),
            // The terminal would type its answerback message.
            ENQ => {}
            _ => match Partial::begin(b) {
                Some(partial) => self.state = State::Char(partial),
                // ASCII, or a byte that is invalid however it is followed: the terminal shows
                // U+FFFD for the latter, and nothing it is next to can change that.
                None => out.push(b),
            },
        }
    }

    fn character(&mut self, b: u8, out: &mut Vec<u8>, mut partial: Partial) {
        self.state = State::Ground;
        if !partial.accepts(b) {
            out.extend_from_slice(REPLACEMENT);
            return self.step(b, out);
        }
        if partial.bytes[0] == C1_LEAD && b < 0xa0 {
            return self.c1(b, out);
        }
        partial.bytes[usize::from(partial.len)] = b;
        partial.len += 1;
        if partial.len == partial.total {
            out.extend_from_slice(&partial.bytes[..usize::from(partial.len)]);
        } else {
            self.state = State::Char(partial);
        }
    }

    /// A C1 control in its UTF-8 form, `C2 b`.
    fn c1(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            0x9b => self.begin(
                State::Csi {
                    params: false,
                    intermediates: false,
                },
                &[C1_LEAD, b],
            ),
            0x9d => self.begin(
                State::Str {
                    osc: true,
                    after: After::Payload,
                },
                &[C1_LEAD, b],
            ),
            // DCS, SOS, PM, APC.
            0x90 | 0x98 | 0x9e | 0x9f => {
                self.state = State::Str {
                    osc: false,
                    after: After::Payload,
                }
            }
            // DECID (SCI), as ESC Z.
            0x9a => {}
            // NEL, IND, HTS, RI, SS2, ST and the like act on the screen or on nothing.
            _ => out.extend_from_slice(&[C1_LEAD, b]),
        }
    }

    fn escape(&mut self, b: u8, out: &mut Vec<u8>) {
        let first = self.state == State::Escape;
        match b {
            CAN | SUB => {
                self.abandon(out);
                out.push(b);
            }
            ESC => {
                self.abandon(out);
                self.begin(State::Escape, &[ESC]);
            }
            ENQ => {}
            // Executed in place by the terminal; kept so that a sequence that passes is byte-exact.
            0x00..=0x1f | DEL => self.seq.push(b),
            0x20..=0x2f => {
                self.seq.push(b);
                self.state = State::EscapeIntermediate;
            }
            b'[' if first => {
                self.seq.push(b);
                self.state = State::Csi {
                    params: false,
                    intermediates: false,
                };
            }
            b']' if first => {
                // Controls executed before the `]` go out now, so that a dropped OSC cannot
                // take them along (inside the OSC a terminal ignores them).
                self.abandon(out);
                self.begin(
                    State::Str {
                        osc: true,
                        after: After::Payload,
                    },
                    &[ESC, b],
                );
            }
            b'P' | b'X' | b'^' | b'_' if first => {
                self.abandon(out);
                self.state = State::Str {
                    osc: false,
                    after: After::Payload,
                };
            }
            0x30..=0x7e => {
                self.seq.push(b);
                self.settle(out, !escape_is_dropped(&self.seq));
            }
            // Not part of any escape sequence: the ESC was a stray one.
            _ => {
                self.abandon(out);
                self.step(b, out);
            }
        }
        if matches!(self.state, State::Escape | State::EscapeIntermediate)
            && self.seq.len() > SEQUENCE_MAX
        {
            self.skip_to_final(out, 0x30);
        }
    }

    fn csi(&mut self, b: u8, out: &mut Vec<u8>, params: bool, intermediates: bool) {
        match b {
            CAN | SUB => {
                self.abandon(out);
                out.push(b);
            }
            // A new sequence; the broken one is dropped.
            ESC => {
                self.abandon(out);
                self.begin(State::Escape, &[ESC]);
            }
            ENQ => {}
            0x00..=0x1f | DEL => self.seq.push(b),
            // A parameter after an intermediate, or a private marker (`<=>?`) anywhere but
            // first, makes the sequence malformed; terminals skip it to its final byte.
            0x30..=0x3f if intermediates || (params && b >= 0x3c) => self.skip_to_final(out, 0x40),
            0x30..=0x3f => {
                self.seq.push(b);
                self.state = State::Csi {
                    params: true,
                    intermediates,
                };
            }
            0x20..=0x2f => {
                self.seq.push(b);
                self.state = State::Csi {
                    params,
                    intermediates: true,
                };
            }
            0x40..=0x7e => {
                self.seq.push(b);
                self.settle(out, !csi_is_dropped(&self.seq));
            }
            _ => {
                self.abandon(out);
                self.step(b, out);
            }
        }
        if matches!(self.state, State::Csi { .. }) && self.seq.len() > SEQUENCE_MAX {
            self.skip_to_final(out, 0x40);
        }
    }

    fn ignore(&mut self, b: u8, out: &mut Vec<u8>, finals_from: u8) {
        match b {
            CAN | SUB => {
                self.state = State::Ground;
                out.push(b);
            }
            ESC => self.begin(State::Escape, &[ESC]),
            ENQ => {}
            // Executed by the terminal even mid-sequence; none of the sequence reached it.
            0x00..=0x1f => out.push(b),
            _ if b == DEL || (0x20..finals_from).contains(&b) => {}
            _ if b <= 0x7e => self.state = State::Ground,
            _ => {
                self.state = State::Ground;
                self.step(b, out);
            }
        }
    }

    fn string(&mut self, b: u8, out: &mut Vec<u8>, osc: bool, after: After) {
        match after {
            After::Payload => match b {
                BEL => self.end_string(out, osc, &[BEL]),
                ESC => {
                    self.state = State::Str {
                        osc,
                        after: After::Esc,
                    }
                }
                C1_LEAD => {
                    self.state = State::Str {
                        osc,
                        after: After::C1Lead,
                    }
                }
                CAN | SUB => {
                    self.finish(out, false);
                    out.push(b);
                }
                _ => self.keep(osc, b),
            },
            After::Esc if b == b'\\' => self.end_string(out, osc, &[ESC, b]),
            // ESC ends a string and begins a sequence. A hyperlink ended this way is dropped:
            // passing it would leave the viewer's terminal inside it if the next sequence is
            // dropped.
            After::Esc => {
                self.finish(out, false);
                self.begin(State::Escape, &[ESC]);
                self.step(b, out);
            }
            After::C1Lead if b == 0x9c => self.end_string(out, osc, &[C1_LEAD, b]),
            // An ordinary character from U+0080..U+00BF, or invalid UTF-8.
            After::C1Lead => {
                self.keep(osc, C1_LEAD);
                self.state = State::Str {
                    osc,
                    after: After::Payload,
                };
                self.step(b, out);
            }
        }
    }

    /// Keeps a byte of an OSC's payload, up to [`STRING_MAX`]; past it the OSC is only
    /// skipped, so that memory stays bounded.
    fn keep(&mut self, osc: bool, b: u8) {
        if !osc || self.overflowed {
            return;
        }
        if self.seq.len() >= STRING_MAX {
            self.overflowed = true;
            self.seq = Vec::new();
        } else {
            self.seq.push(b);
        }
    }

    fn end_string(&mut self, out: &mut Vec<u8>, osc: bool, terminator: &[u8]) {
        let passes = osc && !self.overflowed && is_hyperlink(self.seq.get(2..).unwrap_or_default());
        self.seq.extend_from_slice(terminator);
        self.finish(out, passes);
    }

    fn begin(&mut self, state: State, introducer: &[u8]) {
        self.seq.clear();
        self.seq.extend_from_slice(introducer);
        self.state = state;
    }

    /// Ends the sequence in progress: its bytes go out unchanged, or none of them do.
    fn finish(&mut self, out: &mut Vec<u8>, passes: bool) {
        if passes {
            out.extend_from_slice(&self.seq);
        }
        self.seq.clear();
        self.overflowed = false;
        self.state = State::Ground;
    }

    /// Drops an unfinished escape sequence or CSI but emits the controls inside it, which the
    /// terminal would have executed on the way.
    fn abandon(&mut self, out: &mut Vec<u8>) {
        out.extend(self.seq.iter().filter(|&&b| b < 0x20 && b != ESC));
        self.finish(out, false);
    }

    /// Ends a complete escape sequence or CSI: whole, or only the controls inside it.
    fn settle(&mut self, out: &mut Vec<u8>, passes: bool) {
        if passes {
            self.finish(out, true);
        } else {
            self.abandon(out);
        }
    }

    fn skip_to_final(&mut self, out: &mut Vec<u8>, finals_from: u8) {
        self.abandon(out);
        self.state = State::Ignore { finals_from };
    }
}

/// Filters one whole buffer with a fresh filter; an unfinished sequence or character at its
/// end is dropped.
pub fn filter_all(bytes: &[u8]) -> Vec<u8> {
    OutputFilter::new().filter(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filters `input` in one call and expects `expected`.
    fn check(input: &[u8], expected: &[u8]) {
        assert_eq!(
            show(&filter_all(input)),
            show(expected),
            "input: {}",
            show(input)
        );
    }

    /// Bytes shown with escapes visible, for readable failures.
    fn show(bytes: &[u8]) -> String {
        bytes.escape_ascii().to_string()
    }

    #[test]
    fn osc_52_ending_in_bel_is_dropped_and_the_text_around_it_kept() {
        check(b"before\x1b]52;c;cm0gLXJmIH4K\x07after", b"beforeafter");
    }

    #[test]
    fn osc_52_ending_in_st_is_dropped_and_the_text_around_it_kept() {
        check(b"before\x1b]52;c;cm0gLXJmIH4K\x1b\\after", b"beforeafter");
    }

    #[test]
    fn osc_52_in_the_utf8_c1_forms_is_dropped() {
        check(b"a\xc2\x9d52;c;cm0gLXJmIH4K\xc2\x9cb", b"ab");
        check(b"a\xc2\x9d52;c;cm0gLXJmIH4K\x07b", b"ab");
        check(b"a\x1b]52;c;cm0gLXJmIH4K\xc2\x9cb", b"ab");
    }

    #[test]
    fn window_and_icon_titles_are_dropped_and_cannot_be_read_back() {
        check(
            b"\x1b]0;pwned\x07\x1b]1;icon\x1b\\\x1b]2;title\xc2\x9cok",
            b"ok",
        );
        check(b"\x1b[21t\x1b[20t\x1b[22;0;0t\x1b[23;0;0tok", b"ok");
    }

    #[test]
    fn every_osc_but_hyperlinks_is_dropped() {
        for osc in [
            "4;1;?",
            "7;file:///etc",
            "10;?",
            "11;rgb:0/0/0",
            "12;?",
            "104",
            "133;A",
            "1337;File=:aGk=",
            "777;notify;x;y",
        ] {
            check(format!("<\x1b]{osc}\x07>").as_bytes(), b"<>");
        }
    }

    #[test]
    fn dcs_apc_pm_and_sos_strings_are_dropped_in_both_forms() {
        // DECRQSS, XTGETTCAP, sixel, tmux passthrough (with its doubled ESC), kitty graphics.
        check(b"a\x1bP$qm\x1b\\b", b"ab");
        check(b"a\x1bP+q544e\x1b\\b", b"ab");
        check(b"a\x1bPq#0;2;0;0;0#0~~@@vv@@~~\x1b\\b", b"ab");
        check(b"a\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\b", b"ab");
        check(b"a\x1b_Gf=100;aGk=\x1b\\b", b"ab");
        check(b"a\x1b^private\x1b\\b\x1bXstart of string\x07c", b"abc");
        check(
            b"a\xc2\x90$qm\xc2\x9cb\xc2\x98s\xc2\x9cc\xc2\x9ep\x07d\xc2\x9fGa=q\xc2\x9ce",
            b"abcde",
        );
    }

    #[test]
    fn a_long_dcs_is_dropped_whole_without_being_buffered() {
        let mut f = OutputFilter::new();
        assert_eq!(f.filter(b"a\x1bPq"), b"a");
        for _ in 0..256 {
            assert_eq!(f.filter(&[b'~'; 4096]), b"");
            assert!(f.seq.is_empty());
        }
        assert_eq!(f.filter(b"\x1b\\b"), b"b");
    }

    #[test]
    fn every_query_that_makes_the_terminal_answer_is_dropped() {
        let queries: &[&[u8]] = &[
            b"\x1b[c",           // DA1
            b"\x1b[0c",          // DA1
            b"\x1b[>c",          // DA2
            b"\x1b[>0c",         // DA2
            b"\x1b[=c",          // DA3
            b"\x1b[5n",          // DSR
            b"\x1b[6n",          // CPR
            b"\x1b[?6n",         // DECXCPR
            b"\x1b[?996n",       // colour scheme
            b"\x1b[?2004$p",     // DECRQM, DEC mode
            b"\x1b[4$p",         // DECRQM, ANSI mode
            b"\x1b[14t",         // window size in pixels
            b"\x1b[18t",         // text area size
            b"\x1b[21t",         // title report
            b"\x1b[3;0;0t",      // move the window
            b"\x1b[8;100;300t",  // resize the window
            b"\x1b[2t",          // iconify
            b"\x1b[x",           // DECREQTPARM
            b"\x1b[1x",          // DECREQTPARM
            b"\x1b[>q",          // XTVERSION
            b"\x1b[>0q",         // XTVERSION
            b"\x1b[?u",          // kitty keyboard flags
            b"\x1b[?1;1;0S",     // XTSMGRAPHICS
            b"\x1b[?4m",         // XTQMODKEYS
            b"\x1b[1;1;1;1;1*y", // DECRQCRA
            b"\x1b[1$w",         // DECRQPSR
            b"\x1b[1$u",         // DECRQTSR
            b"\x1b[&u",          // DECRQUPSS
            b"\x1b[\"v",         // DECRQDE
            b"\x1b[#R",          // XTREPORTCOLORS
            b"\x1b[1'|",         // DECRQLP
            b"\x1b[132$|",       // DECSCPP
            b"\x1b[5i",          // printer controller on
            b"\x1b[+p",          // DECSR
            b"\x1bZ",            // DECID
            b"\x05",             // ENQ
            b"\xc2\x9b6n",       // CPR, C1 form
            b"\xc2\x9bc",        // DA1, C1 form
            b"\xc2\x9a",         // DECID, C1 form
        ];
        for query in queries {
            let mut input = b"<".to_vec();
            input.extend_from_slice(query);
            input.push(b'>');
            check(&input, b"<>");
        }
    }

    #[test]
    fn leaving_utf8_mode_is_dropped() {
        check(b"a\x1b%@b\x1b%Gc", b"abc");
    }

    #[test]
    fn sequences_that_draw_pass_byte_exact() {
        let drawing: &[&[u8]] = &[
            b"\x1b[m",
            b"\x1b[0;1;4;38;5;208;48;2;10;20;30m",
            b"\x1b[38:2::255:128:0m",
            b"\x1b[H",
            b"\x1b[12;40H",
            b"\x1b[3A\x1b[2B\x1b[5C\x1b[1D\x1b[G\x1b[10d",
            b"\x1b[2J\x1b[K\x1b[1K\x1b[2K\x1b[3J",
            b"\x1b[1;24r\x1b[S\x1b[2T\x1b[L\x1b[M\x1b[P\x1b[@\x1b[X",
            b"\x1b[?1049h\x1b[?1049l\x1b[?25l\x1b[?25h\x1b[?2004h\x1b[?2004l",
            b"\x1b[?1000h\x1b[?1002h\x1b[?1006h\x1b[?2026h\x1b[?2026l\x1b[4h\x1b[4l",
            b"\x1b[2 q\x1b[s\x1b[u\x1b[!p\x1b[>1u\x1b[<u\x1b[>4;2m",
            b"\x1b7\x1b8\x1bM\x1bD\x1bE\x1b=\x1b>\x1b(B\x1b(0\x1b)0\x1b#8\x1bc",
            b"\xc2\x9b31m",
            b"\x07\x08\t\n\r\x0b\x0c\x0e\x0f\x00\x7f",
        ];
        for seq in drawing {
            check(seq, seq);
        }
    }

    #[test]
    fn hyperlinks_pass_byte_exact() {
        for link in [
            &b"\x1b]8;;https://example.com/\x07link\x1b]8;;\x07"[..],
            b"\x1b]8;id=7;https://example.com/a%20b\x1b\\link\x1b]8;;\x1b\\",
            b"\xc2\x9d8;;file:///tmp/\xc3\xa9\xc2\x9clink\xc2\x9d8;;\xc2\x9c",
        ] {
            check(link, link);
        }
    }

    #[test]
    fn a_hyperlink_with_control_characters_or_no_uri_part_is_dropped() {
        check(b"\x1b]8;;https://x/\x05\x07t", b"t");
        check(b"\x1b]8;;https://x/\xc2\x85\x07t", b"t");
        check(b"\x1b]8;;https://x/\xff\x07t", b"t");
        check(b"\x1b]8;nouri\x07t", b"t");
        check(b"\x1b]8\x07t", b"t");
    }

    #[test]
    fn a_hyperlink_ended_by_another_sequence_is_dropped_and_the_sequence_handled() {
        check(b"\x1b]8;;https://x/\x1b[1mt", b"\x1b[1mt");
        check(b"\x1b]8;;https://x/\x1b[6nt", b"t");
    }

    #[test]
    fn a_vim_startup_keeps_its_drawing_and_loses_its_queries() {
        let input: &[u8] = b"\x1b[?1049h\x1b[22;0;0t\x1b[>4;2m\x1b[?1h\x1b=\x1b[H\x1b[2J\x1b]11;?\x07\x1b[?2004h\
              \x1bP+q436f\x1b\\\x1b[?u\x1b[c\x1b[?25l\x1b[1;1H\x1b[94m~                   \x1b[m\r\n\
              \x1b]2;main.rs - VIM\x07\x1b[24;63H0,0-1\x1b[9CAll\x1b[1;1H\x1b[?25h";
        let expected: &[u8] = b"\x1b[?1049h\x1b[>4;2m\x1b[?1h\x1b=\x1b[H\x1b[2J\x1b[?2004h\
              \x1b[?25l\x1b[1;1H\x1b[94m~                   \x1b[m\r\n\
              \x1b[24;63H0,0-1\x1b[9CAll\x1b[1;1H\x1b[?25h";
        check(input, expected);
    }

    /// What `ls --color`, a prompt and a Claude-Code-like frame emit: nothing in it acts
    /// beyond the screen.
    const REAL_WORLD: &[u8] = b"\x1b[0m\x1b[01;34msrc\x1b[0m  \x1b[01;32mbuild.sh\x1b[0m  \x1b[01;36mlink\x1b[0m  \
        \x1b[40;31;01mbroken\x1b[0m  Cargo.toml\r\n\
        \x1b[01;32muser@host\x1b[00m:\x1b[01;34m~/cordon\x1b[00m$ \
        \x1b[?2026h\x1b[?25l\x1b[2K\x1b[1A\x1b[2K\x1b[G\
        \x1b[38;2;215;119;87m\xe2\x95\xad\xe2\x94\x80\xe2\x94\x80\xe2\x95\xae\x1b[39m\r\n\
        \x1b[38;2;215;119;87m\xe2\x94\x82\x1b[39m \x1b[38;2;215;119;87m\xe2\x9c\xbb\x1b[39m Welcome to \x1b[1mClaude Code\x1b[22m!\r\n\
        \x1b[38;5;246m  /help for help, /status for your current setup\x1b[39m\r\n\
        \x1b[7m \x1b[27m\x1b[2m Try \"refactor \xc3\xa9l\xc3\xa8ve.rs\" \xf0\x9f\x9a\x80\x1b[22m\r\n\
        \x1b]8;;https://docs.anthropic.com/\x1b\\docs\x1b]8;;\x1b\\\
        \x1b[3;5H\x1b[?25h\x1b[?2026l";

    #[test]
    fn real_world_output_passes_byte_exact() {
        check(REAL_WORLD, REAL_WORLD);
    }

    #[test]
    fn utf8_split_across_calls_passes_intact() {
        let text = "h\u{e9}llo \u{2500}\u{2500} \u{1f680} \u{a0}\u{bf}".as_bytes();
        let mut f = OutputFilter::new();
        let out: Vec<u8> = text.iter().flat_map(|b| f.filter(&[*b])).collect();
        assert_eq!(out, text);
    }

    #[test]
    fn invalid_utf8_and_raw_c1_bytes_pass_unchanged() {
        check(
            b"\x9b6n\x9d52;c;x\x07\xff\xfe\xc0\xc1\x80A",
            b"\x9b6n\x9d52;c;x\x07\xff\xfe\xc0\xc1\x80A",
        );
    }

    #[test]
    fn a_character_cut_short_goes_out_as_a_replacement_character() {
        check(
            b"\xc3A\xe2\x94B\xf0\x9f\x9a\x1b[1mC",
            "\u{fffd}A\u{fffd}B\u{fffd}\x1b[1mC".as_bytes(),
        );
        check(b"\xe0\x82\x9b6n", b"\xef\xbf\xbd\x82\x9b6n");
    }

    #[test]
    fn a_lead_byte_cannot_join_the_bytes_after_a_dropped_sequence_into_a_c1_control() {
        // Raw, these would reach the terminal as C2 9B 6 n: a working cursor position query.
        for input in [
            &b"\xc2\x1b[6n\x9b6n"[..],
            b"\xc2\x05\x9b6n",
            b"\xc2\xc2\x9b6n\x9b6n",
            b"\xc2\xc2\x9a\x9b6n",
        ] {
            let out = filter_all(input);
            assert!(
                !out.windows(2).any(|w| w == [C1_LEAD, 0x9b]),
                "{} gave {}",
                show(input),
                show(&out)
            );
        }
    }

    #[test]
    fn filtering_twice_changes_nothing() {
        // Whatever the first pass lets out must contain nothing that a second pass would
        // drop: that would be a sequence assembled from the pieces around a dropped one.
        let alphabet: &[&[u8]] = &[
            b"\x1b",
            b"[",
            b"]",
            b"6",
            b"n",
            b"52;c;eA==",
            b"8;;u",
            b";",
            b"?",
            b">",
            b"$p",
            b"c",
            b"m",
            b"P",
            b"\\",
            b"\x07",
            b"\x05",
            b"\x18",
            b"\r",
            b"\xc2",
            b"\x9b",
            b"\x9d",
            b"\x9c",
            b"\x90",
            b"\x9a",
            b"\xe2",
            b"\x94",
            b"\x80",
            b"\xe0",
            b"\xf0",
            b"\x9f",
            b"x",
            b"\xc3\xa9",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = next() % 24;
            let input: Vec<u8> = (0..len)
                .flat_map(|_| {
                    alphabet[(next() % alphabet.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let once = filter_all(&input);
            assert_eq!(
                show(&filter_all(&once)),
                show(&once),
                "input: {}",
                show(&input)
            );
        }
    }

    #[test]
    fn can_and_sub_abort_a_sequence_and_pass_themselves() {
        check(b"a\x1b[6\x18nb", b"a\x18nb");
        check(b"a\x1b]52;c;eA==\x1a\x07b", b"a\x1a\x07b");
        check(b"a\x1bP$q\x18m", b"a\x18m");
        check(b"a\x1b(\x1aB", b"a\x1aB");
    }

    #[test]
    fn an_escape_inside_a_csi_starts_a_new_sequence() {
        check(b"\x1b[1;3\x1b[31mred", b"\x1b[31mred");
        check(b"\x1b[1;3\x1b]52;c;eA==\x07x", b"x");
    }

    #[test]
    fn controls_inside_a_dropped_query_still_reach_the_viewer() {
        check(b"\x1b[6\r\nn", b"\r\n");
        check(b"\x1b[1\r\nm", b"\x1b[1\r\nm");
    }

    #[test]
    fn malformed_csi_is_dropped_to_its_final_byte() {
        check(b"\x1b[1?6nX", b"X");
        check(b"\x1b[ 1mX", b"X");
    }

    #[test]
    fn an_oversized_csi_is_dropped_without_growing_the_buffer() {
        let mut f = OutputFilter::new();
        assert_eq!(f.filter(b"a\x1b["), b"a");
        for _ in 0..100_000 {
            assert_eq!(f.filter(b"1;"), b"");
            assert!(f.seq.len() <= SEQUENCE_MAX + 1);
        }
        assert_eq!(f.filter(b"mb"), b"b");
        check(
            &[b"\x1b[".as_slice(), &[b'1'; SEQUENCE_MAX], b"mb"].concat(),
            b"b",
        );
        check(
            &[b"\x1b(".as_slice(), &[b' '; 100_000], b"Bb"].concat(),
            b"b",
        );
    }

    #[test]
    fn a_one_mebibyte_osc_does_not_grow_the_buffer() {
        let mut f = OutputFilter::new();
        assert_eq!(f.filter(b"a\x1b]8;;https://"), b"a");
        for _ in 0..256 {
            assert_eq!(f.filter(&[b'x'; 4096]), b"");
            assert!(f.seq.len() <= STRING_MAX);
            assert!(f.seq.capacity() <= STRING_MAX);
        }
        assert_eq!(f.filter(b"\x07b"), b"b");
        assert!(f.seq.is_empty());
    }

    #[test]
    fn an_unterminated_osc_is_held_until_its_terminator_arrives() {
        let mut f = OutputFilter::new();
        assert_eq!(f.filter(b"a\x1b]52;c;cm0g"), b"a");
        assert_eq!(f.filter(b"LXJmIH4K"), b"");
        assert_eq!(f.filter(b"\x07b"), b"b");

        let mut f = OutputFilter::new();
        assert_eq!(f.filter(b"a\x1b]8;;https://x/"), b"a");
        assert_eq!(f.filter(b"\x1b"), b"");
        assert_eq!(f.filter(b"\\b"), b"\x1b]8;;https://x/\x1b\\b");
    }

    /// A long stream mixing everything above, with what the viewer should get of it;
    /// `c1_forms`: with the pieces in the UTF-8 forms of C1 controls.
    fn mixed_stream(c1_forms: bool) -> (Vec<u8>, Vec<u8>) {
        let pieces: &[(&[u8], &[u8])] = &[
            (REAL_WORLD, REAL_WORLD),
            (b"x\x1b]52;c;cm0gLXJmIH4K\x07y", b"xy"),
            (b"\xc2\x9d52;c;eA==\xc2\x9c", b""),
            (b"\x1b]0;title\x1b\\", b""),
            (b"\x1bP$qm\x1b\\\x1b_Gi=1\x1b\\", b""),
            (b"\xc2\x90q~~\xc2\x9c", b""),
            (b"\x1b[6n\x1b[>c\x1b[?2004$p\x1b[21t\x1bZ\x05", b""),
            (b"\xc2\x9b6n", b""),
            (
                b"caf\xc3\xa9 \xe2\x94\x80 \xf0\x9f\x9a\x80",
                b"caf\xc3\xa9 \xe2\x94\x80 \xf0\x9f\x9a\x80",
            ),
            (
                b"\x1b]8;;https://x/\x07l\x1b]8;;\x07",
                b"\x1b]8;;https://x/\x07l\x1b]8;;\x07",
            ),
            (b"\x1b[1;3\x1b[31m", b"\x1b[31m"),
            (b"\x1b[6\x18n", b"\x18n"),
            (b"\x9b\xff\xc2A", b"\x9b\xff\xef\xbf\xbdA"),
            (b"\x1b%@", b""),
            (b"\x1b[6\r\nn", b"\r\n"),
        ];
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..3 {
            for (i, e) in pieces {
                if !c1_forms
                    && i.windows(2)
                        .any(|w| w[0] == C1_LEAD && (0x80..0xa0).contains(&w[1]))
                {
                    continue;
                }
                input.extend_from_slice(i);
                expected.extend_from_slice(e);
            }
        }
        let long_csi = [b"\x1b[".as_slice(), &[b'9'; 300], b"m"].concat();
        input.extend_from_slice(&long_csi);
        input.extend_from_slice(b"end");
        expected.extend_from_slice(b"end");
        (input, expected)
    }

    #[test]
    fn the_mixed_stream_filters_to_its_expected_output() {
        let (input, expected) = mixed_stream(true);
        check(&input, &expected);
    }

    #[test]
    fn the_filtered_stream_draws_the_same_screen_as_the_original() {
        // vt100 is the emulator sessions already keep their screen in; what is dropped here
        // acts beyond the screen, so the screen must not change. vt100 takes the UTF-8 forms
        // of C1 controls for characters (some terminals do, some do not), so it shows what
        // follows them as text: those pieces are left out.
        let (input, _) = mixed_stream(false);
        let screen = |bytes: &[u8]| {
            let size = |n| std::num::NonZeroU16::new(n).expect("a constant above zero");
            let mut parser = vt100::Parser::new(size(40), size(120), 0);
            parser.process(bytes);
            parser.screen().state_formatted()
        };
        assert_eq!(screen(&filter_all(&input)), screen(&input));
        assert_eq!(screen(&filter_all(REAL_WORLD)), screen(REAL_WORLD));
    }

    #[test]
    fn splitting_the_stream_anywhere_gives_the_same_output() {
        let (input, expected) = mixed_stream(true);
        for cut in 0..=input.len() {
            let mut f = OutputFilter::new();
            let mut out = f.filter(&input[..cut]);
            out.extend(f.filter(&input[cut..]));
            assert_eq!(show(&out), show(&expected), "cut at {cut}");
        }

        let mut f = OutputFilter::new();
        let bytewise: Vec<u8> = input.iter().flat_map(|b| f.filter(&[*b])).collect();
        assert_eq!(show(&bytewise), show(&expected), "one byte at a time");

        // Many cuts at once, at pseudo-random places (xorshift, fixed seed: reproducible).
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..500 {
            let mut f = OutputFilter::new();
            let mut out = Vec::new();
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed % 40) as usize + 1;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                out.extend(f.filter(chunk));
                rest = tail;
            }
            assert_eq!(show(&out), show(&expected), "round {round}");
        }
    }
}
