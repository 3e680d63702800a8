//! Resource limits: rlimits per process, and a pids + memory cgroup for the sandbox as a
//! whole. RLIMIT_NPROC does not bind uid 0, so as root the cgroup is the only process
//! limit: without one, a profile with process or memory limits is refused as root.

use crate::error::{Refusal, Step};
use crate::features::CgroupLayout;
use crate::profile::Limits;
use crate::sys;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// One rlimit to set, with its name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// The profile key it comes from.
    pub name: &'static str,
    /// The RLIMIT_* resource.
    pub resource: libc::__rlimit_resource_t,
    /// Soft and hard limit.
    pub value: u64,
}

/// The rlimits for `limits`. Without a cgroup, processes and memory fall back to
/// RLIMIT_NPROC (per uid: every process of the uid the command runs as counts, the
/// caller's other processes, or all the sessions of an identity) and RLIMIT_AS.
pub fn rlimits(limits: &Limits, have_cgroup: bool) -> Vec<Rlimit> {
    let mut out = vec![Rlimit {
        name: "core",
        resource: libc::RLIMIT_CORE,
        value: 0,
    }];
    let mut add = |name, resource: libc::__rlimit_resource_t, v: Option<u64>| {
        if let Some(value) = v {
            out.push(Rlimit {
                name,
                resource,
                value,
            });
        }
    };
    add("open_files", libc::RLIMIT_NOFILE, limits.open_files);
    add("file_size", libc::RLIMIT_FSIZE, limits.file_size);
    add("cpu_seconds", libc::RLIMIT_CPU, limits.cpu_seconds);
    if !have_cgroup {
        add("processes", libc::RLIMIT_NPROC, limits.processes);
        add("memory", libc::RLIMIT_AS, limits.memory);
    }
    out
}

/// Sets the rlimits on this process (inherited by every child).
pub fn apply_rlimits(list: &[Rlimit]) -> Result<(), Refusal> {
    for r in list {
        let lim = libc::rlimit {
            rlim_cur: r.value,
            rlim_max: r.value,
        };
        // SAFETY: a valid rlimit struct.
        sys::check(unsafe { libc::setrlimit(r.resource, &lim) }).map_err(|e| {
            Refusal::os(
                Step::Limits,
                format!("setting the {} limit to {}", r.name, r.value),
                e,
            )
        })?;
    }
    Ok(())
}

/// A cgroup made for one sandbox; removed on drop.
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    /// The join file of each directory, opened before the fork so that the sandbox's init
    /// (single-threaded) can join by writing "0" even after it has left the host's mounts.
    procs: Vec<OwnedFd>,
}

impl Cgroup {
    /// Creates the cgroup with the pids and memory limits of `limits`.
    pub fn create(layout: &CgroupLayout, limits: &Limits, name: &str) -> Result<Cgroup, Refusal> {
        let mut cg = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
        };
        let mk = |cg: &mut Cgroup, parent: &Path| -> Result<PathBuf, Refusal> {
            let base = parent.join("cordon");
            let _ = std::fs::create_dir(&base);
            sweep(&base);
            let dir = base.join(name);
            std::fs::create_dir(&dir)
                .map_err(|e| Refusal::os(Step::Cgroup, format!("creating {}", dir.display()), e))?;
            cg.dirs.push(dir.clone());
            Ok(dir)
        };
        let set = |dir: &Path, file: &str, value: String| {
            sys::write_file(&dir.join(file), &value).map_err(|e| {
                Refusal::os(
                    Step::Cgroup,
                    format!("writing {value} to {}", dir.join(file).display()),
                    e,
                )
            })
        };
        match layout {
            CgroupLayout::V2 { parent } => {
                // Controllers must be enabled on the way down; harmless if they already are.
                let _ = sys::write_file(&parent.join("cgroup.subtree_control"), "+pids +memory");
                let _ = std::fs::create_dir(parent.join("cordon"));
                let _ = sys::write_file(
                    &parent.join("cordon/cgroup.subtree_control"),
                    "+pids +memory",
                );
                let dir = mk(&mut cg, parent)?;
                if let Some(p) = limits.processes {
                    set(&dir, "pids.max", p.to_string())?;
                }
                if let Some(m) = limits.memory {
                    set(&dir, "memory.max", m.to_string())?;
                    set(&dir, "memory.swap.max", "0".into()).ok();
                }
            }
            CgroupLayout::V1 {
                pids,
                memory,
                freezer,
            } => {
                let p = mk(&mut cg, pids)?;
                if let Some(n) = limits.processes {
                    set(&p, "pids.max", n.to_string())?;
                }
                let m = mk(&mut cg, memory)?;
                if let Some(bytes) = limits.memory {
                    set(&m, "memory.limit_in_bytes", bytes.to_string())?;
                    // With swap accounting, cap memory+swap too, or the limit leaks into swap.
                    if m.join("memory.memsw.limit_in_bytes").exists() {
                        set(&m, "memory.memsw.limit_in_bytes", bytes.to_string())?;
                    }
                }
                // A group of its own in the freezer hierarchy, so that a host can freeze the
                // sandbox as a whole (cordon's lockdown); without one, freezing is refused.
                if let Some(f) = freezer {
                    let _ = mk(&mut cg, f);
                }
            }
        }
        // On v1, writing "0" (this thread) to `tasks` moves a single-threaded process without
        // the global threadgroup lock that `cgroup.procs` takes, which costs an RCU grace
        // period (about 15 ms) on every start.
        let join_file = if matches!(layout, CgroupLayout::V1 { .. }) {
            "tasks"
        } else {
            "cgroup.procs"
        };
        for dir in &cg.dirs {
            let f = File::options()
                .write(true)
                .open(dir.join(join_file))
                .map_err(|e| {
                    Refusal::os(
                        Step::Cgroup,
                        format!("opening {}/{join_file}", dir.display()),
                        e,
                    )
                })?;
            cg.procs.push(f.into());
        }
        Ok(cg)
    }

    /// The fds through which the sandbox's init joins the cgroup.
    pub fn join_fds(&self) -> Vec<i32> {
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }
}

/// Removes groups left by sandboxes that were killed before they could clean up: empty
/// groups (rmdir refuses populated ones) older than a minute, a few per start.
fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let mut removed = 0;
    for e in entries.flatten() {
        if removed >= 16 {
            break;
        }
        let stale = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("sandbox-"))
            && e.metadata()
                .and_then(|m| m.modified())
                .map(|t| t < minute_ago)
                .unwrap_or(false);
        if stale && std::fs::remove_dir(e.path()).is_ok() {
            removed += 1;
        }
    }
}

/// Joins the cgroup through fds opened before the fork (async-signal-safe: write only).
pub fn join(fds: &[i32]) -> Result<(), Refusal> {
    for &fd in fds {
        // SAFETY: writing two bytes from a static buffer.
        let n = unsafe { libc::write(fd, b"0\n".as_ptr() as *const libc::c_void, 2) };
        if n < 0 {
            return Err(Refusal::os(
                Step::Cgroup,
                "joining the sandbox's cgroup",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.procs.clear();
        for dir in &self.dirs {
            // The kernel frees the group a moment after its last process is reaped.
            for _ in 0..200 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_cgroup_processes_and_memory_fall_back_to_rlimits() {
        let l = Limits {
            processes: Some(10),
            memory: Some(1 << 30),
            open_files: Some(64),
            ..Default::default()
        };
        let with: Vec<&str> = rlimits(&l, true).iter().map(|r| r.name).collect();
        let without: Vec<&str> = rlimits(&l, false).iter().map(|r| r.name).collect();
        assert_eq!(with, vec!["core", "open_files"]);
        assert_eq!(without, vec!["core", "open_files", "processes", "memory"]);
    }
}
