//! Exec events through a real host, as an auditor meets them: every program a session
//! starts is on its recording's timeline with its arguments, in order, refused ones as
//! refused, with exit statuses; `rec events` and the API show them; `rec search --exec`
//! finds the session by a command it ran. Runs as root in CI.

use cordon_test_support::host::Host;
use cordon_test_support::http;
use serde_json::Value;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn recording_id(h: &Host) -> String {
    h.recordings()[0]["id"].as_str().unwrap().to_string()
}

#[test]
fn a_session_that_starts_known_programs_records_exactly_those_execs_in_order_with_their_arguments()
{
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    // Under "default": sh, then six programs (env starts true), with exit statuses.
    let out = h.session(
        &alice,
        "alice",
        "/usr/bin/printf \"%s\\n\" one; /usr/bin/true first arg; /usr/bin/env A=1 /usr/bin/true; /usr/bin/false; echo status $?; /usr/bin/head -c 3 /etc/hostname >/dev/null; exit 7",
    );
    assert!(out.stdout.contains("status 1"), "{out:?}");
    let id = recording_id(&h);
    let events = h.cordon(&["rec", "events", &id, "--json"]);
    assert_eq!(events.code, 0, "{events:?}");
    let list: Vec<Value> = serde_json::from_str(&events.stdout).unwrap();
    let execs: Vec<Vec<String>> = list
        .iter()
        .filter(|e| e["kind"] == "exec")
        .map(|e| {
            e["event"]["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    let expected: Vec<Vec<&str>> = vec![
        vec!["sh", "-c"],
        // Inside double quotes the shell keeps the backslash: printf gets `%s\n` as typed.
        vec!["/usr/bin/printf", "%s\\n", "one"],
        vec!["/usr/bin/true", "first", "arg"],
        vec!["/usr/bin/env", "A=1", "/usr/bin/true"],
        vec!["/usr/bin/true"],
        vec!["/usr/bin/false"],
        vec!["/usr/bin/head", "-c", "3", "/etc/hostname"],
    ];
    assert_eq!(execs.len(), expected.len(), "{}", events.stdout);
    for (got, want) in execs.iter().zip(&expected) {
        assert_eq!(&got[..want.len()], &want[..], "{}", events.stdout);
    }
    for e in list.iter().filter(|e| e["kind"] == "exec") {
        assert_eq!(e["event"]["outcome"], "allowed", "{e}");
        assert!(e["event"]["pid"].as_u64().unwrap() > 0, "{e}");
        assert!(e["event"]["cwd"].is_string(), "{e}");
    }
    // Exit statuses: false's 1 and the shell's 7.
    let statuses: Vec<i64> = list
        .iter()
        .filter(|e| e["kind"] == "exit")
        .map(|e| e["event"]["status"].as_i64().unwrap())
        .collect();
    assert!(
        statuses.contains(&1) && statuses.contains(&7),
        "{statuses:?}"
    );
    // In words, and through the API.
    let words = h.cordon(&["rec", "events", &id]);
    assert!(
        words.stdout.contains("exec: /usr/bin/true first arg"),
        "{words:?}"
    );
    let out = h.cordon(&["token", "issue", "alice"]);
    let token: Value = serde_json::from_str(&out.stdout).unwrap();
    let api = http::request(
        h.api,
        token["access_token"].as_str().unwrap(),
        "GET",
        &format!("/v1/recordings/{id}/events"),
        "",
    );
    let api: Vec<Value> = serde_json::from_slice(&api).unwrap();
    assert_eq!(
        api.iter().filter(|e| e["kind"] == "exec").count(),
        expected.len()
    );
}

#[test]
fn a_refused_exec_is_recorded_as_refused_and_search_finds_the_session_by_a_command_it_ran() {
    let h = Host::start_with(
        CORDON,
        "[sessions]\nprofiles = { developer = [\"default\", \"strict\"] }",
    );
    let alice = h.user("alice", "developer");
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let out = cordon_test_support::process::output(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["new", "--profile", "strict", "--", "sh", "-c"])
            .arg("'python3 -c 1; echo after-refusal-marker-42'")
            .stdin(std::process::Stdio::null()),
    );
    assert!(out.stdout.contains("after-refusal-marker-42"), "{out:?}");
    let id = recording_id(&h);
    let events = h.cordon(&["rec", "events", &id, "--json"]);
    let list: Vec<Value> = serde_json::from_str(&events.stdout).unwrap();
    let python: Vec<&Value> = list
        .iter()
        .filter(|e| e["kind"] == "exec" && e["event"]["argv"][0] == "python3")
        .collect();
    assert!(!python.is_empty(), "{}", events.stdout);
    for e in &python {
        assert_eq!(e["event"]["outcome"], "refused", "{e}");
        assert!(
            e["event"]["why"].as_str().unwrap().contains("[exec] allow"),
            "{e}"
        );
    }
    let found = h.cordon(&["rec", "search", "--exec", "python3 -c"]);
    assert!(found.stdout.contains(&id), "{found:?}");
    assert!(
        found.stdout.contains("exec: python3 -c 1 (refused)"),
        "{found:?}"
    );
    let none = h.cordon(&["rec", "search", "--exec", "never-ran-this"]);
    assert!(none.stdout.contains("no matches"), "{none:?}");
    let log = h.audit_log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"recording.search\"") && l.contains("\"in\":\"exec\"")),
        "{log}"
    );
}

#[test]
fn an_unprivileged_sandbox_records_its_execs_and_exit_statuses_too() {
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    for d in [dir.path(), &ws] {
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let events = dir.path().join("events");
    let file = std::fs::File::create(&events).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    let mut cmd = std::process::Command::new(CORDON);
    cmd.args([
        "sandbox",
        "--profile",
        "default",
        "--events-fd",
        "7",
        "--workspace",
    ])
    .arg(&ws)
    .args(["--", "sh", "-c", "/usr/bin/true unprivileged; exit 4"])
    .env_clear()
    .env("PATH", "/usr/local/bin:/usr/bin:/bin")
    .env("HOME", &ws)
    .current_dir(&ws)
    .uid(NOBODY)
    .gid(NOBODY);
    // SAFETY: dup2 between fork and exec, on a descriptor this process owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cordon_test_support::process::output(&mut cmd);
    assert_eq!(out.code, 4, "{out:?}");
    drop(file);
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|e| e["event"] == "exec"
            && e["argv"] == serde_json::json!(["/usr/bin/true", "unprivileged"])),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|e| e["event"] == "exit" && e["status"] == 4),
        "{lines:?}"
    );
}
