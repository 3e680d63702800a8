//! What else the kernel runs when it executes a file: the ELF interpreter (the dynamic
//! loader named in PT_INTERP) and the `#!` interpreter of a script. Landlock checks EXECUTE
//! on both, so each allowlisted program brings its interpreters onto the allowlist.

use std::io::Read;
use std::path::{Path, PathBuf};

/// An interpreter a program needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// Canonical path (what Landlock sees).
    pub path: PathBuf,
    /// The path as written in the file (what the kernel opens; may go through symlinks).
    pub raw: PathBuf,
    pub kind: &'static str,
}

/// The interpreters `program` needs, recursively (a script run by `env` run by `ld.so`),
/// resolving names given to `/usr/bin/env` on `path_var`. Unreadable files yield nothing.
pub fn interpreters(program: &Path, path_var: &str) -> Vec<Interpreter> {
    let mut out: Vec<Interpreter> = Vec::new();
    let mut todo = vec![program.to_path_buf()];
    while let Some(p) = todo.pop() {
        if out.len() > 16 {
            break;
        }
        for found in direct_interpreters(&p, path_var) {
            if !out.iter().any(|o| o.path == found.path) && found.path != program {
                todo.push(found.path.clone());
                out.push(found);
            }
        }
    }
    out
}

fn direct_interpreters(program: &Path, path_var: &str) -> Vec<Interpreter> {
    let mut head = [0u8; 4096];
    let n = match std::fs::File::open(program).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let head = &head[..n];
    if head.starts_with(b"#!") {
        return shebang(head, path_var);
    }
    if head.starts_with(b"\x7fELF") {
        if let Some(interp) = elf_interp(program) {
            let path = std::fs::canonicalize(&interp).unwrap_or(interp.clone());
            return vec![Interpreter { path, raw: interp, kind: "ELF interpreter" }];
        }
    }
    Vec::new()
}

/// The interpreter of a `#!` line, and for `#!/usr/bin/env NAME` the program NAME too.
fn shebang(head: &[u8], path_var: &str) -> Vec<Interpreter> {
    let line = head[2..].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else { return Vec::new() };
    let interp_path = PathBuf::from(interp);
    let mut out = vec![Interpreter {
        path: std::fs::canonicalize(&interp_path).unwrap_or(interp_path.clone()),
        raw: interp_path.clone(),
        kind: "script interpreter (#!)",
    }];
    if interp_path.file_name().and_then(|n| n.to_str()) == Some("env") {
        let name = words.find(|w| !w.starts_with('-'));
        if let Some(found) = name.and_then(|n| which(n, path_var)) {
            out.push(Interpreter { raw: found.clone(), path: found, kind: "program named to env in #!" });
        }
    }
    out
}

/// Looks `name` up on a PATH value; the result is canonical (symlinks resolved).
pub fn which(name: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if name.contains('/') {
        return std::fs::canonicalize(name).ok();
    }
    for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
        let candidate = Path::new(dir).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return std::fs::canonicalize(&candidate).ok();
            }
        }
    }
    None
}

/// PT_INTERP of a 64-bit little-endian ELF file (the only kind this build runs), if any.
fn elf_interp(program: &Path) -> Option<PathBuf> {
    // PT_INTERP sits right after the program headers, in the first page of any real binary.
    let mut data = Vec::with_capacity(64 << 10);
    std::fs::File::open(program).ok()?.take(64 << 10).read_to_end(&mut data).ok()?;
    parse_interp(&data)
}

fn parse_interp(data: &[u8]) -> Option<PathBuf> {
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| data.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    for i in 0..phnum.min(256) {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = data.get(ph..ph + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
        if p_type == 3 {
            let off = u64_at(ph + 8)? as usize;
            let size = u64_at(ph + 32)? as usize;
            let raw = data.get(off..off.checked_add(size)?)?;
            let raw = raw.split(|&b| b == 0).next()?;
            return Some(PathBuf::from(String::from_utf8_lossy(raw).into_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_binary_needs_its_loader() {
        let sh = which("sh", "/usr/bin:/bin").expect("sh on PATH");
        let found = interpreters(&sh, "/usr/bin:/bin");
        assert!(found.iter().any(|i| i.kind == "ELF interpreter" && i.path.to_string_lossy().contains("ld-linux")), "{found:?}");
    }

    #[test]
    fn an_env_shebang_brings_the_named_program_and_its_loader() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/usr/bin/env -S sh -e\necho hi\n").unwrap();
        let found = interpreters(&script, "/usr/bin:/bin");
        let paths: Vec<String> = found.iter().map(|i| i.path.display().to_string()).collect();
        assert!(paths.iter().any(|p| p.ends_with("/env")), "{paths:?}");
        assert!(paths.iter().any(|p| p.ends_with("/dash") || p.ends_with("/sh") || p.ends_with("/bash")), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("ld-linux")), "{paths:?}");
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert_eq!(parse_interp(b"\x7fELF\x02\x01garbage"), None);
        assert_eq!(parse_interp(&[0u8; 10]), None);
    }
}
