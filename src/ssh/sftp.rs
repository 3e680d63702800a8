//! The SFTP subsystem (`sftp`, and `scp`, which speaks SFTP by default): russh-sftp reads
//! and writes the protocol; each request becomes a call on the service's file session,
//! which checks the caller, acts as them and audits. What SFTP v3 asks and the session
//! does not offer (links, owners, extensions) is answered "unsupported".

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use crate::files::{Change, OpenMode};
use crate::service::{Error, FileSession};

/// The largest SFTP packet a client may send (a 256 KiB write and its header).
pub const MAX_PACKET: u32 = (256 << 10) + 1024;

/// One SFTP channel: the session's file session, shared with the blocking calls.
pub struct Sftp {
    files: Arc<FileSession>,
}

impl Sftp {
    pub fn new(files: FileSession) -> Sftp {
        Sftp {
            files: Arc::new(files),
        }
    }

    /// Runs `f` on a blocking thread (the file session waits for its own thread and the
    /// store) and answers the service's error as an SFTP status.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FileSession) -> crate::service::Result<T> + Send + 'static,
    ) -> Result<T, StatusReply> {
        let files = self.files.clone();
        match tokio::task::spawn_blocking(move || f(&files)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(status(&e)),
            Err(_) => Err(StatusCode::Failure.into()),
        }
    }
}

type Stream = russh::ChannelStream<russh::server::Msg>;

/// The channel's stream, which says how the subsystem ended before it goes: dropping the
/// stream closes the channel, and scp wants exit status 0 first (sftp-server's).
pub struct Ending {
    stream: Option<Stream>,
    handle: russh::server::Handle,
    channel: russh::ChannelId,
}

impl Ending {
    pub fn new(stream: Stream, handle: russh::server::Handle, channel: russh::ChannelId) -> Ending {
        Ending {
            stream: Some(stream),
            handle,
            channel,
        }
    }

    fn inner(&mut self) -> Pin<&mut Stream> {
        Pin::new(self.stream.as_mut().expect("held until dropped"))
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        let (handle, channel, stream) = (self.handle.clone(), self.channel, self.stream.take());
        tokio::spawn(async move {
            let _ = handle.exit_status_request(channel, 0).await;
            let _ = handle.eof(channel).await;
            drop(stream);
        });
    }
}

impl AsyncRead for Ending {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.get_mut().inner().poll_read(cx, buf)
    }
}

impl AsyncWrite for Ending {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().inner().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().inner().poll_shutdown(cx)
    }
}

/// The service's kinds as SFTP status codes, with the service's words.
fn status(e: &Error) -> StatusReply {
    let code = match e {
        Error::Forbidden(_) => StatusCode::PermissionDenied,
        Error::NotFound(_) => StatusCode::NoSuchFile,
        Error::Invalid(_) | Error::Conflict(_) | Error::Failed(_) => StatusCode::Failure,
    };
    // A failure's details stay in the host's log.
    let words = match e {
        Error::Failed(f) => {
            eprintln!("cordon: sftp: {}", crate::text::printable(&f.to_string()));
            "the host could not do it".to_string()
        }
        e => crate::text::printable_lines(&e.to_string()).into_owned(),
    };
    code.with_message(words)
}

fn handle(h: &str) -> Result<u32, StatusReply> {
    h.parse()
        .map_err(|_| StatusCode::Failure.with_message("no such handle"))
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn attributes(a: crate::files::Attrs) -> FileAttributes {
    FileAttributes {
        size: Some(a.size),
        uid: Some(a.uid),
        user: None,
        gid: Some(a.gid),
        group: None,
        permissions: Some(a.mode),
        atime: Some(a.atime),
        mtime: Some(a.mtime),
    }
}

fn change(a: &FileAttributes) -> Change {
    Change {
        permissions: a.permissions,
        times: a.atime.zip(a.mtime),
        owner: a.uid.is_some() || a.gid.is_some(),
        size: a.size,
    }
}

impl russh_sftp::server::Handler for Sftp {
    type Error = StatusReply;

    fn unimplemented(&self) -> StatusReply {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: std::collections::HashMap<String, String>,
    ) -> Result<Version, StatusReply> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, StatusReply> {
        let p = self.call(move |f| f.realpath(&path)).await?;
        Ok(Name {
            id,
            files: vec![File::dummy(p)],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        // Nothing is followed: stat is lstat.
        self.lstat(id, path).await
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let a = self.call(move |f| f.lstat(&path)).await?;
        Ok(Attrs {
            id,
            attrs: attributes(a),
        })
    }

    async fn fstat(&mut self, id: u32, h: String) -> Result<Attrs, StatusReply> {
        let h = handle(&h)?;
        let a = self.call(move |f| f.fstat(h)).await?;
        Ok(Attrs {
            id,
            attrs: attributes(a),
        })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, StatusReply> {
        let mode = OpenMode {
            read: pflags.contains(OpenFlags::READ),
            write: pflags.contains(OpenFlags::WRITE),
            append: pflags.contains(OpenFlags::APPEND),
            create: pflags.contains(OpenFlags::CREATE),
            truncate: pflags.contains(OpenFlags::TRUNCATE),
            exclusive: pflags.contains(OpenFlags::EXCLUDE),
        };
        let h = self
            .call(move |f| f.open(&filename, mode, attrs.permissions))
            .await?;
        Ok(Handle {
            id,
            handle: h.to_string(),
        })
    }

    async fn read(
        &mut self,
        id: u32,
        h: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, StatusReply> {
        let h = handle(&h)?;
        match self.call(move |f| f.read(h, offset, len)).await? {
            Some(data) => Ok(Data { id, data }),
            None => Err(StatusCode::Eof.into()),
        }
    }

    async fn write(
        &mut self,
        id: u32,
        h: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, StatusReply> {
        let h = handle(&h)?;
        self.call(move |f| f.write(h, offset, data)).await?;
        Ok(ok(id))
    }

    async fn close(&mut self, id: u32, h: String) -> Result<Status, StatusReply> {
        let h = handle(&h)?;
        self.call(move |f| f.close(h)).await?;
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, StatusReply> {
        let h = self.call(move |f| f.opendir(&path)).await?;
        Ok(Handle {
            id,
            handle: h.to_string(),
        })
    }

    async fn readdir(&mut self, id: u32, h: String) -> Result<Name, StatusReply> {
        let h = handle(&h)?;
        match self.call(move |f| f.readdir(h)).await? {
            Some(entries) => Ok(Name {
                id,
                files: entries
                    .into_iter()
                    .map(|(n, a)| File::new(n, attributes(a)))
                    .collect(),
            }),
            None => Err(StatusCode::Eof.into()),
        }
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        self.call(move |f| f.mkdir(&path, attrs.permissions))
            .await?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, StatusReply> {
        self.call(move |f| f.rmdir(&path)).await?;
        Ok(ok(id))
    }

    async fn remove(&mut self, id: u32, path: String) -> Result<Status, StatusReply> {
        self.call(move |f| f.remove(&path)).await?;
        Ok(ok(id))
    }

    async fn rename(&mut self, id: u32, from: String, to: String) -> Result<Status, StatusReply> {
        self.call(move |f| f.rename(&from, &to)).await?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, StatusReply> {
        let target = self.call(move |f| f.readlink(&path)).await?;
        Ok(Name {
            id,
            files: vec![File::dummy(target)],
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        let c = change(&attrs);
        self.call(move |f| f.setstat(&path, c)).await?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        h: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        let h = handle(&h)?;
        let c = change(&attrs);
        self.call(move |f| f.fsetstat(h, c)).await?;
        Ok(ok(id))
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _link: String,
        _target: String,
    ) -> Result<Status, StatusReply> {
        self.call(|f| {
            Err::<Status, _>(f.refuse(
                "making symbolic links",
                "cordon never follows links in homes and workspaces",
            ))
        })
        .await
    }
}
