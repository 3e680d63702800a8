//! Bounds on what strangers can make the host write: per key (an address, a user), the
//! first [`BURST`] events of a [`WINDOW`] are written, the rest only counted, and the count
//! is written once when the window ends. A flood of refused logins then costs the disk a
//! few lines a minute per source, not a synced line per attempt.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events written per key and window before the rest are only counted.
pub const BURST: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at most; past this, the oldest windows are closed early (their counts are
/// still reported), so that many sources cannot grow the table without bound.
const MAX_KEYS: usize = 10_000;

struct Window {
    start: Instant,
    seen: u32,
}

/// A window that ended with events it did not write.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub key: String,
    pub suppressed: u32,
}

#[derive(Default)]
pub struct Throttle {
    windows: Mutex<(HashMap<String, Window>, Vec<Summary>)>,
}

impl Throttle {
    /// Whether the event under `key` should be written now.
    pub fn admit(&self, key: &str) -> bool {
        let mut g = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (windows, done) = &mut *g;
        let now = Instant::now();
        if let Some(w) = windows.get(key) {
            if now.duration_since(w.start) >= WINDOW {
                close(windows, done, key);
            }
        }
        if !windows.contains_key(key) && windows.len() >= MAX_KEYS {
            let oldest: Vec<String> = {
                let mut v: Vec<(&String, &Window)> = windows.iter().collect();
                v.sort_by_key(|(_, w)| w.start);
                v.into_iter()
                    .take(MAX_KEYS / 10)
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            for k in oldest {
                close(windows, done, &k);
            }
        }
        let w = windows.entry(key.to_string()).or_insert(Window {
            start: now,
            seen: 0,
        });
        w.seen = w.seen.saturating_add(1);
        w.seen <= BURST
    }

    /// Summaries of windows that have ended with suppressed events (taken: each is returned
    /// once).
    pub fn expired(&self) -> Vec<Summary> {
        let mut g = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (windows, done) = &mut *g;
        let ended: Vec<String> = windows
            .iter()
            .filter(|(_, w)| w.start.elapsed() >= WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        for k in ended {
            close(windows, done, &k);
        }
        std::mem::take(done)
    }
}

fn close(windows: &mut HashMap<String, Window>, done: &mut Vec<Summary>, key: &str) {
    if let Some(w) = windows.remove(key) {
        if w.seen > BURST {
            done.push(Summary {
                key: key.to_string(),
                suppressed: w.seen - BURST,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_written_as_a_burst_and_one_count() {
        let t = Throttle::default();
        let admitted = (0..1000).filter(|_| t.admit("addr:10.0.0.1")).count();
        assert_eq!(admitted, BURST as usize);
        assert!(
            t.admit("addr:10.0.0.2"),
            "another source has its own window"
        );
        // The window has not ended: nothing to report yet.
        assert!(t.expired().is_empty());
        {
            let mut g = t.windows.lock().unwrap();
            for w in g.0.values_mut() {
                w.start -= WINDOW;
            }
        }
        assert_eq!(
            t.expired(),
            vec![Summary {
                key: "addr:10.0.0.1".into(),
                suppressed: 1000 - BURST
            }]
        );
        assert!(t.admit("addr:10.0.0.1"), "a new window starts afresh");
    }

    #[test]
    fn many_sources_do_not_grow_the_table_without_bound() {
        let t = Throttle::default();
        for i in 0..(MAX_KEYS * 2) {
            t.admit(&format!("addr:{i}"));
        }
        assert!(t.windows.lock().unwrap().0.len() <= MAX_KEYS);
    }
}
