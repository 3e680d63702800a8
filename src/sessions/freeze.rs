//! Freezing a session: every process of its sandbox stopped at once by the cgroup freezer
//! (the host's lockdown), and thawed again. The sandbox puts its init, and so every process
//! of the session, in a group of its own (`sandbox::limits`): on cgroup v2 that group has
//! `cgroup.freeze`; on v1 the sandbox makes one in the freezer hierarchy, which has
//! `freezer.state`. Which one a session has is read from `/proc/<init>/cgroup` (pure:
//! [`group_of`]); a session with neither cannot be frozen, and says why.
//!
//! A frozen process is not signalled (unlike SIGSTOP, its parent sees nothing and it cannot
//! tell): it simply stops being scheduled until thawed. Its terminal output stops with it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A session's freezable cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Group {
    /// A v2 group: `cgroup.freeze` ("1" frozen, "0" thawed), `cgroup.events` says `frozen 1`.
    V2(PathBuf),
    /// A v1 freezer group: `freezer.state` (FROZEN, THAWED; FREEZING on the way).
    V1(PathBuf),
}

/// Why a session could not be frozen or thawed.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("the session's processes are gone")]
    Gone,
    #[error("the session's sandbox has no cgroup that can be frozen ({0}); end its sessions instead (`cordon lockdown on --end`)")]
    NoGroup(String),
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the session's cgroup {} did not reach the {state} state within {seconds} s", .path.display())]
    Timeout {
        path: PathBuf,
        state: &'static str,
        seconds: u64,
    },
}

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup` on a v2-only host,
/// `/sys/fs/cgroup/unified` on a hybrid one.
fn v2_root() -> Option<&'static Path> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.controllers").exists())
}

/// The freezable group named in a `/proc/<pid>/cgroup` text, if any: a v2 group the sandbox
/// made (`.../cordon/sandbox-*`; any other, the root or the host's own service group, holds
/// the host's processes too), else a v1 freezer group the sandbox made. `v2_root` and
/// `v1_freezer` are where the hierarchies are mounted. Pure.
pub fn group_of(
    proc_cgroup: &str,
    v2_root: Option<&Path>,
    v1_freezer: Option<&Path>,
) -> Result<Group, String> {
    let mut v1 = None;
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        let mut components = path.rsplit('/');
        let sandboxs_own = components.next().is_some_and(|c| c.starts_with("sandbox-"))
            && components.next() == Some("cordon");
        if !sandboxs_own || path.split('/').any(|c| c == "..") {
            continue;
        }
        if controllers.is_empty() {
            v2 = v2_root.map(|r| r.join(path));
        } else if controllers.split(',').any(|c| c == "freezer") {
            v1 = v1_freezer.map(|r| r.join(path));
        }
    }
    match (v2, v1) {
        (Some(p), _) => Ok(Group::V2(p)),
        (None, Some(p)) => Ok(Group::V1(p)),
        (None, None) => {
            Err("it is in no cgroup v2 group nor cgroup v1 freezer group its sandbox made".into())
        }
    }
}

impl Group {
    /// The group of process `pid` (the sandbox's init), checked to offer freezing.
    pub fn of_process(pid: i32) -> Result<Group, FreezeError> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(|_| FreezeError::Gone)?;
        let freezer = Path::new("/sys/fs/cgroup/freezer");
        let v1 = freezer.join("tasks").exists().then_some(freezer);
        let group = group_of(&text, v2_root(), v1).map_err(FreezeError::NoGroup)?;
        let file = group.control_file();
        if !file.exists() {
            return Err(FreezeError::NoGroup(format!(
                "{} does not exist (cgroup v2 needs Linux 5.2)",
                file.display()
            )));
        }
        Ok(group)
    }

    fn control_file(&self) -> PathBuf {
        match self {
            Group::V2(p) => p.join("cgroup.freeze"),
            Group::V1(p) => p.join("freezer.state"),
        }
    }

    /// Whether every process of the group is frozen now.
    pub fn is_frozen(&self) -> bool {
        match self {
            Group::V2(p) => std::fs::read_to_string(p.join("cgroup.events"))
                .is_ok_and(|t| t.lines().any(|l| l.trim() == "frozen 1")),
            Group::V1(p) => {
                std::fs::read_to_string(p.join("freezer.state")).is_ok_and(|t| t.trim() == "FROZEN")
            }
        }
    }

    /// Freezes (`frozen`) or thaws the group, and waits (a few seconds at most) until the
    /// kernel says it is done.
    pub fn set(&self, frozen: bool) -> Result<(), FreezeError> {
        let value = match (self, frozen) {
            (Group::V2(_), true) => "1",
            (Group::V2(_), false) => "0",
            (Group::V1(_), true) => "FROZEN",
            (Group::V1(_), false) => "THAWED",
        };
        let file = self.control_file();
        std::fs::write(&file, value).map_err(|source| FreezeError::Io {
            what: "writing",
            path: file.clone(),
            source,
        })?;
        let wait = Duration::from_secs(5);
        let start = Instant::now();
        while self.is_frozen() != frozen {
            if start.elapsed() > wait {
                return Err(FreezeError::Timeout {
                    path: file,
                    state: if frozen { "frozen" } else { "thawed" },
                    seconds: wait.as_secs(),
                });
            }
            // v1 may stay FREEZING while a task is in an uninterruptible wait: ask again.
            if frozen && matches!(self, Group::V1(_)) {
                let _ = std::fs::write(&file, value);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// Whether sessions started now could be frozen: the layout the sandbox would use offers a
/// freezer (v2 groups always do; v1 needs the freezer hierarchy mounted). The reason when not.
pub fn supported() -> Result<(), String> {
    match sandbox::features::Features::detect().cgroup {
        Some(sandbox::features::CgroupLayout::V2 { .. }) => Ok(()),
        Some(sandbox::features::CgroupLayout::V1 { freezer: Some(_), .. }) => Ok(()),
        Some(sandbox::features::CgroupLayout::V1 { freezer: None, .. }) => Err(
            "this host has cgroup v1 without the freezer hierarchy (/sys/fs/cgroup/freezer), so sessions cannot be frozen".into(),
        ),
        None => Err("sessions here run without a cgroup (the host is not root, or has no usable cgroup hierarchy), so they cannot be frozen".into()),
    }
}

impl super::Session {
    /// Whether the session is frozen.
    pub fn frozen(&self) -> bool {
        self.frozen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Freezes every process of the session, and notes it on its recording (a marker);
    /// whether it froze it now (false: it was frozen already).
    pub fn freeze(&self, why: &str) -> Result<bool, FreezeError> {
        let mut frozen = self.frozen.lock().unwrap_or_else(|e| e.into_inner());
        if frozen.is_some() {
            return Ok(false);
        }
        // The sandbox's init (the only child of `cordon sandbox` that is in the group).
        let children =
            std::fs::read_to_string(format!("/proc/{}/task/{}/children", self.pid, self.pid))
                .map_err(|_| FreezeError::Gone)?;
        let init = children
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
            .find_map(|pid| Group::of_process(pid).ok().map(|g| (pid, g)));
        let group = match init {
            Some((_, g)) => g,
            None => {
                let first = children
                    .split_whitespace()
                    .find_map(|c| c.parse::<i32>().ok())
                    .ok_or(FreezeError::Gone)?;
                return Err(Group::of_process(first).err().unwrap_or(FreezeError::Gone));
            }
        };
        // The marker first: written while the session's output is still flowing.
        self.mark(&format!("frozen: {why}"));
        if let Err(e) = group.set(true) {
            // Half frozen is worse than either: whoever acts next (ending it) needs it running.
            let _ = group.set(false);
            return Err(e);
        }
        *frozen = Some(group);
        Ok(true)
    }

    /// Thaws a frozen session (and notes it on its recording); whether it was frozen.
    pub fn thaw(&self, why: &str) -> Result<bool, FreezeError> {
        let mut frozen = self.frozen.lock().unwrap_or_else(|e| e.into_inner());
        let Some(group) = frozen.as_ref() else {
            return Ok(false);
        };
        group.set(false)?;
        *frozen = None;
        drop(frozen);
        self.mark(&format!("thawed: {why}"));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_session_is_frozen_through_its_freezer_group() {
        let text =
            "9:name=systemd:/\n6:freezer:/cordon/sandbox-1-2\n4:memory:/cordon/sandbox-1-2\n0::/\n";
        assert_eq!(
            group_of(
                text,
                Some(Path::new("/u")),
                Some(Path::new("/sys/fs/cgroup/freezer"))
            ),
            Ok(Group::V1(PathBuf::from(
                "/sys/fs/cgroup/freezer/cordon/sandbox-1-2"
            )))
        );
    }

    #[test]
    fn a_v2_session_is_frozen_through_its_own_group() {
        assert_eq!(
            group_of(
                "0::/cordon/sandbox-1-2\n",
                Some(Path::new("/sys/fs/cgroup")),
                None
            ),
            Ok(Group::V2(PathBuf::from(
                "/sys/fs/cgroup/cordon/sandbox-1-2"
            )))
        );
    }

    #[test]
    fn a_process_in_root_groups_only_cannot_be_frozen_with_the_host() {
        let text = "6:freezer:/\n0::/\n";
        assert!(group_of(text, Some(Path::new("/u")), Some(Path::new("/f"))).is_err());
        assert!(group_of("0::/cordon/../sandbox-1\n", Some(Path::new("/u")), None).is_err());
        let host_service = "0::/system.slice/cordon.service\n";
        assert!(group_of(host_service, Some(Path::new("/sys/fs/cgroup")), None).is_err());
    }
}
