//! `cordon completions bash|zsh|fish` from the real binary, as install.sh runs it: each
//! script is made, names the commands and their flags, and parses in its shell; bash's
//! completes as a user types.

use cordon_test_support::process::{output, Out};
use std::process::Command;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn script(shell: &str) -> Out {
    output(Command::new(CORDON).args(["completions", shell]))
}

/// Whether `program` runs here.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn each_shells_script_is_made_and_names_the_commands_and_their_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = script(shell);
        assert_eq!(out.code, 0, "{shell}: {out:?}");
        assert!(
            out.stdout.len() > 1000,
            "{shell}: {} bytes",
            out.stdout.len()
        );
        // Flags without their dashes: fish writes `-l print-policy`.
        for word in [
            "sandbox",
            "rec",
            "profile",
            "completions",
            "print-policy",
            "chdir",
            "since",
        ] {
            assert!(out.stdout.contains(word), "{shell}'s script lacks {word}");
        }
    }
}

#[test]
fn each_script_parses_in_its_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, check) in [
        ("bash", &["-n"][..]),
        ("zsh", &["-n"][..]),
        ("fish", &["--no-execute"][..]),
    ] {
        if shell != "bash" && !installed(shell) {
            eprintln!("{shell} is not installed here; its script is not parsed");
            continue;
        }
        let file = dir.path().join(shell);
        std::fs::write(&file, script(shell).stdout).unwrap();
        let out = output(Command::new(shell).args(check).arg(&file));
        assert_eq!(out.code, 0, "{shell} refuses its script: {out:?}");
    }
}

#[test]
fn bash_completes_commands_and_the_sandboxs_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cordon.bash");
    std::fs::write(&file, script("bash").stdout).unwrap();
    // What bash does on TAB: the words so far, then the function the script registered.
    let complete = |words: &[&str]| {
        let line = words.join(" ");
        let program = format!(
            "source {}; COMP_WORDS=({line}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _cordon cordon {} {}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = output(Command::new("bash").args(["-c", &program]));
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout.lines().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(complete(&["cordon", "re"]), ["rec"]);
    assert_eq!(complete(&["cordon", "sandbox", "--r"]), ["--ro", "--rw"]);
    assert!(complete(&["cordon", "rec", "l"]).contains(&"ls".to_string()));
    assert_eq!(complete(&["cordon", "completions", "z"]), ["zsh"]);
}

#[test]
fn an_unknown_shell_is_refused_naming_the_ones_there_are() {
    let out = script("tcsh");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("bash, zsh, fish"), "{out:?}");
}
