//! The TUI (ratatui): the same interface on the local terminal (`cordon` with no arguments)
//! and over SSH (a shell request with a terminal). It is driven by raw input bytes and writes
//! raw output bytes, so neither face needs a local terminal: `run` takes both as channels.

mod admin;
pub mod app;
pub mod ask_line;
mod keys;
mod local;
mod player;
pub mod socket;
pub mod view;

pub use local::{client, embedded};

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::service::{Principal, Service};
use app::{App, Effect};

/// What the terminal sends.
#[derive(Debug)]
pub enum Input {
    Bytes(Vec<u8>),
    Resize(u16, u16),
}

/// A `Write` that collects the bytes ratatui draws, to be sent as one message.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The TUI's own screen: the alternate one (the shell's stays as it was), the cursor hidden,
/// cleared. Sent again after an attached session, once its modes are undone
/// (`Session::leave`): the session may have left the alternate screen, or been on it.
const ENTER: &[u8] = b"\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J";
const LEAVE: &[u8] = b"\x1b[0m\x1b[?25h\x1b[?1049l";

/// Whether quitting the TUI ends the sessions it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quitting {
    /// The embedded host (`cordon` with no arguments) ends with its TUI: `q` asks first.
    EndsSessions,
    /// Over SSH or `cordon tui`, the sessions belong to `cordon serve` and live on.
    LeavesSessions,
}

fn rect(size: (u16, u16)) -> Rect {
    Rect::new(0, 0, size.0.max(20), size.1.max(6))
}

type Term = Terminal<CrosstermBackend<Sink>>;

/// A terminal with empty buffers: the next draw redraws every cell (after a resize, or
/// after a session had the screen).
fn terminal(sink: &Sink, size: (u16, u16)) -> Option<Term> {
    Terminal::with_options(
        CrosstermBackend::new(sink.clone()),
        TerminalOptions {
            viewport: Viewport::Fixed(rect(size)),
        },
    )
    .ok()
}

/// Runs the TUI for `me` until they quit or the input ends.
pub async fn run(
    svc: Arc<Service>,
    me: Principal,
    size: (u16, u16),
    quitting: Quitting,
    mut input: UnboundedReceiver<Input>,
    out: UnboundedSender<Vec<u8>>,
) {
    let sink = Sink::default();
    let Some(mut terminal) = terminal(&sink, size) else {
        return;
    };
    let detach_key = svc.config().detach_key;
    let mut app = App::new(svc.clone(), me, size);
    app.quitting = quitting;
    let _ = out.send(ENTER.to_vec());
    'outer: loop {
        if terminal.draw(|f| view::draw(f, &app)).is_err() {
            break;
        }
        let _ = out.send(sink.take());
        let tick = if app.player.as_ref().is_some_and(|p| p.playing) {
            40
        } else {
            300
        };
        let msg = tokio::select! {
            m = input.recv() => m,
            _ = tokio::time::sleep(Duration::from_millis(tick)) => {
                if let Some(p) = app.player.as_mut() {
                    p.tick();
                } else {
                    app.tick();
                }
                if app.ended.is_some() {
                    break 'outer;
                }
                continue;
            }
        };
        let mut attach = None;
        match msg {
            None => break,
            Some(Input::Resize(c, r)) => {
                app.resize((c, r));
                let _ = out.send(b"\x1b[H\x1b[2J".to_vec());
                match self::terminal(&sink, app.size) {
                    Some(t) => terminal = t,
                    None => break,
                }
            }
            Some(Input::Bytes(bytes)) => {
                for key in keys::parse(&bytes) {
                    match app.key(key) {
                        Effect::None => {}
                        Effect::Quit => break 'outer,
                        Effect::Attach {
                            session,
                            viewer,
                            writer,
                        } => {
                            attach = Some((session, viewer, writer));
                            break;
                        }
                    }
                }
            }
        }
        let Some((session, viewer, writer)) = attach else {
            continue;
        };
        // Full-screen passthrough until the detach key or the session's end.
        let _ = out.send(b"\x1b[0m\x1b[H\x1b[2J\x1b[?25h".to_vec());
        let mut ask = ask_line::AskLine::new(&session, &viewer, &svc.config().detach_key_name);
        let ended = loop {
            if let Some(why) = viewer.revoked() {
                app.ended = Some(why);
                break None;
            }
            if let Some(code) = session.exit_status() {
                break Some(code);
            }
            // At most half a second without output (a session's end, a revocation), and
            // the line's own time (the notice going; not sooner than `ask_line::AGAIN`).
            let wait = ask.due().map_or(Duration::from_millis(500), |at| {
                at.saturating_duration_since(std::time::Instant::now())
                    .clamp(ask_line::AGAIN, Duration::from_millis(500))
            });
            tokio::select! {
                m = input.recv() => match m {
                    None => {
                        svc.detach(&app.me, &session, &viewer);
                        break 'outer;
                    }
                    Some(Input::Resize(c, r)) => {
                        app.size = (c, r);
                        if writer {
                            session.resize(c, r);
                        }
                    }
                    Some(Input::Bytes(bytes)) => {
                        let (before, detach) = match bytes.iter().position(|&b| b == detach_key) {
                            Some(i) => (&bytes[..i], true),
                            None => (&bytes[..], false),
                        };
                        match ask.key(before) {
                            ask_line::KeyOutcome::Pass => {
                                if writer && !before.is_empty() && !viewer.gone.load(std::sync::atomic::Ordering::SeqCst) {
                                    let _ = session.input(before);
                                }
                            }
                            ask_line::KeyOutcome::Answer(q, answer) => {
                                if let Err(e) = svc.answer_question(&app.me, &session.id.to_string(), q, answer) {
                                    app.status = e.to_string();
                                }
                                let _ = out.send(ask.drain(&session, &viewer));
                            }
                            ask_line::KeyOutcome::Held => {}
                        }
                        if detach {
                            break None;
                        }
                    }
                },
                _ = viewer.notify.notified() => {
                    let _ = out.send(ask.drain(&session, &viewer));
                }
                _ = tokio::time::sleep(wait) => {
                    let bytes = ask.drain(&session, &viewer);
                    if !bytes.is_empty() {
                        let _ = out.send(bytes);
                    }
                }
            }
        };
        // The rest of its output, then the terminal given back (its modes undone).
        let _ = out.send(ask.leave(&session, &viewer));
        svc.detach(&app.me, &session, &viewer);
        if app.ended.is_some() {
            break 'outer;
        }
        app.status = match ended {
            Some(code) => format!(
                "session {} ({}) ended, exit status {code}",
                crate::text::printable(&session.name()),
                session.id.short()
            ),
            None => format!(
                "detached from session {} ({})",
                crate::text::printable(&session.name()),
                session.id.short()
            ),
        };
        let _ = out.send(ENTER.to_vec());
        match self::terminal(&sink, app.size) {
            Some(t) => terminal = t,
            None => break,
        }
        app.refresh();
    }
    let _ = out.send(LEAVE.to_vec());
    if let Some(why) = app.ended {
        let _ = out.send(format!("cordon: {why}; the TUI has ended\r\n").into_bytes());
    }
}

#[cfg(test)]
mod tests;
