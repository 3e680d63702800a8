use super::*;

const KEY: &[u8] = b"sk-ant-api03-q~?>x~?>Zk9";

/// The whole stream through `r`, cut into pieces at `cuts` (sorted offsets), checking after
/// each push that no more than `hold()` bytes are held.
fn run(r: &mut Redactor, text: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([text.len()].iter()) {
        r.push(&text[at..cut], &mut out);
        at = cut;
        assert!(held(r) <= r.hold(), "held {} > hold {}", held(r), r.hold());
    }
    r.finish(&mut out);
    assert_eq!(held(r), 0);
    out
}

fn held(r: &Redactor) -> usize {
    r.search.as_ref().map_or(0, |s| s.held.len())
}

fn redact(secrets: &[&[u8]], text: &[u8]) -> Vec<u8> {
    run(&mut Redactor::new(secrets), text, &[])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Textbook base64, written apart from `base64_core` so that each checks the other; anchored
/// to coreutils' output below.
fn base64(input: &[u8], alphabet: &[u8; 64], pad: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for group in input.chunks(3) {
        let n = (u32::from(group[0]) << 16)
            | (u32::from(*group.get(1).unwrap_or(&0)) << 8)
            | u32::from(*group.get(2).unwrap_or(&0));
        for i in 0..=group.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 0x3f) as usize]);
        }
        if pad {
            out.extend(std::iter::repeat_n(b'=', 3 - group.len()));
        }
    }
    out
}

/// The oracle: every occurrence of every pattern found by brute force, the union of their
/// ranges replaced, one marker per maximal run.
fn brute_force(patterns: &[Vec<u8>], text: &[u8]) -> Vec<u8> {
    let mut hit = vec![false; text.len()];
    for p in patterns {
        for at in 0..text.len().saturating_sub(p.len() - 1) {
            if &text[at..at + p.len()] == p.as_slice() {
                hit[at..at + p.len()].iter_mut().for_each(|h| *h = true);
            }
        }
    }
    let mut out = Vec::new();
    for (i, &b) in text.iter().enumerate() {
        match (hit[i], i > 0 && hit[i - 1]) {
            (false, _) => out.push(b),
            (true, false) => out.extend_from_slice(MARKER),
            (true, true) => {}
        }
    }
    out
}

/// xorshift64*: a fixed seed, so a failure repeats.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn a_secret_in_one_read_becomes_the_marker() {
    assert_eq!(
        redact(&[KEY], b"export K=sk-ant-api03-q~?>x~?>Zk9; echo ok\r\n"),
        b"export K=[redacted]; echo ok\r\n"
    );
}

#[test]
fn every_occurrence_is_redacted() {
    let text = [KEY, b" and ", KEY, KEY, b"\n"].concat();
    assert_eq!(redact(&[KEY], &text), b"[redacted] and [redacted]\n");
}

#[test]
fn a_secret_split_at_every_point_is_still_redacted() {
    let text = [b"key: ".as_slice(), KEY, b" done"].concat();
    let want = b"key: [redacted] done".to_vec();
    for i in 0..=text.len() {
        for j in i..=text.len() {
            assert_eq!(
                run(&mut Redactor::new([KEY]), &text, &[i, j]),
                want,
                "cut at {i} and {j}"
            );
        }
    }
}

#[test]
fn a_secret_fed_one_byte_at_a_time_is_still_redacted() {
    let text = [b"a".as_slice(), KEY, b"b", KEY].concat();
    let cuts: Vec<usize> = (1..text.len()).collect();
    assert_eq!(
        run(&mut Redactor::new([KEY]), &text, &cuts),
        b"a[redacted]b[redacted]"
    );
}

#[test]
fn the_reference_encoder_agrees_with_coreutils() {
    // echo -n "$K" | base64; printf 'x%s' "$K" | base64; printf 'xy%s\n' "$K" | base64;
    // printf 'x%s' "$K" | basenc --base64url
    assert_eq!(
        base64(KEY, STANDARD, true),
        b"c2stYW50LWFwaTAzLXF+Pz54fj8+Wms5"
    );
    let x = [b"x".as_slice(), KEY].concat();
    assert_eq!(
        base64(&x, STANDARD, true),
        b"eHNrLWFudC1hcGkwMy1xfj8+eH4/PlprOQ=="
    );
    let xy = [b"xy".as_slice(), KEY, b"\n"].concat();
    assert_eq!(
        base64(&xy, STANDARD, true),
        b"eHlzay1hbnQtYXBpMDMtcX4/Pnh+Pz5aazkK"
    );
    assert_eq!(
        base64(&x, URL_SAFE, true),
        b"eHNrLWFudC1hcGkwMy1xfj8-eH4_PlprOQ=="
    );
}

#[test]
fn base64_output_of_the_shell_is_redacted() {
    // What a session prints for `echo -n "$K" | base64` and `printf 'x%s' "$K" | base64`.
    assert_eq!(
        redact(
            &[KEY],
            b"$ echo -n \"$K\" | base64\r\nc2stYW50LWFwaTAzLXF+Pz54fj8+Wms5\r\n$ "
        ),
        b"$ echo -n \"$K\" | base64\r\n[redacted]\r\n$ "
    );
    assert_eq!(
        redact(&[KEY], b"eHNrLWFudC1hcGkwMy1xfj8+eH4/PlprOQ==\r\n"),
        b"eH[redacted]Q==\r\n"
    );
    assert_eq!(
        redact(&[KEY], b"eHlzay1hbnQtYXBpMDMtcX4/Pnh+Pz5aazkK\r\n"),
        b"eHl[redacted]kK\r\n"
    );
    assert_eq!(
        redact(&[KEY], b"eHNrLWFudC1hcGkwMy1xfj8-eH4_PlprOQ==\r\n"),
        b"eH[redacted]Q==\r\n"
    );
}

#[test]
fn base64_is_redacted_at_each_offset_in_both_alphabets_padded_or_not() {
    let mut rng = Rng(7);
    for len in [MIN_SECRET, 9, 10, 11, 24, 40, 64] {
        let secret: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        for before in 0..6usize {
            for after in 0..4 {
                let prefix: Vec<u8> = (0..before).map(|_| rng.next() as u8).collect();
                let suffix: Vec<u8> = (0..after).map(|_| rng.next() as u8).collect();
                let input = [prefix.as_slice(), &secret, &suffix].concat();
                for alphabet in [STANDARD, URL_SAFE] {
                    for pad in [true, false] {
                        let encoded = base64(&input, alphabet, pad);
                        // Everything from the first character made of the secret's bits alone
                        // to the last one goes.
                        let first = (8 * before).div_ceil(6);
                        let end = 8 * (before + len) / 6;
                        let want = [&encoded[..first], MARKER, &encoded[end..]].concat();
                        assert_eq!(
                            redact(&[&secret], &encoded),
                            want,
                            "len {len}, {before} bytes before, {after} after, pad {pad}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn overlapping_secrets_become_one_marker() {
    let a: &[u8] = b"0123456789abcdef";
    let b: &[u8] = b"abcdefGHIJKLMNOP";
    let inner: &[u8] = b"456789ab";
    assert_eq!(
        redact(&[a, b], b"<0123456789abcdefGHIJKLMNOP>"),
        b"<[redacted]>"
    );
    // A short secret inside a longer one's prefix: found first, written once the longer one
    // is known not to follow, or with it when it does.
    assert_eq!(redact(&[a, inner], b"<0123456789ab!"), b"<0123[redacted]!");
    assert_eq!(redact(&[a, inner], b"<0123456789abcdef>"), b"<[redacted]>");
    // Adjacent occurrences are one run.
    assert_eq!(
        redact(&[a], b"0123456789abcdef0123456789abcdef"),
        b"[redacted]"
    );
}

#[test]
fn overlapping_secrets_split_at_every_point_are_still_one_marker() {
    let a: &[u8] = b"0123456789abcdef";
    let inner: &[u8] = b"456789ab";
    let text = b"<0123456789ab!0123456789abcdef>";
    let want = b"<0123[redacted]![redacted]>".to_vec();
    for i in 0..=text.len() {
        for j in i..=text.len() {
            let mut r = Redactor::new([a, inner]);
            assert_eq!(run(&mut r, text, &[i, j]), want, "cut at {i} and {j}");
        }
    }
}

#[test]
fn a_secret_shorter_than_the_minimum_is_left_alone_and_reported() {
    let r = Redactor::new([b"1234567".as_slice(), b"", KEY]);
    assert_eq!(r.skipped(), &[0, 1]);
    assert_eq!(
        run(
            &mut Redactor::new([b"1234567".as_slice(), KEY]),
            b"1234567 ok",
            &[]
        ),
        b"1234567 ok"
    );
    let only_short = Redactor::new(["1234567"]);
    assert!(only_short.is_empty());
    assert_eq!(only_short.skipped(), &[0]);
}

#[test]
fn a_secret_longer_than_the_maximum_is_reported() {
    let long = vec![b'k'; MAX_SECRET + 1];
    let r = Redactor::new([long.as_slice(), KEY]);
    assert_eq!(r.skipped(), &[0]);
    assert!(!r.is_empty());
}

#[test]
fn without_secrets_output_is_identical_and_nothing_is_held() {
    let mut r = Redactor::new(Vec::<Vec<u8>>::new());
    assert!(r.is_empty());
    assert_eq!(r.hold(), 0);
    let mut out = Vec::new();
    r.push(b"anything \x1b[31m at all", &mut out);
    assert_eq!(out, b"anything \x1b[31m at all");
    r.finish(&mut out);
    assert_eq!(out, b"anything \x1b[31m at all");
}

#[test]
fn output_that_ends_outside_a_partial_secret_is_written_at_once() {
    let mut r = Redactor::new([KEY]);
    let mut out = Vec::new();
    r.push(b"$ ls\r\nsrc  docs\r\n$ ", &mut out);
    assert_eq!(out, b"$ ls\r\nsrc  docs\r\n$ ");
    // A read ending in the secret's first bytes keeps them, and only them, until the next.
    r.push(b"echo sk-an", &mut out);
    assert_eq!(out, b"$ ls\r\nsrc  docs\r\n$ echo ");
    r.push(b"swer\r\n", &mut out);
    assert_eq!(out, b"$ ls\r\nsrc  docs\r\n$ echo sk-answer\r\n");
}

#[test]
fn hold_is_the_longest_pattern_less_one() {
    // 24 bytes: its base64 is 32 characters, 31 of them alone at offset 1 or 2.
    let r = Redactor::new([KEY]);
    assert_eq!(r.hold(), 4 * KEY.len() / 3 - 1);
}

#[test]
fn text_without_a_secret_passes_through_byte_identical() {
    let mut rng = Rng(11);
    let text: Vec<u8> = (0..50_000).map(|_| rng.next() as u8).collect();
    assert!(!contains(&text, KEY));
    let mut cuts: Vec<usize> = (0..500).map(|_| rng.below(text.len())).collect();
    cuts.sort_unstable();
    assert_eq!(run(&mut Redactor::new([KEY]), &text, &cuts), text);
}

#[test]
fn random_text_with_secrets_inserted_matches_the_brute_force_oracle_and_never_leaks() {
    let mut rng = Rng(0x5eed);
    let secrets: [&[u8]; 3] = [KEY, b"ghp_0123456789abcdefghij", b"tokentok"];
    let patterns: Vec<Vec<u8>> = secrets.iter().flat_map(|s| patterns_of(s)).collect();
    for round in 0..300 {
        // Text over a small alphabet, so that partial matches are common, with secrets and
        // their encodings (at any offset) pasted in, sometimes overlapping.
        let mut text: Vec<u8> = (0..rng.below(400))
            .map(|_| b"sk-atok0123ghpAZ+/="[rng.below(19)])
            .collect();
        for _ in 0..rng.below(6) {
            let secret = secrets[rng.below(secrets.len())];
            let piece = match rng.below(3) {
                0 => secret.to_vec(),
                1 => {
                    let lead: Vec<u8> = (0..rng.below(3)).map(|_| rng.next() as u8).collect();
                    let alphabet = [STANDARD, URL_SAFE][rng.below(2)];
                    base64(&[lead.as_slice(), secret].concat(), alphabet, true)
                }
                _ => secret[..rng.below(secret.len())].to_vec(),
            };
            let at = rng.below(text.len() + 1);
            text.splice(at..at, piece);
        }
        let mut cuts: Vec<usize> = (0..rng.below(10))
            .map(|_| rng.below(text.len() + 1))
            .collect();
        cuts.sort_unstable();
        let out = run(&mut Redactor::new(secrets), &text, &cuts);
        assert_eq!(
            out,
            brute_force(&patterns, &text),
            "round {round}, cuts {cuts:?}"
        );
        for p in &patterns {
            assert!(!contains(&out, p), "round {round} leaked a pattern");
        }
    }
}

#[test]
fn after_finish_a_new_stream_starts_clean() {
    let mut r = Redactor::new([KEY]);
    let mut out = Vec::new();
    r.push(b"sk-ant-api03", &mut out);
    r.finish(&mut out);
    assert_eq!(out, b"sk-ant-api03");
    out.clear();
    // The first stream's prefix does not join the second stream's rest.
    r.push(b"-q~?>x~?>Zk9 ", &mut out);
    r.push(KEY, &mut out);
    r.finish(&mut out);
    assert_eq!(out, b"-q~?>x~?>Zk9 [redacted]");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let shown = format!("{:?}", Redactor::new([KEY]));
    assert!(!shown.contains("sk-ant"), "{shown}");
    assert!(!shown.contains("c2st"), "{shown}");
}
