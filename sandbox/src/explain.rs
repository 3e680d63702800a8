//! Words for people: the effective rules of a policy (`cordon profile check`), what a
//! session under it can and cannot do (`cordon profile explain`), and what this machine can
//! enforce (`cordon doctor`). Pure functions of a policy and the detected features.

use crate::features::{CgroupLayout, Features};
use crate::policy::{ExecVerdict, Policy};
use crate::profile::NetMode;
use std::fmt::Write;
use std::path::Path;

/// The answer of `cordon profile explain PROFILE PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MayRun {
    /// Whether a session under the policy may execute the file.
    pub runs: bool,
    /// The answer in words: yes or no, what decides, and what would change it.
    pub text: String,
}

/// Whether the file at `path` (`shown` as the person wrote it, `canonical` resolved) may be
/// executed under `p`, and which profile key decides.
pub fn may_run(p: &Policy, shown: &Path, canonical: &Path) -> MayRun {
    let name = if shown == canonical {
        crate::notice::escape(&shown.to_string_lossy())
    } else {
        format!(
            "{} ({})",
            crate::notice::escape(&shown.to_string_lossy()),
            crate::notice::escape(&canonical.to_string_lossy())
        )
    };
    let visible = p
        .read
        .iter()
        .chain(&p.write)
        .chain(p.exec.iter().map(|g| &g.path))
        .chain(p.exec_beneath.iter().map(|t| &t.path))
        .any(|g| canonical.starts_with(g))
        && !p.hide.iter().any(|h| canonical.starts_with(h));
    let mut text = String::new();
    if let Some(q) = p.protect.iter().find(|q| canonical.starts_with(&q.path)) {
        let _ = writeln!(
            text,
            "{name} is read-only in sessions under profile \"{}\": protected ({}). To let sessions write it: add \"{}\" to [filesystem] unprotect in a profile that extends this one.",
            p.profile,
            q.key,
            if q.key.starts_with(crate::protect::KEY) { q.entry.as_str() } else { ".git/config" }
        );
    }
    let runs = match p.exec_verdict(canonical) {
        ExecVerdict::Allowed(by) if visible => {
            let _ = writeln!(
                text,
                "{name} may run under profile \"{}\": {by}.",
                p.profile
            );
            true
        }
        ExecVerdict::Allowed(by) => {
            let _ = writeln!(text, "{name} may not run under profile \"{}\": no [filesystem] grant shows it inside the sandbox (it would be allowed by {by}).", p.profile);
            false
        }
        ExecVerdict::Refused(why) => {
            let _ = writeln!(text, "{name} may not run: {why}.");
            let _ = writeln!(text, "To change that: {}.", why.fix());
            false
        }
    };
    MayRun { runs, text }
}

fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, n) in UNITS {
        if bytes >= n && bytes % n == 0 {
            return format!("{} {unit}", bytes / n);
        }
    }
    format!("{bytes} bytes")
}

fn duration(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn ports(list: &[u16]) -> String {
    list.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The effective rules, one per line, for `cordon profile check`.
pub fn rules(p: &Policy) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "profile   {}  ({})", p.profile, p.sources.join(" <- "));
    let _ = writeln!(o, "workspace {}", p.workspace.display());
    let _ = writeln!(
        o,
        "command   {}  ({})",
        p.argv.join(" "),
        p.program.display()
    );
    if let Some(id) = &p.identity {
        let _ = writeln!(
            o,
            "identity  {} (uid {}, gid {}), home {}",
            id.name,
            id.uid,
            id.gid,
            p.home.display()
        );
    }
    if p.no_links {
        let _ = writeln!(o, "links     none followed in the workspace or the home");
    }
    for r in &p.read {
        let _ = writeln!(o, "read      {}", r.display());
    }
    for w in &p.write {
        let exec = p.exec_beneath.iter().find(|t| w.starts_with(&t.path));
        let _ = match exec {
            Some(t) => writeln!(
                o,
                "write     {}  (executable: {} = true)",
                w.display(),
                t.place.key()
            ),
            None => writeln!(o, "write     {}  (noexec)", w.display()),
        };
    }
    for t in &p.exec_beneath {
        let _ = writeln!(
            o,
            "exec      {}/**  ({} = true)",
            t.path.display(),
            t.place.key()
        );
    }
    let _ = writeln!(o, "write     /tmp, /dev/shm  (private, noexec)");
    for q in &p.protect {
        let _ = writeln!(
            o,
            "protect   {}  (read-only: {}{})",
            q.path.display(),
            q.key,
            if q.placeholder.is_some() {
                "; missing: an empty read-only directory stands there while a session runs"
            } else {
                ""
            }
        );
    }
    for h in &p.hide {
        let _ = writeln!(o, "hide      {}", h.display());
    }
    for e in &p.exec {
        let _ = writeln!(
            o,
            "exec      {}{}  ({})",
            e.path.display(),
            if e.dir { "/**" } else { "" },
            e.reason
        );
    }
    let _ = match p.network.mode {
        NetMode::None => writeln!(
            o,
            "network   none (private namespace, loopback only, no TCP)"
        ),
        NetMode::Host => writeln!(o, "network   host (unrestricted)"),
        NetMode::Proxy => {
            let _ = writeln!(
                o,
                "network   proxy: a network of its own with only loopback; the proxies reach these hosts"
            );
            for line in rule_lines(&p.network.egress, p.network.unknown) {
                let _ = writeln!(o, "{line}");
            }
            Ok(())
        }
        NetMode::Ports => writeln!(
            o,
            "network   tcp connect [{}], tcp bind [{}], udp {}",
            ports(&p.network.connect),
            ports(&p.network.bind),
            if p.network.udp { "allowed" } else { "refused" }
        ),
    };
    if p.network.mode == NetMode::Proxy {
        let _ = writeln!(o, "unknown   {}", unknown_words(p));
    }
    let l = &p.limits;
    let lim = [
        ("processes", l.processes.map(|v| v.to_string())),
        ("memory", l.memory.map(size)),
        ("file_size", l.file_size.map(size)),
        ("open_files", l.open_files.map(|v| v.to_string())),
        ("cpu_seconds", l.cpu_seconds.map(|v| v.to_string())),
        ("timeout", l.timeout.map(duration)),
    ];
    for (k, v) in lim {
        let _ = writeln!(o, "limit     {k} = {}", v.unwrap_or_else(|| "none".into()));
    }
    for (k, v) in &p.env {
        let _ = writeln!(o, "env       {k}={v}");
    }
    for k in &p.secrets {
        let _ = writeln!(
            o,
            "secret    {k} (its value from the host's secrets, never shown)"
        );
    }
    for n in &p.notes {
        let _ = writeln!(o, "note      {n}");
    }
    o
}

/// What a session under `p` can do, in plain words, and what this machine cannot enforce.
pub fn explain(p: &Policy, f: &Features) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Profile \"{}\": {}\n", p.profile, p.description);
    let _ = writeln!(
        o,
        "A session under this profile runs `{}` in {}, in its own world:",
        p.argv.join(" "),
        p.cwd.display()
    );
    if let Some(id) = &p.identity {
        let _ = writeln!(
            o,
            "it runs as {} (uid {}, gid {}), never as root, and holds no capability;",
            id.name, id.uid, id.gid
        );
    }
    let _ = writeln!(o, "it sees only its own processes, its own /tmp, a handful of devices, and the files below.\n");

    let _ = writeln!(o, "It can READ (but not change):");
    for r in &p.read {
        let _ = writeln!(o, "  {}", r.display());
    }
    if p.read.is_empty() {
        let _ = writeln!(o, "  nothing beyond what it can write");
    }
    if p.exec_beneath.is_empty() {
        let _ = writeln!(
            o,
            "\nIt can WRITE (and nothing written there can be executed):"
        );
    } else {
        let _ = writeln!(
            o,
            "\nIt can WRITE (and nothing written there can be executed, except where marked):"
        );
    }
    for w in &p.write {
        match p.exec_beneath.iter().find(|t| w.starts_with(&t.path)) {
            Some(t) => {
                let _ = writeln!(
                    o,
                    "  {}  (what is built here can run: {} = true)",
                    w.display(),
                    t.place.key()
                );
            }
            None => {
                let _ = writeln!(o, "  {}", w.display());
            }
        }
    }
    let _ = writeln!(
        o,
        "  a private /tmp and /dev/shm, emptied when the session ends"
    );
    if !p.protect.is_empty() {
        let _ = writeln!(
            o,
            "\nIt can NOT change, inside the workspace ({}: what runs outside the sandbox later):",
            crate::protect::KEY
        );
        for q in &p.protect {
            let _ = writeln!(o, "  {}  ({})", q.path.display(), q.key);
        }
    }
    let _ = writeln!(o, "\nIt can never see (even inside the paths above):");
    let _ = writeln!(
        o,
        "  {}",
        p.hide
            .iter()
            .map(|h| h.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let named: Vec<String> = p.exec.iter().filter_map(|e| e.entry.clone()).collect();
    let _ = writeln!(o, "\nIt can RUN only these programs ({} in all, with the loaders and interpreters they need):", p.exec.len());
    for line in wrap(&named.join(", "), 88) {
        let _ = writeln!(o, "  {line}");
    }
    for t in &p.exec_beneath {
        let _ = writeln!(
            o,
            "  and every program beneath {} ({}, {} = true)",
            t.path.display(),
            t.place.name(),
            t.place.key()
        );
    }
    if !p.exec_beneath.iter().any(|t| t.path == p.workspace) {
        let _ = writeln!(
            o,
            "  Programs in the workspace cannot run ([exec] workspace = false): W^X, nothing it writes runs."
        );
    }
    let interpreters: Vec<&str> = ["sh", "bash", "python3", "node", "perl", "ruby"]
        .into_iter()
        .filter(|i| named.iter().any(|n| n == i))
        .collect();
    if !interpreters.is_empty() {
        let _ = writeln!(
            o,
            "  Note: {} can run any script the session can read: the list limits which programs",
            interpreters.join(", ")
        );
        let _ = writeln!(o, "  start, not what an interpreter does.");
    }

    let _ = writeln!(o, "\nNetwork:");
    let _ = match p.network.mode {
        NetMode::None => {
            writeln!(o, "  none. The session has its own network with only loopback, and may not open TCP connections at all.")
        }
        NetMode::Host => writeln!(o, "  unrestricted: it can reach anything the host can."),
        NetMode::Proxy => {
            let mut s = String::from("  A network of its own with only loopback. HTTP and SOCKS5 proxies inside reach, by name:");
            for line in rule_lines(&p.network.egress, p.network.unknown) {
                s += &format!("\n    {line}");
            }
            s += "\n  Programs that ignore HTTP_PROXY and ALL_PROXY reach nothing.";
            let sets = p.network.egress.sets();
            if !sets.is_empty() {
                s += &format!(
                    "\n  Hosts \"from set\" come from [network] include ({}).",
                    sets.join(", ")
                );
            }
            s += "\n  `cordon profile sets` lists the named domain sets a profile can include, and why each host is in one.";
            writeln!(o, "{s}")
        }
        NetMode::Ports => {
            let mut s = String::new();
            if !p.network.connect.is_empty() {
                s += &format!(
                    "  TCP connections to port {} only (any address).",
                    ports(&p.network.connect)
                );
            }
            if !p.network.bind.is_empty() {
                s += &format!("\n  It may listen on TCP port {}.", ports(&p.network.bind));
            } else {
                s += "\n  It may not listen on any TCP port.";
            }
            if p.network.udp {
                s += "\n  UDP is allowed (for DNS); the kernel cannot restrict UDP by port, so any UDP port is reachable.";
            } else {
                s += "\n  UDP is refused.";
            }
            writeln!(o, "{s}")
        }
    };
    if p.network.mode == NetMode::Proxy {
        let _ = writeln!(o, "  Any other destination: {}.", unknown_words(p));
    }
    let _ = writeln!(
        o,
        "  Raw sockets, packet sockets and the host's abstract unix sockets are always refused."
    );

    let _ = writeln!(o, "\nLimits:");
    let l = &p.limits;
    let mut any = false;
    for (what, v) in [
        (
            "processes and threads at once",
            l.processes.map(|v| v.to_string()),
        ),
        ("memory", l.memory.map(size)),
        ("largest file it can write", l.file_size.map(size)),
        (
            "open files per process",
            l.open_files.map(|v| v.to_string()),
        ),
        ("CPU time per process", l.cpu_seconds.map(duration)),
        (
            "wall-clock time, then everything is killed",
            l.timeout.map(duration),
        ),
    ] {
        if let Some(v) = v {
            any = true;
            let _ = writeln!(o, "  {what}: {v}");
        }
    }
    if !any {
        let _ = writeln!(o, "  none");
    }

    if !p.secrets.is_empty() {
        let _ = writeln!(o, "\nSecrets in its environment (from `cordon secret set`, the user's own value first, else the");
        let _ = writeln!(
            o,
            "global one; a missing one is said once when the session starts): {}",
            p.secrets.join(", ")
        );
    }

    let _ = writeln!(o, "\nAlways: no capabilities, no privilege gain (setuid does nothing), no ptrace, no mounts or new");
    let _ = writeln!(o, "namespaces, no typing into the terminal (TIOCSTI), no kernel keyrings, bpf, perf or io_uring;");
    let _ = writeln!(o, "only the environment variables the profile lists; no file descriptor from the host but 0, 1, 2.");

    let _ = writeln!(o, "\nOn this machine ({}):", f.kernel);
    let problems = cannot_enforce(p, f);
    if problems.is_empty() {
        let _ = writeln!(o, "  everything above is enforced.");
    } else {
        for pr in problems {
            let _ = writeln!(o, "  {pr}");
        }
    }
    let _ = writeln!(o, "\nKnown limits:");
    let _ = writeln!(
        o,
        "  The dynamic loader (allowed, since every program needs it) can start any program the"
    );
    let _ = writeln!(
        o,
        "  session can read, allowlisted or not; it can never start one the session wrote{}.",
        if p.exec_beneath.is_empty() {
            ""
        } else {
            " outside the trees marked executable above"
        }
    );
    if f.root {
        let _ = writeln!(o, "  cordon runs as root here: the session is uid 0 without capabilities, so inside its write");
        let _ = writeln!(
            o,
            "  grants it can still change root-owned files' modes and contents."
        );
    }
    if !p.notes.is_empty() {
        let _ = writeln!(o, "\nNotes:");
        for n in &p.notes {
            let _ = writeln!(o, "  {n}");
        }
    }
    o
}

/// What `p` grants that a reviewer should look at twice, whatever the machine.
pub fn warnings(p: &Policy) -> Vec<String> {
    warnings_for(p.network.mode)
}

fn warnings_for(mode: NetMode) -> Vec<String> {
    match mode {
        NetMode::Host => vec!["network mode \"host\" lets the session reach any address the host can; mode \"proxy\" names the hosts".into()],
        NetMode::Ports => vec!["network mode \"ports\" cannot tell one host from another on the same port; mode \"proxy\" names the hosts".into()],
        NetMode::None | NetMode::Proxy => vec![],
    }
}

/// What the proxy does with a destination no rule names (`[network] unknown`).
fn unknown_words(p: &Policy) -> String {
    match p.network.unknown {
        crate::profile::Unknown::Deny => "refused ([network] unknown = \"deny\")".into(),
        crate::profile::Unknown::Ask => format!(
            "the connection waits up to {} s while the session's owner is asked (allow once, allow for the session, deny); no answer refuses it ([network] unknown = \"ask\"; under a bare `cordon sandbox` nobody can be asked, so it is refused)",
            p.network.ask_wait
        ),
    }
}

/// One line per egress rule, allow rules first: `allow     registry.npmjs.org  (port 443,
/// from set npm)`, the rule as written, the ports it covers, and the set it came from.
fn rule_lines(rules: &crate::egress::Rules, unknown: crate::profile::Unknown) -> Vec<String> {
    use crate::egress::List;
    let line = |word: &str, r: &crate::egress::Rule, list: List| {
        let from = r
            .set()
            .map(|s| format!(", from set {s}"))
            .unwrap_or_default();
        format!("{word:<10}{r}  ({}{from})", r.ports(list))
    };
    let mut out: Vec<String> = rules
        .allow
        .iter()
        .map(|r| line("allow", r, List::Allow))
        .collect();
    if out.is_empty() {
        out.push(format!(
            "{:<10}nothing (no allow rule: every destination is {})",
            "allow",
            match unknown {
                crate::profile::Unknown::Deny => "refused",
                crate::profile::Unknown::Ask => "asked about",
            }
        ));
    }
    out.extend(rules.deny.iter().map(|r| line("deny", r, List::Deny)));
    out
}

/// The named domain sets (`cordon profile sets`): each set, what it is for, and each host
/// with the reason it is there.
pub fn domain_sets() -> String {
    use crate::egress::sets::SETS;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Named domain sets, for [network] include = [\"npm\", ...] in network mode \"proxy\"."
    );
    let _ = writeln!(
        o,
        "Each host is allowed on port 443 only; a [network] deny rule still wins over it.\n"
    );
    let width = SETS
        .iter()
        .flat_map(|s| s.hosts)
        .map(|h| h.name.len())
        .max()
        .unwrap_or(0);
    for set in SETS {
        let _ = writeln!(o, "{}: {}", set.name, set.purpose);
        for h in set.hosts {
            let _ = writeln!(o, "  {:<width$}  {}", h.name, h.why);
        }
        let _ = writeln!(o);
    }
    o
}

/// What `p` asks for that this machine cannot give; each item says what cordon does then.
pub fn cannot_enforce(p: &Policy, f: &Features) -> Vec<String> {
    let mut out = Vec::new();
    if let Err(r) = crate::landlock::plan(p, f.landlock_abi) {
        out.push(format!("CANNOT START: {}", r.reason));
    }
    if !f.seccomp {
        out.push("CANNOT START: no seccomp filter support".into());
    }
    if !f.root && !f.user_namespaces {
        out.push("CANNOT START: not root and no unprivileged user namespaces".into());
    }
    let needs_cgroup = p.limits.processes.is_some() || p.limits.memory.is_some();
    if needs_cgroup && f.root && f.cgroup.is_none() {
        out.push("CANNOT START: as root, process and memory limits need a pids+memory cgroup, and none was found".into());
    }
    if needs_cgroup && !f.root {
        out.push("process and memory limits fall back to RLIMIT_NPROC (counts all your processes) and RLIMIT_AS (address space, not resident memory)".into());
    }
    if !f.memfd_noexec {
        out.push("this kernel cannot make memfds non-executable (Linux 6.3): memfd_create is refused instead".into());
    }
    if f.landlock_abi < 6 && matches!(p.network.mode, NetMode::None | NetMode::Proxy) {
        out.push(
            "signals are contained by the pid namespace only (Landlock signal scoping needs ABI 6)"
                .into(),
        );
    }
    out
}

/// `cordon doctor`: what this machine can enforce, for a reader who has never seen cordon.
pub fn doctor(f: &Features) -> String {
    let mut o = String::new();
    let ok = |b: bool| if b { "ok      " } else { "MISSING " };
    let _ = writeln!(o, "cordon doctor: what this machine can enforce\n");
    let _ = writeln!(o, "kernel            {}", f.kernel);
    let _ = writeln!(
        o,
        "running as        {}",
        if f.root {
            "root (uid 0)"
        } else {
            "an unprivileged user"
        }
    );
    let _ = writeln!(o);
    let ll = match f.landlock_abi {
        0 => "MISSING  Landlock is off: no profile can start (enable it with lsm=...,landlock)"
            .to_string(),
        a => format!(
            "ok       ABI {a}: files and exec allowlist{}{}{}",
            if a >= 2 {
                ", rename/link across dirs"
            } else {
                ""
            },
            if a >= 4 { ", TCP ports" } else { "" },
            if a >= 6 {
                ", signal and abstract-socket scoping"
            } else {
                ""
            }
        ),
    };
    let _ = writeln!(o, "Landlock          {ll}");
    let _ = writeln!(o, "seccomp           {}  system call filter", ok(f.seccomp));
    let _ = writeln!(
        o,
        "namespaces        {} {}",
        ok(f.root || f.user_namespaces),
        if f.root {
            "created directly as root"
        } else if f.user_namespaces {
            "through an unprivileged user namespace"
        } else {
            "unprivileged user namespaces are disabled"
        }
    );
    let cg = match &f.cgroup {
        Some(CgroupLayout::V2 { parent }) => format!("ok       cgroup v2 at {}", parent.display()),
        Some(CgroupLayout::V1 { pids, memory, .. }) => format!("ok       cgroup v1 ({}, {})", pids.display(), memory.display()),
        None if f.root => "MISSING  no pids+memory cgroup: profiles with process or memory limits are refused as root".into(),
        None => "rlimits  unprivileged: process and memory limits use RLIMIT_NPROC and RLIMIT_AS".into(),
    };
    let _ = writeln!(o, "cgroups           {cg}");
    let _ = writeln!(
        o,
        "memfd noexec      {} {}",
        ok(f.memfd_noexec),
        if f.memfd_noexec {
            "memfds made non-executable per sandbox"
        } else {
            "memfd_create refused instead"
        }
    );
    let _ = writeln!(o, "\nShipped profiles on this machine:");
    let search = crate::profile::Search::standard();
    for (name, origin) in search.list() {
        let verdict = match search.load(&name) {
            Err(e) => format!("invalid: {e}"),
            Ok(profile) => {
                let needs_ports = matches!(profile.network.mode, NetMode::Ports | NetMode::Host);
                let mut v = Vec::new();
                if f.landlock_abi == 0 {
                    v.push("needs Landlock".to_string());
                }
                if needs_ports && f.landlock_abi < 6 {
                    v.push(format!(
                        "network rules need Landlock ABI 6 (have {})",
                        f.landlock_abi
                    ));
                }
                if f.root
                    && f.cgroup.is_none()
                    && (profile.limits.processes.is_some() || profile.limits.memory.is_some())
                {
                    v.push("limits need a cgroup as root".into());
                }
                let warned = warnings_for(profile.network.mode);
                if v.is_empty() && !warned.is_empty() {
                    format!("fully enforced; warning: {}", warned.join("; "))
                } else if v.is_empty() {
                    "fully enforced".into()
                } else {
                    format!("cannot start: {}", v.join("; "))
                }
            }
        };
        let _ = writeln!(o, "  {name:<10} {verdict}  [{origin}]");
    }
    o
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().map(|l| l.len()).unwrap_or(0);
        if last > 0 && last + word.len() + 1 > width {
            lines.push(String::new());
        }
        if let Some(l) = lines.last_mut() {
            if !l.is_empty() {
                l.push(' ');
            }
            l.push_str(word);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Request;
    use crate::profile::Search;
    use std::path::PathBuf;

    /// The policy of the profile written as `text`, resolved for inspection.
    fn policy(text: &str) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("px.toml");
        std::fs::write(&path, text).unwrap();
        let profile = Search::shipped_only().load(path.to_str().unwrap()).unwrap();
        let ws = tempfile::tempdir().unwrap();
        let req = Request {
            workspace: Some(ws.path().to_path_buf()),
            command: vec!["sh".into()],
            home: Some(PathBuf::from("/root")),
            inspect: true,
            ..Request::default()
        };
        Policy::resolve(&profile, &req).unwrap()
    }

    const PROXY: &str = "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"a.test:*\", \"b.test:8080\"]\ndeny = [\"registry.yarnpkg.com\"]\ninclude = [\"npm\"]\n";

    #[test]
    fn check_lists_each_egress_rule_with_its_ports_and_the_set_it_came_from() {
        let text = rules(&policy(PROXY));
        for line in [
            "allow     a.test:*  (every port)",
            "allow     b.test:8080  (port 8080)",
            "allow     registry.npmjs.org  (port 443, from set npm)",
            "allow     registry.yarnpkg.com  (port 443, from set npm)",
            "deny      registry.yarnpkg.com  (every port)",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
        }
        let at = |needle: &str| text.find(needle).unwrap();
        assert!(
            at("network   proxy") < at("allow     a.test") && at("allow     a.test") < at("deny "),
            "the network line, then allow rules, then deny rules:\n{text}"
        );
    }

    #[test]
    fn explain_lists_each_egress_rule_names_the_sets_and_says_where_to_read_them() {
        let f = Features::detect();
        let text = explain(&policy(PROXY), &f);
        for phrase in [
            "    allow     registry.npmjs.org  (port 443, from set npm)",
            "    deny      registry.yarnpkg.com  (every port)",
            "from [network] include (npm)",
            "`cordon profile sets`",
        ] {
            assert!(text.contains(phrase), "missing {phrase:?}:\n{text}");
        }
    }

    #[test]
    fn a_proxy_without_allow_rules_says_that_nothing_is_reached() {
        let text = rules(&policy(
            "extends = \"default\"\n[network]\nmode = \"proxy\"\ndeny = [\"x.test\"]\n",
        ));
        assert!(text.contains("allow     nothing"), "{text}");
        assert!(text.contains("deny      x.test  (every port)"), "{text}");
    }

    #[test]
    fn the_sets_listing_names_every_set_and_every_host_with_its_reason() {
        let text = domain_sets();
        for set in crate::egress::sets::SETS {
            assert!(
                text.contains(&format!("{}: {}", set.name, set.purpose)),
                "{text}"
            );
            for h in set.hosts {
                assert!(
                    text.lines()
                        .any(|l| l.trim_start().starts_with(h.name) && l.ends_with(h.why)),
                    "{} with its reason:\n{text}",
                    h.name
                );
            }
        }
        assert!(text.contains("port 443 only"), "{text}");
    }
}
