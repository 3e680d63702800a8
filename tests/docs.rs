//! The docs' commands, run against a test host as a reader would run them: the README's host
//! commands, docs/api.md's, and the systemd unit as install.sh leaves it.

use cordon_test_support::net::free_port;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// The unit's `ExecStart=`, as words.
fn exec_start() -> Vec<String> {
    let unit = include_str!("../contrib/cordon.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn the_systemd_unit_starts_the_host_with_the_configuration_install_sh_writes() {
    let dir = tempfile::tempdir().unwrap();
    // What install.sh writes to /etc/cordon/cordon.toml, where cordon looks as root. The
    // test says where through $CORDON_CONFIG (it must not write /etc), and moves the ports
    // off the defaults (other hosts may hold them); nothing else is added.
    let made = Command::new("contrib/cordon.toml.sh").output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let (ssh, api) = (free_port(), free_port());
    let mut config = String::from_utf8(made.stdout).unwrap();
    config.push_str(&format!(
        "[ssh]\nlisten = \"127.0.0.1:{ssh}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n"
    ));
    let file = dir.path().join("cordon.toml");
    std::fs::write(&file, config).unwrap();

    let mut words = exec_start();
    assert_eq!(
        words[0], "/usr/local/bin/cordon",
        "install.sh rewrites this path to its prefix's binary"
    );
    assert!(
        !words.iter().any(|w| w == "--config"),
        "the unit names no configuration file install.sh does not write: {words:?}"
    );
    words[0] = CORDON.into();
    for w in words.iter_mut().filter(|w| w.as_str() == "/var/lib/cordon") {
        *w = dir.path().join("state").display().to_string();
    }
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .env("CORDON_CONFIG", &file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let done = line.contains("listening on");
        said.push(line);
        if done {
            break;
        }
    }
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        alive,
        "the unit's command did not start the host:\n{}\n{}",
        said.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("listening on 127.0.0.1:{ssh} (SSH)"))),
        "{said:?}"
    );
}

/// The commands of a fenced `sh` block of `doc` that follows the line holding `after`, each
/// with its comment cut and its continuation lines joined.
fn commands(doc: &str, after: &str) -> Vec<String> {
    let from = doc.find(after).expect("the section");
    let start = from + doc[from..].find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in doc[start..end].lines() {
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        // A comment starts at "  # " (two spaces: the examples align them).
        let cut = pending
            .find("  # ")
            .map_or(pending.as_str(), |i| &pending[..i]);
        let cut = cut.trim().to_string();
        if !cut.is_empty() {
            out.push(cut);
        }
        pending.clear();
    }
    out
}

/// Runs `line` with bash, `prelude` first; its exit status and what it printed.
fn run(prelude: &str, line: &str, dir: &std::path::Path) -> (i32, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}\n{line}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_readmes_host_commands_run_as_written() {
    use cordon_test_support::host::Host;
    let h = Host::start(CORDON);
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("alice");
    cordon_test_support::ssh::keygen(&key, "alice");
    std::fs::write(work.path().join("app.tar.gz"), b"not really a tarball\n").unwrap();
    std::fs::write(work.path().join("Makefile"), "test:\n\t@echo tests pass\n").unwrap();
    // `cordon` is the host's admin shell on the test host's data; ssh, scp and sftp log in
    // with alice's key to its port; the API's address and a token are the test host's.
    let prelude = format!(
        r#"set -eo pipefail
cordon() {{ {bin} --data-dir {state} --config {config} "$@"; }}
o="-i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes"
ssh() {{ command ssh $o "$@"; }}
scp() {{ command scp $o "$@"; }}
KEY=sk-ant-not-a-real-key-123456
T=$(cordon token issue alice 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' || true)"#,
        bin = CORDON,
        state = h.state().display(),
        config = h.config().display(),
        key = key.display(),
    );
    // Interactive: each is driven in a terminal by its own test (tests/tui.rs, host_ssh.rs,
    // sftp.rs, keys.rs); here they would wait for a person.
    let interactive = [
        "cordon serve",
        "ssh -p 2222 alice@127.0.0.1",
        "ssh -t -p 2222 alice@127.0.0.1 new --profile claude -- claude",
        "ssh -t -p 2222 alice@127.0.0.1 attach alice-1",
        "sftp -P 2222 alice@127.0.0.1",
        "cordon rec play ID --at 42.5 --speed 2",
        "cordon audit tail --follow",
        // It asks for a passphrase, twice (tests/keys.rs gives it one on standard input).
        "cordon key backup -o keys.backup",
    ];
    let readme = include_str!("../README.md");
    let lines = commands(readme, "## The host");
    assert!(lines.len() > 20, "{lines:?}");
    let mut ran = 0;
    let mut failed = Vec::new();
    let mut recording = String::new();
    for line in &lines {
        if interactive.contains(&line.as_str()) {
            continue;
        }
        if line.contains("run -- make test") {
            // The project the README's `run` builds, copied in as its `scp` line does.
            let (code, out) = run(
                &prelude,
                &format!("scp -P {} Makefile alice@127.0.0.1:", h.port),
                work.path(),
            );
            assert_eq!(code, 0, "{out}");
        }
        if line.contains(" ID") && recording.is_empty() {
            let list: serde_json::Value =
                serde_json::from_str(&h.cordon(&["rec", "ls", "--json"]).stdout).unwrap();
            recording = list[0]["id"].as_str().expect("a recording").to_string();
        }
        let real = line
            .replace("2222", &h.port.to_string())
            .replace("localhost:8022", &format!("127.0.0.1:{}", h.api))
            .replace(" ID", &format!(" {recording}"))
            // asciinema wants a terminal to play on: the file's header is read instead (the
            // export's format is checked against asciinema itself in tests/host_ssh.rs).
            .replace(
                "asciinema play s.cast",
                r#"python3 -c 'import json; assert json.loads(open("s.cast").readline())["version"] == 2'"#,
            );
        let (code, out) = run(&prelude, &real, work.path());
        ran += 1;
        if code != 0 {
            failed.push(format!("{line}\n  exit {code}: {out}"));
        }
        if line.starts_with("cordon user add alice") {
            // alice's first session, alice-1, which the skipped `new` would have started:
            // one she starts through the API, detached.
            let (code, out) = run(
                &prelude,
                &format!(
                    r#"curl -sf 127.0.0.1:{}/v1/sessions -H "Authorization: Bearer $T" -H 'Content-Type: application/json' -d '{{"command":["sh"]}}'"#,
                    h.api
                ),
                work.path(),
            );
            assert!(code == 0 && out.contains("\"alice-1\""), "{out}");
        }
    }
    assert!(ran >= 20, "only {ran} commands ran");
    assert!(
        failed.is_empty(),
        "README commands that fail:\n{}",
        failed.join("\n")
    );
}

/// Every command of every `sh` block of `doc`, in order, comments cut, continuations joined.
fn all_commands(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("```sh\n") {
        out.extend(commands(rest, "```sh\n"));
        rest = &rest[i + "```sh\n".len()..];
        rest = &rest[rest.find("```").map_or(rest.len(), |e| e + 3)..];
    }
    out
}

#[test]
fn the_api_docs_commands_run_as_written() {
    use cordon_test_support::host::Host;
    let h = Host::start_with(CORDON, "password_login = true");
    let work = tempfile::tempdir().unwrap();
    let alice = work.path().join("alice");
    cordon_test_support::ssh::keygen(&alice, "alice");
    h.add_user(
        "alice",
        "admin",
        &cordon_test_support::ssh::public_key(&alice),
    );
    let carol = work.path().join("carol");
    cordon_test_support::ssh::keygen(&carol, "carol");
    let bob = work.path().join("bob");
    cordon_test_support::ssh::keygen(&bob, "bob");
    h.add_user(
        "bob",
        "developer",
        &cordon_test_support::ssh::public_key(&bob),
    );
    let password = "correct horse battery staple 42";
    let set = h
        .command(&["user", "passwd", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{password}\n").as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(set.success());
    // One script, as a reader pastes the blocks into one shell: what a line sets, later lines
    // use. Each line then says its exit status and, for curl, the HTTP status of its answer.
    let prelude = format!(
        r#"cordon() {{ {bin} --data-dir {state} --config {config} "$@"; }}
ssh() {{ command ssh -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes "$@"; }}
curl() {{ command curl -w '%{{stderr}}@@http %{{http_code}}\n' "$@"; }}
E=$(mktemp -d)
KEY=sk-ant-not-a-real-key-123456; GH=ghp_not_a_real_token_1234"#,
        bin = CORDON,
        state = h.state().display(),
        config = h.config().display(),
        key = alice.display(),
    );
    // Not run: websocat is not installed here (the WebSocket is driven in tests/api.rs), and
    // the TLS example needs a certificate (tests/api.rs starts a host with one).
    let skipped = ["websocat ", "curl --cacert cert.pem "];
    let doc = include_str!("../docs/api.md");
    let lines = all_commands(doc);
    let mut script = prelude;
    let mut shown = Vec::new();
    for line in &lines {
        if skipped.iter().any(|s| line.starts_with(s)) {
            continue;
        }
        let real = line
            .replace("alice@HOST", "alice@127.0.0.1")
            .replace("2222", &h.port.to_string())
            .replace("localhost:8022", &format!("127.0.0.1:{}", h.api))
            .replace(
                "\"password\":\"...\"",
                &format!("\"password\":\"{password}\""),
            )
            .replace(
                "/var/lib/cordon/api.sock",
                &h.state().join("api.sock").display().to_string(),
            );
        // What a line prints on stderr (curl's status among it) goes to a file of its own.
        let n = shown.len();
        script.push_str(&format!(
            "\n{{ {real}\n}} 2>\"$E/{n}\"\ns=$?; cat \"$E/{n}\"; echo \"@@exit $s\"\n"
        ));
        shown.push(line.clone());
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut failed = Vec::new();
    let mut parts = text.split("@@exit ");
    let mut before = parts.next().unwrap_or("").to_string();
    for (line, part) in shown.iter().zip(parts) {
        let (code, after) = part.split_once('\n').unwrap_or((part, ""));
        let http = before
            .rsplit("@@http ")
            .next()
            .filter(|_| before.contains("@@http "))
            .and_then(|s| s.trim().get(..3))
            .map(String::from);
        let bad_http = http.as_deref().is_some_and(|c| !c.starts_with('2'));
        if code.trim() != "0" || bad_http {
            failed.push(format!(
                "{line}\n  exit {} http {http:?}: {}",
                code.trim(),
                before.trim()
            ));
        }
        before = after.to_string();
    }
    assert!(shown.len() > 40, "{shown:?}");
    assert!(
        failed.is_empty(),
        "docs/api.md commands that fail ({} of {}):\n{}\n{}",
        failed.len(),
        shown.len(),
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}
