//! The host process itself: what it may leave open to others, and how many descriptors it may
//! hold.

/// Lets the host use every file descriptor its hard limit allows (connections, sessions'
/// terminals and recordings); the soft limit is often far lower.
pub fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// What the host writes (its database, keys, recordings) is its own: umask 077. Sessions get
/// the usual 022 back when they start.
pub fn private_files() {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
}

/// The host holds keys: no core dumps, no ptrace by other processes of the same user.
pub fn not_dumpable() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}
