//! Claude Code's settings carried from a person's own account into their cordon home
//! (`cordon claude import`): what is copied, what is left out and why, and the copying,
//! done beneath directory descriptors without following any link on either side.
//!
//! Copied: `~/.claude/settings.json` (without `env` and `apiKeyHelper`, where credentials
//! live), `~/.claude/CLAUDE.md`, `~/.claude/agents/` and `~/.claude/commands/` (regular
//! files), and from `~/.claude.json` only the preferences in [`PREFERENCES`]. Left out: the
//! account (`oauthAccount`, `userID`), keys and their traces (`primaryApiKey`,
//! `customApiKeyResponses`), MCP servers (their `env` often holds tokens), per-project state
//! (`projects`: the host's paths, allowed tools, history) and everything else not listed.

use crate::nofollow;
use serde_json::{Map, Value};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The keys of `~/.claude.json` that are preferences, safe to carry into another home.
pub const PREFERENCES: &[&str] = &[
    "theme",
    "hasCompletedOnboarding",
    "lastOnboardingVersion",
    "editorMode",
    "autoCompactEnabled",
    "verbose",
    "preferredNotifChannel",
    "diffTool",
    "hasAcknowledgedCostThreshold",
];

/// The keys of `settings.json` left out: where credentials and the commands that print
/// them live.
pub const SETTINGS_LEFT_OUT: &[&str] = &["env", "apiKeyHelper"];

/// Single files of `~/.claude/` copied as they are (besides settings.json, filtered).
const FILES: &[&str] = &["CLAUDE.md"];
/// Folders of `~/.claude/` whose regular files are copied.
const FOLDERS: &[&str] = &["agents", "commands"];
/// The largest file copied; larger ones are skipped with a note.
const MAX_FILE: u64 = 1 << 20;
/// At most this many files from the folders, at most this deep.
const MAX_FILES: usize = 512;
const MAX_DEPTH: usize = 4;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// Files written into the home, relative to it (`.claude/settings.json`).
    pub copied: Vec<String>,
    /// Keys left out of `.claude.json` and `settings.json`, by name.
    pub left_out: Vec<String>,
    /// What was skipped and why (a link, too large, not valid JSON).
    pub skipped: Vec<String>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot open {}: {source} (give --from the directory that holds .claude and .claude.json)", .path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds neither .claude/ nor .claude.json: nothing to import (give --from DIR)", .0.display())]
    Nothing(PathBuf),
    #[error("cannot write {} into the cordon home: {source}", .path)]
    Target {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `~/.claude.json` reduced to [`PREFERENCES`], and the names of the keys left out.
pub fn preferences(json: &Value) -> (Map<String, Value>, Vec<String>) {
    let mut kept = Map::new();
    let mut left = Vec::new();
    if let Some(obj) = json.as_object() {
        for (k, v) in obj {
            if PREFERENCES.contains(&k.as_str()) {
                kept.insert(k.clone(), v.clone());
            } else {
                left.push(format!(".claude.json: {k}"));
            }
        }
    }
    (kept, left)
}

/// `settings.json` without [`SETTINGS_LEFT_OUT`], and the names of the keys left out.
pub fn settings(json: &Value) -> (Value, Vec<String>) {
    let mut out = json.clone();
    let mut left = Vec::new();
    if let Some(obj) = out.as_object_mut() {
        for k in SETTINGS_LEFT_OUT {
            if obj.remove(*k).is_some() {
                left.push(format!("settings.json: {k}"));
            }
        }
    }
    (out, left)
}

/// Reads a regular file beneath `dir` without following links, at most [`MAX_FILE`] bytes.
/// `Ok(None)`: absent. A link, a non-file or a larger file is an error the caller notes.
fn read_beneath(dir: &OwnedFd, rel: &str) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let fd = match nofollow::open_beneath(
        dir.as_fd(),
        Path::new(rel),
        libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let st = nofollow::stat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(std::io::Error::other("not a regular file"));
    }
    if st.st_size as u64 > MAX_FILE {
        return Err(std::io::Error::other("larger than 1 MiB"));
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// The home it writes into: a directory held open, and whom what is created belongs to.
pub struct Target<'a> {
    pub home: &'a OwnedFd,
    pub owner: Option<(u32, u32)>,
}

impl Target<'_> {
    /// Writes `bytes` at `rel` (components joined by `/`) beneath the home: folders made as
    /// needed (0700, the owner's), the file written aside and renamed into place, so that a
    /// link planted at its name is replaced, never written through.
    fn write(&self, rel: &str, bytes: &[u8], mode: u32) -> Result<(), ImportError> {
        let err = |source| ImportError::Target {
            path: rel.to_string(),
            source,
        };
        let mut parts: Vec<&str> = rel.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        let mut dir: Option<OwnedFd> = None;
        for part in parts {
            let parent = dir.as_ref().unwrap_or(self.home);
            let (d, _) =
                nofollow::ensure_dir(parent.as_fd(), part, 0o700, self.owner).map_err(err)?;
            dir = Some(d);
        }
        let dir = dir.as_ref().unwrap_or(self.home);
        let tmp = format!(
            ".{name}.cordon-import-{}",
            crate::secrets::random_bytes(6)
                .map(|b| crate::secrets::hex(&b))
                .unwrap_or_default()
        );
        nofollow::create_file(dir.as_fd(), &tmp, mode, bytes, self.owner).map_err(err)?;
        if let Err(e) = nofollow::rename(dir.as_fd(), &tmp, dir.as_fd(), name) {
            let _ = nofollow::unlink(dir.as_fd(), &tmp);
            return Err(err(e));
        }
        Ok(())
    }
}

/// Imports from `from` (the directory holding `.claude/` and `.claude.json`, normally the
/// person's own home) into `target`. `.claude.json` in the home is merged: the preferences
/// imported replace those of the same name, the rest of what is there stays.
pub fn import(from: &Path, target: &Target) -> Result<Imported, ImportError> {
    let src = nofollow::open_root(from).map_err(|source| ImportError::Source {
        path: from.to_path_buf(),
        source,
    })?;
    let mut done = Imported::default();
    let mut found = false;
    let note = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");

    // ~/.claude.json: the preferences only, merged into the home's own.
    match read_beneath(&src, ".claude.json") {
        Ok(None) => {}
        Err(e) => done.skipped.push(note(".claude.json", &e)),
        Ok(Some(bytes)) => {
            found = true;
            match serde_json::from_slice::<Value>(&bytes) {
                Err(e) => done.skipped.push(note(".claude.json (not valid JSON)", &e)),
                Ok(json) => {
                    let (kept, left) = preferences(&json);
                    done.left_out.extend(left);
                    let mut merged = match read_beneath(target.home, ".claude.json") {
                        Ok(Some(b)) => match serde_json::from_slice::<Value>(&b) {
                            Ok(Value::Object(m)) => m,
                            _ => Map::new(),
                        },
                        _ => Map::new(),
                    };
                    merged.extend(kept);
                    let text = serde_json::to_vec_pretty(&Value::Object(merged))
                        .unwrap_or_else(|_| b"{}".to_vec());
                    target.write(".claude.json", &text, 0o600)?;
                    done.copied.push(".claude.json".into());
                }
            }
        }
    }

    let claude = match nofollow::open_beneath(
        src.as_fd(),
        Path::new(".claude"),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    ) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => {
            done.skipped.push(note(".claude/", &e));
            None
        }
    };
    if let Some(claude) = claude {
        found = true;
        match read_beneath(&claude, "settings.json") {
            Ok(None) => {}
            Err(e) => done.skipped.push(note(".claude/settings.json", &e)),
            Ok(Some(bytes)) => match serde_json::from_slice::<Value>(&bytes) {
                Err(e) => done
                    .skipped
                    .push(note(".claude/settings.json (not valid JSON)", &e)),
                Ok(json) => {
                    let (kept, left) = settings(&json);
                    done.left_out.extend(left);
                    let text = serde_json::to_vec_pretty(&kept).unwrap_or_default();
                    target.write(".claude/settings.json", &text, 0o600)?;
                    done.copied.push(".claude/settings.json".into());
                }
            },
        }
        for f in FILES {
            match read_beneath(&claude, f) {
                Ok(None) => {}
                Err(e) => done.skipped.push(note(&format!(".claude/{f}"), &e)),
                Ok(Some(bytes)) => {
                    target.write(&format!(".claude/{f}"), &bytes, 0o600)?;
                    done.copied.push(format!(".claude/{f}"));
                }
            }
        }
        for folder in FOLDERS {
            let mut files = Vec::new();
            walk(&claude, folder, 0, &mut files, &mut done.skipped);
            for rel in files {
                match read_beneath(&claude, &rel) {
                    Ok(None) => {}
                    Err(e) => done.skipped.push(note(&format!(".claude/{rel}"), &e)),
                    Ok(Some(bytes)) => {
                        target.write(&format!(".claude/{rel}"), &bytes, 0o600)?;
                        done.copied.push(format!(".claude/{rel}"));
                    }
                }
            }
        }
    }
    if !found {
        return Err(ImportError::Nothing(from.to_path_buf()));
    }
    Ok(done)
}

/// The regular files beneath `rel` in `dir` (relative paths), links and odd names skipped.
fn walk(dir: &OwnedFd, rel: &str, depth: usize, out: &mut Vec<String>, skipped: &mut Vec<String>) {
    let fd = match nofollow::open_beneath(
        dir.as_fd(),
        Path::new(rel),
        libc::O_DIRECTORY | libc::O_RDONLY,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return,
        Err(e) => {
            skipped.push(format!(".claude/{rel}: {e}"));
            return;
        }
    };
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        fd.as_raw_fd()
    })) else {
        return;
    };
    let mut names: Vec<(String, Option<std::fs::FileType>)> = entries
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.file_type().ok())))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in names {
        if name.starts_with('.') || name.contains('/') {
            continue;
        }
        let path = format!("{rel}/{name}");
        match kind {
            Some(t) if t.is_dir() && depth < MAX_DEPTH => walk(dir, &path, depth + 1, out, skipped),
            Some(t) if t.is_file() && out.len() < MAX_FILES => out.push(path),
            Some(t) if t.is_symlink() => {
                skipped.push(format!(".claude/{path}: a symbolic link, not followed"))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_preferences_leave_claude_json_and_credentials_never_do() {
        let json = serde_json::json!({
            "theme": "light", "hasCompletedOnboarding": true,
            "primaryApiKey": "sk-ant-secret", "oauthAccount": {"emailAddress": "a@b"},
            "customApiKeyResponses": {"approved": ["abc"]}, "userID": "u",
            "mcpServers": {"x": {"env": {"TOKEN": "t"}}}, "projects": {"/home/me/p": {}},
        });
        let (kept, left) = preferences(&json);
        assert_eq!(
            kept.keys().collect::<Vec<_>>(),
            vec!["hasCompletedOnboarding", "theme"]
        );
        let text = serde_json::to_string(&kept).unwrap();
        assert!(!text.contains("sk-ant") && !text.contains("a@b") && !text.contains("TOKEN"));
        assert!(left.contains(&".claude.json: primaryApiKey".to_string()));

        let (s, left) = settings(
            &serde_json::json!({"env": {"ANTHROPIC_API_KEY": "k"}, "apiKeyHelper": "pass x", "model": "opus"}),
        );
        assert_eq!(s, serde_json::json!({"model": "opus"}));
        assert_eq!(
            left,
            vec!["settings.json: env", "settings.json: apiKeyHelper"]
        );
    }

    #[test]
    fn an_import_copies_settings_and_folders_merges_preferences_and_follows_no_link() {
        let from = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        let c = from.path().join(".claude");
        std::fs::create_dir_all(c.join("agents/deep")).unwrap();
        std::fs::create_dir_all(c.join("commands")).unwrap();
        std::fs::write(
            c.join("settings.json"),
            r#"{"model":"opus","env":{"K":"v"}}"#,
        )
        .unwrap();
        std::fs::write(c.join("CLAUDE.md"), "be kind").unwrap();
        std::fs::write(c.join("agents/deep/a.md"), "agent").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), c.join("commands/evil.md"))
            .unwrap();
        std::fs::write(
            from.path().join(".claude.json"),
            r#"{"theme":"light","primaryApiKey":"sk-x"}"#,
        )
        .unwrap();
        std::fs::write(home.path().join(".claude.json"), r#"{"userID":"mine"}"#).unwrap();
        // A link planted where the import writes is replaced, not written through.
        std::fs::create_dir(home.path().join(".claude")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            home.path().join(".claude/CLAUDE.md"),
        )
        .unwrap();

        let fd = nofollow::open_root(home.path()).unwrap();
        let done = import(
            from.path(),
            &Target {
                home: &fd,
                owner: None,
            },
        )
        .unwrap();
        let read = |p: &str| std::fs::read_to_string(home.path().join(p)).unwrap();
        assert_eq!(read(".claude/CLAUDE.md"), "be kind");
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret")).unwrap(),
            "outside"
        );
        assert_eq!(read(".claude/agents/deep/a.md"), "agent");
        assert!(!home.path().join(".claude/commands/evil.md").exists());
        assert!(
            done.skipped.iter().any(|s| s.contains("evil.md")),
            "{done:?}"
        );
        let json: Value = serde_json::from_str(&read(".claude.json")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"userID": "mine", "theme": "light"})
        );
        let settings: Value = serde_json::from_str(&read(".claude/settings.json")).unwrap();
        assert_eq!(settings, serde_json::json!({"model": "opus"}));
        assert!(done
            .left_out
            .contains(&".claude.json: primaryApiKey".into()));

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            import(
                empty.path(),
                &Target {
                    home: &fd,
                    owner: None
                }
            ),
            Err(ImportError::Nothing(_))
        ));
    }
}
