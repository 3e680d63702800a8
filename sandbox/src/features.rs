//! What this kernel and this process can enforce: Landlock ABI, seccomp, namespaces,
//! cgroups. Detected once, read-only; [`crate::policy`] and `cordon doctor` decide with it.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// The confinement features available here, as detected at startup.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Features {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// Landlock ABI version (0 when Landlock is absent or disabled).
    pub landlock_abi: u32,
    /// Seccomp filter mode is available.
    pub seccomp: bool,
    /// Running as uid 0 (namespaces need no user namespace; RLIMIT_NPROC does not bind).
    pub root: bool,
    /// Unprivileged user namespaces can be created (needed when not root).
    pub user_namespaces: bool,
    /// Where the pids and memory controllers live, if anywhere.
    pub cgroup: Option<CgroupLayout>,
    /// `vm.memfd_noexec` exists (Linux 6.3), so memfd execution can be closed per pid ns.
    pub memfd_noexec: bool,
}

/// How pids and memory limits can be applied.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup v2: one directory with pids.max and memory.max.
    V2 {
        /// The hierarchy's root, where cordon's groups are made.
        parent: PathBuf,
    },
    /// cgroup v1: separate pids and memory hierarchies.
    V1 {
        /// The pids hierarchy.
        pids: PathBuf,
        /// The memory hierarchy.
        memory: PathBuf,
        /// The freezer hierarchy, if mounted: a host freezes a sandbox there (v2 groups
        /// have `cgroup.freeze` of their own).
        freezer: Option<PathBuf>,
    },
}

impl Features {
    /// Probes the running kernel. Cheap: a few syscalls and file reads.
    pub fn detect() -> Features {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        Features {
            kernel: kernel_release(),
            landlock_abi: crate::landlock::abi_version(),
            seccomp: seccomp_available(),
            root,
            user_namespaces: user_namespaces_available(),
            cgroup: if root { cgroup_layout() } else { None },
            memfd_noexec: Path::new("/proc/sys/vm/memfd_noexec").exists(),
        }
    }
}

fn kernel_release() -> String {
    // SAFETY: uname fills a zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: release is NUL-terminated by the kernel.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn seccomp_available() -> bool {
    // PR_GET_SECCOMP answers on any kernel built with seccomp; the filter mode itself is
    // checked by the presence of the actions file.
    Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

fn user_namespaces_available() -> bool {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let clone_ok = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    let restricted =
        std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
            .map(|s| s.trim() == "1")
            .unwrap_or(false);
    max.unwrap_or(0) > 0 && clone_ok && !restricted
}

/// Finds a cgroup hierarchy where cordon (as root) can create child groups with pids and
/// memory limits: v2 if both controllers are enabled there, else v1.
fn cgroup_layout() -> Option<CgroupLayout> {
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let controllers =
            std::fs::read_to_string(Path::new(root).join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        if has("pids") && has("memory") {
            let subtree = std::fs::read_to_string(Path::new(root).join("cgroup.subtree_control"))
                .unwrap_or_default();
            let on = |c: &str| subtree.split_whitespace().any(|x| x == c);
            if (on("pids") && on("memory")) || root_is_writable(root) {
                return Some(CgroupLayout::V2 {
                    parent: PathBuf::from(root),
                });
            }
        }
    }
    let pids = PathBuf::from("/sys/fs/cgroup/pids");
    let memory = PathBuf::from("/sys/fs/cgroup/memory");
    if pids.join("cgroup.procs").exists() && memory.join("memory.limit_in_bytes").exists() {
        // The root group has no freezer.state; a mounted hierarchy has its tasks file.
        let freezer = PathBuf::from("/sys/fs/cgroup/freezer");
        let freezer = freezer.join("tasks").exists().then_some(freezer);
        return Some(CgroupLayout::V1 {
            pids,
            memory,
            freezer,
        });
    }
    None
}

fn root_is_writable(root: &str) -> bool {
    // SAFETY: access with a valid C string.
    let c = std::ffi::CString::new(format!("{root}/cgroup.subtree_control")).unwrap_or_default();
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}
