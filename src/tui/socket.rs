//! `cordon tui`: the TUI of a running `cordon serve`, over its unix socket. The host learns
//! the connecting OS account from the kernel (SO_PEERCRED) and serves the TUI as the cordon
//! user of that name. The client sends frames (kind byte, u32 length, payload: 'd' terminal
//! bytes, 'r' a size as two u16 cols/rows); the host answers with the terminal's bytes
//! (which begin with an escape sequence), or, refusing the account, with one line beginning
//! `cordon: ` before it closes (the client then exits with status 1).

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::Input;
use crate::service::Service;

/// Frames larger than this end the connection.
const FRAME_LIMIT: u32 = 1 << 16;

/// One frame to the host.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn size_frame(cols: u16, rows: u16) -> Vec<u8> {
    let mut p = cols.to_be_bytes().to_vec();
    p.extend_from_slice(&rows.to_be_bytes());
    frame(b'r', &p)
}

/// Reads one frame; None at the end of the stream or on a malformed frame.
async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> Option<Input> {
    let kind = r.read_u8().await.ok()?;
    let len = r.read_u32().await.ok()?;
    if len > FRAME_LIMIT {
        return None;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await.ok()?;
    match (kind, payload.as_slice()) {
        (b'd', _) => Some(Input::Bytes(payload)),
        (b'r', [c0, c1, r0, r1]) => Some(Input::Resize(
            u16::from_be_bytes([*c0, *c1]).clamp(1, 1000),
            u16::from_be_bytes([*r0, *r1]).clamp(1, 1000),
        )),
        _ => None,
    }
}

/// Listens on `path` (replacing a stale socket) and serves the TUI to each connection.
pub fn listen(svc: Arc<Service>, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "{} is in use: is another cordon serve running on this data directory?",
            path.display()
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(|e| format!("listening on {}: {e}", path.display()))?;
    // Who may connect is decided per connection (SO_PEERCRED); the directory decides who can reach it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(svc.clone(), stream));
        }
    });
    Ok(())
}

async fn serve(svc: Arc<Service>, stream: UnixStream) {
    let uid = match stream.peer_cred() {
        Ok(c) => c.uid(),
        Err(_) => return,
    };
    let (mut rd, mut wr) = stream.into_split();
    let me = match svc.peer_login(uid) {
        Ok(p) => p,
        Err(e) => {
            let name = crate::accounts::name_of(uid).unwrap_or_else(|| format!("uid-{uid}"));
            let _ = wr
                .write_all(format!("cordon: {name} may not use the TUI here: {e}\r\n").as_bytes())
                .await;
            return;
        }
    };
    // The first frame is the terminal's size.
    let size = match read_frame(&mut rd).await {
        Some(Input::Resize(c, r)) => (c, r),
        _ => return,
    };
    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(input) = read_frame(&mut rd).await {
            if in_tx.send(input).is_err() {
                break;
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    super::run(
        svc,
        me,
        size,
        super::Quitting::LeavesSessions,
        in_rx,
        out_tx,
    )
    .await;
    let _ = writer.await;
}
