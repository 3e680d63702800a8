//! The key hierarchy as an operator and an attacker meet it: the data keys kept wrapped by a
//! master key that is not in the data directory, a master rotation under a running host, the
//! ages `doctor` and /metrics report, and a backup that brings old recordings back after the
//! keys were lost.

use cordon_test_support::host::Host;
use cordon_test_support::keyring;
use cordon_test_support::process::output;
use std::io::Write;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A recording of `alice`'s that printed `text` (written as `TEXT-$((6*7))`, so that only the
/// output holds `TEXT-42`); its id.
fn recorded(h: &Host, key: &std::path::Path, text: &str) -> String {
    let out = h.session(key, "alice", &format!("echo {text}-$((6*7))"));
    let text = format!("{text}-42");
    assert_eq!(out.code, 0, "{out:?}");
    let recs = h.recordings();
    recs.iter()
        .find(|r| {
            let id = r["id"].as_str().unwrap();
            h.cordon(&["rec", "export", id, "--raw"])
                .stdout
                .contains(&text)
        })
        .unwrap_or_else(|| panic!("no recording shows {text}: {recs:?}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn other_master(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("other.key");
    std::fs::write(&p, format!("{}\n", "5a".repeat(32))).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

#[test]
fn data_keys_do_not_open_without_the_master_key_and_do_after_a_master_rotation() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let id = recorded(&h, &alice, "before-rotation");

    // Nothing in the data directory is a key in the clear, and the key files of old are gone.
    let (_, audit) = h.data_key("audit");
    let (_, recording) = h.data_key("recording");
    let ring = std::fs::read(h.state().join("keys/keyring.json")).unwrap();
    for k in [&audit, &recording] {
        assert!(!ring.windows(k.len()).any(|w| w == &k[..]));
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!String::from_utf8_lossy(&ring).contains(&hex));
    }
    assert!(!h.state().join("keys/audit.key").exists());
    assert!(!h.state().join("keys/recording").exists());
    assert!(!h.state().join("keys/ssh_host_ed25519_key").exists());

    // Someone with the data directory and another key: the ring does not open, and cordon
    // says which key it needs.
    let wrong = other_master(h.keys.path());
    assert!(keyring::current(&h.state(), &wrong, "recording").is_none());
    let out = output(
        h.command(&["rec", "verify", &id])
            .env("CORDON_MASTER_KEY_FILE", &wrong),
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("is not the one that wrapped the keys"),
        "{out:?}"
    );
    let out = output(
        h.command(&["audit", "verify"])
            .env("CORDON_MASTER_KEY", "5a".repeat(32)),
    );
    assert_ne!(out.code, 0, "{out:?}");

    // The rotation, under the running host.
    let before = std::fs::read_to_string(h.master_key()).unwrap();
    let out = h.cordon(&["key", "rotate", "--master"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("nothing was re-encrypted"), "{out:?}");
    let after = std::fs::read_to_string(h.master_key()).unwrap();
    assert_ne!(before, after);
    assert_eq!(h.data_key("recording").1, recording, "the same data keys");
    let old = h.keys.path().join("old.key");
    std::fs::write(&old, &before).unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(keyring::current(&h.state(), &old, "recording").is_none());
    let out = output(
        h.command(&["rec", "verify", &id])
            .env("CORDON_MASTER_KEY_FILE", &old),
    );
    assert_ne!(out.code, 0, "the old master key opens nothing: {out:?}");

    // The old recording reads with the new key, the running host goes on recording and
    // logging, and the audit log's chain holds.
    let out = h.cordon(&["rec", "verify", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(raw.stdout.contains("before-rotation-42"), "{raw:?}");
    let later = recorded(&h, &alice, "after-rotation");
    assert_eq!(h.cordon(&["rec", "verify", &later]).code, 0);
    let out = h.cordon(&["audit", "verify"]);
    assert_eq!(out.code, 0, "{out:?}");
    let log = h.audit_log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"key.rotate\"") && l.contains("\"key\":\"master\"")),
        "{log}"
    );
}

#[test]
fn overdue_keys_are_reported_by_doctor_status_and_metrics_until_rotated() {
    let h = Host::start_with(CORDON, "[keys]\nrotate_recording = \"1s\"");
    let alice = h.user("alice", "developer");
    recorded(&h, &alice, "aging");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let doctor = h.cordon(&["doctor"]);
    assert_eq!(doctor.code, 1, "{doctor:?}");
    assert!(
        doctor.stdout.lines().any(|l| l.contains("OVERDUE")
            && l.contains("recording")
            && l.contains("cordon key rotate")),
        "{doctor:?}"
    );
    let status = h.cordon(&["key", "status"]);
    assert_eq!(status.code, 3, "{status:?}");
    h.user("root", "admin");
    let token =
        serde_json::from_str::<serde_json::Value>(&h.cordon(&["token", "issue", "root"]).stdout)
            .unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
    let metrics = String::from_utf8_lossy(&cordon_test_support::http::request(
        h.api, &token, "GET", "/metrics", "",
    ))
    .into_owned();
    assert!(
        metrics.contains("cordon_key_overdue{key=\"recording\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cordon_key_overdue{key=\"master\"} 0"),
        "{metrics}"
    );

    assert_eq!(h.cordon(&["key", "rotate"]).code, 0);
    let status = h.cordon(&["key", "status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["overdue"] == false));
}

#[test]
fn a_backup_restored_after_the_keys_were_lost_reads_the_old_recordings() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let id = recorded(&h, &alice, "kept");
    let backup = h.keys.path().join("keys.backup");
    let b = backup.to_str().unwrap();

    let out = h.cordon_with_input(&["key", "backup", "-o", b], "short\n");
    assert_ne!(out.code, 0, "a short passphrase: {out:?}");
    let out = h.cordon_with_input(
        &["key", "backup", "-o", b],
        "correct horse battery staple\n",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&backup).unwrap();
    let (_, recording) = h.data_key("recording");
    let hex: String = recording.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&hex), "the backup is sealed");
    assert!(h.audit_log().contains("\"key.backup\""));

    // The disaster: the master key and the key ring are gone.
    h.stop();
    std::fs::remove_file(h.master_key()).unwrap();
    std::fs::remove_file(h.state().join("keys/keyring.json")).unwrap();
    let out = h.cordon(&["rec", "verify", &id]);
    assert_ne!(out.code, 0, "{out:?}");
    // A new master key, then the restore.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(h.master_key())
        .unwrap();
    writeln!(f, "{}", "3c".repeat(32)).unwrap();
    std::fs::set_permissions(
        h.master_key(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = h.cordon_with_input(&["key", "restore", b], "wrong horse battery staple\n");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("wrong passphrase"), "{out:?}");
    let out = h.cordon_with_input(&["key", "restore", b], "correct horse battery staple\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(h.data_key("recording").1, recording);

    h.restart();
    let out = h.cordon(&["rec", "verify", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(raw.stdout.contains("kept-42"), "{raw:?}");
    let out = h.cordon(&["audit", "verify"]);
    assert_eq!(out.code, 0, "the audit key came back too: {out:?}");
    assert!(h.audit_log().contains("\"key.restore\""));
    // The host still has its identity: the SSH host key was in the backup.
    assert_eq!(h.ssh(&alice, "alice", &["whoami"]).code, 0);
}
