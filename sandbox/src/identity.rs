//! Running the command as an unprivileged user of its own (a cordon host gives each of its
//! users a uid): [`check`] decides whether an identity may be used (pure), [`passwd_with`]
//! and [`group_with`] write the account lines that let it find its own name (pure), and
//! [`switch`] changes the sandbox's init to it, keeping the capabilities that the next step
//! needs to drop every capability for good.

use crate::caps::SECBIT_NO_SETUID_FIXUP;
use crate::error::{Refusal, Step};
use crate::policy::Identity;
use crate::sys;
use std::path::Path;

/// Who is asking: the ids of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The effective uid (0: cordon can switch to any identity).
    pub euid: u32,
    /// The real uid.
    pub uid: u32,
    /// The real gid.
    pub gid: u32,
}

impl Caller {
    /// The ids of this process.
    pub fn current() -> Caller {
        // SAFETY: these calls cannot fail.
        unsafe {
            Caller {
                euid: libc::geteuid(),
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        }
    }

    /// Whether this process can change its uid (it is root).
    pub fn is_root(self) -> bool {
        self.euid == 0
    }
}

/// Whether `id` may run a command for `caller`. Root is never an identity (the point of one
/// is to run without root's files and powers); an unprivileged caller can only be itself.
pub fn check(id: &Identity, caller: Caller) -> Result<(), Refusal> {
    if id.uid == 0 || id.gid == 0 {
        return Err(Refusal::new(
            Step::Identity,
            format!(
                "the identity \"{}\" has uid {} and gid {}; a sandbox never runs as uid or gid 0",
                id.name, id.uid, id.gid
            ),
        )
        .hint("give each user an unprivileged uid and gid of their own (--uid, --gid)"));
    }
    if !valid_name(&id.name) {
        return Err(Refusal::new(
            Step::Identity,
            format!(
                "the user name \"{}\" cannot be written to /etc/passwd",
                id.name.escape_debug()
            ),
        )
        .hint("use 1 to 32 letters, digits, '_', '-' or '.', not starting with '-' or '.'"));
    }
    if !caller.is_root() && (id.uid != caller.uid || id.gid != caller.gid) {
        return Err(Refusal::new(
            Step::Identity,
            format!(
                "cordon runs as uid {} gid {} and was asked to run the command as uid {} gid {}",
                caller.uid, caller.gid, id.uid, id.gid
            ),
        )
        .hint(
            "switching to another uid needs root; an unprivileged cordon runs sandboxes as itself",
        ));
    }
    Ok(())
}

/// Whether the kernel must change ids to run as `id`: only as root (an unprivileged caller
/// can only use its own ids, which it already has).
pub fn needs_switch(caller: Caller) -> bool {
    caller.is_root()
}

/// What a name in /etc/passwd may look like: no separator, no newline, nothing a shell or a
/// tool would take for an option.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// Whether `home` can be written as a field of /etc/passwd.
pub fn valid_home(home: &Path) -> bool {
    let s = home.as_os_str().as_encoded_bytes();
    !s.contains(&b':') && !s.contains(&b'\n')
}

/// `host` (an /etc/passwd) with the line for `id` added, so that `id -un`, `whoami` and
/// `os.userInfo()` find the name. Lines with the same name or uid are left out: the first
/// match wins in lookups, and it must be this one.
pub fn passwd_with(host: &str, id: &Identity, home: &Path) -> String {
    let line = format!(
        "{0}:x:{1}:{2}:cordon user {0}:{3}:/bin/sh",
        id.name,
        id.uid,
        id.gid,
        home.display()
    );
    with_line(host, &id.name, id.uid, &line)
}

/// `host` (an /etc/group) with the identity's own group added (`NAME:x:GID:`). Lines with
/// the same name or gid are left out, as in [`passwd_with`].
pub fn group_with(host: &str, id: &Identity) -> String {
    let line = format!("{}:x:{}:", id.name, id.gid);
    with_line(host, &id.name, id.gid, &line)
}

fn with_line(host: &str, name: &str, number: u32, line: &str) -> String {
    let number = number.to_string();
    let mut out = String::with_capacity(host.len() + line.len() + 1);
    for l in host.lines() {
        let mut fields = l.split(':');
        let (n, id) = (fields.next(), fields.nth(1));
        if n == Some(name) || id == Some(number.as_str()) {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    out
}

/// Changes this process (the sandbox's init, root so far) to `uid` and `gid`, with `gid`
/// as its only group, and reads the ids back. Capabilities survive the change
/// (SECBIT_NO_SETUID_FIXUP) so that [`crate::caps::drop_all`], which needs CAP_SETPCAP,
/// can still run next and empty every set.
pub fn switch(uid: u32, gid: u32) -> Result<(), Refusal> {
    let fail = |what: &'static str| {
        move |e| {
            Refusal::os(
                Step::Identity,
                format!("{what} (switching to uid {uid} gid {gid})"),
                e,
            )
        }
    };
    let bits = sys::prctl(libc::PR_GET_SECUREBITS, 0).map_err(fail("reading the securebits"))?;
    // Without this, leaving uid 0 would empty the permitted set, CAP_SETPCAP with it.
    sys::prctl(
        libc::PR_SET_SECUREBITS,
        bits as libc::c_ulong | SECBIT_NO_SETUID_FIXUP as libc::c_ulong,
    )
    .map_err(fail("keeping capabilities across the uid change"))?;
    let groups = [gid];
    // SAFETY: a one-element array and its length.
    sys::check(unsafe { libc::setgroups(1, groups.as_ptr()) })
        .map_err(fail("setting the supplementary groups"))?;
    // SAFETY: plain integers.
    sys::check(unsafe { libc::setresgid(gid, gid, gid) }).map_err(fail("setresgid"))?;
    // SAFETY: plain integers.
    sys::check(unsafe { libc::setresuid(uid, uid, uid) }).map_err(fail("setresuid"))?;
    verify(uid, gid)
}

/// The ids as the kernel now has them: anything but `uid`/`gid` everywhere is a refusal.
fn verify(uid: u32, gid: u32) -> Result<(), Refusal> {
    let (mut r, mut e, mut s) = (u32::MAX, u32::MAX, u32::MAX);
    // SAFETY: three valid out-pointers.
    sys::check(unsafe { libc::getresuid(&mut r, &mut e, &mut s) })
        .map_err(|err| Refusal::os(Step::Identity, "getresuid", err))?;
    let uids = [r, e, s];
    // SAFETY: as above.
    sys::check(unsafe { libc::getresgid(&mut r, &mut e, &mut s) })
        .map_err(|err| Refusal::os(Step::Identity, "getresgid", err))?;
    let gids = [r, e, s];
    let mut groups = [u32::MAX; 2];
    // SAFETY: room for two groups; more than that fails with EINVAL, which is a refusal too.
    let n = sys::check(unsafe { libc::getgroups(2, groups.as_mut_ptr()) })
        .map_err(|err| Refusal::os(Step::Identity, "reading the supplementary groups back", err))?;
    let groups = &groups[..n as usize];
    if uids != [uid; 3] || gids != [gid; 3] || groups != [gid] {
        return Err(Refusal::new(
            Step::Identity,
            format!("after switching to uid {uid} gid {gid} the kernel reports uids {uids:?}, gids {gids:?}, groups {groups:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            uid: 2_000_000_123,
            gid: 2_000_000_123,
            name: "alice".into(),
        }
    }

    const ROOT: Caller = Caller {
        euid: 0,
        uid: 0,
        gid: 0,
    };

    #[test]
    fn root_is_never_an_identity() {
        for (uid, gid) in [(0, 5), (5, 0), (0, 0)] {
            let e = check(
                &Identity {
                    uid,
                    gid,
                    name: "x".into(),
                },
                ROOT,
            )
            .unwrap_err();
            assert_eq!(e.step, Step::Identity, "{e}");
            assert!(e.reason.contains("never runs as uid or gid 0"), "{e}");
        }
        assert!(check(&alice(), ROOT).is_ok());
    }

    #[test]
    fn an_unprivileged_caller_can_only_be_itself() {
        let me = Caller {
            euid: 1000,
            uid: 1000,
            gid: 1000,
        };
        let e = check(&alice(), me).unwrap_err();
        assert_eq!(e.step, Step::Identity);
        assert!(
            e.hint
                .as_deref()
                .unwrap_or("")
                .contains("switching to another uid needs root"),
            "{e}"
        );
        let itself = Identity {
            uid: 1000,
            gid: 1000,
            name: "dev".into(),
        };
        assert!(check(&itself, me).is_ok());
        assert!(!needs_switch(me));
        assert!(needs_switch(ROOT));
    }

    #[test]
    fn a_name_that_would_break_the_passwd_file_is_refused() {
        for name in [
            "",
            "a:b",
            "a\nroot:x:0:0::/:/bin/sh",
            "-rf",
            ".hidden",
            "x y",
            &"n".repeat(33),
        ] {
            let e = check(
                &Identity {
                    name: name.into(),
                    ..alice()
                },
                ROOT,
            )
            .unwrap_err();
            assert!(
                e.reason.contains("cannot be written to /etc/passwd"),
                "{name:?}: {e}"
            );
        }
        assert!(check(
            &Identity {
                name: "dev_1.x-y".into(),
                ..alice()
            },
            ROOT
        )
        .is_ok());
    }

    #[test]
    fn the_passwd_copy_gains_one_line_for_the_identity() {
        let host = "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/:/usr/sbin/nologin\n";
        let out = passwd_with(host, &alice(), Path::new("/var/lib/cordon/homes/alice"));
        assert_eq!(out, format!("{host}alice:x:2000000123:2000000123:cordon user alice:/var/lib/cordon/homes/alice:/bin/sh\n"));
        assert_eq!(
            group_with("root:x:0:\n", &alice()),
            "root:x:0:\nalice:x:2000000123:\n"
        );
    }

    #[test]
    fn a_host_line_with_the_same_name_or_id_gives_way_to_the_identitys() {
        let host = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\nold:x:2000000123:9::/:/bin/sh\n";
        let out = passwd_with(host, &alice(), Path::new("/h"));
        assert_eq!(out, "root:x:0:0:root:/root:/bin/bash\nalice:x:2000000123:2000000123:cordon user alice:/h:/bin/sh\n");
        assert_eq!(
            group_with(
                "alice:x:1000:\nstaff:x:2000000123:\nusers:x:100:\n",
                &alice()
            ),
            "users:x:100:\nalice:x:2000000123:\n"
        );
    }

    #[test]
    fn a_home_with_a_separator_cannot_go_into_passwd() {
        assert!(valid_home(Path::new("/var/lib/cordon/homes/alice")));
        assert!(!valid_home(Path::new("/h:/bin/sh")));
        assert!(!valid_home(Path::new("/h\nroot::0:0::/:/bin/sh")));
    }
}
