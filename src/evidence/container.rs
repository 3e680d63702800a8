//! The bundle's container: one file, a magic line, then members, each a name and its bytes
//! with their lengths before them (big-endian: 2 bytes of name length, the name, 8 bytes of
//! data length, the data). Pure over bytes; reading is bounded (names, count, lengths within
//! the file) so that a hostile file cannot make the verifier allocate more than it holds.

/// The first bytes of every bundle.
pub const MAGIC: &[u8] = b"CORDON-EVIDENCE 1\n";

/// The most members a bundle may hold.
pub const MAX_MEMBERS: usize = 100_000;

/// The longest member name.
pub const MAX_NAME: usize = 255;

/// Why a file is not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("not a cordon evidence bundle (it does not begin with \"CORDON-EVIDENCE 1\")")]
    Magic,
    #[error("the bundle is cut short at byte {0}: it was truncated or altered")]
    Truncated(usize),
    #[error("member {0}'s name is not a valid name: the bundle was altered")]
    BadName(usize),
    #[error("the bundle names {0} twice: it was altered")]
    Duplicate(String),
    #[error("the bundle holds more than {MAX_MEMBERS} members")]
    TooMany,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub data: Vec<u8>,
}

/// A valid member name: a relative path of plain components (letters, digits, `.`, `-`,
/// `_`), never `.` or `..`, at most [`MAX_NAME`] bytes (names become paths under
/// `verify --extract`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        })
}

/// The bundle's bytes.
pub fn write(members: &[Member]) -> Vec<u8> {
    let size: usize = members
        .iter()
        .map(|m| 10 + m.name.len() + m.data.len())
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + size);
    out.extend_from_slice(MAGIC);
    for m in members {
        out.extend_from_slice(&(m.name.len() as u16).to_be_bytes());
        out.extend_from_slice(m.name.as_bytes());
        out.extend_from_slice(&(m.data.len() as u64).to_be_bytes());
        out.extend_from_slice(&m.data);
    }
    out
}

/// The members of a bundle, in order.
pub fn read(bytes: &[u8]) -> Result<Vec<Member>, ContainerError> {
    let mut rest = bytes.strip_prefix(MAGIC).ok_or(ContainerError::Magic)?;
    let mut members: Vec<Member> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let at = |rest: &[u8]| bytes.len() - rest.len();
    while !rest.is_empty() {
        if members.len() >= MAX_MEMBERS {
            return Err(ContainerError::TooMany);
        }
        let (len, r) = rest
            .split_first_chunk::<2>()
            .ok_or(ContainerError::Truncated(at(rest)))?;
        let len = u16::from_be_bytes(*len) as usize;
        if len > r.len() {
            return Err(ContainerError::Truncated(at(r)));
        }
        let (name, r) = r.split_at(len);
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| valid_name(n))
            .ok_or(ContainerError::BadName(members.len()))?
            .to_string();
        let (size, r) = r
            .split_first_chunk::<8>()
            .ok_or(ContainerError::Truncated(at(r)))?;
        let size = u64::from_be_bytes(*size);
        if size > r.len() as u64 {
            return Err(ContainerError::Truncated(at(r)));
        }
        let (data, r) = r.split_at(size as usize);
        if !seen.insert(name.clone()) {
            return Err(ContainerError::Duplicate(name));
        }
        members.push(Member {
            name,
            data: data.to_vec(),
        });
        rest = r;
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Member> {
        vec![
            Member {
                name: "manifest.json".into(),
                data: b"{}".to_vec(),
            },
            Member {
                name: "recordings/a.cast".into(),
                data: vec![0; 300],
            },
        ]
    }

    #[test]
    fn a_bundle_reads_back_as_written() {
        assert_eq!(read(&write(&sample())).unwrap(), sample());
    }

    #[test]
    fn a_cut_bundle_or_a_length_past_its_end_is_refused() {
        let bytes = write(&sample());
        for cut in [MAGIC.len() + 1, MAGIC.len() + 5, bytes.len() - 1] {
            assert!(matches!(
                read(&bytes[..cut]),
                Err(ContainerError::Truncated(_))
            ));
        }
        let mut long = bytes.clone();
        let at = MAGIC.len() + 2 + "manifest.json".len();
        long[at] = 0xff;
        assert!(read(&long).is_err());
    }

    #[test]
    fn names_that_would_escape_an_extraction_directory_are_refused() {
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "a b", ""] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name("recordings/0123.rec"));
    }
}
