//! Secrets a host hands a confined command: which names may be secrets, and the format in
//! which their values travel to `cordon sandbox` through an inherited descriptor
//! (`--secrets-fd N`), never through its arguments or its environment, where
//! `/proc/PID/cmdline` and `/proc/PID/environ` would show them.
//!
//! The format, in order, for each secret: the name's length (u32, big-endian), the name,
//! the value's length (u32, big-endian), the value. Nothing else; the end of the data ends
//! the list.

use std::io::Read;

/// The longest secret name.
pub const MAX_NAME: usize = 128;
/// The largest secret value (64 KiB).
pub const MAX_VALUE: usize = 64 << 10;
/// The most secrets a command receives.
pub const MAX_COUNT: usize = 64;

/// Names the sandbox (or the dynamic loader) decides: a secret may not replace them.
pub const CONTROLLED: &[&str] = &[
    // Set by the policy in network mode "proxy" (crate::egress::ENVIRONMENT).
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "PWD",
    "OLDPWD",
    "TMPDIR",
    "LANG",
    "IFS",
    "ENV",
    "BASH_ENV",
    "PS4",
    "SHELLOPTS",
    "BASHOPTS",
    "GLOBIGNORE",
    "CDPATH",
    "HOSTNAME",
    "MAIL",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "GCONV_PATH",
    "LOCPATH",
    "MALLOC_CHECK_",
];
/// Prefixes of names a secret may not have (the loader's, locales', cordon's own).
pub const CONTROLLED_PREFIXES: &[&str] = &["LD_", "LC_", "CORDON_", "XDG_", "BASH_FUNC_", "GLIBC_"];

/// Why a name cannot be a secret's, in words that say what to do; None when it can.
pub fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let shaped = matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if name.is_empty() || name.len() > MAX_NAME || !shaped {
        return Some(format!(
            "\"{}\" is not a secret name: an environment variable name in capitals, digits and _ (not starting with a digit), at most {MAX_NAME} characters, e.g. ANTHROPIC_API_KEY",
            name.escape_default()
        ));
    }
    if CONTROLLED.contains(&name) || CONTROLLED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Some(format!(
            "{name} is set by the sandbox or read by the loader or a shell; a secret cannot replace it (choose another name)"
        ));
    }
    None
}

/// A secret payload that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the secrets given to the sandbox: {}", self.0)
    }
}

impl std::error::Error for PayloadError {}

/// The payload for `secrets` (name, value).
pub fn encode<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in secrets {
        out.extend((name.len() as u32).to_be_bytes());
        out.extend(name.as_bytes());
        out.extend((value.len() as u32).to_be_bytes());
        out.extend(value);
    }
    out
}

/// The secrets in a payload: names checked, values bounded, UTF-8 without NUL (they become
/// environment variables).
pub fn decode(data: &[u8]) -> Result<Vec<(String, String)>, PayloadError> {
    let bad = |why: &str| PayloadError(why.to_string());
    let mut rest = data;
    let mut take = |n: usize| -> Result<&[u8], PayloadError> {
        if rest.len() < n {
            return Err(bad("it ends in the middle of a secret"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let len = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut read = 0;
    while read < data.len() {
        let n = len(take(4)?);
        if n > MAX_NAME {
            return Err(bad("a name is too long"));
        }
        let name = String::from_utf8(take(n)?.to_vec()).map_err(|_| bad("a name is not UTF-8"))?;
        if let Some(p) = name_problem(&name) {
            return Err(PayloadError(p));
        }
        let m = len(take(4)?);
        if m > MAX_VALUE {
            return Err(bad("a value is larger than 64 KiB"));
        }
        let value = String::from_utf8(take(m)?.to_vec())
            .map_err(|_| PayloadError(format!("the value of {name} is not UTF-8")))?;
        if value.contains('\0') {
            return Err(PayloadError(format!(
                "the value of {name} holds a NUL byte"
            )));
        }
        if out.len() == MAX_COUNT {
            return Err(bad("more than 64 secrets"));
        }
        read += 8 + n + m;
        out.retain(|(k, _)| *k != name);
        out.push((name, value));
    }
    Ok(out)
}

/// Reads and decodes the payload from descriptor `fd`, then closes it.
pub fn read_fd(fd: i32) -> Result<Vec<(String, String)>, PayloadError> {
    use std::os::fd::FromRawFd;
    if fd < 3 {
        return Err(PayloadError(format!(
            "descriptor {fd} is standard input, output or error"
        )));
    }
    // SAFETY: the caller hands this descriptor over to us (`--secrets-fd`); it is owned and
    // closed here. fcntl first, so that a descriptor that is not open is refused, not taken.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(PayloadError(format!("descriptor {fd} is not open")));
    }
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut data = Vec::new();
    let limit = (MAX_COUNT * (MAX_NAME + MAX_VALUE + 8)) as u64;
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| PayloadError(format!("reading descriptor {fd}: {e}")))?;
    if data.len() as u64 > limit {
        return Err(PayloadError("it is larger than 64 secrets can be".into()));
    }
    let decoded = decode(&data);
    data.iter_mut().for_each(|b| *b = 0);
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_decodes_to_what_was_encoded() {
        let data = encode([
            ("A_KEY", &b"one"[..]),
            ("B", &b""[..]),
            ("C_2", &b"x=y\n"[..]),
        ]);
        assert_eq!(
            decode(&data).unwrap(),
            vec![
                ("A_KEY".to_string(), "one".to_string()),
                ("B".into(), "".into()),
                ("C_2".into(), "x=y\n".into())
            ]
        );
        assert_eq!(decode(&[]).unwrap(), vec![]);
    }

    #[test]
    fn a_cut_or_forged_payload_is_refused() {
        let data = encode([("A_KEY", &b"value"[..])]);
        assert!(decode(&data[..data.len() - 1]).is_err());
        assert!(decode(&encode([("PATH", &b"/evil"[..])])).is_err());
        assert!(decode(&encode([("LD_PRELOAD", &b"/x.so"[..])])).is_err());
        assert!(decode(&encode([("K", &b"a\0b"[..])])).is_err());
        let big = vec![b'a'; MAX_VALUE + 1];
        assert!(decode(&encode([("K", &big[..])])).is_err());
    }

    #[test]
    fn secret_names_are_variable_names_the_sandbox_does_not_control() {
        for ok in ["ANTHROPIC_API_KEY", "_X", "GH_TOKEN2"] {
            assert_eq!(name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "lower",
            "1ABC",
            "A-B",
            "A B",
            "PATH",
            "HOME",
            "LD_PRELOAD",
            "LC_ALL",
            "CORDON_X",
            "BASH_ENV",
        ] {
            assert!(name_problem(bad).is_some(), "{bad}");
        }
        assert!(name_problem(&"A".repeat(MAX_NAME + 1)).is_some());
    }
}
