//! `cordon sandbox`'s ad-hoc flags (`--ro`, `--rw`, `--exec`, `--env`, `--net`, `--chdir`)
//! as a user sees them: each changes what the command can do, exactly that much; the
//! command needs no `--`; and what an attacker would try with them is refused.

use cordon_test_support::process::{output, Out};
use cordon_test_support::sandbox::{secret, Env};
use std::path::Path;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// `cordon sandbox --workspace WS ARGS...`, the command among `args` with no `--`.
fn sandbox(env: &Env, args: &[&str]) -> Out {
    let mut c = env.cordon();
    c.arg("sandbox").arg("--workspace").arg(env.ws()).args(args);
    output(&mut c)
}

fn text(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 test path")
}

#[test]
fn rw_lets_the_command_write_a_directory_it_could_not_before_and_only_that_run() {
    let env = Env::new(CORDON);
    let out_dir = env.outside.path().join("out");
    let other = env.outside.path().join("other");
    for d in [&out_dir, &other] {
        std::fs::create_dir(d).unwrap();
    }
    let touch = format!("touch {}/made", out_dir.display());
    let without = sandbox(&env, &["sh", "-c", &touch]);
    assert_ne!(without.code, 0, "{without:?}");
    let with = sandbox(&env, &["--rw", text(&out_dir), "sh", "-c", &touch]);
    assert_eq!(with.code, 0, "{with:?}");
    assert!(out_dir.join("made").exists(), "the file lands on the host");
    // The resolved policy is cached between runs: a run that differs only in its flag must
    // not reuse the one above.
    let again = sandbox(
        &env,
        &[
            "--rw",
            text(&other),
            "sh",
            "-c",
            &touch.replace("made", "again"),
        ],
    );
    assert_ne!(again.code, 0, "{again:?}");
    assert!(!out_dir.join("again").exists());
}

#[test]
fn ro_lets_the_command_read_but_not_write() {
    let env = Env::new(CORDON);
    let file = secret(&env);
    let dir = env.outside.path();
    let cat = format!("cat {}", file.display());
    assert_ne!(sandbox(&env, &["sh", "-c", &cat]).code, 0);
    let out = sandbox(&env, &["--ro", text(dir), "sh", "-c", &cat]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "TOP-SECRET-CONTENT\n"),
        "{out:?}"
    );
    let out = sandbox(
        &env,
        &[
            "--ro",
            text(dir),
            "sh",
            "-c",
            &format!("echo x >> {}", file.display()),
        ],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "TOP-SECRET-CONTENT\n"
    );
}

#[test]
fn env_sets_a_variable_the_command_sees_over_the_profiles() {
    let env = Env::new(CORDON);
    let out = sandbox(
        &env,
        &[
            "--env",
            "GREETING=hello, world",
            "--env",
            "TMPDIR=/tmp/mine",
            "env",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == "GREETING=hello, world"),
        "{out:?}"
    );
    assert!(
        out.stdout.lines().any(|l| l == "TMPDIR=/tmp/mine"),
        "{out:?}"
    );
}

#[test]
fn chdir_changes_where_the_command_starts() {
    let env = Env::new(CORDON);
    std::fs::create_dir(env.ws().join("sub")).unwrap();
    let real = std::fs::canonicalize(env.ws().join("sub")).unwrap();
    let out = sandbox(&env, &["--chdir", text(&real), "pwd"]);
    assert_eq!((out.code, out.stdout.trim()), (0, text(&real)), "{out:?}");
    let out = sandbox(&env, &["--chdir", text(env.outside.path()), "pwd"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("--chdir") && out.stderr.contains("not visible"),
        "{out:?}"
    );
}

#[test]
fn exec_lets_a_program_off_the_allowlist_run() {
    let env = Env::new(CORDON);
    let off = sandbox(&env, &["--profile", "strict", "bash", "-c", "echo ran"]);
    assert_eq!(off.code, 126, "{off:?}");
    let on = sandbox(
        &env,
        &[
            "--profile",
            "strict",
            "--exec",
            "bash",
            "bash",
            "-c",
            "echo ran",
        ],
    );
    assert_eq!((on.code, on.stdout.as_str()), (0, "ran\n"), "{on:?}");
}

#[test]
fn net_none_blocks_a_loopback_connection_the_profile_allows_and_ports_picks_the_ports() {
    let env = Env::new(CORDON);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept in the background so that a connection that gets through completes.
    std::thread::spawn(move || for _ in listener.incoming() {});
    let profile = env.profile(
        "loopback",
        &format!("extends = \"default\"\n[network]\nmode = \"ports\"\nconnect = [{port}]\n"),
    );
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let run = |flags: &[&str]| {
        let mut args = vec!["--profile", profile.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["bash", "-c", &connect]);
        sandbox(&env, &args)
    };
    let allowed = run(&[]);
    assert_eq!(
        (allowed.code, allowed.stdout.as_str()),
        (0, "connected\n"),
        "{allowed:?}"
    );
    let none = run(&["--net", "none"]);
    assert_ne!(none.code, 0, "{none:?}");
    assert!(!none.stdout.contains("connected"), "{none:?}");
    let other_port = if port == 443 { "444" } else { "443" };
    let ports = run(&["--net", &format!("ports:{other_port}")]);
    assert_ne!(ports.code, 0, "{ports:?}");
    let host = run(&["--net", "host"]);
    assert_eq!(host.code, 0, "{host:?}");
}

#[test]
fn the_command_needs_no_double_dash_and_what_follows_it_is_its_own() {
    let env = Env::new(CORDON);
    std::fs::write(env.ws().join("file"), "x").unwrap();
    let out = sandbox(&env, &["ls", "-a"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "file"), "{out:?}");
    let out = sandbox(
        &env,
        &[
            "sh",
            "-c",
            "echo \"$@\"",
            "sh",
            "--rw",
            "/",
            "--net",
            "host",
        ],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "--rw / --net host\n"),
        "options after the command are its arguments: {out:?}"
    );
    let out = sandbox(&env, &["--", "sh", "-c", "echo dashed"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "dashed\n"), "{out:?}");
    let out = sandbox(&env, &["--no-such-option", "ls"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("'--no-such-option'"), "{out:?}");
}

#[test]
fn print_policy_and_profile_check_show_the_flags() {
    let env = Env::new(CORDON);
    let dir = std::fs::canonicalize(env.outside.path()).unwrap();
    let out = sandbox(
        &env,
        &[
            "--print-policy",
            "--rw",
            text(&dir),
            "--net",
            "none",
            "true",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let policy: serde_json::Value = serde_json::from_str(&out.stderr).expect("the policy as JSON");
    let shown = format!("command line (--rw {} --net none)", dir.display());
    assert_eq!(
        policy["sources"].as_array().unwrap().last().unwrap(),
        &shown
    );
    assert!(policy["write"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w == text(&dir)));
    let mut c = env.cordon();
    c.args(["profile", "check", "default", "--rw", text(&dir)]);
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("write     {}  (noexec)", dir.display())),
        "{out:?}"
    );
}

#[test]
fn a_rw_path_that_is_a_link_to_etc_is_refused_and_nothing_runs() {
    let env = Env::new(CORDON);
    std::os::unix::fs::symlink("/etc", env.ws().join("out")).unwrap();
    let marker = format!("cordon-flag-test-{}", std::process::id());
    for path in ["out", "out/"] {
        let mut c = env.cordon();
        c.current_dir(env.ws())
            .args(["sandbox", "--rw", path, "touch"])
            .arg(format!("out/{marker}"));
        let out = output(&mut c);
        assert_eq!(out.code, 125, "{out:?}");
        assert!(
            out.stderr.contains(&format!(
                "--rw {path}: it is, or passes through, a symbolic link"
            )),
            "{out:?}"
        );
        assert!(
            out.stderr.contains("(/etc)"),
            "the hint names where it leads: {out:?}"
        );
    }
    assert!(!Path::new("/etc").join(&marker).exists());
}

#[test]
fn rw_of_the_root_a_hidden_path_or_the_sandboxs_own_tmp_is_refused() {
    let env = Env::new(CORDON);
    let private = env.outside.path().join("private");
    std::fs::create_dir(&private).unwrap();
    for (args, says) in [
        (vec!["--rw", "/"], "whole filesystem"),
        (vec!["--rw", "/etc/shadow"], "hidden"),
        (vec!["--ro", "/etc/shadow"], "hidden"),
        (
            vec!["--hide", text(&private), "--rw", text(&private)],
            "hidden",
        ),
        (vec!["--rw", "/tmp"], "its own"),
        (vec!["--rw", "/no/such/dir"], "no such file"),
        (vec!["--exec", "/etc/shadow"], "hidden"),
    ] {
        let mut all = args.clone();
        all.push("true");
        let out = sandbox(&env, &all);
        assert_eq!(out.code, 125, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(args[args.len() - 2]),
            "names the flag: {out:?}"
        );
        assert!(out.stderr.contains(says), "{args:?}: {out:?}");
    }
}

#[test]
fn rw_cannot_open_a_protected_path_and_a_grant_holding_one_keeps_it_read_only() {
    let env = Env::new(CORDON);
    std::fs::create_dir_all(env.ws().join(".git/hooks")).unwrap();
    std::fs::write(env.ws().join(".git/config"), "[core]\n").unwrap();
    let hooks = env.ws().join(".git/hooks");
    let out = sandbox(&env, &["--rw", text(&hooks), "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("protected"), "{out:?}");
    assert!(out.stderr.contains("[filesystem] unprotect"), "{out:?}");
    // readonly keeps the workspace read-only; a write grant on .git inside it must not make
    // the hooks writable.
    let git = env.ws().join(".git");
    let out = sandbox(
        &env,
        &[
            "--profile",
            "readonly",
            "--rw",
            text(&git),
            "sh",
            "-c",
            "printf '' > .git/index.lock && echo wrote; printf '' > .git/hooks/pre-commit && echo planted; echo x >> .git/config && echo configured; true",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("wrote"), "{out:?}");
    assert!(
        !out.stdout.contains("planted") && !out.stdout.contains("configured"),
        "{out:?}"
    );
    assert!(!hooks.join("pre-commit").exists());
}

#[test]
fn ld_preload_from_a_flag_cannot_load_a_library_the_session_could_write() {
    let env = Env::new(CORDON);
    let lib = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let Some(lib) = lib else {
        eprintln!("no libz here to preload; nothing to check");
        return;
    };
    let writable = env.outside.path().join("libs");
    std::fs::create_dir(&writable).unwrap();
    let planted = writable.join("evil.so");
    std::fs::copy(lib, &planted).unwrap();
    let preload = format!("LD_PRELOAD={}", planted.display());
    // A write grant is noexec: the loader cannot map the library, and says so.
    let out = sandbox(
        &env,
        &[
            "--profile",
            "strict",
            "--rw",
            text(&writable),
            "--env",
            &preload,
            "sh",
            "-c",
            "echo ran",
        ],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
    assert!(out.stderr.contains("cannot be preloaded"), "{out:?}");
    // The same library from a read-only grant loads: the variable itself widens nothing the
    // sandbox decides.
    let out = sandbox(
        &env,
        &[
            "--profile",
            "strict",
            "--ro",
            text(&writable),
            "--env",
            &preload,
            "sh",
            "-c",
            "echo ran",
        ],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
    assert!(!out.stderr.contains("cannot be preloaded"), "{out:?}");
}

#[test]
fn rw_of_cordons_data_directory_is_refused() {
    let env = Env::new(CORDON);
    // A user's data directory is $XDG_DATA_HOME/cordon; root's, /var/lib/cordon, is hidden in
    // every sandbox the same way.
    let data = env.outside.path().join("data");
    std::fs::create_dir_all(data.join("cordon/keys")).unwrap();
    for target in [data.join("cordon"), data.join("cordon/keys")] {
        let mut c = env.cordon();
        c.env("XDG_DATA_HOME", &data)
            .arg("sandbox")
            .arg("--workspace")
            .arg(env.ws())
            .arg("--rw")
            .arg(&target)
            .arg("true");
        let out = output(&mut c);
        assert_eq!(out.code, 125, "{out:?}");
        assert!(
            out.stderr.contains(&format!("--rw {}", target.display()))
                && out.stderr.contains("hidden"),
            "{out:?}"
        );
    }
}

#[test]
fn a_link_whose_target_holds_escape_sequences_is_named_escaped_in_the_refusal() {
    let env = Env::new(CORDON);
    // Another account's link, pointing at a name that would clear the screen and set the
    // clipboard if printed raw.
    let there = tempfile::tempdir().unwrap();
    let nasty = there.path().join("\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07x");
    std::fs::create_dir(&nasty).unwrap();
    std::os::unix::fs::symlink(&nasty, env.ws().join("out")).unwrap();
    let mut c = env.cordon();
    c.current_dir(env.ws())
        .args(["sandbox", "--rw", "out", "true"]);
    let out = output(&mut c);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        !out.stderr.contains('\x1b') && !out.stderr.contains('\x07'),
        "{out:?}"
    );
    assert!(out.stderr.contains("\\x1b[2J"), "named, escaped: {out:?}");
}
