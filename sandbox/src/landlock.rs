//! Landlock: which paths may be read, written and executed, which TCP ports reached, and
//! the scoping of signals and abstract unix sockets. [`plan`] turns a policy into rules (a
//! pure function, tested for several ABIs); [`build`] hands them to the kernel and
//! [`Ruleset::enforce`] enforces them.

use crate::error::{Refusal, Step};
use crate::policy::Policy;
use crate::profile::NetMode;
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Execute a file.
pub const EXECUTE: u64 = 1 << 0;
/// Open a file for writing.
pub const WRITE_FILE: u64 = 1 << 1;
/// Open a file for reading.
pub const READ_FILE: u64 = 1 << 2;
/// List a directory.
pub const READ_DIR: u64 = 1 << 3;
/// Remove a directory.
pub const REMOVE_DIR: u64 = 1 << 4;
/// Remove a file.
pub const REMOVE_FILE: u64 = 1 << 5;
/// Create a character device.
pub const MAKE_CHAR: u64 = 1 << 6;
/// Create a directory.
pub const MAKE_DIR: u64 = 1 << 7;
/// Create a regular file.
pub const MAKE_REG: u64 = 1 << 8;
/// Create a unix socket.
pub const MAKE_SOCK: u64 = 1 << 9;
/// Create a named pipe.
pub const MAKE_FIFO: u64 = 1 << 10;
/// Create a block device.
pub const MAKE_BLOCK: u64 = 1 << 11;
/// Create a symbolic link.
pub const MAKE_SYM: u64 = 1 << 12;
/// Link or rename across directories (ABI 2).
pub const REFER: u64 = 1 << 13;
/// Truncate a file (ABI 3).
pub const TRUNCATE: u64 = 1 << 14;
/// ioctl on a device file (ABI 5).
pub const IOCTL_DEV: u64 = 1 << 15;

/// Bind a TCP port (ABI 4).
pub const NET_BIND_TCP: u64 = 1 << 0;
/// Connect to a TCP port (ABI 4).
pub const NET_CONNECT_TCP: u64 = 1 << 1;

/// No connecting to abstract unix sockets outside the sandbox (ABI 6).
pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
/// No signals to processes outside the sandbox (ABI 6).
pub const SCOPE_SIGNAL: u64 = 1 << 1;

const READ: u64 = READ_FILE | READ_DIR;
const WRITE: u64 = READ
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE;
const DEVICE: u64 = READ | WRITE_FILE | TRUNCATE | IOCTL_DEV;

/// The filesystem rights each ABI version knows.
fn fs_rights(abi: u32) -> u64 {
    match abi {
        0 => 0,
        1 => (1 << 13) - 1,
        2 => (1 << 14) - 1,
        3 | 4 => (1 << 15) - 1,
        _ => (1 << 16) - 1,
    }
}

/// The rules to give the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The ABI the plan was made for.
    pub abi: u32,
    /// Filesystem rights the ruleset handles (everything else stays allowed).
    pub handled_fs: u64,
    /// Network rights the ruleset handles.
    pub handled_net: u64,
    /// Scopes applied.
    pub scoped: u64,
    /// Paths and the rights granted beneath each.
    pub paths: Vec<(PathBuf, u64)>,
    /// TCP ports and the rights granted on each.
    pub ports: Vec<(u16, u64)>,
}

/// The Landlock ABI this kernel offers, 0 if none.
pub fn abi_version() -> u32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attr only queries.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if v < 0 {
        0
    } else {
        v as u32
    }
}

/// The Landlock rules for `policy` on a kernel with `abi`. Refuses when the policy needs
/// something this ABI cannot enforce, and says what.
pub fn plan(policy: &Policy, abi: u32) -> Result<Plan, Refusal> {
    let need = |min: u32, what: &str, hint: &str| -> Result<(), Refusal> {
        if abi >= min {
            return Ok(());
        }
        let have = if abi == 0 {
            "no Landlock (not built in, or not in the lsm= boot list)".to_string()
        } else {
            format!("Landlock ABI {abi}")
        };
        Err(Refusal::new(
            Step::Landlock,
            format!(
                "profile \"{}\" needs Landlock ABI {min} for {what}; this kernel has {have}",
                policy.profile
            ),
        )
        .hint(hint.to_string()))
    };
    need(
        1,
        "its file and exec rules",
        "use Linux 5.13 or later with Landlock enabled (lsm=...,landlock)",
    )?;
    match policy.network.mode {
        // A private namespace: its own abstract sockets, nothing outside to reach.
        NetMode::None | NetMode::Proxy => {}
        NetMode::Ports => {
            need(
                4,
                "TCP port rules",
                "use network mode \"none\", or Linux 6.7 or later",
            )?;
            need(
                6,
                "scoping abstract unix sockets (the session shares the host's network)",
                "use network mode \"none\" (a private network namespace), or Linux 6.12 or later",
            )?;
        }
        NetMode::Host => need(
            6,
            "scoping abstract unix sockets (the session shares the host's network)",
            "use network mode \"none\" (a private network namespace), or Linux 6.12 or later",
        )?,
    }
    let handled_fs = fs_rights(abi);
    let mut paths: Vec<(PathBuf, u64)> = Vec::new();
    let mut grant = |p: &Path, rights: u64| {
        let rights = rights & handled_fs;
        // The policy's paths are canonical, so equal paths are equal bytes (comparing them
        // as `Path`s, component by component, was a tenth of a millisecond of each start).
        match paths
            .iter_mut()
            .find(|(q, _)| q.as_os_str() == p.as_os_str())
        {
            Some((_, r)) => *r |= rights,
            None => paths.push((p.to_path_buf(), rights)),
        }
    };
    grant(Path::new("/"), READ_DIR);
    for p in &policy.read {
        grant(p, READ);
    }
    for p in &policy.write {
        grant(p, WRITE);
    }
    for g in &policy.exec {
        grant(
            &g.path,
            if g.dir {
                READ | EXECUTE
            } else {
                READ_FILE | EXECUTE
            },
        );
    }
    // The profile's `[exec] workspace` / `[exec] home`: everything beneath may run.
    for t in &policy.exec_beneath {
        grant(&t.path, READ | EXECUTE);
    }
    grant(Path::new("/tmp"), WRITE);
    grant(Path::new("/dev"), DEVICE);
    grant(Path::new("/dev/shm"), WRITE);
    grant(Path::new("/proc"), READ);

    let (handled_net, ports) = match policy.network.mode {
        // Proxy: the namespace holds only loopback, where the proxy listens (on ports that
        // can differ per session) and the session's own servers may too.
        NetMode::Host | NetMode::Proxy => (0, vec![]),
        // Private network namespace: TCP denied outright where the ABI can say so.
        NetMode::None => (
            if abi >= 4 {
                NET_BIND_TCP | NET_CONNECT_TCP
            } else {
                0
            },
            vec![],
        ),
        NetMode::Ports => {
            let mut ports: Vec<(u16, u64)> = policy
                .network
                .connect
                .iter()
                .map(|&p| (p, NET_CONNECT_TCP))
                .collect();
            for &p in &policy.network.bind {
                match ports.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, r)) => *r |= NET_BIND_TCP,
                    None => ports.push((p, NET_BIND_TCP)),
                }
            }
            (NET_BIND_TCP | NET_CONNECT_TCP, ports)
        }
    };
    let scoped = if abi >= 6 {
        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    } else {
        0
    };
    Ok(Plan {
        abi,
        handled_fs,
        handled_net,
        scoped,
        paths,
        ports,
    })
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

const RULE_PATH_BENEATH: libc::c_int = 1;
const RULE_NET_PORT: libc::c_int = 2;

/// A ruleset the kernel holds, not yet enforced.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
}

/// Hands `plan`'s rules to the kernel. Runs inside the new root, before the identity
/// switch: which rules exist must not depend on what the identity may search. Each path is
/// opened without following a link (the policy's paths are canonical, and a workspace's
/// contents can still change while the sandbox starts).
pub fn build(plan: &Plan) -> Result<Ruleset, Refusal> {
    let attr = RulesetAttr {
        handled_access_fs: plan.handled_fs,
        handled_access_net: plan.handled_net,
        scoped: plan.scoped,
    };
    // The attr struct grew with the ABI; an older kernel refuses the larger size.
    let size = match plan.abi {
        0..=3 => 8,
        4 | 5 => 16,
        _ => 24,
    };
    // SAFETY: attr outlives the call; size never exceeds the struct.
    let fd = sys::check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size as usize,
            0u32,
        )
    })
    .map_err(|e| Refusal::os(Step::Landlock, "creating the ruleset", e))?;
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    for (path, rights) in &plan.paths {
        let pfd = sys::openat2(None, path, libc::O_PATH, 0, sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS).map_err(|e| {
            if sys::is_link_error(&e) {
                Refusal::new(Step::Landlock, format!("{} changed into a symbolic link after it was checked", path.display()))
                    .hint("something rewrote this path while the sandbox started; run it again once the path holds still")
            } else {
                Refusal::os(Step::Landlock, format!("opening {} for a rule", path.display()), e)
            }
        })?;
        let is_dir = sys::file_type(pfd.as_fd()).ok() == Some(libc::S_IFDIR);
        // Directory-only rights on a file are EINVAL; a file rule keeps the file rights.
        let rights = if is_dir {
            *rights
        } else {
            *rights & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV)
        };
        let rule = PathBeneathAttr {
            allowed_access: rights,
            parent_fd: pfd.as_raw_fd(),
        };
        // SAFETY: rule outlives the call.
        sys::check(unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        })
        .map_err(|e| {
            Refusal::os(
                Step::Landlock,
                format!("adding the rule for {}", path.display()),
                e,
            )
        })?;
    }
    for (port, rights) in &plan.ports {
        let rule = NetPortAttr {
            allowed_access: *rights,
            port: u64::from(*port),
        };
        // SAFETY: rule outlives the call.
        sys::check(unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset.as_raw_fd(),
                RULE_NET_PORT,
                &rule as *const NetPortAttr,
                0u32,
            )
        })
        .map_err(|e| {
            Refusal::os(
                Step::Landlock,
                format!("adding the rule for TCP port {port}"),
                e,
            )
        })?;
    }
    Ok(Ruleset { fd: ruleset })
}

impl Ruleset {
    /// Enforces the rules on this thread and every process it starts. no_new_privs must be
    /// set.
    pub fn enforce(self) -> Result<(), Refusal> {
        // SAFETY: a valid ruleset fd and no flags.
        sys::check(unsafe {
            libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32)
        })
        .map_err(|e| Refusal::os(Step::Landlock, "restricting the process", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ExecGrant, ExecTree, Network, Place};

    fn policy(mode: NetMode) -> Policy {
        Policy {
            profile: "t".into(),
            sources: vec![],
            description: String::new(),
            workspace: "/w".into(),
            home: "/h".into(),
            cwd: "/w".into(),
            read: vec!["/usr".into()],
            write: vec!["/w".into()],
            hide: vec![],
            links: vec![],
            exec: vec![ExecGrant {
                path: "/usr/bin/sh".into(),
                dir: false,
                reason: String::new(),
                entry: None,
            }],
            exec_beneath: vec![],
            network: Network {
                mode,
                connect: vec![443],
                bind: vec![8080],
                udp: false,
                egress: Default::default(),
                unknown: Default::default(),
                ask_wait: 60,
            },
            limits: Default::default(),
            env: vec![],
            secrets: vec![],
            argv: vec!["sh".into()],
            program: "/usr/bin/sh".into(),
            notes: vec![],
            identity: None,
            no_links: false,
            protect: vec![],
        }
    }

    fn rights(p: &Plan, path: &str) -> u64 {
        p.paths
            .iter()
            .find(|(q, _)| q == Path::new(path))
            .map(|(_, r)| *r)
            .unwrap_or(0)
    }

    #[test]
    fn execute_is_granted_only_to_allowlisted_programs() {
        let p = plan(&policy(NetMode::None), 7).unwrap();
        assert_eq!(rights(&p, "/usr/bin/sh") & EXECUTE, EXECUTE);
        for (path, r) in &p.paths {
            if path != Path::new("/usr/bin/sh") {
                assert_eq!(r & EXECUTE, 0, "{} is executable", path.display());
            }
        }
        assert_eq!(rights(&p, "/w") & WRITE_FILE, WRITE_FILE);
        assert_eq!(rights(&p, "/usr") & WRITE_FILE, 0);
    }

    #[test]
    fn execute_beneath_the_workspace_is_granted_only_when_the_profile_says_so() {
        let mut pol = policy(NetMode::None);
        pol.exec_beneath.push(ExecTree {
            path: "/w".into(),
            place: Place::Workspace,
        });
        let p = plan(&pol, 7).unwrap();
        assert_eq!(
            rights(&p, "/w") & (EXECUTE | WRITE_FILE),
            EXECUTE | WRITE_FILE
        );
        assert_eq!(rights(&p, "/tmp") & EXECUTE, 0, "/tmp stays non-executable");
        assert_eq!(rights(&p, "/h") & EXECUTE, 0);
    }

    #[test]
    fn no_network_denies_all_tcp_where_the_abi_can() {
        let p = plan(&policy(NetMode::None), 4).unwrap();
        assert_eq!(p.handled_net, NET_BIND_TCP | NET_CONNECT_TCP);
        assert!(p.ports.is_empty());
        assert_eq!(plan(&policy(NetMode::None), 3).unwrap().handled_net, 0);
    }

    #[test]
    fn proxy_mode_leaves_loopback_tcp_to_the_namespace_on_any_abi() {
        for abi in [1, 3, 4, 6] {
            let p = plan(&policy(NetMode::Proxy), abi).unwrap();
            assert_eq!(p.handled_net, 0, "abi {abi}");
            assert!(p.ports.is_empty());
        }
    }

    #[test]
    fn port_rules_need_abi_4_and_scoping_needs_abi_6() {
        let e = plan(&policy(NetMode::Ports), 3).unwrap_err();
        assert!(
            e.reason.contains("ABI 4") && e.reason.contains("ABI 3"),
            "{e}"
        );
        let e = plan(&policy(NetMode::Ports), 5).unwrap_err();
        assert!(e.reason.contains("ABI 6"), "{e}");
        let p = plan(&policy(NetMode::Ports), 6).unwrap();
        assert_eq!(p.ports, vec![(443, NET_CONNECT_TCP), (8080, NET_BIND_TCP)]);
        assert_eq!(p.scoped, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL);
    }

    #[test]
    fn rights_never_exceed_what_the_abi_handles() {
        for abi in 1..=7 {
            let p = plan(&policy(NetMode::None), abi).unwrap();
            for (_, r) in &p.paths {
                assert_eq!(r & !p.handled_fs, 0, "abi {abi}");
            }
        }
    }

    #[test]
    fn no_landlock_is_a_refusal_naming_the_step() {
        let e = plan(&policy(NetMode::None), 0).unwrap_err();
        assert_eq!(e.step, Step::Landlock);
        assert!(e.reason.contains("no Landlock"), "{e}");
    }
}
