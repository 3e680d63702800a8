//! Where profiles are found: by name in the search order (`$CORDON_PROFILE_PATH`, the user's
//! and the system's profile directories, then the set shipped inside cordon), or by path;
//! and the `extends` chain walked through that order.
//!
//! What a profile's text means (the model, validation, merging) is the format, in
//! [`crate::profile`]; this module only decides which texts are read, and in which order.

use super::location::line_of_key;
use super::{err, merge, parse, Profile, ProfileError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The profiles shipped with cordon, compiled into the binary so that it works anywhere.
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../../profiles/default.toml")),
    ("claude", include_str!("../../../profiles/claude.toml")),
    ("readonly", include_str!("../../../profiles/readonly.toml")),
    ("strict", include_str!("../../../profiles/strict.toml")),
    ("base", include_str!("../../../profiles/base.toml")),
];

const MAX_EXTENDS_DEPTH: usize = 16;

/// Where a profile's text came from.
#[derive(Debug, Clone)]
pub struct ProfileSource {
    /// The profile's name.
    pub name: String,
    /// A file path, or `shipped:NAME` for a profile compiled into cordon.
    pub origin: String,
    /// The TOML text.
    pub text: String,
    /// Index in the search order where it was found (shipped = dirs.len()).
    level: usize,
}

/// The directories searched for profiles by name, highest priority first; the shipped set
/// comes last.
#[derive(Debug, Clone)]
pub struct Search {
    /// Directories searched before the shipped set, highest priority first.
    pub dirs: Vec<PathBuf>,
}

impl Search {
    /// The documented order: `$CORDON_PROFILE_PATH` (colon-separated, if set), the user's
    /// `$XDG_CONFIG_HOME/cordon/profiles` (default `~/.config/cordon/profiles`), the system's
    /// `/etc/cordon/profiles`, then the profiles shipped inside cordon.
    pub fn standard() -> Search {
        let mut dirs = Vec::new();
        if let Some(extra) = std::env::var_os("CORDON_PROFILE_PATH") {
            dirs.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(config) = config {
            dirs.push(config.join("cordon/profiles"));
        }
        dirs.push(PathBuf::from("/etc/cordon/profiles"));
        Search { dirs }
    }

    /// Only the shipped profiles (for tests and for `--no-user-profiles`).
    pub fn shipped_only() -> Search {
        Search { dirs: Vec::new() }
    }

    /// Loads a profile by name (searched) or by path (anything with a `/` or ending `.toml`),
    /// merging its `extends` chain.
    pub fn load(&self, name_or_path: &str) -> Result<Profile, ProfileError> {
        let first = if is_path(name_or_path) {
            read_file(Path::new(name_or_path), self.dirs.len() + 1)?
        } else {
            self.find(name_or_path, 0)?
        };
        let name = first.name.clone();
        let mut chain = vec![(first.origin.clone(), parse(&first.origin, &first.text)?)];
        let mut seen = vec![first.origin.clone()];
        let mut current = first;
        while let Some(parent) = chain.last().and_then(|(_, f)| f.extends.clone()) {
            if chain.len() > MAX_EXTENDS_DEPTH {
                return Err(err(
                    &current.origin,
                    None,
                    Some("extends"),
                    "extends chain is deeper than 16 profiles",
                ));
            }
            if !valid_name(&parent) {
                let line = line_of_key(&current.text, &["extends"]);
                return Err(err(
                    &current.origin,
                    line,
                    Some("extends"),
                    format!("\"{parent}\" is not a profile name (letters, digits, - and _)"),
                ));
            }
            // A profile that extends its own name extends the next one down the search order,
            // so a user can adjust a shipped profile without copying it.
            let start = if parent == current.name {
                current.level + 1
            } else {
                0
            };
            let next = self.find(&parent, start).map_err(|mut e| {
                e.message = format!("{} (extended by {})", e.message, current.origin);
                e
            })?;
            if seen.contains(&next.origin) {
                return Err(err(
                    &current.origin,
                    line_of_key(&current.text, &["extends"]),
                    Some("extends"),
                    format!("extends \"{parent}\" makes a cycle"),
                ));
            }
            seen.push(next.origin.clone());
            chain.push((next.origin.clone(), parse(&next.origin, &next.text)?));
            current = next;
        }
        chain.reverse();
        Ok(merge(name, chain))
    }

    /// Every profile name visible in the search order, with where it is found.
    pub fn list(&self) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for (name, _) in SHIPPED {
            out.insert(name.to_string(), format!("shipped:{name}"));
        }
        for dir in self.dirs.iter().rev() {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        if valid_name(stem) {
                            out.insert(stem.to_string(), path.display().to_string());
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    fn find(&self, name: &str, start: usize) -> Result<ProfileSource, ProfileError> {
        if !valid_name(name) {
            return Err(err(
                name,
                None,
                None,
                "not a profile name (letters, digits, - and _) nor a path",
            ));
        }
        for (level, dir) in self.dirs.iter().enumerate().skip(start) {
            let path = dir.join(format!("{name}.toml"));
            if path.exists() {
                let mut source = read_file(&path, level)?;
                source.name = name.to_string();
                return Ok(source);
            }
        }
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
            return Ok(ProfileSource {
                name: name.to_string(),
                origin: format!("shipped:{name}"),
                text: text.to_string(),
                level: self.dirs.len(),
            });
        }
        let searched: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        Err(err(
            name,
            None,
            None,
            format!(
                "no such profile (searched {}, and the shipped set: {})",
                if searched.is_empty() {
                    "nothing else".into()
                } else {
                    searched.join(", ")
                },
                SHIPPED
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

fn is_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".toml")
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn read_file(path: &Path, level: usize) -> Result<ProfileSource, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            &path.display().to_string(),
            None,
            None,
            format!("cannot read: {e}"),
        )
    })?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("profile")
        .to_string();
    Ok(ProfileSource {
        name,
        origin: path.display().to_string(),
        text,
        level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::write;

    #[test]
    fn every_shipped_profile_parses_and_merges() {
        let s = Search::shipped_only();
        for (name, _) in SHIPPED {
            let p = s.load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.description.is_empty(), "{name} has no description");
        }
    }

    #[test]
    fn a_user_profile_extending_its_own_name_extends_the_shipped_one() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "strict",
            "extends = \"strict\"\n[limits]\nprocesses = 3\n",
        );
        let s = Search {
            dirs: vec![dir.path().to_path_buf()],
        };
        let p = s.load("strict").unwrap();
        assert_eq!(p.limits.processes, Some(3));
        assert_eq!(
            p.sources,
            vec![
                "shipped:strict".to_string(),
                dir.path().join("strict.toml").display().to_string()
            ]
        );
    }

    #[test]
    fn extends_cycles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "extends = \"b\"\n");
        write(dir.path(), "b", "extends = \"a\"\n");
        let e = Search {
            dirs: vec![dir.path().to_path_buf()],
        }
        .load("a")
        .unwrap_err();
        assert!(e.message.contains("cycle"), "{e}");
    }

    #[test]
    fn an_extends_that_is_not_a_name_is_located_on_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "odd",
            "description = \"x\"\n\nextends = \"../default\"\n",
        );
        let e = Search::shipped_only()
            .load(p.to_str().unwrap())
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("extends")),
            "{e}"
        );
        assert!(e.message.contains("not a profile name"), "{e}");
    }

    #[test]
    fn unknown_profile_names_what_was_searched() {
        let e = Search {
            dirs: vec![PathBuf::from("/nonexistent/x")],
        }
        .load("nope")
        .unwrap_err();
        assert!(
            e.message.contains("/nonexistent/x") && e.message.contains("default"),
            "{e}"
        );
    }
}
