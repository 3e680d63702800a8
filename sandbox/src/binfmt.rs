//! What else the kernel runs when it executes a file: the ELF interpreter (the dynamic
//! loader named in PT_INTERP) and the `#!` interpreter of a script. Landlock checks EXECUTE
//! on both, so each allowlisted program brings its interpreters onto the allowlist.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Resolves paths to their canonical form, remembering every directory and link it has
/// looked at: resolving seventy programs in /usr/bin then costs one lstat each, not five.
/// Live for one policy resolution only, so it never goes stale.
#[derive(Default)]
pub struct Resolver {
    /// For each path looked at: `None` if absent, `Some(None)` if not a symlink,
    /// `Some(Some(target))` if a symlink.
    seen: HashMap<PathBuf, Option<Option<PathBuf>>>,
    /// The direct interpreters of each program already read.
    interps: HashMap<PathBuf, Vec<Interpreter>>,
    /// Directories held open, so that a name in them is looked up without walking the
    /// directory's path again.
    dirs: HashMap<PathBuf, Option<OwnedFd>>,
    /// Directories whose links are never followed (a host's homes and workspaces): a link
    /// beneath one is treated as absent.
    untrusted: Vec<PathBuf>,
    /// The links beneath `untrusted` met since the last [`Resolver::take_refused`].
    refused: Vec<PathBuf>,
    /// How many times a link was refused, ever (to tell "absent" from "refused").
    refusals: usize,
    /// Every path looked at (stat, opened or read), for the policy cache: what a resolution
    /// depended on ([`crate::policy::cache`]).
    probed: std::collections::BTreeSet<PathBuf>,
    /// A lookup was made that the cache cannot check again (a relative path, resolved
    /// against the current directory).
    unrepeatable: bool,
}

/// What `fstatat` says of a name in a directory.
struct Stat {
    mode: libc::mode_t,
}

impl Resolver {
    fn dir_fd(&mut self, dir: &Path) -> Option<i32> {
        if !self.dirs.contains_key(dir) {
            self.probed.insert(dir.to_path_buf());
            let fd = CString::new(dir.as_os_str().as_bytes()).ok().and_then(|c| {
                // SAFETY: a valid C string; the fd is owned by the map.
                let fd = unsafe {
                    libc::open(
                        c.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                // SAFETY: the kernel just returned this fd.
                (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
            });
            self.dirs.insert(dir.to_path_buf(), fd);
        }
        self.dirs
            .get(dir)
            .and_then(|f| f.as_ref().map(|f| f.as_raw_fd()))
    }

    /// fstatat of `p`'s last component relative to its (held open) parent.
    fn stat(&mut self, p: &Path, follow: bool) -> Option<Stat> {
        let (parent, name) = (p.parent()?, p.file_name()?);
        self.probed.insert(p.to_path_buf());
        let fd = self.dir_fd(parent)?;
        let name = CString::new(name.as_bytes()).ok()?;
        // SAFETY: a zeroed stat struct filled by the kernel.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        // SAFETY: valid fd, C string and out-pointer.
        (unsafe { libc::fstatat(fd, name.as_ptr(), &mut st, flags) } == 0)
            .then_some(Stat { mode: st.st_mode })
    }

    fn lookup(&mut self, p: &Path) -> Option<Option<PathBuf>> {
        let v = match self.seen.get(p) {
            Some(v) => v.clone(),
            None => {
                let v = self.stat(p, false).map(|st| {
                    if st.mode & libc::S_IFMT == libc::S_IFLNK {
                        std::fs::read_link(p).ok()
                    } else {
                        None
                    }
                });
                self.seen.insert(p.to_path_buf(), v.clone());
                v
            }
        };
        if matches!(v, Some(Some(_))) && self.untrusted.iter().any(|d| p.starts_with(d)) {
            self.refusals += 1;
            if !self.refused.iter().any(|r| r == p) {
                self.refused.push(p.to_path_buf());
            }
            return None;
        }
        v
    }

    /// Never follows a link beneath `dir` from now on: such a link is treated as absent,
    /// and remembered for [`Resolver::take_refused`].
    pub fn distrust(&mut self, dir: &Path) {
        self.untrusted.push(dir.to_path_buf());
    }

    /// Notes that the resolution depended on `p` (looked at outside this resolver).
    pub fn note(&mut self, p: &Path) {
        if p.is_absolute() {
            self.probed.insert(p.to_path_buf());
        } else {
            self.unrepeatable = true;
        }
    }

    /// The paths looked at so far, and whether every lookup can be checked again (none
    /// was relative to the current directory).
    pub(crate) fn probed(&self) -> Option<&std::collections::BTreeSet<PathBuf>> {
        (!self.unrepeatable).then_some(&self.probed)
    }

    /// The links not followed since the last call.
    pub fn take_refused(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.refused)
    }

    /// The canonical form of `p`; `p` as it is when it does not exist (the kernel will say
    /// so when it tries); `None` when a link that must not be followed stands in the way.
    fn canonical_or_raw(&mut self, p: &Path) -> Option<PathBuf> {
        let before = self.refusals;
        match self.canonicalize(p) {
            Some(c) => Some(c),
            None if self.refusals > before => None,
            None => Some(p.to_path_buf()),
        }
    }

    /// Like `std::fs::canonicalize` (the path must exist), for absolute paths.
    pub fn canonicalize(&mut self, p: &Path) -> Option<PathBuf> {
        if !p.is_absolute() {
            // Relative to the current directory, which may lie anywhere: with untrusted
            // directories about, such a path is not resolved at all.
            self.unrepeatable = true;
            return if self.untrusted.is_empty() {
                std::fs::canonicalize(p).ok()
            } else {
                None
            };
        }
        let mut todo = components_rev(p);
        let mut out = PathBuf::from("/");
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                out.pop();
                continue;
            }
            let candidate = out.join(&name);
            match self.lookup(&candidate)? {
                None => out = candidate,
                Some(target) => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    if target.is_absolute() {
                        out = PathBuf::from("/");
                    }
                    todo.extend(components_rev(&target));
                }
            }
        }
        Some(out)
    }

    /// Records every symlink met while resolving `p` (`/lib64 -> usr/lib64`, then any link
    /// inside the target), so that the path as written resolves inside the sandbox too.
    pub fn links_along(&mut self, p: &Path, links: &mut Vec<(PathBuf, PathBuf)>) {
        let mut path = p.to_path_buf();
        'resolve: for _ in 0..16 {
            let mut prefix = PathBuf::from("/");
            let comps: Vec<_> = path
                .components()
                .skip(1)
                .map(|c| c.as_os_str().to_os_string())
                .collect();
            for (i, c) in comps.iter().enumerate() {
                prefix.push(c);
                match self.lookup(&prefix) {
                    None => return,
                    Some(None) => {}
                    Some(Some(target)) => {
                        if !links.iter().any(|(l, _)| *l == prefix) {
                            links.push((prefix.clone(), target.clone()));
                        }
                        let mut next = prefix.parent().unwrap_or(Path::new("/")).join(target);
                        for rest in &comps[i + 1..] {
                            next.push(rest);
                        }
                        path = next;
                        continue 'resolve;
                    }
                }
            }
            return;
        }
    }

    /// Looks `name` up on a PATH value; the result is canonical (symlinks resolved).
    pub fn which(&mut self, name: &str, path_var: &str) -> Option<PathBuf> {
        if name.contains('/') {
            return self.canonicalize(Path::new(name));
        }
        for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
            let candidate = Path::new(dir).join(name);
            if let Some(st) = self.stat(&candidate, true) {
                if st.mode & libc::S_IFMT == libc::S_IFREG && st.mode & 0o111 != 0 {
                    // A candidate reached through a refused link is passed over, as a
                    // shell would pass over one it cannot run.
                    if let Some(found) = self.canonicalize(&candidate) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }
}

/// The names along `p`, last first (a stack), with `..` kept and `.` dropped.
fn components_rev(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect()
}

/// An interpreter a program needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// Canonical path (what Landlock sees).
    pub path: PathBuf,
    /// The path as written in the file (what the kernel opens; may go through symlinks).
    pub raw: PathBuf,
    /// What it is: the ELF interpreter, a #! interpreter, or the program named to env.
    pub kind: &'static str,
}

/// The interpreters `program` needs, recursively (a script run by `env` run by `ld.so`),
/// resolving names given to `/usr/bin/env` on `path_var`. Unreadable files yield nothing.
pub fn interpreters(r: &mut Resolver, program: &Path, path_var: &str) -> Vec<Interpreter> {
    let mut out: Vec<Interpreter> = Vec::new();
    let mut todo = vec![program.to_path_buf()];
    while let Some(p) = todo.pop() {
        if out.len() > 16 {
            break;
        }
        for found in direct_interpreters(r, &p, path_var) {
            if !out.iter().any(|o| o.path == found.path) && found.path != program {
                todo.push(found.path.clone());
                out.push(found);
            }
        }
    }
    out
}

fn direct_interpreters(r: &mut Resolver, program: &Path, path_var: &str) -> Vec<Interpreter> {
    if let Some(known) = r.interps.get(program) {
        return known.clone();
    }
    let found = read_interpreters(r, program, path_var);
    r.interps.insert(program.to_path_buf(), found.clone());
    found
}

/// Opens `p` for reading only if it is a regular file, without ever waiting: a FIFO put in
/// its place (the exec notice reads files a sandboxed process can swap) is not opened for
/// a read that would block.
fn open_regular(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

fn read_interpreters(r: &mut Resolver, program: &Path, path_var: &str) -> Vec<Interpreter> {
    let mut head = [0u8; 4096];
    r.note(program);
    let n = match open_regular(program).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let head = &head[..n];
    if head.starts_with(b"#!") {
        return shebang(r, head, path_var);
    }
    if head.starts_with(b"\x7fELF") {
        // PT_INTERP is almost always in the first page; read further only when it is not.
        let interp = match parse_interp(head) {
            Parsed::Interp(p) => Some(p),
            Parsed::NoInterp => None,
            Parsed::Truncated => elf_interp(program),
        };
        if let Some(interp) = interp {
            let Some(path) = r.canonical_or_raw(&interp) else {
                return Vec::new();
            };
            return vec![Interpreter {
                path,
                raw: interp,
                kind: "ELF interpreter",
            }];
        }
    }
    Vec::new()
}

/// The interpreter of a `#!` line, and for `#!/usr/bin/env NAME` the program NAME too.
fn shebang(r: &mut Resolver, head: &[u8], path_var: &str) -> Vec<Interpreter> {
    let line = head[2..].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else {
        return Vec::new();
    };
    let interp_path = PathBuf::from(interp);
    let Some(path) = r.canonical_or_raw(&interp_path) else {
        return Vec::new();
    };
    let mut out = vec![Interpreter {
        path,
        raw: interp_path.clone(),
        kind: "script interpreter (#!)",
    }];
    if interp_path.file_name().and_then(|n| n.to_str()) == Some("env") {
        let name = words.find(|w| !w.starts_with('-'));
        if let Some(found) = name.and_then(|n| r.which(n, path_var)) {
            out.push(Interpreter {
                raw: found.clone(),
                path: found,
                kind: "program named to env in #!",
            });
        }
    }
    out
}

/// PT_INTERP of a 64-bit little-endian ELF file (the only kind this build runs), if any.
fn elf_interp(program: &Path) -> Option<PathBuf> {
    // PT_INTERP sits right after the program headers, in the first page of any real binary.
    let mut data = Vec::with_capacity(64 << 10);
    open_regular(program)
        .ok()?
        .take(64 << 10)
        .read_to_end(&mut data)
        .ok()?;
    match parse_interp(&data) {
        Parsed::Interp(p) => Some(p),
        _ => None,
    }
}

/// What the program headers in a prefix of an ELF file say.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Interp(PathBuf),
    /// A static binary, or not an ELF file this build can run.
    NoInterp,
    /// The headers run past the bytes read.
    Truncated,
}

fn parse_interp(data: &[u8]) -> Parsed {
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Parsed::NoInterp;
    }
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Parsed::NoInterp;
    };
    for i in 0..usize::from(phnum).min(256) {
        let Some(ph) = (phoff as usize).checked_add(i * usize::from(phentsize)) else {
            return Parsed::NoInterp;
        };
        let Some(p_type) = u32_at(ph) else {
            return Parsed::Truncated;
        };
        if p_type == 3 {
            let (Some(off), Some(size)) = (u64_at(ph + 8), u64_at(ph + 32)) else {
                return Parsed::Truncated;
            };
            let Some(end) = (off as usize).checked_add(size as usize) else {
                return Parsed::NoInterp;
            };
            let Some(raw) = data.get(off as usize..end) else {
                return Parsed::Truncated;
            };
            let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
            return Parsed::Interp(PathBuf::from(String::from_utf8_lossy(raw).into_owned()));
        }
    }
    Parsed::NoInterp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_needs_its_loader() {
        let mut r = Resolver::default();
        let sh = r.which("sh", "/usr/bin:/bin").expect("sh on PATH");
        let found = interpreters(&mut r, &sh, "/usr/bin:/bin");
        assert!(
            found
                .iter()
                .any(|i| i.kind == "ELF interpreter"
                    && i.path.to_string_lossy().contains("ld-linux")),
            "{found:?}"
        );
    }

    #[test]
    fn an_env_shebang_brings_the_named_program_and_its_loader() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/usr/bin/env -S sh -e\necho hi\n").unwrap();
        let found = interpreters(&mut Resolver::default(), &script, "/usr/bin:/bin");
        let paths: Vec<String> = found.iter().map(|i| i.path.display().to_string()).collect();
        assert!(paths.iter().any(|p| p.ends_with("/env")), "{paths:?}");
        assert!(
            paths
                .iter()
                .any(|p| p.ends_with("/dash") || p.ends_with("/sh") || p.ends_with("/bash")),
            "{paths:?}"
        );
        assert!(paths.iter().any(|p| p.contains("ld-linux")), "{paths:?}");
    }

    #[test]
    fn the_resolver_agrees_with_the_standard_library() {
        let mut r = Resolver::default();
        for p in [
            "/bin/sh",
            "/lib64/ld-linux-x86-64.so.2",
            "/usr/bin/../bin/env",
            "/etc/alternatives/awk",
            "/proc/self/exe",
        ] {
            assert_eq!(
                r.canonicalize(Path::new(p)),
                std::fs::canonicalize(p).ok(),
                "{p}"
            );
        }
        assert_eq!(r.canonicalize(Path::new("/nonexistent/x")), None);
    }

    #[test]
    fn a_link_beneath_a_distrusted_directory_is_never_followed() {
        let home = tempfile::tempdir().unwrap();
        let home = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir_all(home.join(".local/bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/env", home.join(".local/bin/tool")).unwrap();
        std::os::unix::fs::symlink("/usr", home.join(".usr")).unwrap();
        let path_var = format!("{}/.local/bin:/usr/bin", home.display());

        let mut trusting = Resolver::default();
        assert!(
            trusting.which("tool", &path_var).is_some(),
            "followed when trusted"
        );

        let mut r = Resolver::default();
        r.distrust(&home);
        assert_eq!(r.which("tool", &path_var), None);
        assert_eq!(r.canonicalize(&home.join(".usr/bin/env")), None);
        assert_eq!(
            r.which("env", &path_var),
            std::fs::canonicalize("/usr/bin/env").ok(),
            "found outside, where links are fine"
        );
        assert_eq!(
            r.take_refused(),
            vec![home.join(".local/bin/tool"), home.join(".usr")]
        );
        assert!(r.take_refused().is_empty());
    }

    #[test]
    fn a_script_whose_interpreter_lies_behind_a_distrusted_link_brings_none() {
        let home = tempfile::tempdir().unwrap();
        let home = std::fs::canonicalize(home.path()).unwrap();
        std::os::unix::fs::symlink("/usr/bin", home.join("bin")).unwrap();
        let script = home.join("s");
        std::fs::write(&script, format!("#!{}/bin/sh\n", home.display())).unwrap();
        let mut r = Resolver::default();
        r.distrust(&home);
        assert_eq!(interpreters(&mut r, &script, "/usr/bin"), vec![]);
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert_eq!(parse_interp(b"\x7fELF\x02\x01garbage"), Parsed::NoInterp);
        assert_eq!(parse_interp(&[0u8; 10]), Parsed::NoInterp);
    }

    #[test]
    fn a_fifo_in_a_programs_place_is_not_read_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("prog");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o755) }, 0);
        let mut r = Resolver::default();
        assert!(interpreters(&mut r, &fifo, "/usr/bin:/bin").is_empty());
    }
}
