//! A tmux server of the caller's own, on its own socket: windows of a known size that run a
//! command, keys typed into them and their screens read, as a person would. Dropped, it ends
//! the server and every window.

use crate::wait::poll;
use std::process::{Command, Stdio};

/// A tmux server and its windows, named by the caller.
pub struct Tmux {
    /// The server's socket name (`tmux -L`).
    pub socket: String,
}

impl Tmux {
    /// A server on the socket `socket`; the first window starts it.
    pub fn new(socket: String) -> Tmux {
        Tmux { socket }
    }

    /// Starts `command` (a shell line) in a new 100x30 window `win`.
    pub fn start(&self, win: &str, command: &str) {
        let ok = self
            .tmux(&[
                "new-session",
                "-d",
                "-s",
                win,
                "-x",
                "100",
                "-y",
                "30",
                command,
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "tmux could not start window {win}");
    }

    /// Keeps `win` showing its last screen after its command exits.
    pub fn keep(&self, win: &str) {
        self.tmux(&["set-option", "-t", win, "remain-on-exit", "on"])
            .status()
            .unwrap();
    }

    /// Types `keys` (tmux key names or text) into `win`.
    pub fn keys(&self, win: &str, keys: &[&str]) {
        self.tmux(&["send-keys", "-t", win])
            .args(keys)
            .status()
            .unwrap();
    }

    /// Resizes `win` to `cols` x `rows`.
    pub fn resize(&self, win: &str, cols: u16, rows: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            win,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ])
        .status()
        .unwrap();
    }

    /// What `win` shows now.
    pub fn screen(&self, win: &str) -> String {
        let o = self
            .tmux(&["capture-pane", "-p", "-t", win])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until `win` shows `text` and returns the screen (or fails with what it shows).
    pub fn wait_for(&self, win: &str, text: &str) -> String {
        poll(|| {
            let s = self.screen(win);
            if s.contains(text) {
                Ok(s)
            } else {
                Err(format!(
                    "window {win} never showed {text:?}; it shows:\n{s}"
                ))
            }
        })
    }

    /// Waits until `win` no longer shows `text` and returns the screen.
    pub fn wait_gone(&self, win: &str, text: &str) -> String {
        poll(|| {
            let s = self.screen(win);
            if s.contains(text) {
                Err(format!("window {win} still shows {text:?}:\n{s}"))
            } else {
                Ok(s)
            }
        })
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).stderr(Stdio::null()).status();
    }
}
