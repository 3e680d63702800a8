//! Files changed (issue 16): what a session created, changed and deleted in its workspace,
//! with sizes, exactly: kept with its recording (`cordon rec files`, the API) when it ends,
//! and asked of it while it runs (the API, SSH `files`), the placeholders the sandbox holds
//! protected paths with left out, another user's session answered as one that is not there.

use cordon_test_support::host::Host;
use cordon_test_support::http;
use cordon_test_support::wait::wait_until;
use serde_json::Value;
use std::path::Path;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn token(h: &Host, user: &str) -> String {
    let out = h.cordon(&["token", "issue", user]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["access_token"].as_str().unwrap().to_string()
}

/// `GET path` on the API: the status and the body as JSON (null if it is not).
fn get(h: &Host, token: &str, path: &str) -> (u16, Value) {
    api(h, token, "GET", path)
}

fn api(h: &Host, token: &str, method: &str, path: &str) -> (u16, Value) {
    let mut r =
        std::io::BufReader::new(std::net::TcpStream::connect(("127.0.0.1", h.api)).unwrap());
    let (status, body) = http::exchange(&mut r, token, method, path, "");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

type Listed = Vec<(String, String, Option<u64>, Option<u64>, Option<String>)>;

/// Each entry of `which` (created, changed, deleted): path, kind, old size, size, change.
fn listed(summary: &Value, which: &str) -> Listed {
    summary[which]
        .as_array()
        .unwrap_or_else(|| panic!("no {which} in {summary}"))
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
                e["old_size"].as_u64(),
                e["size"].as_u64(),
                e["change"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn entry(
    path: &str,
    kind: &str,
    old: Option<u64>,
    new: Option<u64>,
    change: Option<&str>,
) -> (String, String, Option<u64>, Option<u64>, Option<String>) {
    (
        path.into(),
        kind.into(),
        old,
        new,
        change.map(str::to_string),
    )
}

/// The id of the host's one recording, once its session has ended and it is sealed.
fn sealed_recording(h: &Host) -> String {
    let mut id = String::new();
    wait_until("the recording to be complete", || {
        let list = h.recordings();
        match list.first() {
            Some(r) if r["state"] == "complete" => {
                id = r["id"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    id
}

/// A workspace with what a session will leave alone, change and delete.
fn workspace(ws: &Path) {
    std::fs::create_dir_all(ws.join("olddir")).unwrap();
    std::fs::write(ws.join("keep.txt"), "untouched\n").unwrap();
    std::fs::write(ws.join("change.txt"), "old\n").unwrap();
    std::fs::write(ws.join("gone.txt"), "bye!!\n").unwrap();
    std::fs::write(ws.join("olddir/inner.txt"), "abc").unwrap();
}

#[test]
fn the_summary_of_a_session_that_created_changed_and_deleted_files_is_exact() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    workspace(&h.workspace("alice"));
    let out = h.session(
        &alice,
        "alice",
        "printf \"changed content\\n\" > change.txt; rm gone.txt; rm -r olddir; \
         printf \"hello new file\\n\" > new.txt; mkdir made; printf x > made/f.txt; \
         ln -s keep.txt link; echo done-$((6*7))",
    );
    assert!(out.stdout.contains("done-42"), "{out:?}");
    let id = sealed_recording(&h);

    let cli = h.cordon(&["rec", "files", &id, "--json"]);
    assert_eq!(cli.code, 0, "{cli:?}");
    let summary: Value = serde_json::from_str(&cli.stdout).unwrap_or_else(|_| panic!("{cli:?}"));
    assert_eq!(
        listed(&summary, "created"),
        [
            entry("link", "link", None, Some(8), None),
            entry("made", "dir", None, None, None),
            entry("made/f.txt", "file", None, Some(1), None),
            entry("new.txt", "file", None, Some(15), None),
        ],
        "{summary:#}"
    );
    assert_eq!(
        listed(&summary, "changed"),
        [entry(
            "change.txt",
            "file",
            Some(4),
            Some(16),
            Some("content")
        )],
        "{summary:#}"
    );
    assert_eq!(
        listed(&summary, "deleted"),
        [
            entry("gone.txt", "file", Some(6), None, None),
            entry("olddir", "dir", None, None, None),
            entry("olddir/inner.txt", "file", Some(3), None, None),
        ],
        "{summary:#}"
    );
    assert_eq!(
        summary["counts"],
        serde_json::json!({"created": 4, "changed": 1, "deleted": 3})
    );
    assert_eq!(
        summary["bytes"],
        serde_json::json!({"created": 24, "deleted": 9, "changed": 12})
    );
    assert_eq!(summary["taken"], "end");
    assert_eq!(summary["complete"], true, "{summary:#}");
    // The sandbox took its placeholders away when it ended: nothing to leave out.
    assert_eq!(summary["excluded"], serde_json::json!([]), "{summary:#}");

    // The API gives the same summary, to the owner; another developer is told it is not
    // there.
    let (status, by_api) = get(
        &h,
        &token(&h, "alice"),
        &format!("/v1/recordings/{id}/files"),
    );
    assert_eq!((status, &by_api), (200, &summary));
    h.user("bob", "developer");
    let (status, _) = get(&h, &token(&h, "bob"), &format!("/v1/recordings/{id}/files"));
    assert_eq!(status, 404);

    // In words, for a terminal.
    let words = h.cordon(&["rec", "files", &id]);
    assert!(
        words
            .stdout
            .starts_with("files: 4 created, 1 changed, 3 deleted\n"),
        "{words:?}"
    );
    assert!(
        words.stdout.contains("16 B  change.txt (content)"),
        "{words:?}"
    );

    // Audited: the session's end with its counts, each read as reading the recording.
    let log = h.audit_log();
    let events: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let end = events
        .iter()
        .find(|e| e["event"] == "session.end")
        .expect("session.end");
    assert_eq!(
        (
            &end["files_created"],
            &end["files_changed"],
            &end["files_deleted"]
        ),
        (&Value::from(4), &Value::from(1), &Value::from(3))
    );
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "recording.play" && e["files_only"] == true)
            .count()
            >= 3,
        "{log}"
    );
}

#[test]
fn a_running_session_s_summary_says_what_it_changed_so_far_without_the_sandbox_s_placeholders() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    let (alice_t, bob_t) = (token(&h, "alice"), token(&h, "bob"));
    std::thread::scope(|scope| {
        let session = scope.spawn(|| {
            h.session(
                &alice,
                "alice",
                "printf abc > during.txt; mkdir sub; echo started; sleep 20",
            )
        });
        let mut id = String::new();
        let mut summary = Value::Null;
        wait_until("the session to write its files", || {
            let (_, list) = get(&h, &alice_t, "/v1/sessions");
            let Some(s) = list.as_array().and_then(|l| l.first()) else {
                return false;
            };
            id = s["id"].as_str().unwrap().to_string();
            summary = get(&h, &alice_t, &format!("/v1/sessions/{id}/files")).1;
            listed(&summary, "created").len() == 2
        });
        assert_eq!(
            listed(&summary, "created"),
            [
                entry("during.txt", "file", None, Some(3), None),
                entry("sub", "dir", None, None, None),
            ],
            "{summary:#}"
        );
        assert_eq!(summary["taken"], "now");
        // The sandbox holds each missing protected path of the default profile with an
        // empty read-only directory while the session runs: not the session's doing.
        let excluded: Vec<&str> = summary["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            excluded,
            [".claude", ".git", ".idea", ".mcp.json", ".vscode"],
            "{summary:#}"
        );

        // Over SSH, the same; to another developer, a session that is not there.
        let ssh = h.ssh(&alice, "alice", &["files", &id.to_string(), "--json"]);
        assert_eq!(ssh.code, 0, "{ssh:?}");
        let by_ssh: Value =
            serde_json::from_str(&ssh.stdout).unwrap_or_else(|e| panic!("{e}: {ssh:?}"));
        assert_eq!(listed(&by_ssh, "created"), listed(&summary, "created"));
        let words = h.ssh(&alice, "alice", &["files", &id.to_string()]);
        assert!(
            words
                .stdout
                .starts_with("files: 2 created, 0 changed, 0 deleted\n"),
            "{words:?}"
        );
        let (status, _) = get(&h, &bob_t, &format!("/v1/sessions/{id}/files"));
        assert_eq!(status, 404);
        let bob_ssh = h.ssh(&bob, "bob", &["files", &id.to_string()]);
        assert_ne!(bob_ssh.code, 0, "{bob_ssh:?}");

        assert_eq!(
            api(&h, &alice_t, "DELETE", &format!("/v1/sessions/{id}")).0,
            204
        );
        session.join().unwrap();
    });
    // Its end is kept with its recording: the placeholders gone with its sandbox.
    let id = sealed_recording(&h);
    let (status, kept) = get(&h, &alice_t, &format!("/v1/recordings/{id}/files"));
    assert_eq!(status, 200, "{kept}");
    assert_eq!(
        listed(&kept, "created"),
        [
            entry("during.txt", "file", None, Some(3), None),
            entry("sub", "dir", None, None, None),
        ],
        "{kept:#}"
    );
    assert_eq!(kept["excluded"], serde_json::json!([]), "{kept:#}");
    let log = h.audit_log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"event\":\"session.files\"")),
        "{log}"
    );
}
