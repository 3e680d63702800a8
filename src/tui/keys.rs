//! Keys from the raw bytes of a terminal: over SSH there is no local stdin to ask, so the
//! TUI reads what the client's terminal sends (xterm sequences, as every client sends them).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Ctrl with a letter, lower case.
    Ctrl(char),
    Enter,
    Esc,
    Backspace,
    Tab,
    BackTab,
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Delete,
}

/// Splits `bytes` into keys. Unknown escape sequences are dropped whole; a lone ESC at the
/// end of a read is the Escape key (terminals send sequences in one write).
pub fn parse(bytes: &[u8]) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        let key = match b {
            b'\r' | b'\n' => Key::Enter,
            b'\t' => Key::Tab,
            0x7f | 0x08 => Key::Backspace,
            0x1b => {
                let (key, used) = escape(&bytes[i..]);
                i += used;
                match key {
                    Some(k) => k,
                    None => continue,
                }
            }
            0x01..=0x1a => Key::Ctrl((b'a' + b - 1) as char),
            0x00..=0x1f => continue,
            _ => {
                // UTF-8: take the whole character.
                let len = match b {
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf7 => 4,
                    _ => 1,
                };
                let end = (i - 1 + len).min(bytes.len());
                let ch = std::str::from_utf8(&bytes[i - 1..end])
                    .ok()
                    .and_then(|s| s.chars().next());
                i = end;
                match ch {
                    Some(c) => Key::Char(c),
                    None => continue,
                }
            }
        };
        keys.push(key);
    }
    keys
}

/// The key an escape sequence (after its ESC) stands for, and the bytes it used.
fn escape(rest: &[u8]) -> (Option<Key>, usize) {
    match rest.first() {
        None => (Some(Key::Esc), 0),
        Some(b'[') | Some(b'O') => {
            // CSI: parameters and intermediates, then a final byte in 0x40..=0x7e.
            let Some(end) = rest[1..].iter().position(|&c| (0x40..=0x7e).contains(&c)) else {
                return (None, rest.len());
            };
            let params = &rest[1..1 + end];
            let fin = rest[1 + end];
            let key = match (fin, params) {
                (b'A', _) => Some(Key::Up),
                (b'B', _) => Some(Key::Down),
                (b'C', _) => Some(Key::Right),
                (b'D', _) => Some(Key::Left),
                (b'H', _) => Some(Key::Home),
                (b'F', _) => Some(Key::End),
                (b'Z', _) => Some(Key::BackTab),
                (b'~', b"1") | (b'~', b"7") => Some(Key::Home),
                (b'~', b"4") | (b'~', b"8") => Some(Key::End),
                (b'~', b"3") => Some(Key::Delete),
                (b'~', b"5") => Some(Key::PageUp),
                (b'~', b"6") => Some(Key::PageDown),
                _ => None,
            };
            (key, 2 + end)
        }
        // Alt+key arrives as ESC then the key: taken as Escape, then the key.
        Some(_) => (Some(Key::Esc), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_bytes_become_keys() {
        assert_eq!(
            parse(b"ab\r"),
            vec![Key::Char('a'), Key::Char('b'), Key::Enter]
        );
        assert_eq!(
            parse(b"\x1b[A\x1bOB\x1b[5~\x1b[Z"),
            vec![Key::Up, Key::Down, Key::PageUp, Key::BackTab]
        );
        assert_eq!(parse(b"\x1b"), vec![Key::Esc]);
        assert_eq!(parse(b"\x03\x7f"), vec![Key::Ctrl('c'), Key::Backspace]);
        assert_eq!(parse("é→".as_bytes()), vec![Key::Char('é'), Key::Char('→')]);
        assert_eq!(
            parse(b"\x1b[<0;3;4M"),
            Vec::<Key>::new(),
            "mouse reports are dropped whole"
        );
        assert_eq!(parse(b"\x1b[1;5A"), vec![Key::Up]);
    }
}
