//! OpenSSH's client side: fresh keys, and the `ssh` command line that logs in with one of
//! them and nothing else.

use std::path::Path;
use std::process::Command;

/// Makes a fresh Ed25519 key pair without a passphrase: `path` and `path.pub`, commented
/// `comment`.
pub fn keygen(path: &Path, comment: &str) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen: {e}"));
    assert!(ok.success(), "ssh-keygen could not make {}", path.display());
}

/// The public half of the key at `key` (read from `key.pub`), as one line without its end.
pub fn public_key(key: &Path) -> String {
    let public = key.with_extension("pub");
    std::fs::read_to_string(&public)
        .unwrap_or_else(|e| panic!("{}: {e}", public.display()))
        .trim()
        .to_string()
}

/// `ssh` to `user@127.0.0.1` on `port` with `key` alone and never a question: no host key
/// check, no agent's keys, no prompts. Options (`-tt`, `-o ...`) go in at index 1; the
/// remote command after the end.
pub fn argv(port: u16, key: &Path, user: &str) -> Vec<String> {
    [
        "ssh",
        "-i",
        &key.display().to_string(),
        "-p",
        &port.to_string(),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        &format!("{user}@127.0.0.1"),
    ]
    .map(String::from)
    .to_vec()
}
