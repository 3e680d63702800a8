//! OS accounts: the name of a uid, for the host's own shell (`local:<account>` in the audit
//! log) and for `cordon tui`'s peer-credential logins.

/// The OS account name of `uid`.
pub fn name_of(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: getpwuid_r writes into `pw` and `buf`, which outlive the call; `found` says
    // whether an entry was found.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) != 0
            || found.is_null()
            || pw.pw_name.is_null()
        {
            return None;
        }
        std::ffi::CStr::from_ptr(pw.pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

/// The name of the account running this process (`uid<N>` when it has none).
pub fn current() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    name_of(uid).unwrap_or_else(|| format!("uid{uid}"))
}
