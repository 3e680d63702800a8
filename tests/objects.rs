//! Recordings in S3-compatible object storage (`[objects]`), against a real server (moto,
//! installed by install.sh): uploaded in parts while the session runs, played and seeked
//! from the bucket once the local copy is gone, locked until the end of retention, held
//! with `rec hold`, spooled while the bucket is away, and refused by verify when altered.
//! The server checks every request's SigV4 signature (support/src/objects.rs): a wrong
//! secret key stops the host at start.

use cordon_test_support::host::Host;
use cordon_test_support::objects::S3;
use cordon_test_support::wait::wait_until;
use std::time::{Duration, SystemTime};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn host(s3: &S3) -> Host {
    Host::start_with(
        CORDON,
        &format!(
            "[recordings]\nretention = \"30d\"\n{}",
            s3.config("part_size = \"1\"\nupload_interval = \"1s\"")
        ),
    )
}

fn only_recording(h: &Host) -> (String, String) {
    let r = &h.recordings()[0];
    (
        r["id"].as_str().unwrap().to_string(),
        r["state"].as_str().unwrap_or("").to_string(),
    )
}

fn parts(s3: &S3, id: &str) -> Vec<(String, u64)> {
    s3.list(&format!("recordings/{id}/part-"))
}

fn has_index(s3: &S3, id: &str) -> bool {
    !s3.list(&format!("recordings/{id}/index.json")).is_empty()
}

fn remove_local(h: &Host, id: &str) {
    std::fs::remove_file(h.state().join(format!("recordings/{id}.rec"))).unwrap();
}

#[test]
fn a_recording_is_uploaded_in_parts_while_its_session_runs_and_plays_and_seeks_from_the_bucket_without_its_local_copy(
) {
    let s3 = S3::start();
    let h = host(&s3);
    let alice = h.user("alice", "developer");
    h.tmux_ssh("s", &alice, "alice", "new -- bash");
    h.wait_for("s", "$");
    h.keys("s", &["echo first-$((6*7))", "Enter"]);
    h.wait_for("s", "first-42");
    wait_until("the recording", || h.recordings().len() == 1);
    let (id, _) = only_recording(&h);
    // Parts in the bucket while the session still runs.
    wait_until("a part in the bucket", || !parts(&s3, &id).is_empty());
    assert_eq!(only_recording(&h).1, "recording");
    assert!(!has_index(&s3, &id), "no index before the end");
    // About 4.5 MB of output: a keyframe after each MiB.
    h.keys("s", &["seq 1 600000; echo END-$((6*7))", "Enter"]);
    h.wait_for("s", "END-42");
    h.keys("s", &["exit", "Enter"]);
    wait_until("the index in the bucket", || has_index(&s3, &id));
    let uploaded = parts(&s3, &id);
    let total: u64 = uploaded.iter().map(|(_, n)| n).sum();
    assert!(uploaded.len() >= 2 && total > 500_000, "{uploaded:?}");
    // Every object is locked until the recording's start plus the retention (30 days).
    let month = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 30.0 * 86400.0;
    for (key, _) in uploaded
        .iter()
        .cloned()
        .chain([(format!("recordings/{id}/index.json"), 0)])
    {
        let (mode, until, hold) = s3.lock_of(&key);
        assert_eq!(mode, "GOVERNANCE", "{key}");
        assert!(
            (until - month).abs() < 600.0,
            "{key}: retained until {until}"
        );
        assert_ne!(hold, "ON", "{key}");
    }

    remove_local(&h, &id);
    let before = s3.served();
    let screen = h.cordon(&["rec", "screen", &id, "--at", "3600"]);
    let fetched = s3.served() - before;
    assert_eq!(screen.code, 0, "{screen:?}");
    assert!(screen.stdout.contains("END-42"), "{screen:?}");
    eprintln!("a seek fetched {fetched} bytes of a recording of {total} in the bucket");
    // The seek read the index, the header and the chunks from the last keyframe: ranged
    // reads, well under the whole recording.
    assert!(
        fetched < total / 2,
        "a seek fetched {fetched} bytes of a recording of {total}"
    );
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(
        raw.stdout.contains("first-42") && raw.stdout.contains("END-42"),
        "{} bytes",
        raw.stdout.len()
    );
    let verify = h.cordon(&["rec", "verify", &id]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("complete"), "{verify:?}");
}

#[test]
fn a_recording_made_while_the_bucket_is_away_waits_in_the_spool_and_is_uploaded_when_it_returns() {
    let s3 = S3::start();
    let mut h = host(&s3);
    let alice = h.user("alice", "developer");
    h.tmux_ssh("s", &alice, "alice", "new -- bash");
    h.wait_for("s", "$");
    h.keys("s", &["echo before-$((6*7))", "Enter"]);
    h.wait_for("s", "before-42");
    wait_until("the recording", || h.recordings().len() == 1);
    let (id, _) = only_recording(&h);
    wait_until("a part in the bucket", || !parts(&s3, &id).is_empty());
    s3.set_away(true);
    // The session goes on while the bucket is away.
    h.keys("s", &["echo during-$((6*7))", "Enter"]);
    h.wait_for("s", "during-42");
    std::thread::sleep(Duration::from_secs(3));
    h.keys("s", &["echo after-$((6*7))", "Enter"]);
    h.wait_for("s", "after-42");
    h.keys("s", &["exit", "Enter"]);
    wait_until("the recording to end", || {
        only_recording(&h).1 == "complete"
    });
    // A restart meanwhile: the upload goes on from where it was, kept in the spool.
    h.restart();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !has_index(&s3, &id),
        "nothing reached the bucket while it was away"
    );
    s3.set_away(false);
    wait_until("the index in the bucket", || has_index(&s3, &id));
    remove_local(&h, &id);
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    for line in ["before-42", "during-42", "after-42"] {
        assert!(raw.stdout.contains(line), "{line}: {raw:?}");
    }
    let verify = h.cordon(&["rec", "verify", &id]);
    assert!(verify.stdout.contains("complete"), "{verify:?}");
}

#[test]
fn rec_hold_holds_the_objects_and_a_tampered_object_is_refused_by_verify() {
    let s3 = S3::start();
    let h = host(&s3);
    let alice = h.user("alice", "developer");
    h.session(&alice, "alice", "echo held-$((6*7)); sleep 0.3");
    let (id, _) = only_recording(&h);
    wait_until("the index in the bucket", || has_index(&s3, &id));
    let objects = s3.list(&format!("recordings/{id}/"));
    let out = h.cordon(&["rec", "hold", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    for (key, _) in &objects {
        assert_eq!(s3.lock_of(key).2, "ON", "{key} held");
    }
    let out = h.cordon(&["rec", "release", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    for (key, _) in &objects {
        assert_eq!(s3.lock_of(key).2, "OFF", "{key} released");
    }

    remove_local(&h, &id);
    let verify = h.cordon(&["rec", "verify", &id]);
    assert!(verify.stdout.contains("complete"), "{verify:?}");
    // Without its index (as while it is still uploaded) it reads from its listed parts.
    s3.py(&format!(
        "s3.delete_object(Bucket=B, Key='recordings/{id}/index.json')"
    ));
    assert!(!has_index(&s3, &id));
    let verify = h.cordon(&["rec", "verify", &id]);
    assert!(verify.stdout.contains("complete"), "{verify:?}");
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(raw.stdout.contains("held-42"), "{raw:?}");
    // One byte of the last part's last chunk changed in the bucket.
    let (last, size) = parts(&s3, &id).last().cloned().unwrap();
    s3.tamper(&last, size as usize - 20);
    let verify = h.cordon(&["rec", "verify", &id]);
    assert_ne!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("DAMAGED"), "{verify:?}");
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert_ne!(raw.code, 0, "{raw:?}");
}

#[test]
fn the_purge_deletes_the_objects_of_a_recording_past_retention_but_not_of_a_held_one() {
    let s3 = S3::start();
    let mut h = Host::start_with(
        CORDON,
        &format!(
            "[recordings]\nretention = \"2s\"\n{}",
            s3.config("part_size = \"1\"\nupload_interval = \"1s\"")
        ),
    );
    let alice = h.user("alice", "developer");
    h.session(&alice, "alice", "echo kept; sleep 0.3");
    let held = only_recording(&h).0;
    h.session(&alice, "alice", "echo purged; sleep 0.3");
    let purged = h
        .recordings()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .find(|id| *id != held)
        .unwrap();
    wait_until("both indexes in the bucket", || {
        has_index(&s3, &held) && has_index(&s3, &purged)
    });
    assert_eq!(h.cordon(&["rec", "hold", &held]).code, 0);
    std::thread::sleep(Duration::from_secs(3));
    // The purge runs when the host starts (then hourly).
    h.restart();
    wait_until("the purged recording's objects gone", || {
        s3.list(&format!("recordings/{purged}/")).is_empty()
    });
    assert!(
        has_index(&s3, &held),
        "the held recording stays in the bucket"
    );
    let left: Vec<_> = h.recordings().iter().map(|r| r["id"].clone()).collect();
    assert_eq!(left, vec![serde_json::json!(held)]);
}

#[test]
fn a_host_whose_secret_key_the_bucket_refuses_does_not_start_and_names_the_bucket_and_the_key_to_fix(
) {
    let s3 = S3::start();
    let wrong = "wrong-secret-KEEP-OUT-1234";
    std::fs::write(s3.dir.path().join("secret"), format!("{wrong}\n")).unwrap();
    let Err(said) = Host::try_start(CORDON, &s3.config(""), None, |_| {}) else {
        panic!("a host signing with a wrong secret started");
    };
    // The bucket really checked the signature: it said so.
    assert!(said.contains("SignatureDoesNotMatch"), "{said}");
    assert!(said.contains(&s3.bucket), "names the bucket: {said}");
    assert!(said.contains(s3.key_id()), "names the key id: {said}");
    assert!(
        said.contains("objects.secret_access_key_file")
            && said.contains(&s3.dir.path().join("secret").display().to_string()),
        "names the secret key's file: {said}"
    );
    assert!(
        !said.contains(wrong) && !said.contains(s3.secret()),
        "never the secret: {said}"
    );
    // With the right secret back in the file the same configuration starts.
    std::fs::write(s3.dir.path().join("secret"), format!("{}\n", s3.secret())).unwrap();
    let h = host(&s3);
    assert!(h.recordings().is_empty());
}
