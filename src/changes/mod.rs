//! Files changed: what a session created, changed and deleted in its workspace, with sizes.
//! The workspace is walked before the session's command starts (the baseline, so that
//! nothing the command writes is missed), and again when the session ends (the summary
//! kept with its recording) or when someone asks while it runs; the two walks are compared.
//!
//! `snapshot.rs` is the tree at one moment and `diff.rs` the comparison (both pure);
//! `walk.rs` reads a tree without following a link or crossing a mount point, bounded;
//! `summary.rs` is what is kept, answered and shown. [`Watch`] holds a session's baseline
//! and the workspace's descriptor, opened before the command started: every later walk
//! reads the same directory, whatever is renamed around it.
//!
//! What the summary cannot see: a change that leaves size, modification time, inode,
//! permission bits and change time all as they were (the kernel alone sets the change
//! time, so only a change of the clock could); what happened between the walks and was
//! undone (a file made and removed); which process made a change (another session in the
//! same workspace, an SFTP copy or an export lands in the summary too); what lies past a
//! walk's bounds (said in the summary).

mod diff;
pub mod snapshot;
pub mod summary;
mod walk;

pub use summary::{bounded, Summary, Taken};
pub use walk::Limits;

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::nofollow::FdRef;
use snapshot::Snapshot;

/// A session's workspace as it was before its command started, and the means to compare
/// it with now.
pub struct Watch {
    workspace: PathBuf,
    /// The workspace, opened without links before the command started.
    dir: OwnedFd,
    baseline: Snapshot,
    since: String,
    /// Where sandboxes hold missing protected paths with placeholders (relative).
    placeholders: Mutex<BTreeSet<Vec<u8>>>,
    limits: Limits,
    /// One walk at a time: a flood of requests waits rather than walks in parallel.
    walking: Mutex<()>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Watch({}, {} entries since {})",
            self.workspace.display(),
            self.baseline.entries().len(),
            self.since
        )
    }
}

/// The paths in `list` beneath `workspace`, relative, as bytes.
fn relative(workspace: &Path, list: &[PathBuf]) -> Vec<Vec<u8>> {
    list.iter()
        .filter_map(|p| {
            p.strip_prefix(workspace)
                .ok()
                .filter(|r| !r.as_os_str().is_empty())
                .map(|r| r.as_os_str().as_bytes().to_vec())
        })
        .collect()
}

impl Watch {
    /// Opens `workspace` (a real path, checked by the places of users; a link on it now is
    /// refused) and walks it. `placeholders` are the absolute paths where the session's
    /// sandbox will hold missing protected paths; those other sandboxes of the workspace
    /// hold are read as they are noted.
    pub fn start(
        workspace: &Path,
        placeholders: &[PathBuf],
        limits: Limits,
    ) -> Result<Watch, String> {
        let dir = sandbox::untrusted::open_root(workspace).map_err(|e| {
            format!(
                "the workspace {} could not be opened: {e}",
                workspace.display()
            )
        })?;
        let since = crate::audit::now_rfc3339();
        let baseline = walk::walk(dir.as_fd_ref(), &limits).map_err(|e| {
            format!(
                "the workspace {} could not be walked: {e}",
                workspace.display()
            )
        })?;
        let mut set: BTreeSet<Vec<u8>> = relative(workspace, placeholders).into_iter().collect();
        set.extend(relative(
            workspace,
            &sandbox::protect::noted_placeholders(workspace),
        ));
        Ok(Watch {
            workspace: workspace.to_path_buf(),
            dir,
            baseline,
            since,
            placeholders: Mutex::new(set),
            limits,
            walking: Mutex::new(()),
        })
    }

    /// Walks the workspace now and compares it with the baseline; `name` turns a path into
    /// the summary's string (the session's secrets redacted).
    pub fn summary(&self, taken: Taken, name: &dyn Fn(&[u8]) -> String) -> Summary {
        let _one = self.walking.lock().unwrap_or_else(|e| e.into_inner());
        let workspace = self.workspace.display().to_string();
        let at = crate::audit::now_rfc3339();
        let now = match walk::walk(self.dir.as_fd_ref(), &self.limits) {
            Ok(s) => s,
            Err(e) => {
                return Summary::unavailable(
                    taken,
                    &workspace,
                    &self.since,
                    &at,
                    format!("the workspace could not be walked: {e}"),
                )
            }
        };
        let placeholders = {
            let mut set = self.placeholders.lock().unwrap_or_else(|e| e.into_inner());
            set.extend(relative(
                &self.workspace,
                &sandbox::protect::noted_placeholders(&self.workspace),
            ));
            set.clone()
        };
        diff::diff(
            &self.baseline,
            &now,
            &diff::Context {
                taken,
                workspace: &workspace,
                since: &self.since,
                at: &at,
                placeholders: &placeholders,
                name,
                limits: &self.limits,
            },
        )
    }
}

/// The headline of a summary as a recording keeps it (event `f`), for markers.
pub fn headline_of(data: &[u8]) -> String {
    match serde_json::from_slice::<Summary>(data) {
        Ok(s) => s.headline(),
        Err(_) => "files: (unreadable)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path as a summary keeps it, no secret to redact.
    fn path_string(path: &[u8]) -> String {
        bounded(String::from_utf8_lossy(path).into_owned())
    }

    #[test]
    fn a_watch_sums_up_what_changed_in_its_workspace_since_it_started() {
        let ws = tempfile::tempdir().unwrap();
        let w = ws.path().canonicalize().unwrap();
        std::fs::write(w.join("keep"), "same").unwrap();
        std::fs::write(w.join("change"), "old").unwrap();
        std::fs::write(w.join("gone"), "bye").unwrap();
        let watch = Watch::start(&w, &[w.join(".git")], Limits::DEFAULT).unwrap();
        std::fs::write(w.join("change"), "longer now").unwrap();
        std::fs::remove_file(w.join("gone")).unwrap();
        std::fs::write(w.join("new"), "hello").unwrap();
        std::fs::create_dir(w.join(".git")).unwrap();
        let s = watch.summary(Taken::Now, &path_string);
        let list = |l: &[summary::Entry]| {
            l.iter()
                .map(|e| (e.path.clone(), e.old_size, e.size))
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&s.created), [("new".into(), None, Some(5))]);
        assert_eq!(list(&s.changed), [("change".into(), Some(3), Some(10))]);
        assert_eq!(list(&s.deleted), [("gone".into(), Some(3), None)]);
        assert_eq!(s.excluded, [".git"]);
        assert!(s.complete, "{:?}", s.unseen);
    }

    #[test]
    fn a_workspace_that_is_a_link_is_not_watched() {
        let real = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let link = t.path().canonicalize().unwrap().join("ws");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        let e = Watch::start(&link, &[], Limits::DEFAULT).unwrap_err();
        assert!(e.contains("could not be opened"), "{e}");
    }
}
