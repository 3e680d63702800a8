//! `cordon evidence export|verify`: evidence bundles. Export acts through the service (admins
//! and auditors; audited); verify needs nothing of a host: no data directory, no keys, no
//! network (it runs on the auditor's machine).

use std::path::{Path, PathBuf};

use super::{fail, tryc, Admin};
use crate::evidence::Selection;

#[derive(clap::Subcommand)]
pub enum EvidenceAction {
    /// Export a signed bundle: the recordings (sealed, their keys, asciicast), the audit
    /// slice that names them, their catalog entries, and a manifest signed with the host key.
    Export {
        /// A session's id (may be repeated).
        #[arg(long = "session", value_name = "ID", required_unless_present = "user")]
        sessions: Vec<String>,
        /// A user's sessions (with --since).
        #[arg(
            long,
            value_name = "NAME",
            requires = "since",
            conflicts_with = "sessions"
        )]
        user: Option<String>,
        /// Those started at or after this moment (RFC 3339, or a prefix: 2026-12-01).
        #[arg(long, value_name = "TIME", requires = "user")]
        since: Option<String>,
        /// Where to write the bundle (created, mode 0600; never overwritten).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check a bundle with nothing but the bundle: the signature, every member, each
    /// recording, the audit slice. Exits 1 and says what failed.
    Verify {
        file: PathBuf,
        /// The host key's fingerprint (`ssh-keygen -lf`, `SHA256:...`): refuse a bundle
        /// signed by any other key.
        #[arg(long, value_name = "FINGERPRINT")]
        expect_key: Option<String>,
        /// After it verifies, write its members into this new directory.
        #[arg(long, value_name = "DIR")]
        extract: Option<PathBuf>,
    },
}

pub fn export(
    a: &Admin,
    sessions: &[String],
    user: Option<&str>,
    since: Option<&str>,
    output: &Path,
) -> i32 {
    let selection = Selection {
        sessions: sessions.to_vec(),
        user: user.map(String::from),
        since: since.map(String::from),
    };
    let e = tryc!(a.svc.export_evidence(&a.me, selection));
    tryc!(crate::secrets::write_private(output, &e.bundle));
    println!(
        "wrote {}: {} and {}, signed by host key {}",
        output.display(),
        crate::text::count(e.recordings, "recording"),
        crate::text::count(e.audit_events as usize, "audit event"),
        e.fingerprint
    );
    0
}

pub fn verify(file: &Path, expect_key: Option<&str>, extract: Option<&Path>) -> i32 {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(format!("reading {}: {e}", file.display())),
    };
    let report = match crate::evidence::verify::verify(&bytes, expect_key) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "cordon: {} does NOT verify: {}",
                file.display(),
                crate::text::printable(&e.to_string())
            );
            return 1;
        }
    };
    let m = &report.manifest;
    let p = |s: &str| crate::text::printable(s).into_owned();
    println!("bundle     {}: verified", file.display());
    println!("host       {}", p(&m.host));
    println!("host key   {}", report.fingerprint);
    if expect_key.is_none() {
        println!("           (compare it with the host's known fingerprint, or pass --expect-key)");
    }
    println!("exported   {} by {}", p(&m.exported_at), p(&m.exported_by));
    if m.selection.sessions.is_empty() {
        println!(
            "selection  user {} since {}",
            p(m.selection.user.as_deref().unwrap_or("")),
            p(m.selection.since.as_deref().unwrap_or(""))
        );
    } else {
        println!("selection  sessions {}", p(&m.selection.sessions.join(" ")));
    }
    for r in &report.recordings {
        println!(
            "recording  {} (session {}, {}): {} events, {:.1} s, {}",
            p(&r.id),
            p(&r.session),
            p(&r.user),
            r.events,
            r.seconds,
            if r.complete {
                "complete"
            } else {
                "no final chunk (its host stopped, or it was still being written)"
            }
        );
    }
    let a = &m.audit;
    println!(
        "audit      events {} to {} ({} naming the selection), linked without a gap; the host verified the chain through event {} at export",
        a.first_seq,
        a.last_seq,
        a.selected.len(),
        a.verified_through_seq
    );
    if let Some(dir) = extract {
        tryc!(std::fs::create_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display())));
        for member in &report.members {
            let path = dir.join(&member.name);
            if let Some(parent) = path.parent() {
                tryc!(std::fs::create_dir_all(parent)
                    .map_err(|e| format!("creating {}: {e}", parent.display())));
            }
            tryc!(crate::secrets::write_private(&path, &member.data));
        }
        println!("extracted  into {}", dir.display());
    }
    0
}
