//! Files in and out with OpenSSH's own `sftp` and `scp` against `cordon serve`: each user
//! reaches only their own home and workspace, acting as their own uid, links planted in
//! their tree are never followed, every copy is audited with its path and size, and a lock
//! or a role that may not copy files stops them.

use cordon_test_support::host::Host;
use cordon_test_support::process::{output, Out};
use cordon_test_support::wait::wait_until;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// The options every client here needs: this key alone, no host key check, no questions.
fn options(key: &Path) -> Vec<String> {
    [
        "-i",
        &key.display().to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ]
    .map(String::from)
    .to_vec()
}

/// `sftp -b -` with `script` as its commands (a `-` before a command lets the batch go on
/// when it fails).
fn sftp(h: &Host, key: &Path, user: &str, script: &str) -> Out {
    let mut child = Command::new("sftp")
        .args(options(key))
        .args(["-P", &h.port.to_string(), "-b", "-"])
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sftp runs (openssh-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(128),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn scp(h: &Host, key: &Path, extra: &[&str], from: &str, to: &str) -> Out {
    output(
        Command::new("scp")
            .args(options(key))
            .args(["-P", &h.port.to_string()])
            .args(extra)
            .args([from, to])
            .stdin(Stdio::null()),
    )
}

/// A file of `len` bytes that differ from any other test's (a simple generator, no zeros).
fn payload(dir: &Path, name: &str, len: usize, seed: u32) -> PathBuf {
    let mut x = seed | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn events(h: &Host, name: &str) -> Vec<serde_json::Value> {
    h.audit_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == name)
        .collect()
}

#[test]
fn two_users_put_and_get_their_own_files_byte_for_byte_and_see_only_their_own() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    let local = tempfile::tempdir().unwrap();
    let mb = 3 << 20;
    let a = payload(local.path(), "a.bin", mb, 7);
    let b = payload(local.path(), "b.bin", mb + 123, 11);
    let (a_back, b_back) = (local.path().join("a.back"), local.path().join("b.back"));

    for (key, user, file, back, name) in [
        (&alice, "alice", &a, &a_back, "alice.bin"),
        (&bob, "bob", &b, &b_back, "bob.bin"),
    ] {
        let out = sftp(
            &h,
            key,
            user,
            &format!(
                "pwd\nput {} {name}\nget /workspace/{name} {}\nls -1 /workspace\nls -1 /\n",
                file.display(),
                back.display()
            ),
        );
        assert_eq!(out.code, 0, "{user}: {out:?}");
        assert!(
            out.stdout.contains("Remote working directory: /workspace"),
            "{out:?}"
        );
        assert_eq!(
            std::fs::read(file).unwrap(),
            std::fs::read(back).unwrap(),
            "{user} gets back what they put"
        );
        let on_host = h.workspace(user).join(name);
        assert_eq!(
            std::fs::read(&on_host).unwrap(),
            std::fs::read(file).unwrap()
        );
        assert_eq!(
            std::fs::metadata(&on_host).unwrap().uid(),
            h.uid(user),
            "{user}'s file belongs to {user}'s session uid"
        );
        let other = if user == "alice" {
            "bob.bin"
        } else {
            "alice.bin"
        };
        assert!(!out.stdout.contains(other), "{user} sees {other}: {out:?}");
        assert!(out.stdout.contains("home") && out.stdout.contains("workspace"));
    }

    // Every spelling that climbs out stops at the top of alice's own tree.
    let stolen = local.path().join("stolen");
    for path in [
        "/workspace/../../bob/bob.bin",
        "../../workspaces/bob/bob.bin",
        "/workspace/../../../etc/passwd",
        "../../../../etc/passwd",
        "/bob/bob.bin",
        "/home/../../bob/bob.bin",
    ] {
        let out = sftp(
            &h,
            &alice,
            "alice",
            &format!("get {path} {}\n", stolen.display()),
        );
        assert_ne!(out.code, 0, "{path}: {out:?}");
        assert!(!stolen.exists(), "alice got {path}");
    }
    let out = sftp(&h, &alice, "alice", "ls -1 /workspace/../..\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("bob"), "{out:?}");

    // Audited: each copy, with its path in the tree and its size.
    let written = events(&h, "file.write");
    assert!(
        written.iter().any(|e| e["actor"] == "alice"
            && e["path"] == "/workspace/alice.bin"
            && e["bytes"] == mb),
        "{written:?}"
    );
    let read = events(&h, "file.read");
    assert!(
        read.iter().any(|e| e["actor"] == "bob"
            && e["path"] == "/workspace/bob.bin"
            && e["bytes"] == mb + 123),
        "{read:?}"
    );
    assert!(!events(&h, "files.start").is_empty());
}

#[test]
fn links_planted_in_a_workspace_are_listed_but_never_followed() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    let local = tempfile::tempdir().unwrap();
    let x = payload(local.path(), "x", 1000, 3);
    // Both places exist once each has logged in for files.
    let keep = payload(local.path(), "keep", 10, 1);
    let out = sftp(&h, &bob, "bob", &format!("put {} keep\n", keep.display()));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(sftp(&h, &alice, "alice", "ls\n").code, 0);
    let ws = h.workspace("alice");
    std::os::unix::fs::symlink("/etc", ws.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ws.join("hostname")).unwrap();
    std::os::unix::fs::symlink(h.workspace("bob"), ws.join("bobs")).unwrap();
    let hostname = std::fs::read("/etc/hostname").unwrap_or_default();

    let got = local.path().join("got");
    for cmd in [
        format!("get etc/passwd {}", got.display()),
        format!("get hostname {}", got.display()),
        format!("get bobs/keep {}", got.display()),
        format!("put {} bobs/x", x.display()),
        format!("put {} hostname", x.display()),
        format!("put {} etc/x", x.display()),
        "mkdir bobs/d".to_string(),
        "rename bobs/keep mine".to_string(),
        "symlink /etc planted".to_string(),
        "chmod 777 bobs".to_string(),
    ] {
        let out = sftp(&h, &alice, "alice", &format!("{cmd}\n"));
        assert_ne!(out.code, 0, "{cmd}: {out:?}");
    }
    assert!(!got.exists());
    assert!(!h.workspace("bob").join("x").exists());
    assert!(!h.workspace("bob").join("d").exists());
    assert!(h.workspace("bob").join("keep").exists());
    assert!(!ws.join("mine").exists() && !ws.join("planted").exists());
    assert_eq!(std::fs::read("/etc/hostname").unwrap_or_default(), hostname);
    assert!(!Path::new("/etc/x").exists());
    // Listed as what they are.
    let out = sftp(&h, &alice, "alice", "ls -l\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("bobs"), "{out:?}");
    // Removing a link removes the link, never its target.
    let out = sftp(&h, &alice, "alice", "rm bobs\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(h.workspace("bob").join("keep").exists());
    let refused = events(&h, "refused");
    assert!(
        refused.iter().any(|e| e["actor"] == "alice"
            && e["why"]
                .as_str()
                .unwrap_or_default()
                .contains("symbolic link")),
        "{refused:?}"
    );
}

#[test]
fn folders_are_made_renamed_and_removed_within_the_tree_and_audited() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let local = tempfile::tempdir().unwrap();
    let f = payload(local.path(), "f", 4096, 5);
    let out = sftp(
        &h,
        &alice,
        "alice",
        &format!(
            "mkdir d\nput {} d/f\nrename d/f d/g\nput {} /home/notes\nrename /home/notes d/notes\nrm d/g\nchmod 600 d/notes\n",
            f.display(),
            f.display()
        ),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let d = h.workspace("alice").join("d");
    assert!(!d.join("f").exists() && !d.join("g").exists());
    assert_eq!(
        std::fs::read(d.join("notes")).unwrap(),
        std::fs::read(&f).unwrap()
    );
    assert_eq!(
        std::fs::metadata(d.join("notes")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::metadata(&d).unwrap().uid(), h.uid("alice"));
    // Nothing above the roots can be made or renamed into.
    for cmd in [
        "mkdir /newroot",
        "rename d /etc/d",
        "rmdir /workspace",
        "rename /home /h",
    ] {
        let out = sftp(&h, &alice, "alice", &format!("{cmd}\n"));
        assert_ne!(out.code, 0, "{cmd}: {out:?}");
    }
    assert!(!Path::new("/etc/d").exists());
    let out = sftp(&h, &alice, "alice", "rm d/notes\nrmdir d\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!d.exists());
    for (event, field, value) in [
        ("file.mkdir", "path", "/workspace/d"),
        ("file.rename", "to", "/workspace/d/g"),
        ("file.rename", "from", "/home/notes"),
        ("file.remove", "path", "/workspace/d/g"),
        ("file.rmdir", "path", "/workspace/d"),
        ("file.attrs", "path", "/workspace/d/notes"),
    ] {
        assert!(
            events(&h, event).iter().any(|e| e[field] == value),
            "{event} {field}={value}"
        );
    }
}

#[test]
fn scp_copies_over_sftp_and_legacy_scp_and_viewers_are_refused() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let viewer = h.user("vera", "viewer");
    let local = tempfile::tempdir().unwrap();
    let f = payload(local.path(), "f", 200_000, 9);
    let back = local.path().join("back");
    let out = scp(
        &h,
        &alice,
        &[],
        &f.display().to_string(),
        "alice@127.0.0.1:f",
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = scp(
        &h,
        &alice,
        &[],
        "alice@127.0.0.1:/workspace/f",
        &back.display().to_string(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(&f).unwrap(), std::fs::read(&back).unwrap());

    let out = scp(
        &h,
        &alice,
        &["-O"],
        &f.display().to_string(),
        "alice@127.0.0.1:g",
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("legacy scp"), "{out:?}");
    assert!(!h.workspace("alice").join("g").exists());

    let out = sftp(&h, &viewer, "vera", "ls\n");
    assert_ne!(out.code, 0, "{out:?}");
    let out = scp(
        &h,
        &viewer,
        &[],
        &f.display().to_string(),
        "vera@127.0.0.1:f",
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!h.workspace("vera").join("f").exists());
    assert!(
        events(&h, "refused").iter().any(|e| e["actor"] == "vera"
            && e["why"]
                .as_str()
                .unwrap_or_default()
                .contains("may not copy files")),
        "the viewer's refusal is audited"
    );
}

#[test]
fn a_user_locked_mid_connection_copies_nothing_more() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let local = tempfile::tempdir().unwrap();
    let f = payload(local.path(), "f", 10_000, 13);
    let mut child = Command::new("sftp")
        .args(options(&alice))
        .args(["-P", &h.port.to_string(), "-b", "-"])
        .arg("alice@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "put {} first", f.display()).unwrap();
    let first = h.workspace("alice").join("first");
    wait_until("the first file arrives", || {
        first.metadata().is_ok_and(|m| m.len() == 10_000)
    });
    let out = h.cordon(&["user", "lock", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    writeln!(stdin, "put {} second", f.display()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "{o:?}");
    assert!(!h.workspace("alice").join("second").exists());
}

#[test]
fn a_granted_workspace_root_is_a_folder_of_the_tree_and_another_users_is_not() {
    let projects = tempfile::tempdir().unwrap();
    let h = Host::start_with(
        CORDON,
        &format!(
            "[workspaces]\nroles.developer = [\"{}/{{user}}\"]",
            projects.path().display()
        ),
    );
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    // The operator made alice's project directory and gave it to her sessions' account;
    // bob has none.
    let mine = projects.path().join("alice");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::chown(&mine, Some(h.uid("alice")), Some(h.uid("alice"))).unwrap();
    std::fs::write(mine.join("README"), "alice's project\n").unwrap();
    let local = h.keys.path().join("got");
    let out = sftp(
        &h,
        &alice,
        "alice",
        &format!(
            "ls /\nget /alice/README {}\nput {} /alice/copy\n",
            local.display(),
            local.display()
        ),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("/alice"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&local).unwrap(),
        "alice's project\n"
    );
    let copy = std::fs::metadata(mine.join("copy")).unwrap();
    assert_eq!(copy.uid(), h.uid("alice"), "what alice puts is hers");
    // bob's tree has no such folder, and alice's is not reachable by its name.
    let out = sftp(&h, &bob, "bob", "ls /\n-get /alice/README\n");
    let listed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("sftp>"))
        .collect();
    assert!(listed.iter().all(|l| !l.contains("/alice")), "{out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");
    assert!(!h.keys.path().join("README").exists());
}
