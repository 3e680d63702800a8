//! The evaluator: sliding windows per rule and key, pure (the time is an argument), bounded.
//!
//! - Counts (`count`): the times of the last `threshold` events per key; the rule fires when
//!   `threshold` of them fall within the window, then stays quiet for that key for one window
//!   (a flood makes one alert, not one per event).
//! - Rates (`rate`): answers and errors in ten buckets spanning the window; fires when at
//!   least `min_requests` answers were counted and the errors exceed `threshold` percent.
//! - Levels (`level`): fires when a value goes above the threshold, again only after it went
//!   back below.
//!
//! At most [`MAX_KEYS`] keys are tracked in all: a new key past that evicts the keys seen
//! longest ago, so a flood of distinct addresses costs bounded memory (and each key's
//! history at most `threshold` instants, itself bounded by [`MAX_HISTORY`]).

use super::Rule;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys tracked at most, every rule together.
pub const MAX_KEYS: usize = 10_000;
/// Instants kept per key at most, whatever the threshold says.
pub const MAX_HISTORY: usize = 1_000;
/// Buckets a rate's window is cut into.
const BUCKETS: u32 = 10;

#[derive(Default)]
struct Track {
    times: VecDeque<Instant>,
    quiet_until: Option<Instant>,
    last: Option<Instant>,
}

#[derive(Default)]
struct RateTrack {
    /// (bucket start, answers, errors), oldest first.
    buckets: VecDeque<(Instant, u64, u64)>,
    quiet_until: Option<Instant>,
}

/// A rule that fired: for which key, with how many events (or what percent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub rule: Rule,
    pub key: String,
    pub count: u64,
}

#[derive(Default)]
pub struct Evaluator {
    counts: HashMap<(Rule, String), Track>,
    rates: HashMap<Rule, RateTrack>,
    above: HashMap<(Rule, String), bool>,
}

impl Evaluator {
    /// One event of `rule` for `key` at `now`.
    pub fn count(
        &mut self,
        rule: Rule,
        key: &str,
        threshold: u64,
        window: Duration,
        now: Instant,
    ) -> Option<Fired> {
        let id = (rule, key.to_string());
        if !self.counts.contains_key(&id) && self.tracked() >= MAX_KEYS {
            self.evict(now);
        }
        let keep = (threshold as usize).clamp(1, MAX_HISTORY);
        let t = self.counts.entry(id).or_default();
        t.last = Some(now);
        t.times.push_back(now);
        while t.times.len() > keep {
            t.times.pop_front();
        }
        while t
            .times
            .front()
            .is_some_and(|&first| now.saturating_duration_since(first) >= window)
        {
            t.times.pop_front();
        }
        if t.quiet_until.is_some_and(|q| now < q) {
            return None;
        }
        if t.times.len() as u64 >= threshold.min(MAX_HISTORY as u64) {
            t.quiet_until = Some(now + window);
            let count = t.times.len() as u64;
            t.times.clear();
            return Some(Fired {
                rule,
                key: key.to_string(),
                count,
            });
        }
        None
    }

    /// One answer (an error or not) of `rule` at `now`; fires past `threshold` percent errors
    /// once `min_requests` answers are in the window.
    pub fn rate(
        &mut self,
        rule: Rule,
        error: bool,
        threshold: u64,
        min_requests: u64,
        window: Duration,
        now: Instant,
    ) -> Option<Fired> {
        let t = self.rates.entry(rule).or_default();
        let width = (window / BUCKETS).max(Duration::from_millis(1));
        match t.buckets.back_mut() {
            Some((start, n, e)) if now.saturating_duration_since(*start) < width => {
                *n += 1;
                *e += u64::from(error);
            }
            _ => t.buckets.push_back((now, 1, u64::from(error))),
        }
        while t
            .buckets
            .front()
            .is_some_and(|(start, _, _)| now.saturating_duration_since(*start) >= window)
        {
            t.buckets.pop_front();
        }
        while t.buckets.len() > BUCKETS as usize + 1 {
            t.buckets.pop_front();
        }
        if t.quiet_until.is_some_and(|q| now < q) {
            return None;
        }
        let (n, e) = t
            .buckets
            .iter()
            .fold((0u64, 0u64), |(n, e), b| (n + b.1, e + b.2));
        if n >= min_requests && e.saturating_mul(100) > threshold.saturating_mul(n) {
            t.quiet_until = Some(now + window);
            t.buckets.clear();
            return Some(Fired {
                rule,
                key: "host".into(),
                count: e * 100 / n,
            });
        }
        None
    }

    /// A level of `rule` for `key` (a percent): fires when it rises above `threshold`.
    pub fn level(&mut self, rule: Rule, key: &str, value: u64, threshold: u64) -> Option<Fired> {
        let id = (rule, key.to_string());
        let high = value > threshold;
        if !self.above.contains_key(&id) && self.above.len() >= 64 {
            self.above.clear();
        }
        let was = self.above.insert(id, high).unwrap_or(false);
        (high && !was).then(|| Fired {
            rule,
            key: key.to_string(),
            count: value,
        })
    }

    fn tracked(&self) -> usize {
        self.counts.len()
    }

    /// Forgets the tenth of the keys seen longest ago (and every key whose window is over).
    fn evict(&mut self, now: Instant) {
        let mut by_age: Vec<((Rule, String), Instant)> = self
            .counts
            .iter()
            .map(|(k, t)| (k.clone(), t.last.unwrap_or(now)))
            .collect();
        by_age.sort_by_key(|(_, last)| *last);
        for (k, _) in by_age.into_iter().take(MAX_KEYS / 10) {
            self.counts.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[test]
    fn five_failures_within_five_minutes_fire_once_for_that_address() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        let r = Rule::FailedLoginsAddress;
        for i in 0..4 {
            let at = t0 + Duration::from_secs(i * 10);
            assert_eq!(e.count(r, "10.0.0.1", 5, FIVE_MIN, at), None);
        }
        let fired = e.count(r, "10.0.0.1", 5, FIVE_MIN, t0 + Duration::from_secs(50));
        assert_eq!(
            fired,
            Some(Fired {
                rule: r,
                key: "10.0.0.1".into(),
                count: 5
            })
        );
        // More failures within the same window do not fire again.
        for i in 0..20 {
            let at = t0 + Duration::from_secs(60 + i);
            assert_eq!(e.count(r, "10.0.0.1", 5, FIVE_MIN, at), None);
        }
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_fire() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        for i in 0..50 {
            // Five failures span at least 4 x 80 s = 320 s, more than the window.
            let at = t0 + Duration::from_secs(i * 80);
            assert_eq!(
                e.count(Rule::FailedLoginsUser, "alice", 5, FIVE_MIN, at),
                None,
                "event {i}"
            );
        }
    }

    #[test]
    fn each_key_is_counted_on_its_own() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        for i in 0..4 {
            for key in ["a", "b"] {
                let at = t0 + Duration::from_secs(i);
                assert_eq!(e.count(Rule::FailedLoginsUser, key, 5, FIVE_MIN, at), None);
            }
        }
        assert!(e
            .count(
                Rule::FailedLoginsUser,
                "a",
                5,
                FIVE_MIN,
                t0 + Duration::from_secs(5)
            )
            .is_some());
        assert!(e
            .count(Rule::FailedLoginsAddress, "b", 5, FIVE_MIN, t0)
            .is_none());
    }

    #[test]
    fn a_rule_fires_again_after_its_quiet_window() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        let fire = |e: &mut Evaluator, base: Instant| {
            (0..5)
                .filter_map(|i| {
                    e.count(
                        Rule::FailedLoginsAddress,
                        "x",
                        5,
                        FIVE_MIN,
                        base + Duration::from_secs(i),
                    )
                })
                .count()
        };
        assert_eq!(fire(&mut e, t0), 1);
        assert_eq!(fire(&mut e, t0 + Duration::from_secs(301)), 1);
    }

    #[test]
    fn a_flood_of_distinct_addresses_keeps_memory_bounded() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 3) {
            let at = t0 + Duration::from_millis(i as u64);
            e.count(
                Rule::FailedLoginsAddress,
                &format!("10.{i}"),
                5,
                FIVE_MIN,
                at,
            );
        }
        assert!(e.counts.len() <= MAX_KEYS);
        // A huge threshold does not keep a huge history.
        for i in 0..(MAX_HISTORY * 3) {
            e.count(
                Rule::SandboxRefusals,
                "host",
                u64::MAX,
                FIVE_MIN,
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert!(
            e.counts[&(Rule::SandboxRefusals, "host".to_string())]
                .times
                .len()
                <= MAX_HISTORY
        );
    }

    #[test]
    fn an_error_rate_fires_above_its_percent_once_enough_answers_were_seen() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        let r = Rule::ApiErrors;
        // 3 errors of 10 answers: 30 %, but fewer than 20 answers: no judgement yet.
        for i in 0..10 {
            let at = t0 + Duration::from_secs(i);
            assert_eq!(e.rate(r, i < 3, 5, 20, FIVE_MIN, at), None);
        }
        let mut fired = None;
        for i in 10..20 {
            fired = fired.or(e.rate(r, false, 5, 20, FIVE_MIN, t0 + Duration::from_secs(i)));
        }
        assert_eq!(fired.map(|f| f.count), Some(15));
    }

    #[test]
    fn an_error_rate_at_or_below_its_percent_stays_quiet() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        // The last of every 20 answers an error: never above 5 %.
        for i in 0..200 {
            let at = t0 + Duration::from_millis(i * 100);
            assert_eq!(
                e.rate(Rule::ApiErrors, i % 20 == 19, 5, 20, FIVE_MIN, at),
                None
            );
        }
    }

    #[test]
    fn old_errors_leave_the_window() {
        let mut e = Evaluator::default();
        let t0 = Instant::now();
        for i in 0..10 {
            e.rate(
                Rule::ApiErrors,
                true,
                5,
                20,
                FIVE_MIN,
                t0 + Duration::from_secs(i),
            );
        }
        let later = t0 + Duration::from_secs(600);
        for i in 0..100 {
            let at = later + Duration::from_secs(i);
            assert_eq!(e.rate(Rule::ApiErrors, false, 5, 20, FIVE_MIN, at), None);
        }
    }

    #[test]
    fn a_level_fires_when_it_crosses_and_again_only_after_it_fell() {
        let mut e = Evaluator::default();
        assert!(e.level(Rule::Disk, "/", 80, 85).is_none());
        assert_eq!(e.level(Rule::Disk, "/", 90, 85).map(|f| f.count), Some(90));
        assert!(e.level(Rule::Disk, "/", 95, 85).is_none());
        assert!(e.level(Rule::Disk, "/", 85, 85).is_none());
        assert!(e.level(Rule::Disk, "/", 86, 85).is_some());
    }
}
