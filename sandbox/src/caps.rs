//! Capabilities: every set emptied (bounding, ambient, inheritable, permitted, effective),
//! the securebits locked so that uid 0 gains nothing back on execve, and the result read
//! back and checked.

use crate::error::{Refusal, Step};
use crate::sys;

const SECBIT_NOROOT: u64 = 1 << 0;
const SECBIT_NOROOT_LOCKED: u64 = 1 << 1;
/// Capabilities stay when the uids change away from 0 (see [`crate::identity::switch`]).
pub(crate) const SECBIT_NO_SETUID_FIXUP: u64 = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: u64 = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: u64 = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: u64 = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: u64 = 1 << 7;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const CAP_V3: u32 = 0x2008_0522;

fn last_cap() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Drops every capability for good. Must run while CAP_SETPCAP is still held (it is, as
/// root, inside the sandbox's user namespace, or after [`crate::identity::switch`], which
/// sets SECBIT_NO_SETUID_FIXUP so that the uid change keeps it; the bits below include it,
/// so setting them changes no bit that is already set).
pub fn drop_all() -> Result<(), Refusal> {
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong)
        .map_err(|e| Refusal::os(Step::Capabilities, "locking the securebits", e))?;
    for cap in 0..=last_cap() {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(_) => {}
            // A capability newer than this kernel's list.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => {
                return Err(Refusal::os(
                    Step::Capabilities,
                    format!("dropping capability {cap} from the bounding set"),
                    e,
                ))
            }
        }
    }
    // SAFETY: prctl with integer arguments.
    sys::check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
    .map_err(|e| Refusal::os(Step::Capabilities, "clearing the ambient set", e))?;
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: header and two data structs, as capset v3 expects.
    sys::check(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })
    .map_err(|e| {
        Refusal::os(
            Step::Capabilities,
            "clearing the permitted, effective and inheritable sets",
            e,
        )
    })?;
    verify()
}

/// Reads the sets back: any capability left is a refusal.
fn verify() -> Result<(), Refusal> {
    let mut header = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: as above, capget fills two structs.
    sys::check(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })
    .map_err(|e| Refusal::os(Step::Capabilities, "reading the capability sets back", e))?;
    if data
        .iter()
        .any(|d| d.effective | d.permitted | d.inheritable != 0)
    {
        return Err(Refusal::new(
            Step::Capabilities,
            "capabilities remain after clearing them",
        ));
    }
    // One read of the status file instead of a prctl per capability.
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .map_err(|e| Refusal::os(Step::Capabilities, "reading the capability sets back", e))?;
    for set in ["CapBnd:", "CapAmb:"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(set))
            .map(str::trim);
        if value.map(|v| v.trim_start_matches('0').is_empty()) != Some(true) {
            return Err(Refusal::new(
                Step::Capabilities,
                format!(
                    "{set} {} remains after clearing it",
                    value.unwrap_or("(unreadable)")
                ),
            ));
        }
    }
    Ok(())
}
