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

    /// `format` (tmux's FORMATS: `#{cursor_flag}`, `#{alternate_on}`, ...) as `win` has it
    /// now: the state of the terminal that window is.
    pub fn format(&self, win: &str, format: &str) -> String {
        let o = self
            .tmux(&["display-message", "-p", "-t", win, format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// The modes a program can leave `win`'s terminal in, from tmux's flags: `cursor=1
    /// alternate=0 keypad=0 cursor_keys=0 mouse=0000 region=0-29` for a 30-row terminal as
    /// it starts (the mouse digits: normal, button, any mouse mode at all, SGR reports).
    pub fn modes(&self, win: &str) -> String {
        self.format(
            win,
            "cursor=#{cursor_flag} alternate=#{alternate_on} keypad=#{keypad_flag} \
             cursor_keys=#{keypad_cursor_flag} mouse=#{mouse_standard_flag}#{mouse_button_flag}\
             #{mouse_any_flag}#{mouse_sgr_flag} region=#{scroll_region_upper}-#{scroll_region_lower}",
        )
    }

    /// Waits until `win`'s terminal's [`Tmux::modes`] begin with `want`.
    pub fn wait_modes(&self, win: &str, want: &str) {
        poll(|| {
            let now = self.modes(win);
            if now.starts_with(want) {
                Ok(())
            } else {
                Err(format!(
                    "{win}'s terminal is in {now:?}, not {want:?}:\n{}",
                    self.screen(win)
                ))
            }
        })
    }

    /// Pastes `text` into `win` as a terminal pastes: between bracketed-paste marks if the
    /// program in it asked for them.
    pub fn paste(&self, win: &str, text: &str) {
        let ok = self
            .tmux(&["set-buffer", "-b", "cordon-test", text])
            .status()
            .unwrap();
        assert!(ok.success());
        self.tmux(&["paste-buffer", "-p", "-d", "-b", "cordon-test", "-t", win])
            .status()
            .unwrap();
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
