//! Running a command under a policy: the process tree and the order of the steps.
//!
//! ```text
//! cordon (host side)      creates the cgroup, the pid (and, unprivileged, user) namespace;
//!   │                     forwards signals sent to it; enforces the wall-clock limit;
//!   │                     removes the cgroup; exits with the command's status
//!   ├─ proxy              network "proxy" only, forked first (egress/process.rs): host's
//!   │                     network; receives init's listeners, serves HTTP and SOCKS5
//!   └─ init (pid 1)       joins the cgroup; new mount/ipc/uts/net namespaces; builds the
//!        │                root; loopback up (network "proxy": opens the proxy's listeners
//!        │                and sends them out); rlimits; Landlock rules gathered; becomes
//!        │                the identity; drops capabilities; no_new_privs; Landlock
//!        │                enforced; seccomp; the exec watch; closes every fd above 2 but
//!        │                its own; reaps; forwards signals; a thread answers the exec
//!        │                watch (notice.rs)
//!        └─ command       restores the signal mask, chdir, execve with the policy's env
//! ```
//!
//! Every step before the command's execve fails closed: its refusal travels back through a
//! close-on-exec pipe and cordon exits with [`crate::EXIT_REFUSED`].

use crate::egress::{self, handoff};
use crate::error::{Refusal, Step};
use crate::features::Features;
use crate::identity;
use crate::landlock;
use crate::limits::{self, Cgroup};
use crate::mounts;
use crate::notice;
use crate::policy::Policy;
use crate::profile::NetMode;
use crate::seccomp;
use crate::sys;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How the confined command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// The profile's wall-clock limit ended it.
    TimedOut,
}

impl Outcome {
    /// The exit status a shell would show: the status, 128 + signal, or 124 for a timeout.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Exited(c) => c,
            Outcome::Signaled(s) => 128 + s,
            Outcome::TimedOut => crate::EXIT_TIMEOUT,
        }
    }
}

/// Everything the child side needs, computed before the fork.
struct Prepared {
    mount_ops: Vec<mounts::Op>,
    ttys: Vec<PathBuf>,
    rlimits: Vec<limits::Rlimit>,
    /// The uid and gid to switch to (as root, with an identity).
    identity: Option<(u32, u32)>,
    landlock: landlock::Plan,
    seccomp_strict_memfd: Vec<libc::sock_filter>,
    seccomp_sealed_memfd: Vec<libc::sock_filter>,
    /// The exec watch filter, and the policy its notices are predicted with.
    exec_watch: Vec<libc::sock_filter>,
    policy: Policy,
    new_net: bool,
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: CString,
    cgroup_fds: Vec<i32>,
    /// The caller's umask, given back to the command (the new root is built with 022, so
    /// that its directories can be searched once the command runs as its identity).
    umask: libc::mode_t,
}

/// Runs `policy`'s command confined, and waits for it. Must be called while the process is
/// single-threaded (a user namespace cannot be entered otherwise).
pub fn run(policy: &Policy, features: &Features) -> Result<Outcome, Refusal> {
    run_with_secrets(policy, features, &[])
}

/// How the supervisor serves a network-"proxy" session's egress (ignored in other modes).
#[derive(Default)]
pub struct EgressOptions {
    /// Names to addresses (the operator's overrides, then the system's resolver).
    pub resolver: egress::resolve::Resolver,
    /// The proxy's bounds.
    pub limits: egress::proxy::Limits,
    /// Where each connection attempt is written as a JSON line.
    pub events: Option<std::fs::File>,
    /// Whether refused attempts are noted on stderr.
    pub notes: bool,
    /// Where the owner's answers come from in ask mode (`[network] unknown = "ask"`);
    /// without it, nobody can be asked and unlisted destinations are refused.
    pub answers: Option<std::fs::File>,
}

/// [`run`], with secret values (name, value) for the command's environment: only those the
/// policy names (`[env] secrets`) are used, each replacing a variable of the same name.
/// They are added to what the command's execve gets, and to nothing else.
pub fn run_with_secrets(
    policy: &Policy,
    features: &Features,
    secrets: &[(String, String)],
) -> Result<Outcome, Refusal> {
    run_with(policy, features, secrets, EgressOptions::default())
}

/// [`run_with_secrets`], with how a network-"proxy" session's egress is served.
pub fn run_with(
    policy: &Policy,
    features: &Features,
    secrets: &[(String, String)],
    egress: EgressOptions,
) -> Result<Outcome, Refusal> {
    let needs_cgroup = policy.limits.processes.is_some() || policy.limits.memory.is_some();
    let cgroup = match (&features.cgroup, needs_cgroup && features.root) {
        (Some(layout), true) => Some(Cgroup::create(layout, &policy.limits, &unique_name())?),
        (None, true) => {
            return Err(Refusal::new(Step::Cgroup, "the profile limits processes or memory, and as uid 0 only a cgroup can enforce that (RLIMIT_NPROC does not bind root); no usable pids+memory cgroup was found")
                .hint("mount the pids and memory controllers (cgroup v2 with both enabled, or v1 hierarchies), or run cordon as an unprivileged user"))
        }
        _ => None,
    };
    let prepared = prepare(
        policy,
        features,
        cgroup.as_ref(),
        secrets,
        egress.events.is_some(),
    )?;
    let placeholders = crate::protect::Placeholders::hold(&policy.workspace, &policy.protect);

    let blocked = forwarded_signals();
    let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sigset pointers.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &blocked, &mut old_mask) };

    // init's copy of the events descriptor, for exec events (the proxy gets the original).
    let mut exec_events = egress.events.as_ref().and_then(|f| f.try_clone().ok());
    let result = (|| {
        // Forked first: before the pid namespace (it needs threads) and before the status
        // pipe (it must hold no copy of the write end). Dropped (stopped) when this ends.
        let mut proxy = if policy.network.mode == NetMode::Proxy {
            Some(spawn_proxy(policy, egress)?)
        } else {
            None
        };
        let mut fds = [0; 2];
        // SAFETY: fds is a two-int array.
        sys::check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })
            .map_err(|e| Refusal::os(Step::Supervise, "creating the status pipe", e))?;
        // SAFETY: pipe2 just returned these fds.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        enter_pid_namespace(features)?;
        // SAFETY: the process is single-threaded; the child only runs code that is safe there.
        let pid = sys::check(unsafe { libc::fork() })
            .map_err(|e| Refusal::os(Step::Namespaces, "forking the sandbox's init", e))?;
        if pid == 0 {
            drop(read_end);
            init(
                &prepared,
                fds[1],
                proxy.as_ref().and_then(|p| p.init_end()),
                exec_events.as_ref().map(|f| f.as_raw_fd()),
            );
        }
        drop(write_end);
        // init has its copy: the host sees the events end when init and the proxy are gone.
        exec_events = None;
        if let Some(p) = proxy.as_mut() {
            if let Err(why) = p.wait_ready() {
                // SAFETY: killing and reaping our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait_exit(pid);
                return Err(Refusal::new(Step::Egress, why));
            }
        }
        supervise(
            pid,
            read_end,
            policy.limits.timeout.map(Duration::from_secs),
            &blocked,
        )
    })();
    // SAFETY: restores the caller's mask.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    drop(cgroup);
    // Every process of the sandbox is gone: nothing inside can race the removal.
    placeholders.finish();
    result
}

/// Forks the proxy's process with the policy's rules and the caller's options.
fn spawn_proxy(
    policy: &Policy,
    options: EgressOptions,
) -> Result<egress::process::ProxyProcess, Refusal> {
    let ask = match (policy.network.unknown, options.answers) {
        (crate::profile::Unknown::Ask, Some(answers)) => Some(egress::proxy::Ask {
            answers,
            wait: Duration::from_secs(policy.network.ask_wait),
        }),
        (crate::profile::Unknown::Ask, None) => {
            if options.notes {
                eprintln!("cordon: profile \"{}\" asks about unlisted destinations ([network] unknown = \"ask\"), but only a host (cordon serve, or cordon) can ask the session's owner: here they are refused", policy.profile);
            }
            None
        }
        (crate::profile::Unknown::Deny, _) => None,
    };
    let settings = egress::proxy::Settings {
        rules: policy.network.egress.clone(),
        resolver: options.resolver,
        limits: options.limits,
        events: options.events,
        notes: options.notes,
        ask,
    };
    egress::process::ProxyProcess::spawn(settings)
        .map_err(|e| Refusal::os(Step::Egress, "starting the proxy's process", e))
}

/// A cgroup name no other sandbox uses: pids are reused, and a sandbox killed with SIGKILL
/// leaves its (empty) group behind until the next sweep.
fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("sandbox-{}-{nanos:09}", std::process::id())
}

/// `exit_events`: the host asked for exec and exit events (an events descriptor).
fn prepare(
    policy: &Policy,
    features: &Features,
    cgroup: Option<&Cgroup>,
    secrets: &[(String, String)],
    exit_events: bool,
) -> Result<Prepared, Refusal> {
    if !features.root && !features.user_namespaces {
        return Err(Refusal::new(
            Step::Namespaces,
            "cordon is not running as root and this kernel does not allow unprivileged user namespaces",
        )
        .hint("enable them (sysctl kernel.unprivileged_userns_clone=1, or the AppArmor userns restriction off), or run as root"));
    }
    if !features.seccomp {
        return Err(
            Refusal::new(Step::Seccomp, "this kernel has no seccomp filter support")
                .hint("use a kernel built with CONFIG_SECCOMP_FILTER"),
        );
    }
    let landlock = landlock::plan(policy, features.landlock_abi)?;
    let caller = identity::Caller::current();
    // Checked again here: a policy may come from elsewhere than Policy::resolve.
    if let Some(id) = &policy.identity {
        identity::check(id, caller)?;
    }
    let identity = policy
        .identity
        .as_ref()
        .filter(|_| identity::needs_switch(caller))
        .map(|id| (id.uid, id.gid));
    let accounts = if policy.identity.is_some() {
        mounts::Accounts::read_host()
    } else {
        mounts::Accounts::default()
    };
    let (mount_ops, _) = mounts::plan(policy, &accounts);
    let cstring = |s: &str, what: &str| {
        CString::new(s)
            .map_err(|_| Refusal::new(Step::Command, format!("{what} contains a NUL byte")))
    };
    let opts = seccomp::Options::for_policy(policy, true);
    Ok(Prepared {
        mount_ops,
        ttys: caller_ttys(),
        rlimits: limits::rlimits(&policy.limits, cgroup.is_some()),
        identity,
        landlock,
        seccomp_sealed_memfd: seccomp::program(opts),
        seccomp_strict_memfd: seccomp::program(seccomp::Options {
            deny_memfd: true,
            ..opts
        }),
        exec_watch: seccomp::exec_watch_program(exit_events),
        policy: policy.clone(),
        new_net: private_network(policy.network.mode),
        program: sys::cstr(&policy.program)
            .map_err(|e| Refusal::os(Step::Command, "the program path", e))?,
        argv: policy
            .argv
            .iter()
            .map(|a| cstring(a, "an argument"))
            .collect::<Result<_, _>>()?,
        env: environment(policy, secrets)
            .iter()
            .map(|(k, v)| cstring(&format!("{k}={v}"), "an environment variable"))
            .collect::<Result<_, _>>()?,
        cwd: sys::cstr(&policy.cwd)
            .map_err(|e| Refusal::os(Step::Command, "the working directory", e))?,
        cgroup_fds: cgroup.map(|c| c.join_fds()).unwrap_or_default(),
        umask: caller_umask(),
    })
}

/// Whether `mode` gives the session a network namespace of its own (with only loopback).
fn private_network(mode: NetMode) -> bool {
    match mode {
        NetMode::None | NetMode::Proxy => true,
        NetMode::Ports | NetMode::Host => false,
    }
}

/// The command's environment: the policy's, with the secrets it names put in (a secret
/// replaces a variable of the same name; one the policy does not name is left out).
fn environment<'a>(policy: &'a Policy, secrets: &'a [(String, String)]) -> Vec<(&'a str, &'a str)> {
    let wanted = |k: &str| policy.secrets.iter().any(|s| s == k);
    let given = |k: &str| secrets.iter().any(|(s, _)| s == k);
    let mut env: Vec<(&str, &str)> = policy
        .env
        .iter()
        .filter(|(k, _)| !(wanted(k) && given(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend(
        secrets
            .iter()
            .filter(|(k, _)| wanted(k))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    env
}

/// The terminal devices of fds 0–2, to show inside the sandbox's /dev.
fn caller_ttys() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fd in 0..3 {
        // SAFETY: isatty on a small int.
        if unsafe { libc::isatty(fd) } == 1 {
            if let Ok(p) = std::fs::read_link(format!("/proc/self/fd/{fd}")) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// As root: a new pid namespace for the children. Unprivileged: a user namespace first,
/// mapping only the caller's own uid and gid.
fn enter_pid_namespace(features: &Features) -> Result<(), Refusal> {
    if features.root {
        // SAFETY: unshare with flags only.
        return sys::check(unsafe { libc::unshare(libc::CLONE_NEWPID) })
            .map(drop)
            .map_err(|e| Refusal::os(Step::Namespaces, "creating the pid namespace", e));
    }
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare with flags only.
    sys::check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID) })
        .map_err(|e| Refusal::os(Step::Namespaces, "creating the user and pid namespaces", e))?;
    let map = |file: &str, data: String| {
        sys::write_file(std::path::Path::new(file), &data)
            .map_err(|e| Refusal::os(Step::Namespaces, format!("writing {file}"), e))
    };
    map("/proc/self/setgroups", "deny".into())?;
    map("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    map("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

/// Signals the host side catches and forwards to the sandbox.
fn forwarded_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGCHLD,
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
        ] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// A signal sent with kill(2) by a process (not generated by the terminal for the whole
/// foreground group, which the command already receives).
fn sent_by_a_process(info: &libc::siginfo_t) -> bool {
    matches!(
        info.si_code,
        libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL
    )
}

fn supervise(
    init: libc::pid_t,
    status: OwnedFd,
    timeout: Option<Duration>,
    signals: &libc::sigset_t,
) -> Result<Outcome, Refusal> {
    // The pipe reaches end-of-file once the command has been executed (or everything failed).
    let mut report = Vec::new();
    let _ = std::fs::File::from(status).read_to_end(&mut report);
    if !report.is_empty() {
        wait_exit(init);
        return Err(decode_refusal(&report));
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let wait = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: a zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers.
        let sig = unsafe { libc::sigtimedwait(signals, &mut info, &ts) };
        if sig == libc::SIGCHLD || sig < 0 {
            if let Some(outcome) = reap(init) {
                return Ok(outcome);
            }
        } else if sent_by_a_process(&info) {
            // SAFETY: kill with a pid we own.
            unsafe { libc::kill(init, sig) };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // SAFETY: as above. Killing init kills every process in its pid namespace.
            unsafe { libc::kill(init, libc::SIGKILL) };
            wait_exit(init);
            return Ok(Outcome::TimedOut);
        }
    }
}

fn reap(pid: libc::pid_t) -> Option<Outcome> {
    let mut st = 0;
    // SAFETY: st is a valid out-parameter.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
    if r != pid {
        return None;
    }
    Some(if libc::WIFEXITED(st) {
        Outcome::Exited(libc::WEXITSTATUS(st))
    } else {
        Outcome::Signaled(libc::WTERMSIG(st))
    })
}

fn wait_exit(pid: libc::pid_t) {
    let mut st = 0;
    // SAFETY: as above.
    while unsafe { libc::waitpid(pid, &mut st, 0) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
}

fn encode_refusal(r: &Refusal) -> Vec<u8> {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        r.step.name(),
        r.reason,
        r.hint.clone().unwrap_or_default()
    )
    .into_bytes()
}

fn decode_refusal(bytes: &[u8]) -> Refusal {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.splitn(3, '\u{1f}');
    let step = parts
        .next()
        .and_then(Step::from_name)
        .unwrap_or(Step::Supervise);
    let reason = parts
        .next()
        .unwrap_or("the sandbox failed without a reason")
        .to_string();
    let hint = parts.next().filter(|h| !h.is_empty()).map(str::to_string);
    Refusal { step, reason, hint }
}

/// The sandbox's pid 1. Never returns.
fn init(p: &Prepared, status_fd: i32, handoff: Option<i32>, events: Option<i32>) -> ! {
    let fail = |r: Refusal| -> ! {
        sys::write_all_fd(status_fd, &encode_refusal(&r));
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(crate::EXIT_REFUSED) }
    };
    let payload = match confine(p, status_fd, handoff, events) {
        Ok(pid) => pid,
        Err(r) => fail(r),
    };
    // SAFETY: closing our copy; the command holds its own until its execve.
    unsafe { libc::close(status_fd) };
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigset on a local.
    unsafe { libc::sigfillset(&mut all) };
    loop {
        // SAFETY: a zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers.
        let sig = unsafe { libc::sigwaitinfo(&all, &mut info) };
        if sig == libc::SIGCHLD {
            loop {
                let mut st = 0;
                // SAFETY: reaping any child; pid 1 adopts every orphan in the namespace.
                let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                if r <= 0 {
                    break;
                }
                if r == payload {
                    let code = if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else {
                        128 + libc::WTERMSIG(st)
                    };
                    // Exiting pid 1 kills whatever the command left behind.
                    // SAFETY: plain exit.
                    unsafe { libc::_exit(code) };
                }
            }
        // SAFETY: reading the sender's pid from a filled siginfo.
        } else if sig > 0 && sent_by_a_process(&info) && unsafe { info.si_pid() } == 0 {
            // From the host side (its pid is not visible here): pass it on.
            // SAFETY: kill with the command's pid.
            unsafe { libc::kill(payload, sig) };
        }
    }
}

/// This process's umask (read by setting it and setting it back; single-threaded here).
fn caller_umask() -> libc::mode_t {
    // SAFETY: umask cannot fail.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    }
}

/// The steps, in order. Returns the command's pid.
fn confine(
    p: &Prepared,
    status_fd: i32,
    handoff: Option<i32>,
    events: Option<i32>,
) -> Result<libc::pid_t, Refusal> {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o022) };
    // SAFETY: every block below is a thin syscall on values prepared before the fork.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .map_err(|e| Refusal::os(Step::Supervise, "setting the parent-death signal", e))?;
    limits::join(&p.cgroup_fds)?;
    for &fd in &p.cgroup_fds {
        // SAFETY: closing fds inherited from the host side.
        unsafe { libc::close(fd) };
    }
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if p.new_net {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare with flags only.
    sys::check(unsafe { libc::unshare(flags) }).map_err(|e| {
        Refusal::os(
            Step::Namespaces,
            "creating the mount, ipc, uts and network namespaces",
            e,
        )
    })?;
    // memfds are executable unless this pid namespace says otherwise (Linux 6.3); where it
    // cannot be said, seccomp refuses memfd_create instead.
    let memfd_sealed =
        sys::write_file(std::path::Path::new("/proc/sys/vm/memfd_noexec"), "2").is_ok();
    mounts::apply(&p.mount_ops, &p.ttys)?;
    // SAFETY: a static name.
    sys::check(unsafe { libc::sethostname(c"cordon".as_ptr(), 6) })
        .map_err(|e| Refusal::os(Step::Namespaces, "setting the hostname", e))?;
    if p.new_net {
        loopback_up()?;
    }
    if let Some(fd) = handoff {
        hand_listeners_out(fd)?;
    }
    limits::apply_rlimits(&p.rlimits)?;
    let ruleset = landlock::build(&p.landlock)?;
    if let Some((uid, gid)) = p.identity {
        identity::switch(uid, gid)?;
        // The kernel clears the parent-death signal on a change of credentials.
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
            .map_err(|e| Refusal::os(Step::Identity, "setting the parent-death signal again", e))?;
        // The supervisor may have died while no signal was armed: it holds the status
        // pipe's read end until the command runs, so a closed read end (POLLERR on ours)
        // says it is gone.
        let mut pfd = libc::pollfd {
            fd: status_fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: poll on one pollfd we own, without waiting.
        if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 && pfd.revents & libc::POLLERR != 0 {
            // SAFETY: leaving at once; nobody is left to report to.
            unsafe { libc::_exit(crate::EXIT_REFUSED) };
        }
    }
    crate::caps::drop_all()?;
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
        .map_err(|e| Refusal::os(Step::NoNewPrivs, "setting no_new_privs", e))?;
    ruleset.enforce()?;
    seccomp::apply(if memfd_sealed {
        &p.seccomp_sealed_memfd
    } else {
        &p.seccomp_strict_memfd
    })?;
    // The exec notice only observes (Landlock and the mounts decide), so a kernel that cannot
    // give a listener (before 5.5, or inside a container whose filter has one) runs without
    // it.
    let listener = seccomp::apply_with_listener(&p.exec_watch).ok();
    let mut keep = vec![status_fd];
    keep.extend(listener.as_ref().map(|l| l.as_raw_fd()));
    // The events descriptor only with a listener: exec events come from the watch.
    let events = events.filter(|_| listener.is_some());
    keep.extend(events);
    close_inherited_fds(&keep)?;

    // SAFETY: single-threaded; the child only calls async-signal-safe functions before execve.
    let pid = sys::check(unsafe { libc::fork() })
        .map_err(|e| Refusal::os(Step::Exec, "forking the command", e))?;
    if pid == 0 {
        exec_command(p, status_fd);
    }
    // init holds the listener and the events descriptor: no process of the session (same
    // uid, no capabilities) may reach them through /proc/1/fd or ptrace. Set after the
    // fork: the command's child must stay readable to the watch until its first execve
    // (which it waits in), and every later image is dumpable by its own rules.
    if let Err(e) = sys::prctl(libc::PR_SET_DUMPABLE, 0) {
        // SAFETY: killing our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return Err(Refusal::os(Step::Supervise, "making init non-dumpable", e));
    }
    if let Some(listener) = listener {
        // Started after the fork: the command's first execve waits for it. Without it every
        // exec would wait forever, so the command must not go on.
        let watch = notice::Watch {
            listener,
            policy: p.policy.clone(),
            // SAFETY: kept open above for this; owned by the watch from here (close-on-exec,
            // so the command never has it).
            events: events.map(|fd| unsafe { std::fs::File::from_raw_fd(fd) }),
        };
        if let Err(e) = watch.start() {
            // SAFETY: killing our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(Refusal::os(
                Step::Supervise,
                "starting the exec watch thread",
                e,
            ));
        }
    }
    Ok(pid)
}

/// Opens the proxy's listeners inside the new namespace and sends them to the supervisor;
/// init's copies are closed here, so only the supervisor ever accepts on them.
fn hand_listeners_out(fd: i32) -> Result<(), Refusal> {
    let listeners = handoff::open().map_err(|e| {
        Refusal::os(
            Step::Egress,
            format!(
                "opening the proxy's listeners ({} and {}) in the session's network namespace",
                egress::HTTP_PROXY_ADDR,
                egress::SOCKS_PROXY_ADDR
            ),
            e,
        )
        .hint("the namespace is new and empty, so this should not happen: report it; meanwhile use network mode \"none\"")
    })?;
    handoff::send(fd, &listeners).map_err(|e| {
        Refusal::os(
            Step::Egress,
            "handing the proxy's listeners to the supervisor",
            e,
        )
    })?;
    drop(listeners);
    // SAFETY: closing init's end; the supervisor sees end-of-file if anything failed.
    unsafe { libc::close(fd) };
    Ok(())
}

fn loopback_up() -> Result<(), Refusal> {
    // SAFETY: a plain datagram socket for the interface ioctl.
    let sock = sys::check(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })
    .map_err(|e| Refusal::os(Step::Namespaces, "opening a socket to bring up loopback", e))?;
    // SAFETY: the fd was just returned.
    let _sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq zeroed, name copied within bounds.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    req.ifr_ifru.ifru_flags =
        (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: a valid ifreq.
    sys::check(unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) })
        .map_err(|e| Refusal::os(Step::Namespaces, "bringing up loopback", e))?;
    Ok(())
}

/// No descriptor but 0, 1, 2 (and init's own `keep`: the status pipe and the exec watch's
/// listener, both close-on-exec) reaches the command.
fn close_inherited_fds(keep: &[i32]) -> Result<(), Refusal> {
    sys::close_fds_except(keep)
        .map_err(|e| Refusal::os(Step::Descriptors, "closing inherited descriptors", e))
}

fn exec_command(p: &Prepared, status_fd: i32) -> ! {
    // SAFETY: the whole block runs in the freshly forked child before execve.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::umask(p.umask);
        // The switch to the session's uid left init, and so this child, non-dumpable: the
        // exec watch could not read this first execve's path and arguments. Nothing but
        // init's watch can look at this process before its execve, which sets dumpable by
        // its own rules.
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored across execve:
        // without this, `yes | head` in a session would never end (std's Command resets it
        // the same way; this fork does not go through Command).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let (step, what, code) = if libc::chdir(p.cwd.as_ptr()) != 0 {
            (
                Step::Exec,
                "changing to the working directory",
                crate::EXIT_REFUSED,
            )
        } else {
            let mut argv: Vec<*const libc::c_char> = p.argv.iter().map(|a| a.as_ptr()).collect();
            argv.push(std::ptr::null());
            let mut envp: Vec<*const libc::c_char> = p.env.iter().map(|a| a.as_ptr()).collect();
            envp.push(std::ptr::null());
            libc::execve(p.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                (
                    Step::Command,
                    "executing the command",
                    crate::EXIT_NOT_FOUND,
                )
            } else {
                (
                    Step::Exec,
                    "executing the command",
                    crate::EXIT_CANNOT_EXECUTE,
                )
            }
        };
        let err = std::io::Error::last_os_error();
        sys::write_all_fd(
            status_fd,
            &encode_refusal(&Refusal::os(
                step,
                format!("{what} ({})", p.program.to_string_lossy()),
                err,
            )),
        );
        libc::_exit(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_survives_the_status_pipe() {
        let r = Refusal::new(Step::Landlock, "needs ABI 4").hint("upgrade");
        assert_eq!(decode_refusal(&encode_refusal(&r)), r);
        let r = Refusal::new(Step::Mounts, "x");
        assert_eq!(decode_refusal(&encode_refusal(&r)), r);
    }

    #[test]
    fn only_the_secrets_the_policy_names_reach_the_environment_replacing_their_namesakes() {
        let policy: Policy = serde_json::from_value(serde_json::json!({
            "profile": "t", "sources": [], "description": "", "workspace": "/", "home": "/",
            "cwd": "/", "read": [], "write": [], "hide": [], "links": [], "exec": [],
            "network": {"mode": "none", "connect": [], "bind": [], "udp": false},
            "limits": {}, "env": [["API_KEY", "from-pass"], ["TERM", "xterm"]],
            "secrets": ["API_KEY", "OTHER_KEY"], "argv": ["sh"], "program": "/bin/sh", "notes": []
        }))
        .unwrap();
        let given = vec![
            ("API_KEY".to_string(), "s3cret".to_string()),
            ("NOT_ASKED".to_string(), "x".to_string()),
        ];
        let env = environment(&policy, &given);
        assert_eq!(env, vec![("TERM", "xterm"), ("API_KEY", "s3cret")]);
        assert_eq!(
            environment(&policy, &[]),
            vec![("API_KEY", "from-pass"), ("TERM", "xterm")]
        );
    }

    #[test]
    fn only_modes_ports_and_host_share_the_hosts_network() {
        assert!(private_network(NetMode::None));
        assert!(private_network(NetMode::Proxy));
        assert!(!private_network(NetMode::Ports));
        assert!(!private_network(NetMode::Host));
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        assert_eq!(Outcome::Signaled(9).exit_code(), 137);
        assert_eq!(Outcome::TimedOut.exit_code(), 124);
    }
}
