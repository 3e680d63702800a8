//! Evidence bundles: exported from a real host (by session, and by user since a moment),
//! verified with nothing but the bundle (another data directory, an empty home, no host
//! keys), and refused, saying what failed, after any one byte of it changes.

use cordon_test_support::host::Host;
use cordon_test_support::process::{output, Out};
use cordon_test_support::wait::wait_until;
use std::path::Path;
use std::process::Command;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// `cordon evidence verify` as an auditor's machine runs it: a cleared environment, an empty
/// home, and a data directory that does not exist (and must not be made).
fn verify(bundle: &Path, extra: &[&str]) -> Out {
    let elsewhere = tempfile::tempdir().unwrap();
    let data = elsewhere.path().join("no-data-here");
    let out = output(
        Command::new(CORDON)
            .env_clear()
            .env("HOME", elsewhere.path())
            .env("PATH", "/usr/bin:/bin")
            .arg("--data-dir")
            .arg(&data)
            .args(["evidence", "verify"])
            .arg(bundle)
            .args(extra),
    );
    assert!(!data.exists(), "verify made a data directory: {out:?}");
    out
}

/// The id of the first session `user` started, as the audit log names it.
fn first_session_of(h: &Host, user: &str) -> String {
    h.audit_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "session.create" && e["actor"] == user)
        .and_then(|e| e["session"].as_str().map(String::from))
        .expect("a session.create event")
}

/// Where member `name`'s data begins in a bundle (after its name and its 8-byte length).
fn member_data_at(bundle: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u16).to_be_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = bundle
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .unwrap_or_else(|| panic!("no member {name}"));
    at + needle.len() + 8
}

/// The fingerprint an auditor gets over a channel of their own: the host's SSH key as
/// `ssh-keyscan` sees it, through `ssh-keygen -lf`.
fn host_fingerprint(h: &Host) -> String {
    let out = output(Command::new("sh").arg("-c").arg(format!(
        "ssh-keyscan -t ed25519 -p {} 127.0.0.1 2>/dev/null | ssh-keygen -lf -",
        h.port
    )));
    out.stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_string()
}

#[test]
fn an_evidence_bundle_verifies_in_a_fresh_data_directory_and_is_refused_after_one_byte_changes() {
    let h = Host::start(CORDON);
    h.user("boss", "admin");
    h.user("judy", "auditor");
    let dev = h.user("dev", "developer");
    let out = h.session(&dev, "dev", "echo evidence-marker-7; echo done");
    assert!(out.stdout.contains("evidence-marker-7"), "{out:?}");
    wait_until("the recording is complete", || {
        h.recordings().iter().any(|r| r["state"] == "complete")
    });
    let session = first_session_of(&h, "dev");
    let rec_id = h.recordings()[0]["id"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let by_session = dir.path().join("by-session.evidence");
    let out = h.cordon(&[
        "evidence",
        "export",
        "--session",
        &session,
        "-o",
        by_session.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("1 recording"), "{out:?}");
    let by_user = dir.path().join("by-user.evidence");
    let out = h.cordon(&[
        "evidence",
        "export",
        "--user",
        "dev",
        "--since",
        "2000-01-01",
        "-o",
        by_user.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(h.audit_log().contains("\"event\":\"evidence.exported\""));

    for bundle in [&by_session, &by_user] {
        let extract = dir.path().join(format!(
            "x-{}",
            bundle.file_name().unwrap().to_string_lossy()
        ));
        let out = verify(bundle, &["--extract", extract.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("verified"), "{out:?}");
        assert!(out.stdout.contains(&rec_id), "{out:?}");
        assert!(out.stdout.contains("complete"), "{out:?}");
        let cast =
            std::fs::read_to_string(extract.join(format!("recordings/{rec_id}.cast"))).unwrap();
        assert!(cast.contains("evidence-marker-7"), "{cast}");
        let audit = std::fs::read_to_string(extract.join("audit.jsonl")).unwrap();
        assert!(audit.contains(&session), "the slice names the session");
    }

    // The key it names is the host's: a hard check with --expect-key.
    let fingerprint = host_fingerprint(&h);
    let out = verify(&by_session, &["--expect-key", &fingerprint]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&fingerprint), "{out:?}");
    let out = verify(
        &by_session,
        &[
            "--expect-key",
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not the expected"), "{out:?}");

    // One byte changed anywhere is refused, with what failed.
    let bytes = std::fs::read(&by_session).unwrap();
    let manifest = member_data_at(&bytes, "manifest.json");
    let cases = [
        (0, "not a cordon evidence bundle"),
        (manifest + 40, "manifest"),
        (member_data_at(&bytes, "manifest.sig") + 5, "signature"),
        (
            member_data_at(&bytes, &format!("recordings/{rec_id}.cordonrec")) + 200,
            "was altered",
        ),
        (
            member_data_at(&bytes, &format!("recordings/{rec_id}.cast")) + 30,
            "was altered",
        ),
        (
            member_data_at(&bytes, "audit.jsonl") + 20,
            "audit.jsonl was altered",
        ),
        (
            member_data_at(&bytes, "catalog.json") + 10,
            "catalog.json was altered",
        ),
        (bytes.len() - 1, "audit.jsonl"),
    ];
    for (at, says) in cases {
        let mut changed = bytes.clone();
        changed[at] ^= 0x20;
        let path = dir.path().join(format!("changed-{at}.evidence"));
        std::fs::write(&path, &changed).unwrap();
        let out = verify(&path, &[]);
        assert_eq!(out.code, 1, "byte {at} changed, yet: {out:?}");
        assert!(
            out.stderr.contains("does NOT verify") && out.stderr.contains(says),
            "byte {at}: expected a refusal naming {says:?}: {out:?}"
        );
    }
}

#[test]
fn exporting_a_session_that_left_no_recording_is_refused_and_writes_nothing() {
    let h = Host::start(CORDON);
    h.user("boss", "admin");
    let dir = tempfile::tempdir().unwrap();
    let out = h.cordon(&[
        "evidence",
        "export",
        "--session",
        "zzzzzzzzzzzz",
        "-o",
        dir.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no recording of session"), "{out:?}");
    assert!(!dir.path().join("b").exists());
}
