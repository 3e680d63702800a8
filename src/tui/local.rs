//! `cordon` with no arguments: an embedded host (no daemon, no setup; state in the data
//! directory) with the TUI on this terminal, as the OS user running it. Sessions started
//! here are confined and recorded like any other, and end when the TUI does.

use std::io::{IsTerminal, Read, Write};

use super::Input;
use crate::config::Config;
use crate::paths::DataDir;
use crate::service::Service;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// The terminal's size, or 80x24 when it does not say.
fn terminal_size() -> (u16, u16) {
    crossterm::terminal::size()
        .ok()
        .filter(|&(c, r)| c > 0 && r > 0)
        .unwrap_or((80, 24))
}

/// Raw mode on this terminal for as long as it lives (crossterm keeps the modes it replaced
/// and puts them back).
struct RawMode;

impl RawMode {
    fn enter() -> Result<RawMode, String> {
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| format!("setting the terminal to raw mode: {e}"))?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Runs the embedded host and its TUI; returns the exit status.
pub fn embedded(dir: DataDir, config: Option<&std::path::Path>) -> i32 {
    match run(dir, config) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon: {e}");
            1
        }
    }
}

/// Runs `body` with this terminal in raw mode: its size, keys and resizes in, bytes out.
fn with_terminal<F, Fut>(body: F) -> Result<(), String>
where
    F: FnOnce((u16, u16), UnboundedReceiver<Input>, UnboundedSender<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err("the TUI needs a terminal; for a host without one, run `cordon serve` (see `cordon --help`)".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let raw = RawMode::enter()?;
    let result = rt.block_on(async {
        let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let keys = in_tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || keys.send(Input::Bytes(buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        let mut winch =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                let (c, r) = terminal_size();
                if in_tx.send(Input::Resize(c, r)).is_err() {
                    break;
                }
            }
        });
        let writer = tokio::task::spawn_blocking(move || {
            let mut stdout = std::io::stdout().lock();
            while let Some(bytes) = out_rx.blocking_recv() {
                if stdout
                    .write_all(&bytes)
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        });
        let result = body(terminal_size(), in_rx, out_tx).await;
        let _ = writer.await;
        result
    });
    drop(raw);
    rt.shutdown_background();
    result
}

fn run(dir: DataDir, config: Option<&std::path::Path>) -> Result<(), String> {
    crate::process::raise_open_files();
    let mut config = Config::load(config, &dir.root).map_err(|e| e.to_string())?;
    config.local_workspace = starting_directory();
    let (svc, tightened) = Service::open(dir, config).map_err(|e| e.to_string())?;
    for t in &tightened {
        eprintln!("cordon: {t}");
    }
    let me = svc.local_login().map_err(|e| e.to_string())?;
    let (s, m) = (svc.clone(), me.clone());
    let result = with_terminal(move |size, input, out| async move {
        // What a user may no longer do ends here too (the embedded host has other users
        // when its data directory is shared with a `cordon serve`).
        let maintained = s.clone();
        let maintenance = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let svc = maintained.clone();
                let _ = tokio::task::spawn_blocking(move || svc.maintain()).await;
            }
        });
        super::run(s, m, size, super::Quitting::EndsSessions, input, out).await;
        maintenance.abort();
        Ok(())
    });
    // The embedded host ends with its TUI, and its sessions with it.
    let running = svc.host_stopping(None);
    if running > 0 {
        println!(
            "cordon: ended {} with the embedded host; use `cordon serve` for sessions that outlive the TUI",
            crate::text::count(running, "session")
        );
    }
    svc.tui_closed(&me);
    // Said again once the TUI has given the screen back: a master key generated on this
    // start is something to keep a copy of.
    for t in tightened.iter().filter(|t| t.contains("master key")) {
        eprintln!("cordon: {t}");
    }
    result
}

/// This OS user and the directory they started `cordon` in: their new sessions' default
/// workspace, as `cordon sandbox`'s (not `/`, which no sandbox takes as a workspace).
fn starting_directory() -> Option<(String, std::path::PathBuf)> {
    // SAFETY: geteuid cannot fail.
    let name = crate::accounts::name_of(unsafe { libc::geteuid() })?;
    let dir = std::env::current_dir().ok()?;
    (dir != std::path::Path::new("/")).then_some((name, dir))
}

/// How the host's refusal begins (see `socket.rs`).
const REFUSAL: &[u8] = b"cordon: ";

/// `cordon tui`: the TUI of the `cordon serve` listening on `socket`; 1 when the host
/// refuses this account.
pub fn client(socket: &std::path::Path) -> i32 {
    let result = with_terminal(|(cols, rows), mut input, out| async move {
        let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
            format!(
                "connecting to {}: {e} (is `cordon serve` running? see [tui] socket)",
                socket.display()
            )
        })?;
        let (mut rd, mut wr) = stream.into_split();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A host that refuses this account says why and closes at once, maybe before this
        // frame arrives: a failed write is not the story, what the host said (read below) is.
        let _ = wr.write_all(&super::socket::size_frame(cols, rows)).await;
        tokio::spawn(async move {
            while let Some(i) = input.recv().await {
                let f = match i {
                    Input::Bytes(b) => super::socket::frame(b'd', &b),
                    Input::Resize(c, r) => super::socket::size_frame(c, r),
                };
                if wr.write_all(&f).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = vec![0u8; 64 << 10];
        // The TUI's bytes begin with an escape sequence; a refusal is one line beginning
        // `cordon: ` (see `socket.rs`), said as an error so that the exit status shows it.
        let mut first = Vec::new();
        let mut drawing = false;
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) if !drawing => {
                    first.extend_from_slice(&buf[..n]);
                    if first.len() >= REFUSAL.len() || !REFUSAL.starts_with(&first) {
                        drawing = !first.starts_with(REFUSAL);
                        if drawing && out.send(std::mem::take(&mut first)).is_err() {
                            break;
                        }
                    }
                }
                Ok(n) => {
                    if out.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
        if !drawing && !first.is_empty() {
            let said = String::from_utf8_lossy(&first[REFUSAL.len().min(first.len())..]);
            return Err(crate::text::printable(said.trim_end()).into_owned());
        }
        Ok(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cordon tui: {e}");
            1
        }
    }
}
