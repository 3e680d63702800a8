//! The docs' commands, run: the systemd unit as install.sh leaves it.

use cordon_test_support::net::free_port;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// The unit's `ExecStart=`, as words.
fn exec_start() -> Vec<String> {
    let unit = include_str!("../contrib/cordon.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn the_systemd_unit_starts_the_host_with_the_configuration_install_sh_writes() {
    let dir = tempfile::tempdir().unwrap();
    // What install.sh writes to /etc/cordon/cordon.toml, where cordon looks as root. The
    // test says where through $CORDON_CONFIG (it must not write /etc), and moves the ports
    // off the defaults (other hosts may hold them); nothing else is added.
    let made = Command::new("contrib/cordon.toml.sh").output().unwrap();
    assert!(made.status.success(), "{made:?}");
    let (ssh, api) = (free_port(), free_port());
    let mut config = String::from_utf8(made.stdout).unwrap();
    config.push_str(&format!(
        "[ssh]\nlisten = \"127.0.0.1:{ssh}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n"
    ));
    let file = dir.path().join("cordon.toml");
    std::fs::write(&file, config).unwrap();

    let mut words = exec_start();
    assert_eq!(
        words[0], "/usr/local/bin/cordon",
        "install.sh rewrites this path to its prefix's binary"
    );
    assert!(
        !words.iter().any(|w| w == "--config"),
        "the unit names no configuration file install.sh does not write: {words:?}"
    );
    words[0] = CORDON.into();
    for w in words.iter_mut().filter(|w| w.as_str() == "/var/lib/cordon") {
        *w = dir.path().join("state").display().to_string();
    }
    let mut child = Command::new(&words[0])
        .args(&words[1..])
        .env("CORDON_CONFIG", &file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        let done = line.contains("listening on");
        said.push(line);
        if done {
            break;
        }
    }
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        alive,
        "the unit's command did not start the host:\n{}\n{}",
        said.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.iter()
            .any(|l| l.contains(&format!("listening on 127.0.0.1:{ssh} (SSH)"))),
        "{said:?}"
    );
}
