//! Real work still runs under the `default` profile, and cordon's exit statuses say what
//! happened.

use cordon_test_support::process::output;
use cordon_test_support::sandbox::{Env, UID};
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

#[test]
fn git_commits_in_the_workspace_and_git_init_works_where_a_profile_unprotects_git() {
    let env = Env::new(CORDON);
    // `.git` is protected by default (docs/profiles.md): a missing one cannot be made in a
    // session, so a profile that wants `git init` takes it off the list.
    let profile = env.profile(
        "git-init",
        "extends = \"default\"\n[filesystem]\nunprotect = [\".git/\"]\n",
    );
    let out = env.sh(
        &profile,
        "git init -q . && echo hello > README && git add README && \
         git -c user.name=Dev -c user.email=dev@example.com commit -q -m first && git log --oneline | wc -l && git status --short | wc -l",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["1", "0"],
        "{out:?}"
    );
    assert!(
        env.ws().join(".git/HEAD").exists(),
        "the repository lands in the host's workspace"
    );
    // Under default itself, the repository made above takes commits.
    let out = env.sh(
        "default",
        "echo more >> README && git -c user.name=Dev -c user.email=dev@example.com commit -qam second && git log --oneline | wc -l",
    );
    assert_eq!((out.code, out.stdout.trim()), (0, "2"), "{out:?}");
}

#[test]
fn cargo_python_and_a_shell_pipeline_run() {
    let env = Env::new(CORDON);
    let out = env.run("default", &["cargo", "--version"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("cargo "), "{out:?}");

    let out = env.run(
        "default",
        &[
            "python3",
            "-c",
            "import json, sys; print(json.dumps({'sum': sum(range(10))}))",
        ],
    );
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "{\"sum\": 45}"),
        "{out:?}"
    );

    let out = env.sh("default", "printf 'pear\\napple\\nfig\\n' | sort | head -n 2 | tr a-z A-Z | wc -l; seq 3 2>/dev/null || echo no-seq");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("2\n"), "{out:?}");
}

#[test]
fn node_runs_where_it_is_installed() {
    if !std::path::Path::new("/usr/bin/node").exists() {
        eprintln!("node is not installed here; nothing to check");
        return;
    }
    let env = Env::new(CORDON);
    let out = env.run(
        "default",
        &["node", "-e", "console.log(require('os').platform(), 6 * 7)"],
    );
    assert_eq!((out.code, out.stdout.trim()), (0, "linux 42"), "{out:?}");
}

#[test]
fn the_commands_exit_status_is_cordons() {
    let env = Env::new(CORDON);
    assert_eq!(env.sh("default", "exit 7").code, 7);
    assert_eq!(env.run("default", &["true"]).code, 0);
    assert_eq!(env.run("default", &["false"]).code, 1);
    assert_eq!(
        env.sh("default", "kill -9 $$").code,
        137,
        "a signal is 128 + its number"
    );
}

#[test]
fn the_time_limit_ends_the_whole_sandbox() {
    let env = Env::new(CORDON);
    let profile = env.profile(
        "brief",
        "extends = \"default\"\n[limits]\ntimeout = \"1s\"\n",
    );
    let start = Instant::now();
    let out = env.sh(&profile, "sleep 30 & sleep 30");
    assert_eq!(out.code, 124, "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(out.stderr.contains("time limit"), "{out:?}");
}

#[test]
fn nothing_started_inside_outlives_the_command() {
    let env = Env::new(CORDON);
    let marker = format!("{}.{}", std::process::id(), 271828);
    let out = env.sh("default", &format!("sleep {marker} & echo started"));
    assert_eq!(out.code, 0, "{out:?}");
    std::thread::sleep(Duration::from_millis(200));
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !ps.contains(&format!("sleep {marker}")),
        "a background process survived:\n{ps}"
    );
}

#[test]
fn a_broken_profile_is_refused_with_its_file_line_and_key() {
    let env = Env::new(CORDON);
    let profile = env.profile("broken", "description = \"x\"\n\n[limits]\nprocesess = 5\n");
    let out = env.run(&profile, &["true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("{profile}:4: key `limits.procesess`")),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("refused at step \"profile\""),
        "{out:?}"
    );

    let out = env.run("no-such-profile", &["true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("no such profile"), "{out:?}");
}

#[test]
fn a_missing_command_exits_127() {
    let env = Env::new(CORDON);
    let out = env.run("default", &["no-such-command-anywhere"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(out.stderr.contains("command not found"), "{out:?}");
}

#[test]
fn profile_check_prints_the_effective_rules_and_json() {
    let env = Env::new(CORDON);
    let mut c = env.cordon();
    c.args(["profile", "check", "default", "--workspace"])
        .arg(env.ws());
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("(executable: [exec] workspace = true)")
            && out.stdout.contains("/tmp, /dev/shm  (private, noexec)"),
        "{out:?}"
    );
    assert!(out.stdout.contains("network   none"), "{out:?}");
    assert!(
        out.stdout.contains("ok: profile \"default\" is valid"),
        "{out:?}"
    );

    let mut c = env.cordon();
    c.args(["profile", "check", "claude", "--json", "--workspace"])
        .arg(env.ws());
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["network"]["mode"], "proxy");
    assert_eq!(v["network"]["udp"], false);
    assert!(
        v["network"]["egress"]["allow"]
            .as_array()
            .is_some_and(|a| a.iter().any(|r| r == "api.anthropic.com")),
        "{v}"
    );
    assert_eq!(
        v["network"]["egress"]["from_set"]["registry.npmjs.org"], "npm",
        "{v}"
    );

    let bad = env.profile("bad", "[network]\nmode = \"some\"\n");
    let mut c = env.cordon();
    c.args(["profile", "check", &bad]);
    let out = output(&mut c);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(":2: key `network.mode`"), "{out:?}");
}

#[test]
fn explain_and_doctor_speak_plainly() {
    let env = Env::new(CORDON);
    let mut c = env.cordon();
    c.args(["profile", "explain", "claude", "--workspace"])
        .arg(env.ws());
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    for phrase in [
        "It can READ",
        "It can WRITE",
        "It can RUN only",
        "A network of its own with only loopback",
        "allow     api.anthropic.com  (port 443)",
        "On this machine",
    ] {
        assert!(
            out.stdout.contains(phrase),
            "missing {phrase:?}:\n{}",
            out.stdout
        );
    }
    let mut c = env.cordon();
    c.arg("doctor");
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    for phrase in ["Landlock", "seccomp", "namespaces", "cgroups", "claude"] {
        assert!(
            out.stdout.contains(phrase),
            "missing {phrase:?}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn claude_reaches_the_package_registries_through_named_sets_that_profile_sets_lists() {
    let env = Env::new(CORDON);
    let mut c = env.cordon();
    c.args(["profile", "explain", "claude", "--workspace"])
        .arg(env.ws());
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    for line in [
        "allow     api.anthropic.com  (port 443)",
        "allow     registry.npmjs.org  (port 443, from set npm)",
        "allow     pypi.org  (port 443, from set pypi)",
        "allow     files.pythonhosted.org  (port 443, from set pypi)",
        "allow     index.crates.io  (port 443, from set crates)",
        "allow     static.crates.io  (port 443, from set crates)",
        "from [network] include (npm, pypi, crates)",
        "`cordon profile sets`",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?}:\n{}",
            out.stdout
        );
    }
    let mut c = env.cordon();
    c.args(["profile", "check", "claude", "--workspace"])
        .arg(env.ws());
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "allow     static.crates.io  (port 443, from set crates)"),
        "{out:?}"
    );

    let mut c = env.cordon();
    c.args(["profile", "sets"]);
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    for set in ["npm: ", "pypi: ", "crates: ", "github: "] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(set)),
            "missing {set:?}:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("files.pythonhosted.org ")),
        "{}",
        out.stdout
    );
}

#[test]
fn user_profiles_are_found_before_shipped_ones() {
    let env = Env::new(CORDON);
    let dir = env.config.path().join("cordon/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("strict.toml"),
        "extends = \"strict\"\ndescription = \"my strict\"\n",
    )
    .unwrap();
    let mut c = env.cordon();
    c.args(["profile", "list"]);
    let out = output(&mut c);
    assert!(out.stdout.contains("my strict"), "{out:?}");
    assert!(
        out.stdout
            .contains(&dir.join("strict.toml").display().to_string()),
        "{out:?}"
    );
}

#[test]
fn a_session_runs_as_its_identity_without_capabilities_and_owns_what_it_writes() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new(CORDON);
    let home = env.home_for(UID);
    let (ws, home_arg) = (
        env.ws().display().to_string(),
        home.path().display().to_string(),
    );
    let out = env.sandbox(
        &[
            "--profile",
            "default",
            "--workspace",
            &ws,
            "--uid",
            &UID.to_string(),
            "--home",
            &home_arg,
            "--no-links",
        ],
        &[
            "sh",
            "-c",
            "id -u; id -g; grep -E '^(Uid|Gid|Groups|CapEff):' /proc/self/status; echo mine > made",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let u = UID.to_string();
    assert_eq!(lines[..2], [u.as_str(), u.as_str()], "{out:?}");
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), vec![u.as_str(); 4], "{out:?}");
    assert_eq!(field("Gid:"), vec![u.as_str(); 4], "{out:?}");
    assert_eq!(field("Groups:"), vec![u.as_str()], "{out:?}");
    assert_eq!(field("CapEff:"), vec!["0000000000000000"], "{out:?}");
    let made =
        std::fs::metadata(env.ws().join("made")).expect("the file lands in the host's workspace");
    assert_eq!((made.uid(), made.gid()), (UID, UID));
}

#[test]
fn an_identity_finds_its_own_name_and_home() {
    let env = Env::new(CORDON);
    let home = env.home_for(UID);
    let (ws, home_arg) = (
        env.ws().display().to_string(),
        home.path().display().to_string(),
    );
    let args = [
        "--profile",
        "default",
        "--workspace",
        &ws,
        "--uid",
        &UID.to_string(),
        "--user-name",
        "alice",
        "--home",
        &home_arg,
        "--no-links",
    ];
    let out = env.sandbox(
        &args,
        &[
            "sh",
            "-c",
            "id -un; whoami; id -gn; echo $USER $LOGNAME $HOME",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("alice\nalice\nalice\nalice alice {home_arg}\n"),
        "{out:?}"
    );

    if std::path::Path::new("/usr/bin/node").exists() {
        let out = env.sandbox(
            &args,
            &[
                "node",
                "-e",
                "const u = require('os').userInfo(); console.log(u.username, u.uid, u.homedir)",
            ],
        );
        assert_eq!(
            (out.code, out.stdout.trim()),
            (0, format!("alice {UID} {home_arg}").as_str()),
            "{out:?}"
        );
    }
}

#[test]
fn a_missing_home_grant_is_created_for_the_identity() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new(CORDON);
    let home = env.home_for(UID);
    let profile = env.profile("state", "extends = \"default\"\n[filesystem]\nwrite = [\"~/.tool/state.txt\", \"~/.cache/tool/\"]\n");
    let (ws, home_arg) = (
        env.ws().display().to_string(),
        home.path().display().to_string(),
    );
    let out = env.sandbox(
        &[
            "--profile",
            &profile,
            "--workspace",
            &ws,
            "--uid",
            &UID.to_string(),
            "--home",
            &home_arg,
            "--no-links",
        ],
        &[
            "sh",
            "-c",
            "echo state > ~/.tool/state.txt && touch ~/.cache/tool/x && echo wrote",
        ],
    );
    assert_eq!((out.code, out.stdout.trim()), (0, "wrote"), "{out:?}");
    for p in [
        ".tool",
        ".tool/state.txt",
        ".cache",
        ".cache/tool",
        ".cache/tool/x",
    ] {
        let m = std::fs::metadata(home.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(m.uid(), UID, "{p} belongs to the identity");
    }
}

#[test]
fn the_command_starts_with_sigpipe_at_its_default_so_a_pipeline_ends_when_its_reader_does() {
    let env = Env::new(CORDON);
    // cordon (a Rust program) ignores SIGPIPE itself; an ignored signal survives execve.
    let out = env.sh("default", "grep SigIgn /proc/self/status");
    let mask = out
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|m| u64::from_str_radix(m, 16).ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{out:?}");
    // The pipeline that would loop forever with SIGPIPE ignored ends.
    let out = env.sh("default", "while :; do echo line; done | head -n 3 | wc -l");
    assert_eq!((out.code, out.stdout.trim()), (0, "3"), "{out:?}");
}
