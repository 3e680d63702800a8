//! Copying files in and out (the SSH face's SFTP subsystem, which `sftp` and `scp` use): a
//! file session opens the caller's own home and workspace folder as one tree
//! ([`crate::files`]), on a thread acting as the user's account. Authority is read again
//! at every operation (a lock, removal or demotion stops the next one), each file copied
//! in or out is audited when it is closed (its path in the tree and its bytes), every
//! change (mkdir, remove, rename, attributes) as it is made, and refusals (a link, a
//! permission, what is not offered) as refusals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;
use crate::files::{Attrs, Change, Closed, FileError, OpenMode, Tree, Worker};

/// One client's file session: its tree, on the thread acting as its user.
pub struct FileSession {
    svc: Arc<Service>,
    p: Principal,
    worker: Worker,
    files_read: AtomicU64,
    files_written: AtomicU64,
}

/// An entry of a listing: its name and attributes.
pub type Entry = (String, Attrs);

impl Service {
    /// Opens the caller's files (home and workspace folder) for copying in and out.
    pub fn open_files(self: &Arc<Self>, p: &Principal) -> Result<FileSession> {
        let p = self.check(p, Action::TransferFiles, "sftp", |p| {
            format!(
                "{} may not copy files in or out (sftp, scp)",
                p.role.with_article()
            )
        })?;
        let user = self.store.user_by_id(p.user_id)?.ok_or_else(|| {
            Error::Invalid(
                "the host's own shell has no home or workspace; act as a cordon user".into(),
            )
        })?;
        let place = |e: crate::places::PlaceError| {
            let why = e.to_string();
            match e {
                crate::places::PlaceError::Io(_) => Error::failed(why),
                _ => self.refused(&p, "sftp", &why, Error::Forbidden(why.clone())),
            }
        };
        let account = self.places.account(&user).map_err(place)?;
        let roots = self.places.file_roots(&user).map_err(place)?;
        let names: Vec<String> = roots.iter().map(|(n, _)| format!("/{n}")).collect();
        let worker = Worker::start(Tree::new(roots), account)
            .map_err(|e| Error::caused("starting a file session", e))?;
        self.record(
            p.stamp(AuditEvent::new(Kind::FilesStart, p.user.clone()))
                .with("roots", names),
        );
        Ok(FileSession {
            svc: self.clone(),
            p,
            worker,
            files_read: AtomicU64::new(0),
            files_written: AtomicU64::new(0),
        })
    }
}

impl FileSession {
    /// The caller may still copy files (not locked, removed or demoted): read now.
    fn authorize(&self, what: &str) -> Result<()> {
        self.svc
            .check(&self.p, Action::TransferFiles, what, |p| {
                format!(
                    "{} may not copy files in or out (sftp, scp)",
                    p.role.with_article()
                )
            })
            .map(drop)
    }

    fn event(&self, kind: Kind) -> AuditEvent {
        self.p.stamp(AuditEvent::new(kind, self.p.user.clone()))
    }

    /// A tree's error as the service's: refusals audited (with the path) and forbidden,
    /// missing files not found, bad paths invalid, the rest the host's failure.
    fn answer(&self, what: &str, e: FileError) -> Error {
        let why = e.to_string();
        match e {
            e if e.is_refusal() => {
                self.svc
                    .refused(&self.p, what, &why, Error::Forbidden(why.clone()))
            }
            FileError::NotFound(_) => Error::NotFound(why),
            FileError::Path(_) | FileError::NoHandle(_) => Error::Invalid(why),
            e => Error::caused(what.to_string(), e),
        }
    }

    /// Runs `f` on the session's thread after the authority check.
    fn on_tree<R: Send + 'static>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Tree) -> std::result::Result<R, FileError> + Send + 'static,
    ) -> Result<R> {
        self.authorize(what)?;
        match self.worker.call(f) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(self.answer(what, e)),
            None => Err(Error::failed("the file session's thread ended")),
        }
    }

    /// `path` made plain, as the client is shown it (`.` is the workspace).
    pub fn realpath(&self, path: &str) -> Result<String> {
        let path = path.to_string();
        self.on_tree("sftp realpath", move |t| Ok(t.resolve(&path)?.shown()))
    }

    /// Attributes of `path` itself (a link's own).
    pub fn lstat(&self, path: &str) -> Result<Attrs> {
        let path = path.to_string();
        self.on_tree("sftp stat", move |t| t.lstat(&t.resolve(&path)?))
    }

    pub fn fstat(&self, handle: u32) -> Result<Attrs> {
        self.on_tree("sftp stat", move |t| t.fstat(handle))
    }

    /// Opens a file; its copy is audited when it is closed.
    pub fn open(&self, path: &str, mode: OpenMode, perm: Option<u32>) -> Result<u32> {
        let path = path.to_string();
        let what = if mode.write || mode.append {
            "sftp write"
        } else {
            "sftp read"
        };
        self.on_tree(what, move |t| {
            let p = t.resolve(&path)?;
            t.open(&p, mode, perm)
        })
    }

    /// Up to `len` bytes at `offset`; None at the end of the file.
    pub fn read(&self, handle: u32, offset: u64, len: u32) -> Result<Option<Vec<u8>>> {
        self.on_tree("sftp read", move |t| t.read(handle, offset, len))
    }

    pub fn write(&self, handle: u32, offset: u64, data: Vec<u8>) -> Result<()> {
        self.on_tree("sftp write", move |t| t.write(handle, offset, &data))
    }

    /// Closes a file (auditing what was copied) or a listing. Closing is never refused:
    /// what a user did before a lock is still recorded.
    pub fn close(&self, handle: u32) -> Result<()> {
        match self.worker.call(move |t| t.close(handle)) {
            Some(Ok(c)) => {
                self.closed(c);
                Ok(())
            }
            Some(Err(e)) => Err(self.answer("sftp close", e)),
            None => Err(Error::failed("the file session's thread ended")),
        }
    }

    fn closed(&self, c: Closed) {
        let Closed::File {
            path,
            mode,
            read,
            written,
            created,
        } = c
        else {
            return;
        };
        let e = if mode.write || mode.append {
            self.files_written.fetch_add(1, Ordering::Relaxed);
            self.event(Kind::FileWrite)
                .with("path", path)
                .with("bytes", written)
                .with("created", created)
        } else {
            self.files_read.fetch_add(1, Ordering::Relaxed);
            self.event(Kind::FileRead)
                .with("path", path)
                .with("bytes", read)
        };
        self.svc.record(e);
    }

    pub fn opendir(&self, path: &str) -> Result<u32> {
        let path = path.to_string();
        self.on_tree("sftp list", move |t| t.opendir(&t.resolve(&path)?))
    }

    /// The next entries of a listing; None when it is done.
    pub fn readdir(&self, handle: u32) -> Result<Option<Vec<Entry>>> {
        self.on_tree("sftp list", move |t| t.readdir(handle))
    }

    pub fn mkdir(&self, path: &str, perm: Option<u32>) -> Result<()> {
        let path = path.to_string();
        let shown = self.on_tree("sftp mkdir", move |t| {
            let p = t.resolve(&path)?;
            t.mkdir(&p, perm).map(|()| p.shown())
        })?;
        self.svc
            .record(self.event(Kind::FileMkdir).with("path", shown));
        Ok(())
    }

    pub fn rmdir(&self, path: &str) -> Result<()> {
        let path = path.to_string();
        let shown = self.on_tree("sftp rmdir", move |t| {
            let p = t.resolve(&path)?;
            t.rmdir(&p).map(|()| p.shown())
        })?;
        self.svc
            .record(self.event(Kind::FileRmdir).with("path", shown));
        Ok(())
    }

    pub fn remove(&self, path: &str) -> Result<()> {
        let path = path.to_string();
        let shown = self.on_tree("sftp remove", move |t| {
            let p = t.resolve(&path)?;
            t.remove(&p).map(|()| p.shown())
        })?;
        self.svc
            .record(self.event(Kind::FileRemove).with("path", shown));
        Ok(())
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_string(), to.to_string());
        let (from, to) = self.on_tree("sftp rename", move |t| {
            let (a, b) = (t.resolve(&from)?, t.resolve(&to)?);
            t.rename(&a, &b).map(|()| (a.shown(), b.shown()))
        })?;
        self.svc.record(
            self.event(Kind::FileRename)
                .with("from", from)
                .with("to", to),
        );
        Ok(())
    }

    pub fn readlink(&self, path: &str) -> Result<String> {
        let path = path.to_string();
        self.on_tree("sftp readlink", move |t| t.readlink(&t.resolve(&path)?))
    }

    /// Changes permissions, times or size of `path` (never its owner).
    pub fn setstat(&self, path: &str, c: Change) -> Result<()> {
        let path = path.to_string();
        let shown = self.on_tree("sftp setstat", move |t| {
            let p = t.resolve(&path)?;
            t.setstat(&p, c).map(|()| p.shown())
        })?;
        self.attrs_changed(shown, c);
        Ok(())
    }

    pub fn fsetstat(&self, handle: u32, c: Change) -> Result<()> {
        self.on_tree("sftp setstat", move |t| t.fsetstat(handle, c))?;
        self.attrs_changed(format!("(open file {handle})"), c);
        Ok(())
    }

    fn attrs_changed(&self, path: String, c: Change) {
        let mut e = self.event(Kind::FileAttrs).with("path", path);
        if let Some(m) = c.permissions {
            e = e.with("permissions", format!("{:o}", m & 0o1777));
        }
        if let Some((a, m)) = c.times {
            e = e.with("times", format!("atime {a} mtime {m}"));
        }
        if let Some(s) = c.size {
            e = e.with("size", s);
        }
        self.svc.record(e);
    }

    /// Something the tree does not offer (making links), refused and audited.
    pub fn refuse(&self, what: &'static str, why: &'static str) -> Error {
        self.answer("sftp", FileError::Unsupported { what, why })
    }
}

/// The session's end: files left open are audited as if closed, then the end itself.
impl Drop for FileSession {
    fn drop(&mut self) {
        for c in self.worker.call(|t| t.close_all()).unwrap_or_default() {
            self.closed(c);
        }
        self.svc.record(
            self.event(Kind::FilesEnd)
                .with("files_read", self.files_read.load(Ordering::Relaxed))
                .with("files_written", self.files_written.load(Ordering::Relaxed)),
        );
    }
}
