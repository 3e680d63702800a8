//! Seccomp: the system calls a confined command may not make, whatever else it is allowed.
//! A deny-list (the namespace, mount, ptrace, keyring, bpf, perf, io_uring, kexec and module
//! families, and more), argument checks where a call is fine but some uses are not (clone
//! with namespace flags, TIOCSTI, raw sockets, personality), and the x32 ABI closed.
//! [`program`] builds the BPF (pure, tested); [`apply`] loads it.

use crate::error::{Refusal, Step};
use crate::policy::Policy;
use crate::profile::NetMode;
use libc::sock_filter;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32
    | 0x80; // CLONE_NEWTIME
const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;
/// The obsolete packet socket type (libc deprecates the constant; the kernel still has it).
const SOCK_PACKET: u32 = 10;

/// System calls refused with EPERM, and why each is on the list.
pub const DENIED: &[(&str, libc::c_long)] = &[
    // Namespaces and mounts: the sandbox's walls.
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    // Reaching into other processes.
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kcmp", libc::SYS_kcmp),
    // Kernel attack surface a coding agent never needs.
    ("perf_event_open", libc::SYS_perf_event_open),
    ("bpf", libc::SYS_bpf),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("add_key", libc::SYS_add_key),
    ("keyctl", libc::SYS_keyctl),
    ("request_key", libc::SYS_request_key),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
    #[cfg(target_arch = "x86_64")]
    ("modify_ldt", libc::SYS_modify_ldt),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
];

/// What the filter must do beyond the fixed deny-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Refuse UDP and other datagram INET sockets (network mode "ports" without `udp`).
    pub deny_udp: bool,
    /// Refuse memfd_create (the kernel has no `vm.memfd_noexec` to make memfds non-executable).
    pub deny_memfd: bool,
}

impl Options {
    /// The options for `policy`; `memfd_noexec_enforced` says whether the pid namespace makes memfds non-executable.
    pub fn for_policy(policy: &Policy, memfd_noexec_enforced: bool) -> Options {
        Options {
            deny_udp: policy.network.mode == NetMode::Ports && !policy.network.udp,
            deny_memfd: !memfd_noexec_enforced,
        }
    }
}

/// A tiny assembler with named jump targets, so the program reads top to bottom.
enum Asm {
    Insn(sock_filter),
    Jump {
        code: u16,
        k: u32,
        jt: String,
        jf: String,
    },
    Label(String),
}

const NEXT: &str = "";

fn stmt(code: u32, k: u32) -> Asm {
    Asm::Insn(sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    })
}
fn ld(off: u32) -> Asm {
    stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, off)
}
fn ret(k: u32) -> Asm {
    stmt(libc::BPF_RET | libc::BPF_K, k)
}
fn jeq(k: u32, jt: &str, jf: &str) -> Asm {
    Asm::Jump {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        k,
        jt: jt.into(),
        jf: jf.into(),
    }
}
fn jset(k: u32, jt: &str, jf: &str) -> Asm {
    Asm::Jump {
        code: (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16,
        k,
        jt: jt.into(),
        jf: jf.into(),
    }
}
fn label(name: &str) -> Asm {
    Asm::Label(name.into())
}
fn errno(e: i32) -> u32 {
    RET_ERRNO | (e as u32 & 0xffff)
}

fn assemble(code: Vec<Asm>) -> Result<Vec<sock_filter>, String> {
    let mut labels = std::collections::HashMap::new();
    let mut pos = 0usize;
    for a in &code {
        match a {
            Asm::Label(l) => {
                labels.insert(l.clone(), pos);
            }
            _ => pos += 1,
        }
    }
    let mut out = Vec::with_capacity(pos);
    for a in code {
        match a {
            Asm::Label(_) => {}
            Asm::Insn(i) => out.push(i),
            Asm::Jump { code, k, jt, jf } => {
                let here = out.len() + 1;
                let target = |l: &str| -> Result<u8, String> {
                    if l.is_empty() {
                        return Ok(0);
                    }
                    let t = *labels.get(l).ok_or_else(|| format!("no label {l}"))?;
                    u8::try_from(
                        t.checked_sub(here)
                            .ok_or_else(|| format!("backward jump to {l}"))?,
                    )
                    .map_err(|_| format!("jump to {l} too far"))
                };
                out.push(sock_filter {
                    code,
                    jt: target(&jt)?,
                    jf: target(&jf)?,
                    k,
                });
            }
        }
    }
    Ok(out)
}

/// The BPF program for these options.
pub fn program(opts: Options) -> Vec<sock_filter> {
    let mut c = vec![ld(OFF_ARCH), jeq(AUDIT_ARCH, NEXT, "kill"), ld(OFF_NR)];
    // x32 system calls reach the same kernel code by other numbers: close them all.
    #[cfg(target_arch = "x86_64")]
    c.push(Asm::Jump {
        code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
        k: 0x4000_0000,
        jt: "eperm".into(),
        jf: NEXT.into(),
    });
    for (_, nr) in DENIED {
        c.push(jeq(*nr as u32, "eperm", NEXT));
    }
    // clone3 passes its flags in memory, where BPF cannot look: ENOSYS makes libc fall back
    // to clone, whose flags we can check.
    c.push(jeq(libc::SYS_clone3 as u32, "enosys", NEXT));
    if opts.deny_memfd {
        c.push(jeq(libc::SYS_memfd_create as u32, "enosys", NEXT));
    }
    c.extend([
        jeq(libc::SYS_clone as u32, "clone", NEXT),
        jeq(libc::SYS_ioctl as u32, "ioctl", NEXT),
        jeq(libc::SYS_socket as u32, "socket", NEXT),
        jeq(libc::SYS_personality as u32, "personality", NEXT),
        ret(RET_ALLOW),
    ]);

    c.extend([
        label("clone"),
        ld(off_arg_lo(0)),
        jset(CLONE_NS_FLAGS, "eperm", "allow"),
    ]);
    // The kernel compares ioctl commands on their low 32 bits; so do we.
    c.extend([
        label("ioctl"),
        ld(off_arg_lo(1)),
        jeq(TIOCSTI, "eperm", NEXT),
        jeq(TIOCLINUX, "eperm", "allow"),
    ]);

    c.extend([
        label("socket"),
        ld(off_arg_lo(0)),
        jeq(libc::AF_UNIX as u32, "allow", NEXT),
        jeq(libc::AF_NETLINK as u32, "allow", NEXT),
        jeq(libc::AF_INET as u32, "inet", NEXT),
        jeq(libc::AF_INET6 as u32, "inet", NEXT),
        ret(errno(libc::EAFNOSUPPORT)),
        label("inet"),
        ld(off_arg_lo(1)),
        stmt(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, 0xf),
        jeq(libc::SOCK_RAW as u32, "eperm", NEXT),
        jeq(SOCK_PACKET, "eperm", NEXT),
    ]);
    if opts.deny_udp {
        c.push(jeq(libc::SOCK_DGRAM as u32, "eperm", NEXT));
    }
    c.push(ret(RET_ALLOW));

    // Only the plain Linux personality (32-bit variants included) and the query; no
    // READ_IMPLIES_EXEC, no ADDR_NO_RANDOMIZE.
    c.extend([
        label("personality"),
        ld(off_arg_lo(0)),
        jeq(0, "allow", NEXT),
        jeq(0xffff_ffff, "allow", NEXT),
        jeq(0x0008, "allow", "eperm"),
    ]);

    c.extend([
        label("allow"),
        ret(RET_ALLOW),
        label("eperm"),
        ret(errno(libc::EPERM)),
        label("enosys"),
        ret(errno(libc::ENOSYS)),
        label("kill"),
        ret(RET_KILL_PROCESS),
    ]);
    // The program is fixed and small: a failure here is a bug caught by the tests.
    assemble(c).unwrap_or_else(|e| panic!("seccomp program does not assemble: {e}"))
}

/// The exec watch: a second filter that hands every execve and execveat, and with `exits`
/// every exit_group (for the exit status of what was started), to a supervisor (the
/// sandbox's init, [`crate::notice`]), which only observes and always lets the call
/// continue; Landlock and the mounts still decide. Other calls and foreign architectures
/// pass here (the deny-list filter above judges them).
pub fn exec_watch_program(exits: bool) -> Vec<sock_filter> {
    let mut c = vec![
        ld(OFF_ARCH),
        jeq(AUDIT_ARCH, NEXT, "allow"),
        ld(OFF_NR),
        jeq(libc::SYS_execve as u32, "notify", NEXT),
    ];
    if exits {
        c.push(jeq(libc::SYS_execveat as u32, "notify", NEXT));
        c.push(jeq(libc::SYS_exit_group as u32, "notify", "allow"));
    } else {
        // Exits only make exit events: nobody asked for them, and each would cost the
        // exiting process two trips to the watch and back.
        c.push(jeq(libc::SYS_execveat as u32, "notify", "allow"));
    }
    c.extend([
        label("notify"),
        ret(libc::SECCOMP_RET_USER_NOTIF),
        label("allow"),
        ret(RET_ALLOW),
    ]);
    assemble(c).unwrap_or_else(|e| panic!("exec watch program does not assemble: {e}"))
}

/// Loads `filter` on this (single) thread and returns the listener that receives its
/// notifications. Errors are the kernel's: EINVAL before Linux 5.0, EBUSY when a filter
/// already in place (a container's) has a listener.
pub fn apply_with_listener(filter: &[sock_filter]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut sock_filter,
    };
    // SAFETY: prog points at a live filter for the duration of the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor (close-on-exec) and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Loads the filter on this thread (and, with TSYNC, every thread). no_new_privs must be set.
pub fn apply(filter: &[sock_filter]) -> Result<(), Refusal> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut sock_filter,
    };
    // SAFETY: prog points at a live filter for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(Refusal::os(
            Step::Seccomp,
            "loading the system call filter",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BPF interpreter for the instructions [`program`] uses, to test the filter's
    /// decisions without loading it.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code as u32 {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    acc =
                        u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= i.k,
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => {
                    let taken = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => acc == i.k,
                        x if x == libc::BPF_JGE => acc >= i.k,
                        x if x == libc::BPF_JSET => acc & i.k != 0,
                        _ => panic!("unexpected op {c:#x}"),
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
            }
        }
    }

    const OPEN: Options = Options {
        deny_udp: false,
        deny_memfd: false,
    };

    fn call(nr: libc::c_long, args: [u64; 6]) -> u32 {
        run(&program(OPEN), AUDIT_ARCH, nr as u32, args)
    }

    #[test]
    fn the_exec_watch_notifies_execs_and_process_exits_and_passes_everything_else() {
        let prog = exec_watch_program(true);
        for nr in [libc::SYS_execve, libc::SYS_execveat, libc::SYS_exit_group] {
            assert_eq!(
                run(&prog, AUDIT_ARCH, nr as u32, [0; 6]),
                libc::SECCOMP_RET_USER_NOTIF
            );
        }
        for nr in [
            libc::SYS_openat,
            libc::SYS_read,
            libc::SYS_clone,
            libc::SYS_exit,
        ] {
            assert_eq!(run(&prog, AUDIT_ARCH, nr as u32, [0; 6]), RET_ALLOW);
        }
        assert_eq!(
            run(&prog, 0x4000_0003, libc::SYS_execve as u32, [0; 6]),
            RET_ALLOW,
            "a foreign architecture is the deny-list's to kill"
        );
    }

    #[test]
    fn without_exit_events_the_exec_watch_notifies_execs_and_leaves_exits_alone() {
        let prog = exec_watch_program(false);
        for nr in [libc::SYS_execve, libc::SYS_execveat] {
            assert_eq!(
                run(&prog, AUDIT_ARCH, nr as u32, [0; 6]),
                libc::SECCOMP_RET_USER_NOTIF
            );
        }
        for nr in [libc::SYS_exit_group, libc::SYS_exit, libc::SYS_openat] {
            assert_eq!(run(&prog, AUDIT_ARCH, nr as u32, [0; 6]), RET_ALLOW);
        }
        assert_eq!(
            run(&prog, 0x4000_0003, libc::SYS_execve as u32, [0; 6]),
            RET_ALLOW
        );
    }

    #[test]
    fn every_denied_call_gets_eperm() {
        for (name, nr) in DENIED {
            assert_eq!(call(*nr, [0; 6]), errno(libc::EPERM), "{name}");
        }
    }

    #[test]
    fn ordinary_calls_pass() {
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_memfd_create,
            libc::SYS_sendto,
            libc::SYS_socketpair,
        ] {
            assert_eq!(call(nr, [0; 6]), RET_ALLOW, "{nr}");
        }
    }

    #[test]
    fn clone_with_namespace_flags_is_refused_and_plain_clone_passes() {
        assert_eq!(
            call(libc::SYS_clone, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            call(libc::SYS_clone, [0x80, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            call(
                libc::SYS_clone,
                [
                    (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64,
                    0,
                    0,
                    0,
                    0,
                    0
                ]
            ),
            RET_ALLOW
        );
        assert_eq!(call(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
    }

    #[test]
    fn tiocsti_is_refused_on_its_low_32_bits() {
        assert_eq!(
            call(libc::SYS_ioctl, [0, TIOCSTI as u64, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            call(
                libc::SYS_ioctl,
                [0, 0xdead_beef_0000_0000 | TIOCSTI as u64, 0, 0, 0, 0]
            ),
            errno(libc::EPERM)
        );
        assert_eq!(
            call(libc::SYS_ioctl, [0, TIOCLINUX as u64, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(
            call(libc::SYS_ioctl, [0, libc::TIOCGWINSZ, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }

    #[test]
    fn raw_and_packet_sockets_and_odd_families_are_refused() {
        let s = |d: i32, t: i32| call(libc::SYS_socket, [d as u64, t as u64, 0, 0, 0, 0]);
        assert_eq!(s(libc::AF_INET, libc::SOCK_RAW), errno(libc::EPERM));
        assert_eq!(
            s(libc::AF_INET6, libc::SOCK_RAW | libc::SOCK_CLOEXEC),
            errno(libc::EPERM)
        );
        assert_eq!(
            s(libc::AF_PACKET, libc::SOCK_RAW),
            errno(libc::EAFNOSUPPORT)
        );
        assert_eq!(
            s(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC),
            RET_ALLOW
        );
        assert_eq!(s(libc::AF_INET, libc::SOCK_DGRAM), RET_ALLOW);
        assert_eq!(
            s(libc::AF_NETLINK, libc::SOCK_RAW),
            RET_ALLOW,
            "glibc's getaddrinfo needs netlink"
        );
        assert_eq!(s(libc::AF_UNIX, libc::SOCK_DGRAM), RET_ALLOW);
    }

    #[test]
    fn udp_is_refused_when_the_profile_grants_only_tcp_ports() {
        let p = program(Options {
            deny_udp: true,
            deny_memfd: true,
        });
        assert_eq!(
            run(
                &p,
                AUDIT_ARCH,
                libc::SYS_socket as u32,
                [libc::AF_INET as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]
            ),
            errno(libc::EPERM)
        );
        assert_eq!(
            run(
                &p,
                AUDIT_ARCH,
                libc::SYS_socket as u32,
                [libc::AF_UNIX as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0]
            ),
            RET_ALLOW
        );
        assert_eq!(
            run(&p, AUDIT_ARCH, libc::SYS_memfd_create as u32, [0; 6]),
            errno(libc::ENOSYS)
        );
    }

    #[test]
    fn a_foreign_architecture_is_killed_and_x32_refused() {
        assert_eq!(
            run(&program(OPEN), 0x4000_0003, libc::SYS_read as u32, [0; 6]),
            RET_KILL_PROCESS
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            call(0x4000_0000 | libc::SYS_read, [0; 6]),
            errno(libc::EPERM)
        );
    }

    #[test]
    fn personality_allows_only_plain_linux() {
        assert_eq!(
            call(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            call(libc::SYS_personality, [0x0040_0000, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
    }
}
