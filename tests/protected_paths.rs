//! Protected paths (`[filesystem] protect`): what runs outside the sandbox later (git's hooks
//! and configuration, editors' tasks, Claude Code's project settings) stays read-only in a
//! writable workspace, under `cordon sandbox` and in host sessions, while git commits and
//! the rest of the workspace stay writable; the ways around it an agent would try (renaming
//! `.git` away, a new repository, a planted link) fail as docs/security.md says.

use cordon_test_support::host::Host;
use cordon_test_support::process::{output, Out};
use cordon_test_support::sandbox::Env;
use std::path::Path;
use std::process::Command;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A git repository with one commit in `dir`, its committer given in `.git/config`.
fn repository(dir: &Path) {
    let git = |args: &[&str]| {
        // The host's workspaces belong to their users, not to root who makes this one.
        let out = output(
            Command::new("git")
                .args(["-c", "safe.directory=*", "-C"])
                .arg(dir)
                .args(args),
        );
        assert_eq!(out.code, 0, "git {args:?}: {out:?}");
    };
    git(&["init", "-q"]);
    git(&["config", "user.name", "Dev"]);
    git(&["config", "user.email", "dev@example.com"]);
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-qm", "first"]);
}

fn commits(dir: &Path) -> usize {
    let out = output(
        Command::new("git")
            .args(["-c", "safe.directory=*", "-C"])
            .arg(dir)
            .args(["rev-list", "--count", "HEAD"]),
    );
    out.stdout.trim().parse().unwrap_or(0)
}

/// `sh -c SCRIPT` in the workspace under `profile`, with a home of its own (claude writes
/// its home).
fn sh(env: &Env, home: &Path, profile: &str, script: &str) -> Out {
    env.sandbox(
        &[
            "--profile",
            profile,
            "--home",
            home.to_str().unwrap(),
            "--workspace",
            env.ws().to_str().unwrap(),
        ],
        &["sh", "-c", script],
    )
}

/// Tries what a session should not manage and what it must; prints one word for each.
const ATTEMPTS: &str = "\
    if echo evil > .git/hooks/pre-commit 2>/dev/null; then echo HOOK-WRITTEN; else echo hook-refused; fi; \
    if git config core.hooksPath /tmp/x 2>/dev/null; then echo CONFIG-WRITTEN; else echo config-refused; fi; \
    if git config core.fsmonitor 'touch /tmp/pwned' 2>/dev/null; then echo CONFIG-WRITTEN; else echo config-refused; fi; \
    if mkdir -p .vscode && echo '{}' > .vscode/tasks.json 2>/dev/null; then echo TASKS-WRITTEN; else echo tasks-refused; fi; \
    if mkdir -p .claude && echo '{\"hooks\":{}}' > .claude/settings.json 2>/dev/null; then echo CLAUDE-WRITTEN; else echo claude-refused; fi; \
    echo work-$(date +%s%N) > notes.txt && mkdir -p src/deep && echo ok > src/deep/file && git add notes.txt src && \
    git commit -qm second && echo committed";

#[test]
fn a_session_cannot_plant_a_git_hook_or_change_git_config_while_commits_and_the_workspace_stay_writable(
) {
    for profile in ["default", "claude"] {
        let env = Env::new(CORDON);
        let home = tempfile::tempdir().unwrap();
        repository(env.ws());
        let config = std::fs::read_to_string(env.ws().join(".git/config")).unwrap();
        let out = sh(&env, home.path(), profile, ATTEMPTS);
        assert_eq!(out.code, 0, "{profile}: {out:?}");
        for word in [
            "hook-refused",
            "tasks-refused",
            "claude-refused",
            "committed",
        ] {
            assert!(out.stdout.contains(word), "{profile}: {word}: {out:?}");
        }
        assert_eq!(
            out.stdout.matches("config-refused").count(),
            2,
            "{profile}: {out:?}"
        );
        assert!(
            !out.stdout.contains("WRITTEN"),
            "{profile}: a protected path was written: {out:?}"
        );
        let ws = env.ws();
        assert!(!ws.join(".git/hooks/pre-commit").exists(), "{profile}");
        assert_eq!(
            std::fs::read_to_string(ws.join(".git/config")).unwrap(),
            config,
            "{profile}"
        );
        assert_eq!(commits(ws), 2, "{profile}: the commit made inside is there");
        assert_eq!(
            std::fs::read_to_string(ws.join("src/deep/file")).unwrap(),
            "ok\n"
        );
        // The placeholders that stood for missing paths are gone.
        for gone in [".vscode", ".claude", ".mcp.json", ".idea", ".git/modules"] {
            assert!(!ws.join(gone).exists(), "{profile}: {gone} was left behind");
        }
    }
}

#[test]
fn renaming_git_away_or_removing_its_hooks_to_escape_the_protection_fails() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    repository(env.ws());
    let out = sh(
        &env,
        home.path(),
        "default",
        "for try in 'mv .git .git2' 'rm -rf .git/hooks' 'mv .git/hooks .git/old-hooks' \
           'mv .git/config .git/config2' 'ln .git/config cfg' 'rm -f .git/config'; do \
           if $try 2>/dev/null; then echo \"ESCAPED: $try\"; else echo refused; fi; done; \
         if [ -d .git2 ] || [ ! -d .git/hooks ]; then echo MOVED; fi",
    );
    assert_eq!(out.stdout.matches("refused").count(), 6, "{out:?}");
    assert!(
        !out.stdout.contains("ESCAPED") && !out.stdout.contains("MOVED"),
        "{out:?}"
    );
    assert!(env.ws().join(".git/config").is_file());
    assert_eq!(commits(env.ws()), 1);
}

#[test]
fn git_init_in_a_workspace_without_a_repository_fails_and_leaves_nothing_behind() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    std::fs::write(env.ws().join("main.c"), "int main(void) { return 0; }\n").unwrap();
    let out = sh(
        &env,
        home.path(),
        "default",
        "git init -q 2>&1; echo \"init=$?\"; mkdir -p .git/hooks 2>/dev/null || echo mkdir-refused; \
         echo changed > main.c && echo writable",
    );
    assert!(out.stdout.contains("Read-only file system"), "{out:?}");
    assert!(!out.stdout.contains("init=0"), "{out:?}");
    assert!(out.stdout.contains("mkdir-refused"), "{out:?}");
    assert!(out.stdout.contains("writable"), "{out:?}");
    assert!(
        !env.ws().join(".git").exists(),
        "the empty .git placeholder is removed when the session ends"
    );
    assert_eq!(
        std::fs::read_to_string(env.ws().join("main.c")).unwrap(),
        "changed\n"
    );
}

#[test]
fn a_symbolic_link_planted_at_git_hooks_stops_the_session_naming_the_path_and_the_key() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    repository(env.ws());
    let hooks = env.ws().join(".git/hooks");
    std::fs::remove_dir_all(&hooks).unwrap();
    std::fs::create_dir(env.ws().join("my-hooks")).unwrap();
    std::os::unix::fs::symlink("../my-hooks", &hooks).unwrap();
    let out = sh(&env, home.path(), "default", "echo RAN");
    assert_eq!(out.code, 125, "{out:?}");
    assert!(!out.stdout.contains("RAN"), "{out:?}");
    assert!(
        out.stderr.contains(".git/hooks")
            && out.stderr.contains("[filesystem] protect")
            && out.stderr.contains("symbolic link")
            && out.stderr.contains("unprotect"),
        "{out:?}"
    );
    let check = output(
        env.cordon()
            .args(["profile", "check", "default", "--workspace"])
            .arg(env.ws()),
    );
    assert!(
        check.stdout.contains("a session would be refused") && check.stdout.contains(".git/hooks"),
        "{check:?}"
    );
}

#[test]
fn a_profile_that_unprotects_a_path_can_write_it_and_the_rest_stays_protected() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    repository(env.ws());
    let profile = env.profile(
        "hooks-ok",
        "extends = \"default\"\n[filesystem]\nunprotect = [\".git/hooks/\"]\n",
    );
    let out = sh(
        &env,
        home.path(),
        &profile,
        "echo '#!/bin/sh' > .git/hooks/pre-commit && echo hook-written; \
         git config core.hooksPath /tmp/x 2>/dev/null || echo config-refused",
    );
    assert!(
        out.stdout.contains("hook-written") && out.stdout.contains("config-refused"),
        "{out:?}"
    );
    assert!(env.ws().join(".git/hooks/pre-commit").exists());
}

#[test]
fn profile_check_and_explain_name_the_protected_paths_and_the_key() {
    let env = Env::new(CORDON);
    repository(env.ws());
    let check = output(
        env.cordon()
            .args(["profile", "check", "claude", "--workspace"])
            .arg(env.ws()),
    );
    assert_eq!(check.code, 0, "{check:?}");
    let hooks = env.ws().join(".git/hooks");
    assert!(
        check.stdout.contains(&format!(
            "protect   {}  (read-only: [filesystem] protect \".git/hooks/\")",
            hooks.display()
        )),
        "{check:?}"
    );
    assert!(
        check.stdout.contains("\".claude/settings.json\""),
        "{check:?}"
    );
    let explain = output(env.cordon().current_dir(env.ws()).args([
        "profile",
        "explain",
        "default",
        ".git/hooks/pre-commit",
    ]));
    assert!(
        explain
            .stdout
            .contains("is read-only in sessions under profile \"default\": protected ([filesystem] protect \".git/hooks/\")"),
        "{explain:?}"
    );
    let readonly = output(
        env.cordon()
            .args(["profile", "check", "readonly", "--workspace"])
            .arg(env.ws()),
    );
    assert!(
        !readonly.stdout.contains("protect   "),
        "a workspace the session cannot write needs no protection: {readonly:?}"
    );
}

#[test]
fn a_host_session_cannot_plant_a_git_hook_while_its_workspace_stays_writable() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    assert_eq!(h.ssh(&alice, "alice", &["run", "--", "true"]).code, 0);
    let ws = h.workspace("alice");
    repository(&ws);
    let uid = h.uid("alice");
    let _ = output(
        Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(&ws),
    );
    for profile in ["default", "claude"] {
        let out = h.ssh(
            &alice,
            "alice",
            &[
                "run",
                "--profile",
                profile,
                "--",
                "sh",
                "-c",
                &format!("'{}'", ATTEMPTS.replace('\'', "\"")),
            ],
        );
        assert!(
            out.stdout.contains("hook-refused") && out.stdout.contains("committed"),
            "{profile}: {out:?}"
        );
        assert_eq!(
            out.stdout.matches("config-refused").count(),
            2,
            "{profile}: {out:?}"
        );
        assert!(!out.stdout.contains("WRITTEN"), "{profile}: {out:?}");
    }
    assert!(!ws.join(".git/hooks/pre-commit").exists());
    assert_eq!(commits(&ws), 3, "both sessions committed");
}

#[test]
fn the_hooks_directory_git_config_points_into_the_project_is_protected_too() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    repository(env.ws());
    // What husky 9 sets up: git runs .husky/_/HOOK, which runs the project's .husky/HOOK.
    std::fs::create_dir_all(env.ws().join(".husky/_")).unwrap();
    let out = output(Command::new("git").arg("-C").arg(env.ws()).args([
        "config",
        "core.hooksPath",
        ".husky/_",
    ]));
    assert_eq!(out.code, 0, "{out:?}");
    let out = sh(
        &env,
        home.path(),
        "default",
        "echo evil > .husky/pre-commit 2>/dev/null && echo HUSKY-WRITTEN; \
         echo evil > .husky/_/pre-commit 2>/dev/null && echo HUSKY-WRITTEN; echo ok > other && echo writable",
    );
    assert!(
        !out.stdout.contains("HUSKY-WRITTEN") && out.stdout.contains("writable"),
        "{out:?}"
    );
    let check = output(
        env.cordon()
            .args(["profile", "check", "default", "--workspace"])
            .arg(env.ws()),
    );
    assert!(
        check
            .stdout
            .contains("(read-only: core.hooksPath \".husky/_\" in .git/config)"),
        "{check:?}"
    );
}

#[test]
fn a_session_ending_leaves_the_placeholders_of_another_running_on_the_same_workspace_in_place() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    repository(env.ws());
    let mut long = env.cordon();
    long.args(["sandbox", "--profile", "default", "--home"])
        .arg(home.path())
        .arg("--workspace")
        .arg(env.ws())
        .args([
            "--",
            "sh",
            "-c",
            "while [ ! -e started ]; do sleep 0.1; done; sleep 1; \
             if echo '{}' > .mcp.json 2>/dev/null; then echo WRITTEN; else echo refused; fi",
        ])
        .stdout(std::process::Stdio::piped());
    let long = long.spawn().unwrap();
    // The second session starts and ends while the first runs; removing the placeholders
    // then would detach them from the first session's view.
    let short = sh(&env, home.path(), "default", "touch started");
    assert_eq!(short.code, 0, "{short:?}");
    let out = long.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "refused", "{stdout}");
    assert!(
        !env.ws().join(".mcp.json").exists(),
        "the last session out removes every placeholder"
    );
}

#[test]
fn a_session_started_over_anothers_placeholders_keeps_them_after_that_one_ends() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    repository(env.ws());
    // The first session makes the placeholders and ends once the second is up; the second
    // found them as existing paths and bound them read-only, so they must outlive the first.
    let spawn = |script: &str| {
        let mut c = env.cordon();
        c.args(["sandbox", "--profile", "default", "--home"])
            .arg(home.path())
            .arg("--workspace")
            .arg(env.ws())
            .args(["--", "sh", "-c", script])
            .stdout(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let first = spawn("touch first-up; while [ ! -e second-up ]; do sleep 0.1; done");
    cordon_test_support::wait::wait_until("the first session", || {
        env.ws().join("first-up").exists()
    });
    let second = spawn(
        "touch second-up; sleep 1.5; \
         if echo '{}' > .mcp.json 2>/dev/null; then echo WRITTEN; else echo refused; fi",
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{first:?}");
    let out = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "refused", "{stdout}");
    assert!(!env.ws().join(".mcp.json").exists());
}
