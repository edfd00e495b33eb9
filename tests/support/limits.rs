//! Resource limits for child processes that simulate a full disk.

/// Sets the soft limit on the size of files this process writes (`None`:
/// back to the hard limit).
pub fn limit_file_size(limit: Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit");
    lim.rlim_cur = limit.map_or(lim.rlim_max, |l| l.min(lim.rlim_max));
    // SAFETY: setrlimit reads the struct; setting the soft limit at or
    // below the hard limit is always allowed.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) };
    assert_eq!(rc, 0, "setrlimit");
}
