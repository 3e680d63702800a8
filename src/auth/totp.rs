//! The second factor, pure: time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second
//! steps, 6 digits, one step either side accepted), their secrets in base32, the
//! `otpauth://` URI authenticator apps read, the QR code drawn with half blocks, and
//! recovery codes (random, stored as hashes, compared in constant time). No I/O but the
//! kernel's random bytes; the service keeps the state (sealed secrets, the last step used,
//! which recovery codes are spent).

use ring::hmac;
use sha2::{Digest, Sha256};

/// Seconds per step (RFC 6238's default, and what every authenticator app assumes).
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of now: a clock 30 seconds off, or a code typed as it turned.
pub const WINDOW: i64 = 1;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes given at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// The step `unix_seconds` falls in.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The code of `step` (RFC 4226's HOTP with the step as counter, HMAC-SHA1, 6 digits).
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &(step as u64).to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The code at `unix_seconds`.
#[cfg(test)]
pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    code_at_step(secret, step_at(unix_seconds))
}

/// The step whose code `code` is, within [`WINDOW`] steps of `now` and after `last_used`
/// (a step once used never logs in again: a code seen over a shoulder or replayed from a
/// log is refused). Compared in constant time; the newest matching step wins.
pub fn verify(secret: &[u8], code: &str, now: i64, last_used: i64) -> Option<i64> {
    let code = normalize_code(code)?;
    let here = step_at(now);
    let mut found = None;
    for step in here - WINDOW..=here + WINDOW {
        let expected = code_at_step(secret, step);
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) && step > last_used {
            found = Some(step);
        }
    }
    found
}

/// A code as people type it: spaces and dashes dropped; `None` unless six digits remain.
fn normalize_code(code: &str) -> Option<String> {
    let c: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (c.len() == DIGITS as usize && c.bytes().all(|b| b.is_ascii_digit())).then_some(c)
}

/// Whether `code` looks like a TOTP code (six digits, spaces allowed) rather than a
/// recovery code.
pub fn looks_like_code(code: &str) -> bool {
    normalize_code(code).is_some()
}

/// Equal bytes, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the compiler from turning the loop into an early exit.
    std::hint::black_box(diff) == 0
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps take as a secret).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Reads base32 (case, spaces and padding ignored); `None` on any other character.
#[cfg(test)]
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = BASE32
            .iter()
            .position(|&b| b as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// A new random secret.
pub fn new_secret() -> std::io::Result<Vec<u8>> {
    crate::secrets::random_bytes(SECRET_BYTES)
}

/// The `otpauth://totp/` URI for `account` (`user@host`), issuer "cordon": what a QR code
/// carries to an authenticator app.
pub fn uri(secret: &[u8], account: &str) -> String {
    format!(
        "otpauth://totp/cordon:{}?secret={}&issuer=cordon&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        percent(account),
        base32(secret)
    )
}

/// Percent-encoding of everything but unreserved characters and `@`.
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `text` as a QR code drawn with half blocks, two rows of modules per line, dark modules
/// as spaces on light blocks (so that it scans on a dark terminal) with a quiet zone of two
/// modules. `None` if the text does not fit a QR code.
pub fn qr_lines(text: &str) -> Option<Vec<String>> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::L).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let quiet = 2;
    let size = width + 2 * quiet;
    let dark = |x: usize, y: usize| -> bool {
        x >= quiet
            && y >= quiet
            && x < quiet + width
            && y < quiet + width
            && colors[(y - quiet) * width + (x - quiet)] == qrcode::Color::Dark
    };
    let mut lines = Vec::new();
    for y in (0..size).step_by(2) {
        let mut line = String::new();
        for x in 0..size {
            // Light is drawn; the bottom row past the code is quiet (light).
            let top = !dark(x, y);
            let bottom = y + 1 >= size || !dark(x, y + 1);
            line.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        lines.push(line);
    }
    Some(lines)
}

/// New recovery codes: [`RECOVERY_CODES`] of them, each 16 base32 characters (80 bits) in
/// four groups (`abcd-efgh-ijkl-mnop`), lowercase.
pub fn new_recovery_codes() -> std::io::Result<Vec<String>> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = base32(&crate::secrets::random_bytes(10)?).to_ascii_lowercase();
            Ok(raw
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-"))
        })
        .collect()
}

/// What is stored of a recovery code for user `user_id`: SHA-256 over a label, the id and
/// the code as typed without dashes, spaces or case. A fast hash is enough: 80 random bits
/// cannot be guessed from it.
pub fn recovery_hash(user_id: i64, code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut h = Sha256::new();
    h.update(b"cordon totp recovery v1\0");
    h.update(user_id.to_be_bytes());
    h.update(normal.as_bytes());
    crate::secrets::hex(&h.finalize())
}

/// The index of the stored hash `code` matches, comparing with every one in constant time.
pub fn find_recovery(user_id: i64, code: &str, stored: &[String]) -> Option<usize> {
    let h = recovery_hash(user_id, code);
    let mut found = None;
    for (i, s) in stored.iter().enumerate() {
        if constant_time_eq(h.as_bytes(), s.as_bytes()) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        // Appendix B gives 8 digits; the last 6 are the 6-digit code (the modulus divides).
        for (t, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t), eight[2..], "T = {t}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_refused_two_steps_away() {
        let now = 1_700_000_015;
        let here = step_at(now);
        for d in [-1, 0, 1] {
            let code = code_at_step(RFC_SECRET, here + d);
            assert_eq!(verify(RFC_SECRET, &code, now, 0), Some(here + d), "{d}");
        }
        for d in [-2, 2, -30, 30] {
            let code = code_at_step(RFC_SECRET, here + d);
            assert_eq!(verify(RFC_SECRET, &code, now, 0), None, "{d}");
        }
    }

    #[test]
    fn a_step_used_once_is_refused_after_and_so_are_older_ones() {
        let now = 1_700_000_015;
        let here = step_at(now);
        let code = code_at_step(RFC_SECRET, here);
        assert_eq!(verify(RFC_SECRET, &code, now, here), None, "replayed");
        let older = code_at_step(RFC_SECRET, here - 1);
        assert_eq!(verify(RFC_SECRET, &older, now, here), None, "older");
        let newer = code_at_step(RFC_SECRET, here + 1);
        assert_eq!(verify(RFC_SECRET, &newer, now, here), Some(here + 1));
    }

    #[test]
    fn codes_that_are_not_six_digits_are_refused_and_spaces_are_forgiven() {
        let now = 1_700_000_015;
        let code = code_at(RFC_SECRET, now);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(verify(RFC_SECRET, &spaced, now, 0).is_some());
        for bad in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"] {
            assert_eq!(verify(RFC_SECRET, bad, now, 0), None, "{bad}");
        }
        assert!(!looks_like_code("abcd-efgh-ijkl-mnop"));
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(from_base32("mzxw6ytboi======").unwrap(), b"foobar");
        assert_eq!(from_base32("MZXW 6YTB OI").unwrap(), b"foobar");
        assert!(from_base32("MZ1").is_none());
        let s = new_secret().unwrap();
        assert_eq!(from_base32(&base32(&s)).unwrap(), s);
        assert_eq!(base32(&s).len(), 32);
    }

    #[test]
    fn the_uri_names_the_issuer_and_the_account_escaped() {
        let u = uri(b"foobar", "alice@host name");
        assert_eq!(
            u,
            "otpauth://totp/cordon:alice@host%20name?secret=MZXW6YTBOI&issuer=cordon&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_qr_code_is_square_and_drawn_only_with_blocks() {
        let lines = qr_lines(&uri(&[7; 20], "alice@example.org")).unwrap();
        let width = lines[0].chars().count();
        assert!(width >= 25 + 4, "{width}");
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(lines
            .iter()
            .all(|l| l.chars().count() == width && l.chars().all(|c| " █▀▄".contains(c))));
        // The quiet zone is light all round.
        assert!(lines[0].chars().all(|c| c == '█'));
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_only_their_own_hash() {
        let codes = new_recovery_codes().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let set: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(set.len(), codes.len());
        assert!(codes
            .iter()
            .all(|c| c.len() == 19 && c.matches('-').count() == 3));
        let stored: Vec<String> = codes.iter().map(|c| recovery_hash(3, c)).collect();
        assert_eq!(find_recovery(3, &codes[4], &stored), Some(4));
        assert_eq!(
            find_recovery(3, &codes[4].to_uppercase().replace('-', " "), &stored),
            Some(4)
        );
        assert_eq!(find_recovery(4, &codes[4], &stored), None, "another user");
        assert_eq!(find_recovery(3, "aaaa-bbbb-cccc-dddd", &stored), None);
    }
}
