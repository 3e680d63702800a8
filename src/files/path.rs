//! Paths in a user's file tree, made plain before anything is opened: the tree is virtual
//! (`/home`, `/workspace`, each a root the host holds open), so a path is read lexically,
//! never through the file system. `.` goes, `..` takes one name off and stops at `/` (as
//! it does on a real root), so no spelling reaches above a root; a NUL, an overlong path
//! or an overlong name is refused. What comes out is a root's name and the names beneath
//! it, each one plain component.

/// The longest path a client may send, in bytes (PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// The longest single name, in bytes (NAME_MAX).
pub const MAX_NAME: usize = 255;

/// Why a path was refused before it was looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("a path with a NUL byte; name files without one")]
    Nul,
    #[error("a path of {0} bytes; cordon takes paths of at most {MAX_PATH} bytes")]
    TooLong(usize),
    #[error("a name of {0} bytes; cordon takes names of at most {MAX_NAME} bytes")]
    NameTooLong(usize),
}

/// A path made plain: the root's name (None for `/`, which lists the roots) and the names
/// beneath it, none of them empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreePath {
    pub root: Option<String>,
    pub names: Vec<String>,
}

impl TreePath {
    /// The path as the client is shown it (`/workspace/a/b`).
    pub fn shown(&self) -> String {
        match &self.root {
            None => "/".into(),
            Some(r) => {
                let mut s = format!("/{r}");
                for n in &self.names {
                    s.push('/');
                    s.push_str(n);
                }
                s
            }
        }
    }

    /// The path beneath its root, as openat2 takes it (`.` for the root itself).
    pub fn beneath(&self) -> String {
        if self.names.is_empty() {
            ".".into()
        } else {
            self.names.join("/")
        }
    }

    /// The folder holding this path and its last name; None for `/` and for a root itself,
    /// which cannot be made, removed or renamed.
    pub fn parent_and_name(&self) -> Option<(TreePath, &str)> {
        let (last, up) = self.names.split_last()?;
        Some((
            TreePath {
                root: self.root.clone(),
                names: up.to_vec(),
            },
            last.as_str(),
        ))
    }
}

/// Makes `given` plain, relative paths taken from `start` (the tree's initial folder,
/// itself plain).
pub fn normalize(start: &TreePath, given: &str) -> Result<TreePath, PathError> {
    if given.contains('\0') {
        return Err(PathError::Nul);
    }
    if given.len() > MAX_PATH {
        return Err(PathError::TooLong(given.len()));
    }
    let mut parts: Vec<String> = if given.starts_with('/') {
        Vec::new()
    } else {
        start.root.iter().chain(&start.names).cloned().collect()
    };
    for name in given.split('/') {
        match name {
            "" | "." => {}
            // Lexical, and right to be: no link is ever followed, so `a/..` is where `a` is.
            ".." => {
                parts.pop();
            }
            n if n.len() > MAX_NAME => return Err(PathError::NameTooLong(n.len())),
            n => parts.push(n.to_string()),
        }
    }
    let mut parts = parts.into_iter();
    Ok(TreePath {
        root: parts.next(),
        names: parts.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> TreePath {
        TreePath {
            root: Some("workspace".into()),
            names: vec![],
        }
    }

    fn plain(p: &str) -> String {
        normalize(&workspace(), p).unwrap().shown()
    }

    #[test]
    fn relative_paths_start_in_the_workspace() {
        assert_eq!(plain("."), "/workspace");
        assert_eq!(plain(""), "/workspace");
        assert_eq!(plain("a/b.txt"), "/workspace/a/b.txt");
    }

    #[test]
    fn dots_and_repeated_slashes_are_dropped() {
        assert_eq!(plain("/workspace//a/./b/"), "/workspace/a/b");
        assert_eq!(plain("/home/./.ssh"), "/home/.ssh");
    }

    #[test]
    fn dot_dot_never_climbs_above_the_top_of_the_tree() {
        assert_eq!(plain("/workspace/../.."), "/");
        assert_eq!(plain("../../../etc/passwd"), "/etc/passwd");
        assert_eq!(plain("/../../workspace/../home"), "/home");
        assert_eq!(plain("a/../../home/x"), "/home/x");
        // "/etc" names no root: the lookup answers "no such file", never the host's /etc.
        let p = normalize(&workspace(), "../../etc/passwd").unwrap();
        assert_eq!(p.root.as_deref(), Some("etc"));
    }

    #[test]
    fn a_root_and_the_top_have_no_parent_to_change() {
        let top = normalize(&workspace(), "/").unwrap();
        assert_eq!(top.root, None);
        assert!(top.parent_and_name().is_none());
        assert!(workspace().parent_and_name().is_none());
        let f = normalize(&workspace(), "d/f").unwrap();
        let (dir, name) = f.parent_and_name().unwrap();
        assert_eq!((dir.shown().as_str(), name), ("/workspace/d", "f"));
        assert_eq!(dir.beneath(), "d");
        assert_eq!(workspace().beneath(), ".");
    }

    #[test]
    fn a_nul_or_an_overlong_path_or_name_is_refused() {
        assert_eq!(normalize(&workspace(), "a\0b"), Err(PathError::Nul));
        let long = "a/".repeat(MAX_PATH);
        assert_eq!(
            normalize(&workspace(), &long),
            Err(PathError::TooLong(long.len()))
        );
        let name = "n".repeat(MAX_NAME + 1);
        assert_eq!(
            normalize(&workspace(), &name),
            Err(PathError::NameTooLong(MAX_NAME + 1))
        );
    }
}
