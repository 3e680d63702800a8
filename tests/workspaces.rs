//! Workspaces from real paths and `run`'s standard input, through OpenSSH's `ssh` against
//! `cordon serve`: a developer granted `<root>/{user}` ([workspaces]) works beneath it and
//! nowhere else (`..`, links, a prefix, a file, a FIFO, another user's root, a link swapped
//! in while sessions start); piped input reaches the command byte for byte, and input past
//! `[runner] stdin_limit` fails the run instead of being cut short.

use cordon_test_support::host::Host;
use cordon_test_support::process::Out;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A host whose developers are granted `<projects>/{user}`, with alice's and bob's folders
/// made and given to their sessions' accounts (as an admin would), and alice's key.
struct Granted {
    h: Host,
    alice: PathBuf,
    projects: PathBuf,
    _dir: tempfile::TempDir,
}

fn granted(extra: &str) -> Granted {
    let dir = tempfile::tempdir().unwrap();
    let projects = std::fs::canonicalize(dir.path()).unwrap().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = Host::start_with(
        CORDON,
        &format!(
            "[workspaces]\nroles.developer = [\"{}/{{user}}\"]\n{extra}",
            projects.display()
        ),
    );
    let alice = h.user("alice", "developer");
    h.user("bob", "developer");
    for user in ["alice", "bob"] {
        let uid = h.uid(user);
        let mine = projects.join(user).join("app");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("README"), format!("{user}'s project\n")).unwrap();
        for p in [projects.join(user), mine.clone(), mine.join("README")] {
            std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).unwrap();
        }
    }
    Granted {
        h,
        alice,
        projects,
        _dir: dir,
    }
}

fn run(g: &Granted, args: &[&str]) -> Out {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    g.h.ssh(&g.alice, "alice", &all)
}

#[test]
fn run_and_new_work_in_a_directory_beneath_a_granted_root() {
    let g = granted("");
    let app = g.projects.join("alice/app");
    let out = run(
        &g,
        &[
            "--workspace",
            app.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "'pwd; cat README; echo made > new'",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("{}\nalice's project\n", app.display())),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(app.join("new")).unwrap(), "made\n");
    // A plain name keeps meaning a folder of alice's own workspace area.
    let out = run(&g, &["--workspace", "scratch", "--", "pwd"]);
    assert_eq!(
        out.stdout.trim(),
        g.h.workspace("alice").join("scratch").to_str().unwrap(),
        "{out:?}"
    );
    // A session too.
    let mut argv = g.h.ssh_command(&g.alice, "alice");
    argv.insert(1, "-tt".into());
    let out = cordon_test_support::process::output(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args([
                "new",
                "--workspace",
                app.to_str().unwrap(),
                "--",
                "cat",
                "README",
            ])
            .stdin(std::process::Stdio::null()),
    );
    assert!(out.stdout.contains("alice's project"), "{out:?}");
}

#[test]
fn every_way_out_of_a_granted_root_is_refused_naming_the_roots_and_audited() {
    let g = granted("");
    let a = g.projects.join("alice");
    std::os::unix::fs::symlink("/etc", a.join("link-to-etc")).unwrap();
    std::os::unix::fs::symlink(a.join("app"), a.join("link-to-app")).unwrap();
    std::fs::write(a.join("file"), "x").unwrap();
    let fifo = std::ffi::CString::new(a.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
    std::fs::create_dir(g.projects.join("alicex")).unwrap();
    let p = |rel: &str| g.projects.join(rel).to_str().unwrap().to_string();
    for (asked, why) in [
        (p("alice/../bob"), "has a .. component"),
        (p("alice/link-to-etc"), "symbolic link"),
        (p("alice/link-to-app"), "symbolic link"),
        (p("alice/link-to-app/.."), "has a .. component"),
        (p("alicex"), "not beneath a workspace root granted to you"),
        (p("bob/app"), "not beneath a workspace root granted to you"),
        (p("alice/file"), "not a directory"),
        (p("alice/fifo"), "not a directory"),
        (
            "/etc".to_string(),
            "not beneath a workspace root granted to you",
        ),
    ] {
        let out = run(&g, &["--workspace", &asked, "--", "cat", "/etc/hostname"]);
        assert_ne!(out.code, 0, "{asked}: {out:?}");
        assert!(
            out.stderr.contains(why)
                && out.stderr.contains(&a.display().to_string())
                && out
                    .stderr
                    .contains("[workspaces] users.alice or roles.developer"),
            "{asked}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{asked}: {out:?}");
    }
    let audit = g.h.audit_log();
    assert!(
        audit.contains("\"refused\"") && audit.contains("link-to-etc"),
        "{audit}"
    );
}

#[test]
fn a_directory_the_sessions_account_cannot_write_is_refused_and_left_as_it_was() {
    let g = granted("");
    let theirs = g.projects.join("alice/root-owned");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(&g, &["--workspace", theirs.to_str().unwrap(), "--", "true"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("chgrp -R") && out.stderr.contains("not readable and writable"),
        "{out:?}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&theirs).unwrap().uid(),
        0,
        "never chowned"
    );
    // Given to the account's group (the owner kept), it is taken.
    let gid = g.h.uid("alice");
    std::os::unix::fs::chown(&theirs, None, Some(gid)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = run(
        &g,
        &[
            "--workspace",
            theirs.to_str().unwrap(),
            "--",
            "touch",
            "written",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(theirs.join("written").exists());
}

#[test]
fn a_link_swapped_in_beneath_a_granted_root_while_runs_start_is_never_followed() {
    let g = granted("");
    let base = g.projects.join("alice");
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("marker"), "secret").unwrap();
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        secret.path().join("marker"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let real = base.join("race");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("marker"), "real").unwrap();
    let uid = g.h.uid("alice");
    for p in [&real, &real.join("marker")] {
        std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    }
    std::os::unix::fs::symlink(secret.path(), base.join("other")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let (a, b) = (
                std::ffi::CString::new("race").unwrap(),
                std::ffi::CString::new("other").unwrap(),
            );
            let dir = std::fs::File::open(&base).unwrap();
            use std::os::fd::AsRawFd;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: renameat2 on names in a directory we hold open.
                unsafe {
                    libc::renameat2(
                        dir.as_raw_fd(),
                        a.as_ptr(),
                        dir.as_raw_fd(),
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
            }
        })
    };
    let (mut shown, mut refused) = (0, 0);
    for _ in 0..20 {
        let out = run(
            &g,
            &["--workspace", real.to_str().unwrap(), "--", "cat", "marker"],
        );
        assert!(
            !out.all().contains("secret"),
            "the link was followed: {out:?}"
        );
        if out.stdout.contains("real") {
            shown += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert_eq!(shown + refused, 20);
}

#[test]
fn the_sandbox_opens_a_granted_workspace_again_without_following_a_link_swapped_in_after_the_check()
{
    // The host checks, then hands the path to `cordon sandbox --no-links`; a link put in
    // the path's place between the two fails the sandbox instead of leading elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let ws = root.join("proj");
    std::fs::create_dir(&ws).unwrap();
    std::fs::create_dir(root.join("elsewhere")).unwrap();
    std::fs::write(root.join("elsewhere/marker"), "secret").unwrap();
    let sandbox = |ws: &Path| {
        cordon_test_support::process::output(
            std::process::Command::new(CORDON)
                .args(["sandbox", "--no-links", "--workspace"])
                .arg(ws)
                .args(["--", "cat", "marker"])
                .current_dir(&root),
        )
    };
    std::fs::write(ws.join("marker"), "real").unwrap();
    assert_eq!(sandbox(&ws).stdout, "real", "{:?}", sandbox(&ws));
    std::fs::rename(&ws, root.join("aside")).unwrap();
    std::os::unix::fs::symlink(root.join("elsewhere"), &ws).unwrap();
    let out = sandbox(&ws);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains("symbolic link") && !out.stdout.contains("secret"),
        "{out:?}"
    );
}

/// A few MB that are not text: every byte value, in an order that is not a repetition.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 2463534242;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn run_passes_piped_standard_input_through_byte_for_byte() {
    let g = granted("");
    let app = g.projects.join("alice/app");
    let ws = app.to_str().unwrap();
    let out = g.h.ssh_input(
        &g.alice,
        "alice",
        &["run", "--workspace", ws, "--", "sh", "-c", "'cat > f'"],
        b"hello through ssh\n".to_vec(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(app.join("f")).unwrap(),
        "hello through ssh\n"
    );
    // A binary payload of a few MB, whole and exact.
    let bytes = payload(3 << 20);
    let out = g.h.ssh_input(
        &g.alice,
        "alice",
        &["run", "--workspace", ws, "--", "sh", "-c", "'cat > blob'"],
        bytes.clone(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let got = std::fs::read(app.join("blob")).unwrap();
    assert_eq!(got.len(), bytes.len());
    assert!(got == bytes, "the bytes differ");
    // `tar cf - . | ssh HOST run -- tar xf -`.
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("sub/one.txt"), "one\n").unwrap();
    let tar = std::process::Command::new("tar")
        .args(["cf", "-", "-C"])
        .arg(src.path())
        .arg("sub")
        .output()
        .unwrap();
    let out = g.h.ssh_input(
        &g.alice,
        "alice",
        &["run", "--workspace", ws, "--", "tar", "xf", "-"],
        tar.stdout,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(app.join("sub/one.txt")).unwrap(),
        "one\n"
    );
    // With no input, the command reads its end at once.
    let out = g.h.ssh(&g.alice, "alice", &["run", "--", "wc", "-c"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "0"), "{out:?}");
}

#[test]
fn input_past_the_runners_limit_fails_the_run_and_is_never_cut_short_silently() {
    let g = granted("[runner]\nstdin_limit = \"64K\"\n");
    let app = g.projects.join("alice/app");
    let ws = app.to_str().unwrap();
    let out = g.h.ssh_input(
        &g.alice,
        "alice",
        &["run", "--workspace", ws, "--", "sh", "-c", "'cat > f'"],
        payload(1 << 20),
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("standard input passed the limit of 65536 bytes")
            && out.stderr.contains("[runner] stdin_limit"),
        "{out:?}"
    );
    // Within the limit, the same command is whole.
    let out = g.h.ssh_input(
        &g.alice,
        "alice",
        &["run", "--workspace", ws, "--", "sh", "-c", "'cat > f'"],
        payload(60 << 10),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(app.join("f")).unwrap(), payload(60 << 10));
    let audit = g.h.audit_log();
    assert!(audit.contains("stdin limit"), "{audit}");
}

/// `POST /v1/run` as `user` with `body`; the answer's status and JSON.
fn api_run(g: &Granted, user: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let out = g.h.cordon(&["token", "issue", user]);
    assert_eq!(out.code, 0, "{out:?}");
    let t: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let o = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-H",
            &format!(
                "Authorization: Bearer {}",
                t["access_token"].as_str().unwrap()
            ),
        ])
        .args(["--data-binary", &body.to_string()])
        .arg(format!("http://127.0.0.1:{}/v1/run", g.h.api))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (json, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn the_apis_run_takes_a_granted_path_and_standard_input_and_refuses_another_users_root() {
    let g = granted("");
    let app = g.projects.join("alice/app");
    // Bytes that are not text, through base64, into a file beneath the granted path.
    let input: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let (code, v) = api_run(
        &g,
        "alice",
        serde_json::json!({
            "argv": ["sh", "-c", "cat > in.bin && wc -c < in.bin && pwd"],
            "workspace": app.display().to_string(),
            "stdin": base64_encode(&input),
        }),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["exit_status"], 0, "{v}");
    assert_eq!(
        v["stdout"].as_str().unwrap().lines().next(),
        Some("3000"),
        "{v}"
    );
    assert_eq!(std::fs::read(app.join("in.bin")).unwrap(), input);
    // bob's root is not alice's.
    let (code, v) = api_run(
        &g,
        "alice",
        serde_json::json!({
            "argv": ["true"],
            "workspace": g.projects.join("bob/app").display().to_string(),
        }),
    );
    assert!((400..500).contains(&code), "{code} {v}");
    assert!(v.to_string().contains("not beneath"), "{v}");
}

/// Standard base64 with padding (what the API takes), written here to keep the test's
/// dependencies to the support crate's.
fn base64_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
