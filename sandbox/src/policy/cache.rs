//! A cache of resolved policies: starting a sandbox need not look up every program of the
//! allowlist, every interpreter and every grant again when nothing they depend on changed.
//!
//! A resolution depends on its inputs (the profile as merged, the command, the workspace and
//! home, the identity, the caller's ids, cordon's own binary: the [`Key`]) and on the files
//! it looked at. The resolver notes every path it looked at; the cache keeps, for each, the
//! path's identity as `lstat` gives it (device, inode, mode, owner, size, mtime, ctime),
//! and for each directory on the way, the directory's own identity: a name added, removed
//! or renamed in a directory changes the directory's ctime, a file written or chmod-ed
//! changes its own, and a mount on the way changes the device and inode seen. A cached
//! policy is used only when every identity is the same again; anything else (a changed,
//! missing or unreadable dependency, an entry another uid could have written, a link where
//! the entry should be, an entry that does not parse) is a miss, and the policy is
//! resolved afresh. A resolution with a dependency changed less than [`SETTLED`] before
//! it began is not stored: a change in the same clock tick as the look could leave the
//! ctime as it was.
//!
//! The workspace and the home are resolved on every call (they are part of the key), so
//! the directories on their way are not dependencies unless something else beneath them
//! was looked at. Never cached: the protected paths (they depend on what the workspace
//! holds now) and the environment (the caller's, and the values of `[env] set` and `--env`,
//! which stay out of the key too: any of them may be a secret).
//!
//! Entries live in a directory only the caller's uid can use (`/run/cordon/policies` as
//! root, `$XDG_RUNTIME_DIR/cordon-policies` otherwise), opened without following links and
//! checked (owned by the effective uid, no access for group or others); each entry is a
//! file owned by that uid, mode 0600, written aside and renamed into place.

use super::Policy;
use crate::binfmt::Resolver;
use crate::identity::Caller;
use crate::profile::Profile;
use crate::sys;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a dependency must have stood unchanged before a resolution that saw it is
/// stored (ctime has the granularity of the kernel's coarse clock, or worse on some
/// filesystems).
pub const SETTLED: Duration = Duration::from_secs(2);

/// Entries beyond this many are all removed before a new one is written (a host with many
/// workspaces makes one per workspace and command).
const MAX_ENTRIES: usize = 256;

/// The largest entry read.
const MAX_ENTRY_BYTES: u64 = 4 << 20;

/// Bumped when what an entry holds, or what a resolution depends on, changes meaning.
const FORMAT: &str = "cordon policy cache 1";

/// What a resolution was asked: everything but the files it looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    text: String,
    /// The workspace and (when it is a real directory reached without links) the home:
    /// resolved on every call, so the directories on their way need no watching.
    fresh: Vec<PathBuf>,
}

impl Key {
    /// The key of resolving `profile` for `req`, with the workspace and home already
    /// resolved for this call.
    pub(crate) fn new(
        profile: &Profile,
        req: &super::Request,
        workspace: &Path,
        home: &Path,
        caller: Caller,
    ) -> Key {
        // A home that is not itself a directory reached without links is looked up through
        // whatever stands there: then its way is watched like any other path.
        let home_plain = sys::openat2(
            None,
            home,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )
        .is_ok();
        let exe = lstat_following(Path::new("/proc/self/exe"));
        let profile = without_values(profile);
        let text = format!(
            "{FORMAT}\nexe {exe:?}\nprofile {profile:?}\ncommand {:?}\nhide {:?}\nidentity {:?}\nno_links {}\nworkspace {workspace:?}\nhome {home:?} {home_plain}\ncaller {caller:?}\n",
            req.command, req.hide, req.identity, req.no_links,
        );
        let mut fresh = vec![workspace.to_path_buf()];
        if home_plain {
            fresh.push(home.to_path_buf());
        }
        Key { text, fresh }
    }

    /// The entry's file name.
    fn file_name(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.text.hash(&mut h);
        format!("{:016x}.json", h.finish())
    }
}

/// `profile` less the values of its variables but PATH's: only PATH decides a resolution
/// (the environment is computed on every call), and a value given with `--env` may be a
/// secret, which the cache's files must not keep.
fn without_values(profile: &Profile) -> Profile {
    let mut p = profile.clone();
    for (name, value) in p.env_set.iter_mut() {
        if name != "PATH" {
            value.clear();
        }
    }
    if let Some(flags) = p.flags.as_mut() {
        for e in flags.env.iter_mut() {
            if let Some(at) = e.find('=') {
                e.truncate(at);
            }
        }
    }
    p
}

/// What `lstat` says of a path, as far as a resolution could tell a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn from_stat(st: &libc::stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            nlink: st.st_nlink,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    fn is_link(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    /// Whether its ctime is at least `settle` older than `started`.
    fn settled_before(&self, started: SystemTime, settle: Duration) -> bool {
        let Ok(since) = started.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let ctime = Duration::new(
            u64::try_from(self.ctime.0).unwrap_or(u64::MAX),
            u32::try_from(self.ctime.1).unwrap_or(0),
        );
        ctime + settle <= since
    }
}

/// A path a resolution depended on, and its identity then (`None`: it did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    path: PathBuf,
    id: Option<FileId>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    deps: Vec<Dependency>,
    policy: Policy,
}

/// `lstat(path)`: `None` when nothing is there (`ENOENT`, `ENOTDIR`); an error when it
/// cannot be told (`EACCES`: the cache cannot watch what it cannot see).
fn lstat(path: &Path) -> std::io::Result<Option<FileId>> {
    stat_with(path, libc::AT_SYMLINK_NOFOLLOW)
}

fn lstat_following(path: &Path) -> Option<FileId> {
    stat_with(path, 0).ok().flatten()
}

fn stat_with(path: &Path, flags: libc::c_int) -> std::io::Result<Option<FileId>> {
    let c = sys::cstr(path)?;
    // SAFETY: a zeroed stat struct filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and out-pointer.
    if unsafe { libc::fstatat(libc::AT_FDCWD, c.as_ptr(), &mut st, flags) } == 0 {
        return Ok(Some(FileId::from_stat(&st)));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
        _ => Err(e),
    }
}

/// Whether `p` is one of `fresh` or lies on the way to one: resolved on every call.
fn on_fresh_way(p: &Path, fresh: &[PathBuf]) -> bool {
    fresh.iter().any(|f| f.starts_with(p))
}

/// The paths whose identities tell whether looking `probe` up again would give the same
/// answer: every directory on its way (its names decide the next step) and the path
/// itself, less the steps that lead into the workspace or home (checked on every call).
/// Pure.
pub fn watched(probe: &Path, fresh: &[PathBuf]) -> Vec<PathBuf> {
    let mut way: Vec<PathBuf> = probe.ancestors().map(Path::to_path_buf).collect();
    way.reverse();
    let mut out = Vec::new();
    for (i, p) in way.iter().enumerate() {
        let skip = match way.get(i + 1) {
            Some(next) => on_fresh_way(next, fresh),
            None => on_fresh_way(p, fresh),
        };
        if !skip {
            out.push(p.clone());
        }
    }
    out
}

/// The dependencies of the resolution `resolver` made: every path it looked at, watched as
/// [`watched`] says, links followed to what they name. `None` when a lookup cannot be
/// checked again (a relative path, a path the cache cannot `lstat`).
pub fn dependencies(resolver: &mut Resolver, fresh: &[PathBuf]) -> Option<Vec<Dependency>> {
    let mut seen: BTreeMap<PathBuf, Option<FileId>> = BTreeMap::new();
    let mut done: std::collections::BTreeSet<PathBuf> = Default::default();
    loop {
        let todo: Vec<PathBuf> = resolver
            .probed()?
            .iter()
            .filter(|p| !done.contains(*p))
            .cloned()
            .collect();
        if todo.is_empty() {
            break;
        }
        for probe in todo {
            if !probe.is_absolute() {
                return None;
            }
            for p in watched(&probe, fresh) {
                if seen.contains_key(&p) {
                    continue;
                }
                let id = lstat(&p).ok()?;
                if id.is_some_and(|i| i.is_link()) {
                    // What a lookup through it met: the resolver notes the way.
                    resolver.canonicalize(&p);
                }
                seen.insert(p, id);
            }
            done.insert(probe);
        }
    }
    // A missing name is watched by its directory, whose ctime changes when it appears.
    let present = |p: &Path| {
        p.parent()
            .is_some_and(|d| seen.get(d).is_some_and(|i| i.is_some()))
    };
    Some(
        seen.iter()
            .filter(|(p, id)| id.is_some() || !present(p))
            .map(|(p, id)| Dependency {
                path: p.clone(),
                id: *id,
            })
            .collect(),
    )
}

/// Whether every dependency stood unchanged for `settle` before `started`, so that a
/// change after it shows as a new ctime.
pub fn settled(deps: &[Dependency], started: SystemTime, settle: Duration) -> bool {
    deps.iter()
        .filter_map(|d| d.id)
        .all(|id| id.settled_before(started, settle))
}

/// Whether every dependency is as it was.
fn unchanged(deps: &[Dependency]) -> bool {
    deps.iter()
        .all(|d| matches!(lstat(&d.path), Ok(now) if now == d.id))
}

/// The cache's directory, held open.
#[derive(Debug)]
pub struct Store {
    dir: OwnedFd,
    /// The effective uid that owns the directory and every entry.
    owner: u32,
    /// How long dependencies must have stood unchanged ([`SETTLED`]; tests shorten it).
    settle: Duration,
}

impl Store {
    /// The usual place for this uid: `/run/cordon/policies` as root,
    /// `$XDG_RUNTIME_DIR/cordon-policies` otherwise; `None` where there is none, or it
    /// is not private to this uid.
    pub fn standard() -> Option<Store> {
        // SAFETY: geteuid cannot fail.
        let path = if unsafe { libc::geteuid() } == 0 {
            PathBuf::from("/run/cordon/policies")
        } else {
            PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?).join("cordon-policies")
        };
        Store::at(&path)
    }

    /// The cache in `path` (absolute), created (0700) if missing; `None` when it cannot be
    /// opened without following a link, or is not a directory owned by the effective uid
    /// with no access for group or others.
    pub fn at(path: &Path) -> Option<Store> {
        use std::os::unix::fs::DirBuilderExt;
        if !path.is_absolute() {
            return None;
        }
        let open = || {
            sys::openat2(
                None,
                path,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
            )
        };
        let dir = match open() {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .ok()?;
                open().ok()?
            }
            Err(_) => return None,
        };
        // SAFETY: geteuid cannot fail.
        let owner = unsafe { libc::geteuid() };
        let st = fstat(dir.as_raw_fd())?;
        (st.st_mode & libc::S_IFMT == libc::S_IFDIR
            && st.st_uid == owner
            && st.st_mode & 0o077 == 0)
            .then_some(Store {
                dir,
                owner,
                settle: SETTLED,
            })
    }

    #[cfg(test)]
    fn settling(mut self, settle: Duration) -> Store {
        self.settle = settle;
        self
    }

    /// The cached policy for `key`, if its entry is ours and every dependency unchanged.
    pub(crate) fn load(&self, key: &Key) -> Option<Policy> {
        let name = sys::cstr(Path::new(&key.file_name())).ok()?;
        // SAFETY: a valid dir fd and C string.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just returned this fd.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let st = fstat(file.as_raw_fd())?;
        // Only an entry this uid wrote, that nobody else could have changed.
        if st.st_mode & libc::S_IFMT != libc::S_IFREG
            || st.st_uid != self.owner
            || st.st_mode & 0o077 != 0
            || st.st_nlink != 1
        {
            return None;
        }
        let mut text = Vec::new();
        file.take(MAX_ENTRY_BYTES).read_to_end(&mut text).ok()?;
        let entry: Entry = serde_json::from_slice(&text).ok()?;
        (entry.key == key.text && unchanged(&entry.deps)).then_some(entry.policy)
    }

    /// Stores `policy` (resolved from `started` on, by `resolver`) under `key`, when every
    /// dependency can be watched and had settled. Failing to store is not an error: the
    /// next call resolves again.
    pub(crate) fn save(
        &self,
        key: &Key,
        resolver: &mut Resolver,
        policy: &Policy,
        started: SystemTime,
    ) {
        let Some(deps) = dependencies(resolver, &key.fresh) else {
            return;
        };
        if !settled(&deps, started, self.settle) {
            return;
        }
        let mut policy = policy.clone();
        policy.env.clear();
        policy.protect.clear();
        let entry = Entry {
            key: key.text.clone(),
            deps,
            policy,
        };
        let Ok(json) = serde_json::to_vec(&entry) else {
            return;
        };
        self.prune();
        let name = key.file_name();
        let tmp = format!(".{name}.{}.tmp", std::process::id());
        let (Ok(c_tmp), Ok(c_name)) = (sys::cstr(Path::new(&tmp)), sys::cstr(Path::new(&name)))
        else {
            return;
        };
        let dir = self.dir.as_raw_fd();
        // SAFETY: a valid dir fd and C string.
        let fd = unsafe {
            libc::openat(
                dir,
                c_tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd < 0 {
            return;
        }
        // SAFETY: the kernel just returned this fd.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let written = file.write_all(&json).is_ok();
        drop(file);
        // SAFETY: valid dir fd and C strings.
        let renamed =
            written && unsafe { libc::renameat(dir, c_tmp.as_ptr(), dir, c_name.as_ptr()) } == 0;
        if !renamed {
            // SAFETY: as above.
            unsafe { libc::unlinkat(dir, c_tmp.as_ptr(), 0) };
        }
    }

    /// Removes every entry when there are more than [`MAX_ENTRIES`].
    fn prune(&self) {
        let listing = format!("/proc/self/fd/{}", self.dir.as_fd().as_raw_fd());
        let Ok(names) = std::fs::read_dir(&listing) else {
            return;
        };
        let names: Vec<_> = names
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        if names.len() <= MAX_ENTRIES {
            return;
        }
        for n in names {
            if let Ok(c) = sys::cstr(Path::new(&n)) {
                // SAFETY: a valid dir fd and C string.
                unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
            }
        }
    }
}

fn fstat(fd: i32) -> Option<libc::stat> {
    // SAFETY: a zeroed stat struct filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and out-pointer.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st)
}

#[cfg(test)]
mod tests;
