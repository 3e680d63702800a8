//! Attached sessions as the client's terminal sees them: OpenSSH's `ssh` inside a shell in
//! tmux, attached, observing, detaching, and the session ending under it. What is asserted is
//! the terminal's own state, read from tmux (`#{cursor_flag}`, `#{alternate_on}`, ...), and
//! what it shows.

use cordon_test_support::host::Host;
use std::path::Path;
use std::time::Duration;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A program that takes the terminal the way full-screen programs do, and leaves it so:
/// cursor hidden, the alternate screen, bracketed paste, mouse reports (normal, SGR), the
/// keypad and cursor keys in application mode, a scroll region, red text. Then `then`.
fn modes_script(then: &str) -> String {
    format!(
        "printf '\\033[?25l\\033[?1049h\\033[?2004h\\033[?1000h\\033[?1006h\\033=\\033[?1h\\033[3;20r\\033[H\\033[31mFULL SCREEN PROGRAM'\n{then}\n"
    )
}

/// Writes `script` into `user`'s workspace as `name` (their sessions start there).
fn script(h: &Host, user: &str, name: &str, script: &str) {
    let ws = h.workspace(user);
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join(name), script).unwrap();
}

/// A shell in tmux window `win`, where `ssh` is then typed: what the client's terminal is
/// once ssh has ended can be read.
fn shell(h: &Host, win: &str) {
    h.tmux.start(win, "sh");
    h.keys(win, &["echo before-$((1+1))", "Enter"]);
    h.wait_for(win, "before-2");
}

/// Types `ssh -t HOST ARGS` as `user` into the shell of `win`.
fn ssh_in(h: &Host, win: &str, key: &Path, user: &str, args: &str) {
    let line = format!("{} -t {args}", h.ssh_command(key, user).join(" "));
    h.keys(win, &[&line, "Enter"]);
}

/// The id of `user`'s session named `name`, as `ls --json` gives it.
fn id_of(h: &Host, key: &Path, user: &str, name: &str) -> String {
    let ls = h.ssh(key, user, &["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).expect("ls --json");
    let id = &v
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no session {name}: {v}"))["id"];
    id.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| id.to_string())
}

/// Every mode the script switched on, as the client's terminal has them while attached.
/// (tmux's mouse flags: normal, button, any mouse mode at all, SGR.)
const TAKEN: &str = "cursor=0 alternate=1 keypad=1 cursor_keys=1 mouse=1011 region=2-19";
/// A terminal as it was before (a 30-row tmux window).
const GIVEN_BACK: &str = "cursor=1 alternate=0 keypad=0 cursor_keys=0 mouse=0000 region=0-29";

/// Bracketed paste is off in `win`'s terminal: a paste reaches `cat -v` without its marks.
fn assert_paste_is_plain(h: &Host, win: &str) {
    h.keys(win, &["cat -v", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    h.tmux.paste(win, "pasted-text");
    h.keys(win, &["Enter"]);
    let s = h.wait_for(win, "pasted-text");
    assert!(
        !s.contains("200~"),
        "the paste came with bracketed-paste marks:\n{s}"
    );
    h.keys(win, &["C-c"]);
}

#[test]
fn detaching_from_a_program_that_took_the_terminal_gives_the_terminal_back() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    script(&h, "alice", "modes.sh", &modes_script("exec sleep 1000"));
    shell(&h, "t");
    ssh_in(&h, "t", &alice, "alice", "new --name full -- sh modes.sh");
    h.wait_for("t", "FULL SCREEN PROGRAM");
    h.tmux.wait_modes("t", TAKEN);

    h.keys("t", &["C-\\"]);
    let s = h.wait_for("t", "[cordon: detached from session");
    assert_eq!(h.tmux.modes("t"), GIVEN_BACK, "{s}");
    assert!(
        !s.contains("FULL SCREEN") && !s.contains("[cordon] ") && !s.contains("\\x0d"),
        "the program's screen and cordon's line are gone, the note is plain:\n{s}"
    );
    assert_paste_is_plain(&h, "t");

    // Attached again (the program on the alternate screen), then killed from elsewhere:
    // given back the same way, with the shell's screen as it was.
    let id = id_of(&h, &alice, "alice", "full");
    h.keys("t", &["clear; echo between-$((2+2))", "Enter"]);
    h.wait_for("t", "between-4");
    ssh_in(&h, "t", &alice, "alice", &format!("attach {id}"));
    h.wait_for("t", "FULL SCREEN PROGRAM");
    h.tmux.wait_modes(
        "t",
        "cursor=0 alternate=1 keypad=1 cursor_keys=1 mouse=1011",
    );
    let out = h.ssh(&alice, "alice", &["kill", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    let s = h.wait_for("t", "ended, exit status");
    assert!(
        h.tmux
            .modes("t")
            .starts_with("cursor=1 alternate=0 keypad=0 cursor_keys=0 mouse=0000"),
        "{}\n{s}",
        h.tmux.modes("t")
    );
    assert!(s.contains("between-4") && !s.contains("FULL SCREEN"), "{s}");
}

#[test]
fn a_session_whose_command_exits_gives_back_its_owner_s_and_its_observer_s_terminals() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");
    script(&h, "alice", "ends.sh", &modes_script("read line\nexit 3"));
    shell(&h, "owner");
    ssh_in(
        &h,
        "owner",
        &alice,
        "alice",
        "new --name ends -- sh ends.sh",
    );
    h.wait_for("owner", "FULL SCREEN PROGRAM");
    let id = id_of(&h, &alice, "alice", "ends");
    shell(&h, "observer");
    ssh_in(&h, "observer", &carol, "carol", &format!("observe {id}"));
    h.wait_for("observer", "FULL SCREEN PROGRAM");
    // The observer's terminal takes the program's modes from the screen it is sent (the
    // scroll region is not part of it).
    h.tmux
        .wait_modes("observer", "cursor=0 alternate=1 keypad=1 cursor_keys=1");

    h.keys("owner", &["Enter"]);
    for win in ["owner", "observer"] {
        let s = h.wait_for(win, "exit status 3]");
        assert_eq!(h.tmux.modes(win), GIVEN_BACK, "{win}:\n{s}");
        assert!(
            !s.contains("FULL SCREEN") && !s.contains("[cordon] "),
            "{win}: the program's screen and cordon's line are gone:\n{s}"
        );
        assert_paste_is_plain(&h, win);
    }
    // The observer came when the program was on the alternate screen: its shell's own
    // screen is back as it was. (The owner's `new` drew the session on its main screen.)
    assert!(h.screen("observer").contains("before-2"));
}

#[test]
fn attaching_says_which_session_and_how_to_detach_on_the_last_row_then_gives_it_back() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");
    // A screen full to its last row, which the notice covers for a while.
    script(
        &h,
        "alice",
        "rows.sh",
        "i=1; while [ $i -lt 30 ]; do echo row $i; i=$((i+1)); done\nprintf 'bottom row of the program'\nexec sleep 1000\n",
    );
    h.tmux_ssh("owner", &alice, "alice", "new --name build -- sh rows.sh");
    h.wait_for("owner", "row 29");
    let s = h.wait_for("owner", "[cordon] attached to \"build\" (id ");
    let last = s.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("[cordon] attached to \"build\" (id ")
            && last.contains("ctrl-\\ detaches"),
        "the notice is the last row: {last:?}\n{s}"
    );
    assert!(s.contains("row 29"), "the program's screen is there:\n{s}");
    // Gone after a few seconds: the row is the program's again.
    let s = h.wait_gone("owner", "[cordon] attached");
    assert!(
        s.lines()
            .last()
            .unwrap_or_default()
            .starts_with("bottom row of the program"),
        "{s}"
    );

    // An observer is told it is read-only, and a key ends the notice at once.
    let id = id_of(&h, &alice, "alice", "build");
    h.tmux_ssh("observer", &carol, "carol", &format!("observe {id}"));
    let s = h.wait_for("observer", "[cordon] observing \"build\"");
    assert!(
        s.contains("read-only") && s.contains("ctrl-\\ stops"),
        "{s}"
    );
    h.keys("observer", &["x"]);
    let s = h.wait_gone("observer", "[cordon] observing");
    assert!(s.contains("bottom row of the program"), "{s}");
}
