use super::*;
use crate::policy::Request;
use crate::profile::Search;
use std::os::unix::fs::PermissionsExt;

/// A place of its own: a program `mytool` in `bin/`, an empty `first/` before it on the
/// profile's PATH, a workspace, and a cache directory.
struct Fixture {
    root: tempfile::TempDir,
    profile: Profile,
    req: Request,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let r = std::fs::canonicalize(root.path()).unwrap();
        for d in ["bin", "first", "ws"] {
            std::fs::create_dir(r.join(d)).unwrap();
        }
        write_program(&r.join("bin/mytool"), "#!/bin/sh\necho one\n");
        let mut profile = Search::shipped_only().load("default").unwrap();
        profile.env_set.insert(
            "PATH".into(),
            format!(
                "{}:{}:/usr/bin:/bin",
                r.join("first").display(),
                r.join("bin").display()
            ),
        );
        profile.exec.push("mytool".into());
        let req = Request {
            workspace: Some(r.join("ws")),
            command: vec!["mytool".into()],
            home: Some(PathBuf::from("/root")),
            env: vec![("TERM".into(), "xterm".into())],
            ..Request::default()
        };
        // Changes made by a test must land in a later clock tick than the set-up.
        std::thread::sleep(Duration::from_millis(50));
        Fixture { root, profile, req }
    }

    fn path(&self, rel: &str) -> PathBuf {
        std::fs::canonicalize(self.root.path()).unwrap().join(rel)
    }

    fn store(&self) -> Store {
        Store::at(&self.path("cache"))
            .unwrap()
            .settling(Duration::ZERO)
    }

    fn key(&self, profile: &Profile) -> Key {
        Key::new(
            profile,
            &self.req,
            &self.path("ws"),
            Path::new("/root"),
            Caller::current(),
        )
    }

    fn entry(&self) -> PathBuf {
        self.path("cache").join(self.key(&self.profile).file_name())
    }

    /// Resolves through the cache, and says whether the cache now holds an entry that a
    /// next call would use.
    fn resolve(&self) -> (Policy, bool) {
        let store = self.store();
        let p = Policy::resolve_cached(&self.profile, &self.req, &store).unwrap();
        let hit = store.load(&self.key(&self.profile)).is_some();
        (p, hit)
    }
}

fn write_program(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_second_resolution_comes_from_the_cache_and_equals_a_fresh_one() {
    let f = Fixture::new();
    let (first, stored) = f.resolve();
    assert!(stored, "the first resolution was not stored");
    let (second, _) = f.resolve();
    let fresh = Policy::resolve(&f.profile, &f.req).unwrap();
    assert_eq!(second, fresh);
    assert_eq!(first, fresh);
    assert_eq!(second.program, f.path("bin/mytool"));
}

#[test]
fn replacing_a_program_of_the_allowlist_misses_the_cache() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    let tmp = f.path("bin/.mytool.new");
    write_program(&tmp, "#!/bin/bash\necho two\n");
    std::fs::rename(&tmp, f.path("bin/mytool")).unwrap();
    assert!(f.store().load(&f.key(&f.profile)).is_none());
    let (p, _) = f.resolve();
    assert!(
        p.exec.iter().any(|g| g.path == Path::new("/usr/bin/bash")),
        "the new interpreter is not on the allowlist: {:?}",
        p.exec
    );
}

#[test]
fn a_program_rewritten_in_place_misses_the_cache() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    std::fs::write(f.path("bin/mytool"), "#!/bin/bash\necho two\n").unwrap();
    assert!(f.store().load(&f.key(&f.profile)).is_none());
}

#[test]
fn a_program_put_earlier_on_path_misses_the_cache() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    write_program(&f.path("first/mytool"), "#!/bin/sh\necho earlier\n");
    assert!(f.store().load(&f.key(&f.profile)).is_none());
    assert_eq!(f.resolve().0.program, f.path("first/mytool"));
}

#[test]
fn a_changed_profile_misses_the_cache() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    let mut changed = f.profile.clone();
    changed.read.push("/srv".into());
    assert!(f.store().load(&f.key(&changed)).is_none());
}

#[test]
fn a_hidden_path_that_appears_misses_the_cache() {
    let f = Fixture::new();
    let mut profile = f.profile.clone();
    let secret = f.path("bin/secret");
    profile.hide.push(secret.display().to_string());
    let store = f.store();
    Policy::resolve_cached(&profile, &f.req, &store).unwrap();
    assert!(store.load(&f.key(&profile)).is_some());
    std::fs::write(&secret, "x").unwrap();
    assert!(store.load(&f.key(&profile)).is_none());
    let p = Policy::resolve_cached(&profile, &f.req, &store).unwrap();
    assert!(p.hide.contains(&secret), "{:?}", p.hide);
}

#[test]
fn an_entry_that_is_a_symbolic_link_is_not_read() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    let entry = f.entry();
    let elsewhere = f.path("elsewhere.json");
    std::fs::rename(&entry, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
    assert!(f.store().load(&f.key(&f.profile)).is_none());
}

#[test]
fn an_entry_others_may_write_is_not_read() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    std::fs::set_permissions(f.entry(), std::fs::Permissions::from_mode(0o622)).unwrap();
    assert!(f.store().load(&f.key(&f.profile)).is_none());
}

#[test]
fn an_entry_owned_by_another_uid_is_not_read() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let f = Fixture::new();
    assert!(f.resolve().1);
    let c = sys::cstr(&f.entry()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 4242, 4242) }, 0);
    assert!(f.store().load(&f.key(&f.profile)).is_none());
}

#[test]
fn an_entry_for_another_key_or_garbled_is_a_miss() {
    let f = Fixture::new();
    assert!(f.resolve().1);
    let mut other = f.profile.clone();
    other.read.push("/srv".into());
    let other_entry = f.path("cache").join(f.key(&other).file_name());
    std::fs::copy(f.entry(), &other_entry).unwrap();
    std::fs::set_permissions(&other_entry, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(f.store().load(&f.key(&other)).is_none());
    std::fs::write(f.entry(), b"{not json").unwrap();
    assert!(f.store().load(&f.key(&f.profile)).is_none());
}

#[test]
fn a_cache_directory_others_may_write_or_reached_through_a_link_is_not_used() {
    let root = tempfile::tempdir().unwrap();
    let open = root.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(Store::at(&open).is_none());
    let private = root.path().join("private");
    assert!(
        Store::at(&private).is_some(),
        "a new directory is made and used"
    );
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    assert!(Store::at(&link).is_none());
}

#[test]
fn protected_paths_and_the_environment_are_computed_on_every_call() {
    let f = Fixture::new();
    let (first, stored) = f.resolve();
    assert!(stored);
    let git = f.path("ws/.git");
    let held = |p: &Policy| {
        p.protect
            .iter()
            .any(|p| p.placeholder.as_ref() == Some(&git))
    };
    assert!(held(&first), "{:?}", first.protect);
    std::fs::create_dir_all(f.path("ws/.git/hooks")).unwrap();
    let mut req = f.req.clone();
    req.env = vec![("TERM".into(), "dumb".into())];
    let p = Policy::resolve_cached(&f.profile, &req, &f.store()).unwrap();
    assert!(!held(&p), "{:?}", p.protect);
    assert!(
        p.protect.iter().any(|p| p.path.starts_with(&git)),
        "{:?}",
        p.protect
    );
    assert!(
        p.env.contains(&("TERM".into(), "dumb".into())),
        "{:?}",
        p.env
    );
}

#[test]
fn the_way_to_the_workspace_is_not_watched_but_a_name_beside_it_is() {
    let fresh = vec![PathBuf::from("/tmp/ws")];
    assert!(watched(Path::new("/tmp/ws"), &fresh).is_empty());
    assert_eq!(
        watched(Path::new("/tmp/other"), &fresh),
        vec![PathBuf::from("/tmp"), PathBuf::from("/tmp/other")]
    );
    assert_eq!(
        watched(Path::new("/tmp/ws/bin/x"), &fresh),
        vec![
            PathBuf::from("/tmp/ws"),
            PathBuf::from("/tmp/ws/bin"),
            PathBuf::from("/tmp/ws/bin/x")
        ]
    );
    assert_eq!(
        watched(Path::new("/usr/bin/git"), &fresh),
        vec![
            PathBuf::from("/"),
            PathBuf::from("/usr"),
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/bin/git")
        ]
    );
}

#[test]
fn a_link_looked_at_brings_the_way_to_its_target() {
    let root = tempfile::tempdir().unwrap();
    let r = std::fs::canonicalize(root.path()).unwrap();
    std::fs::create_dir(r.join("alternatives")).unwrap();
    std::fs::write(r.join("real"), "").unwrap();
    std::os::unix::fs::symlink(r.join("real"), r.join("alternatives/tool")).unwrap();
    std::os::unix::fs::symlink(r.join("alternatives/tool"), r.join("tool")).unwrap();
    let mut resolver = Resolver::default();
    resolver.note(&r.join("tool"));
    let deps = dependencies(&mut resolver, &[]).unwrap();
    let paths: Vec<&Path> = deps.iter().map(|d| d.path.as_path()).collect();
    for p in [
        r.join("alternatives"),
        r.join("alternatives/tool"),
        r.join("real"),
    ] {
        assert!(
            paths.contains(&p.as_path()),
            "{} not watched: {paths:?}",
            p.display()
        );
    }
}

#[test]
fn a_missing_name_is_watched_by_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let r = std::fs::canonicalize(root.path()).unwrap();
    let mut resolver = Resolver::default();
    resolver.note(&r.join("absent"));
    let deps = dependencies(&mut resolver, &[]).unwrap();
    assert!(deps.iter().all(|d| d.path != r.join("absent")));
    assert!(deps.iter().any(|d| d.path == r && d.id.is_some()));
}

#[test]
fn a_dependency_changed_moments_before_the_resolution_is_not_stored() {
    let now = SystemTime::now();
    let at = |t: SystemTime| {
        let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        Dependency {
            path: PathBuf::from("/x"),
            id: Some(FileId {
                dev: 1,
                ino: 1,
                mode: libc::S_IFDIR,
                uid: 0,
                gid: 0,
                nlink: 1,
                size: 0,
                mtime: (d.as_secs() as i64, 0),
                ctime: (d.as_secs() as i64, i64::from(d.subsec_nanos())),
            }),
        }
    };
    assert!(!settled(&[at(now)], now, SETTLED));
    assert!(settled(&[at(now - Duration::from_secs(10))], now, SETTLED));
}

#[test]
fn two_runs_differing_only_in_a_flag_do_not_share_an_entry() {
    let f = Fixture::new();
    for d in ["a", "b"] {
        std::fs::create_dir(f.path(d)).unwrap();
    }
    let with = |flags: crate::profile::Flags| f.profile.clone().with_flags(&flags).unwrap();
    let writes = |d: &str| {
        with(crate::profile::Flags {
            write: vec![f.path(d)],
            ..Default::default()
        })
    };
    let (a, b) = (writes("a"), writes("b"));
    let starts_in = with(crate::profile::Flags {
        chdir: Some(f.path("ws")),
        ..Default::default()
    });
    let names: Vec<String> = [&f.profile, &a, &b, &starts_in]
        .iter()
        .map(|p| f.key(p).file_name())
        .collect();
    for (i, n) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(n), "{names:?}");
    }
    let store = f.store();
    let first = Policy::resolve_cached(&a, &f.req, &store).unwrap();
    assert!(store.load(&f.key(&a)).is_some(), "stored under a's key");
    assert!(store.load(&f.key(&b)).is_none(), "and found under no other");
    let second = Policy::resolve_cached(&b, &f.req, &store).unwrap();
    assert!(first.write.contains(&f.path("a")) && !first.write.contains(&f.path("b")));
    assert!(second.write.contains(&f.path("b")) && !second.write.contains(&f.path("a")));
}

#[test]
fn a_value_given_with_env_is_neither_in_the_key_nor_in_the_entry() {
    let f = Fixture::new();
    let profile = f
        .profile
        .clone()
        .with_flags(&crate::profile::Flags {
            env: vec!["API_TOKEN=s3cr3t-value".into()],
            ..Default::default()
        })
        .unwrap();
    let store = f.store();
    let p = Policy::resolve_cached(&profile, &f.req, &store).unwrap();
    assert!(p.env.contains(&("API_TOKEN".into(), "s3cr3t-value".into())));
    let entry = f.path("cache").join(f.key(&profile).file_name());
    let text = std::fs::read_to_string(&entry).expect("the entry was stored");
    assert!(text.contains("API_TOKEN"), "the name is part of the key");
    assert!(!text.contains("s3cr3t-value"), "{text}");
    let again = Policy::resolve_cached(&profile, &f.req, &store).unwrap();
    assert_eq!(
        again, p,
        "the value comes back from the profile, not the entry"
    );
}
