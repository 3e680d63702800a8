//! The audit log attacked the ways that once passed `cordon audit verify`: its tail cut and
//! its head rewritten to match, the log and its head removed, a cut that only a forwarded
//! copy can prove; and the copies forwarded to syslog and to a file as they are written.

use cordon_test_support::host::Host;
use std::time::Duration;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn lines(h: &Host) -> Vec<String> {
    std::fs::read_to_string(h.state().join("audit.log"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The MAC at the end of an audit line.
fn mac_of(line: &str) -> String {
    line.rsplit("\"mac\":\"")
        .next()
        .unwrap()
        .trim_end_matches("\"}")
        .to_string()
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_cut_tail_with_a_rewritten_head_is_caught() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    for _ in 0..3 {
        assert_eq!(h.ssh(&alice, "alice", &["whoami"]).code, 0);
    }
    let _ = h.child.kill();
    let _ = h.child.wait();
    let ls = lines(&h);
    let keep = &ls[..ls.len() - 3];
    std::fs::write(
        h.state().join("audit.log"),
        keep.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let last = keep.last().unwrap();
    std::fs::write(
        h.state().join("audit.head"),
        format!("{} {}\n", seq_of(last), mac_of(last)),
    )
    .unwrap();
    let out = h.cordon(&["audit", "verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("BROKEN"), "{out:?}");
}

#[test]
fn a_removed_log_and_head_are_caught() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    assert_eq!(h.ssh(&alice, "alice", &["whoami"]).code, 0);
    // The host checkpoints the log's last event in its database every few seconds.
    std::thread::sleep(Duration::from_millis(1500));
    let _ = h.child.kill();
    let _ = h.child.wait();
    std::fs::remove_file(h.state().join("audit.log")).unwrap();
    std::fs::remove_file(h.state().join("audit.head")).unwrap();
    let out = h.cordon(&["audit", "verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("the host's database saw event"),
        "{out:?}"
    );
}

#[test]
fn copies_go_to_syslog_and_a_file_and_a_copy_names_the_first_event_cut_from_the_log() {
    let data = tempfile::tempdir().unwrap();
    let socket = data.path().join("log.sock");
    let syslog = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let copy = data.path().join("audit-copy.jsonl");
    let mut h = Host::start_with(
        CORDON,
        &format!(
            "[audit]\nforward = [\"syslog\", \"file:{}\"]\nsyslog_socket = \"{}\"",
            copy.display(),
            socket.display()
        ),
    );
    let alice = h.user("alice", "developer");
    assert_eq!(h.ssh(&alice, "alice", &["whoami"]).code, 0);
    let mut buf = vec![0u8; 65536];
    let n = syslog.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(
        msg.starts_with("<86>cordon[") && msg.contains("\"event\":\"serve.start\""),
        "{msg}"
    );
    let _ = h.child.kill();
    let _ = h.child.wait();
    let out = h.cordon(&["audit", "verify", "--against", &copy.display().to_string()]);
    assert_eq!(out.code, 0, "{out:?}");

    // Someone with the key cuts the last events and seals a matching head: the log's own
    // checks can be made to pass, the copy cannot.
    let ls = lines(&h);
    let cut_at = ls.len() - 2;
    std::fs::write(
        h.state().join("audit.log"),
        ls[..cut_at]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let out = h.cordon(&["audit", "verify", "--against", &copy.display().to_string()]);
    assert_eq!(out.code, 1, "{out:?}");
    let missing = seq_of(&ls[cut_at]);
    assert!(
        out.stdout.contains(&format!("event {missing} ("))
            && out.stdout.contains("missing from the log"),
        "{out:?}"
    );
}
