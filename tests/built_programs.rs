//! Programs built in the workspace run where the profile says so (`[exec] workspace`): a
//! crate's unit tests, a C program built with make, a Python virtualenv with pip, under
//! `default` and `claude`, with `cordon sandbox` and in host sessions. Where a profile keeps
//! W^X, what is refused says why and which key changes it: `cordon sandbox`'s refusal,
//! `profile explain PATH`, and one notice in the session's terminal. The claude profile
//! leaves no empty `~/.claude.json`, never writes the account's own home, and Claude's
//! settings can be imported into a user's cordon home.

use cordon_test_support::host::Host;
use cordon_test_support::process::{output, Out};
use cordon_test_support::sandbox::Env;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A crate with one unit test, a C program with its Makefile, and a wheel-building script,
/// written into `dir`.
fn project(dir: &Path) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "crate1/Cargo.toml",
        "[package]\nname = \"crate1\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    w(
        "crate1/src/lib.rs",
        "pub fn add(a: u32, b: u32) -> u32 { a + b }\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn adds() { assert_eq!(super::add(2, 3), 5); }\n}\n",
    );
    w(
        "c/hello.c",
        "#include <stdio.h>\nint main(void) { puts(\"hello from a.out\"); return 0; }\n",
    );
    w("c/Makefile", "a.out: hello.c\n\tcc hello.c -o a.out\n");
    // pip installs a wheel offline; the wheel is made by hand (no `wheel` package here).
    w(
        "py/mkwheel.py",
        r#"import zipfile, hashlib, base64
files = {
    "hello_pkg/__init__.py": b'def greet():\n    return "hello from a wheel"\n',
    "hello_pkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hello-pkg\nVersion: 0.1\n",
    "hello_pkg-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{name},sha256={digest},{len(data)}\n"
record += "hello_pkg-0.1.dist-info/RECORD,,\n"
with zipfile.ZipFile("hello_pkg-0.1-py3-none-any.whl", "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr("hello_pkg-0.1.dist-info/RECORD", record)
"#,
    );
    w("py/main.py", "import hello_pkg\nprint(hello_pkg.greet())\n");
}

const MAKE_AND_RUN: &str = "cd c && make -s && ./a.out";
const VENV: &str = "cd py && python3 mkwheel.py && python3 -m venv .venv && .venv/bin/pip --version && .venv/bin/pip install -q --no-index ./hello_pkg-0.1-py3-none-any.whl && .venv/bin/python main.py";
const CARGO_TEST: &str = "cd crate1 && cargo test --offline 2>&1";

/// A home for the claude profile (which writes the whole home) that still finds the
/// caller's Rust toolchain, as a user's own home would hold it.
fn home_with_toolchain() -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix("cordon-home-")
        .tempdir()
        .unwrap();
    let real = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for d in [".cargo", ".rustup"] {
        let target = Path::new(&real).join(d);
        if target.exists() {
            std::os::unix::fs::symlink(target, home.path().join(d)).unwrap();
        }
    }
    home
}

fn run_in(env: &Env, profile: &str, home: Option<&Path>, script: &str) -> Out {
    let mut args = vec![
        "--profile".to_string(),
        profile.to_string(),
        "--workspace".into(),
    ];
    args.push(env.ws().display().to_string());
    if let Some(h) = home {
        args.push("--home".into());
        args.push(h.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.sandbox(&args, &["sh", "-c", script])
}

#[test]
fn a_crate_with_a_unit_test_passes_cargo_test_under_default_and_claude() {
    let env = Env::new(CORDON);
    project(env.ws());
    let home = home_with_toolchain();
    for (profile, home) in [("default", None), ("claude", Some(home.path()))] {
        let out = run_in(&env, profile, home, CARGO_TEST);
        assert_eq!(out.code, 0, "{profile}: {out:?}");
        assert!(
            out.stdout.contains("test tests::adds ... ok"),
            "{profile}: {out:?}"
        );
    }
}

#[test]
fn a_c_program_built_with_make_runs_under_default_and_claude() {
    let env = Env::new(CORDON);
    project(env.ws());
    let home = tempfile::tempdir().unwrap();
    for (profile, home) in [("default", None), ("claude", Some(home.path()))] {
        let _ = std::fs::remove_file(env.ws().join("c/a.out"));
        let out = run_in(&env, profile, home, MAKE_AND_RUN);
        assert_eq!(
            (out.code, out.stdout.trim()),
            (0, "hello from a.out"),
            "{profile}: {out:?}"
        );
        assert!(!out.stderr.contains("was not run"), "{profile}: {out:?}");
    }
}

#[test]
fn a_python_script_runs_from_a_virtualenv_with_pip_under_default_and_claude() {
    let env = Env::new(CORDON);
    project(env.ws());
    let home = tempfile::tempdir().unwrap();
    for (profile, home) in [("default", None), ("claude", Some(home.path()))] {
        let _ = std::fs::remove_dir_all(env.ws().join("py/.venv"));
        let out = run_in(&env, profile, home, VENV);
        assert_eq!(out.code, 0, "{profile}: {out:?}");
        assert!(out.stdout.starts_with("pip "), "{profile}: {out:?}");
        assert!(
            out.stdout.trim_end().ends_with("hello from a wheel"),
            "{profile}: {out:?}"
        );
    }
}

#[test]
fn the_claude_profile_runs_its_everyday_tools() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    let out = run_in(
        &env,
        "claude",
        Some(home.path()),
        "seq 3 | wc -l; ps -e -o comm= | grep -c . ; TERM=xterm tput cols; TERM=xterm clear > /dev/null && echo cleared; npm --version > /dev/null && npx --version > /dev/null && echo npm-ok; make --version | head -n 1; command -v vi editor vim.tiny nano | head -n 1",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "3", "{out:?}");
    assert!(
        lines[1].parse::<u32>().unwrap() >= 2,
        "ps sees the sandbox's processes: {out:?}"
    );
    assert!(
        lines.contains(&"cleared") && lines.contains(&"npm-ok"),
        "{out:?}"
    );
    assert!(out.stdout.contains("GNU Make"), "{out:?}");
    assert!(!out.stderr.contains("was not run"), "{out:?}");
}

/// A profile like strict that shows the workspace writable: W^X kept, so what is built
/// there cannot run.
fn strict_with_workspace(env: &Env) -> String {
    env.profile(
        "strictws",
        "extends = \"strict\"\n[filesystem]\nwrite = [\"{workspace}\"]\n",
    )
}

#[test]
fn a_strict_profile_refuses_a_built_program_naming_the_key_and_notices_it_once() {
    let env = Env::new(CORDON);
    let prog = env.ws().join("prog");
    std::fs::copy("/bin/true", &prog).unwrap();
    let profile = strict_with_workspace(&env);

    let out = env.sandbox(
        &[
            "--profile",
            &profile,
            "--workspace",
            env.ws().to_str().unwrap(),
        ],
        &[prog.to_str().unwrap()],
    );
    assert_eq!(out.code, 126, "{out:?}");
    assert!(
        out.stderr.contains(
            "the workspace is not executable under profile \"strictws\" ([exec] workspace = false)"
        ),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("set [exec] workspace = true"),
        "the fix is named: {out:?}"
    );
    assert!(
        !out.stderr.contains("add it to [exec] allow"),
        "the allowlist would not help: {out:?}"
    );

    let out = env.sandbox(
        &[
            "--profile",
            &profile,
            "--workspace",
            env.ws().to_str().unwrap(),
        ],
        &["sh", "-c", "./prog; ./prog; echo status $?"],
    );
    assert!(out.stdout.contains("status 126"), "{out:?}");
    let notices: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("cordon: "))
        .collect();
    assert_eq!(
        notices,
        vec!["cordon: ./prog was not run: the workspace is not executable under profile \"strictws\" ([exec] workspace = false)"],
        "one notice, the first time: {out:?}"
    );
}

#[test]
fn the_exec_notice_escapes_the_path_the_program_gave() {
    let env = Env::new(CORDON);
    let name = "evil\x1b]0;owned\x07";
    std::fs::copy("/bin/true", env.ws().join(name)).unwrap();
    let out = env.sandbox(
        &[
            "--profile",
            &strict_with_workspace(&env),
            "--workspace",
            env.ws().to_str().unwrap(),
        ],
        &["sh", "-c", "for f in ./evil*; do \"$f\"; done"],
    );
    assert!(
        out.stderr
            .contains("cordon: ./evil\\x1b]0;owned\\x07 was not run"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("cordon: "))
            .all(|l| !l.contains('\x1b') && !l.contains('\x07')),
        "{out:?}"
    );
}

#[test]
fn profile_explain_says_whether_a_workspace_path_may_run_and_which_key_decides() {
    let env = Env::new(CORDON);
    let prog = env.ws().join("a.out");
    std::fs::copy("/bin/true", &prog).unwrap();
    let explain = |profile: &str| {
        let mut c = env.cordon();
        c.args(["profile", "explain", profile, "--workspace"])
            .arg(env.ws())
            .arg(&prog);
        output(&mut c)
    };
    let out = explain("default");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("may run under profile \"default\": [exec] workspace = true"),
        "{out:?}"
    );
    let out = explain("readonly");
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("may not run: the workspace is not executable under profile \"readonly\" ([exec] workspace = false)"),
        "{out:?}"
    );
    let out = explain("claude");
    assert_eq!(out.code, 0, "{out:?}");
    let mut c = env.cordon();
    c.args(["profile", "explain", "claude", "--workspace"])
        .arg(env.ws())
        .arg("/usr/bin/perl");
    let out = output(&mut c);
    assert!(
        out.code == 1
            && out
                .stdout
                .contains("not on the exec allowlist of profile \"claude\" ([exec] allow)"),
        "{out:?}"
    );
}

#[test]
fn a_claude_profile_run_that_does_not_run_claude_leaves_no_claude_json() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    let out = run_in(&env, "claude", Some(home.path()), "echo ok");
    assert_eq!((out.code, out.stdout.trim()), (0, "ok"), "{out:?}");
    assert!(
        !home.path().join(".claude.json").exists(),
        "nothing is created in the home, least of all an empty .claude.json"
    );
}

#[test]
fn cordon_sandbox_gives_a_profile_that_writes_the_home_the_cordon_home_not_the_accounts() {
    let env = Env::new(CORDON);
    let account_home = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("state");
    let mut c = env.cordon();
    c.env("HOME", account_home.path())
        .env("CORDON_DATA_DIR", &data_dir)
        .args(["sandbox", "--profile", "claude", "--workspace"])
        .arg(env.ws())
        .args(["--", "sh", "-c", "echo mine > ~/marker; echo $HOME"]);
    let out = output(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    let cordon_home = PathBuf::from(format!("{}-homes", data_dir.display())).join(
        cordon_test_support::process::output(std::process::Command::new("id").arg("-un"))
            .stdout
            .trim(),
    );
    assert_eq!(
        out.stdout.trim(),
        cordon_home.display().to_string(),
        "{out:?}"
    );
    assert!(cordon_home.join("marker").exists());
    assert_eq!(
        std::fs::read_dir(account_home.path()).unwrap().count(),
        0,
        "the account's own home is untouched"
    );
    assert!(
        out.stderr.contains("your cordon home"),
        "said once: {out:?}"
    );
}

#[test]
fn programs_built_in_a_session_run_under_default_and_claude() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let run = |profile: &str, script: &str| {
        h.ssh(
            &alice,
            "alice",
            &[
                "run",
                "--profile",
                profile,
                "--",
                "sh",
                "-c",
                &format!("'{script}'"),
            ],
        )
    };
    assert_eq!(run("default", "true").code, 0);
    let ws = h.workspace("alice");
    project(&ws);
    let uid = h.uid("alice");
    let _ = output(
        std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(&ws),
    );
    for profile in ["default", "claude"] {
        let _ = output(
            std::process::Command::new("rm")
                .args(["-rf"])
                .arg(ws.join("c/a.out"))
                .arg(ws.join("py/.venv")),
        );
        let out = run(profile, MAKE_AND_RUN);
        assert_eq!(
            (out.code, out.stdout.trim()),
            (0, "hello from a.out"),
            "{profile}: {out:?}"
        );
        let out = run(profile, VENV);
        assert_eq!(out.code, 0, "{profile}: {out:?}");
        assert!(
            out.stdout.trim_end().ends_with("hello from a wheel"),
            "{profile}: {out:?}"
        );
        // The system's toolchain (install.sh installs Debian's cargo): a session's home is
        // its user's own, without the host account's ~/.cargo.
        let _ = std::fs::remove_dir_all(ws.join("crate1/target"));
        let out = run(profile, CARGO_TEST);
        assert_eq!(out.code, 0, "{profile}: {out:?}");
        assert!(
            out.stdout.contains("test tests::adds ... ok"),
            "{profile}: {out:?}"
        );
    }
    let home = h.home("alice");
    assert!(
        std::fs::metadata(home.join(".claude.json"))
            .map(|m| m.len() > 0)
            .unwrap_or(true),
        "a claude session leaves no empty ~/.claude.json"
    );
}

#[test]
fn a_refused_exec_shows_one_notice_in_the_sessions_terminal() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    assert_eq!(h.ssh(&alice, "alice", &["run", "--", "true"]).code, 0);
    let ws = h.workspace("alice");
    std::fs::copy("/bin/true", ws.join("prog")).unwrap();
    let uid = h.uid("alice");
    std::os::unix::fs::chown(ws.join("prog"), Some(uid), Some(uid)).unwrap();
    h.tmux_ssh("ro", &alice, "alice", "new --profile readonly -- bash");
    h.wait_for("ro", "$");
    h.keys("ro", &["./prog; ./prog; echo do${x}ne", "Enter"]);
    // The window is 100 columns wide: the notice wraps.
    let screen = h.wait_for("ro", "done").replace('\n', "");
    assert_eq!(
        screen.matches("cordon: ./prog was not run: the workspace is not executable under profile \"readonly\" ([exec] workspace = false)").count(),
        1,
        "{screen}"
    );
    assert_eq!(screen.matches("Permission denied").count(), 2, "{screen}");
}

#[test]
fn claude_import_carries_settings_but_no_credentials_into_a_users_cordon_home() {
    let h = Host::start(CORDON);
    let _alice = h.user("alice", "developer");
    let from = tempfile::tempdir().unwrap();
    let c = from.path().join(".claude");
    std::fs::create_dir_all(c.join("agents")).unwrap();
    std::fs::write(
        c.join("settings.json"),
        r#"{"model":"opus","env":{"ANTHROPIC_API_KEY":"sk-ant-secret1"}}"#,
    )
    .unwrap();
    std::fs::write(c.join("CLAUDE.md"), "house rules").unwrap();
    std::fs::write(c.join("agents/reviewer.md"), "review").unwrap();
    std::fs::write(
        from.path().join(".claude.json"),
        r#"{"theme":"light","hasCompletedOnboarding":true,"primaryApiKey":"sk-ant-secret2","oauthAccount":{"emailAddress":"me@example.com"}}"#,
    )
    .unwrap();
    let out = h.cordon(&[
        "claude",
        "import",
        "--user",
        "alice",
        "--from",
        from.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("left out  .claude.json: primaryApiKey"),
        "{out:?}"
    );
    let home = h.home("alice");
    let uid = h.uid("alice");
    for rel in [
        ".claude.json",
        ".claude/settings.json",
        ".claude/CLAUDE.md",
        ".claude/agents/reviewer.md",
    ] {
        let m = std::fs::symlink_metadata(home.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(m.uid(), uid, "{rel} belongs to alice's account");
        let text = std::fs::read_to_string(home.join(rel)).unwrap();
        assert!(
            !text.contains("sk-ant-secret") && !text.contains("me@example.com"),
            "{rel}: {text}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join(".claude.json")).unwrap()).unwrap();
    assert_eq!(json["theme"], "light");
    assert!(h.audit_log().contains("\"claude.import\""));
}

#[test]
fn claude_code_reaches_its_main_screen_under_the_claude_profile_and_leaves_valid_json() {
    let installed = std::process::Command::new("claude")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "Claude Code is not installed: run ./install.sh --deps-only (npm install -g @anthropic-ai/claude-code)"
    );
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    // Onboarding done, as `cordon claude import` carries it from the user's own settings.
    std::fs::write(
        home.path().join(".claude.json"),
        r#"{"hasCompletedOnboarding":true,"theme":"dark"}"#,
    )
    .unwrap();
    let tmux =
        cordon_test_support::tmux::Tmux::new(format!("cordon-claude-{}", std::process::id()));
    tmux.start(
        "claude",
        &format!(
            "cd {} && ANTHROPIC_API_KEY=sk-ant-dummy XDG_CONFIG_HOME={} {CORDON} sandbox --profile claude --home {} -- claude",
            env.ws().display(),
            env.config.path().display(),
            home.path().display()
        ),
    );
    tmux.wait_for("claude", "trust this folder");
    tmux.keys("claude", &["Enter"]);
    tmux.wait_for("claude", "Do you want to use this API key?");
    // "No" is preselected: move to "Yes" and see it chosen before confirming (keys sent
    // while the dialog is still being drawn are lost).
    cordon_test_support::wait::wait_until("the dialog to select Yes", || {
        tmux.keys("claude", &["Up"]);
        std::thread::sleep(std::time::Duration::from_millis(300));
        tmux.screen("claude").contains("❯ 1. Yes")
    });
    tmux.keys("claude", &["Enter"]);
    let screen = tmux.wait_for("claude", "API Usage Billing");
    assert!(!screen.contains("Not logged in"), "{screen}");
    let json = std::fs::read_to_string(home.path().join(".claude.json")).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["hasCompletedOnboarding"], true, "{json}");
}
