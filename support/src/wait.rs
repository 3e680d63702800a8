//! Waiting for what nobody announces: a condition checked again and again until it holds.

use std::time::{Duration, Instant};

/// How long anything may take to happen before a wait fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often a condition is checked again.
const EVERY: Duration = Duration::from_millis(100);

/// Checks `check` until it gives a value and returns that; after [`PATIENCE`] fails with the
/// reason `check` gave last.
pub fn poll<T>(mut check: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(why) if start.elapsed() > PATIENCE => panic!("{why}"),
            Err(_) => std::thread::sleep(EVERY),
        }
    }
}

/// Waits until `f` holds; fails naming `what` after [`PATIENCE`].
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    poll(|| {
        if f() {
            Ok(())
        } else {
            Err(format!("timed out waiting for {what}"))
        }
    })
}
