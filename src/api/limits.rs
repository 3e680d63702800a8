//! Request rates: per address, per user, and per address for logins. Each class is a keyed
//! GCRA limiter (governor): a key may spend its quota at once, then earns one request back
//! every minute / quota. Unlike the fixed windows this replaces, no key can send twice its
//! quota across a window's edge, a check is O(1) under a sharded map rather than a sweep
//! under one mutex, and the wait a refusal names is exact.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Keyed<C> =
    RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// What a request is counted against.
pub enum Limit<'a> {
    /// Any request, by the peer's address ("unix" for the socket).
    Address(&'a str),
    /// An authenticated request, by its user.
    User(&'a str),
    /// A login or a refresh, by the peer's address.
    Login(&'a str),
}

/// Every local client shares the unix socket's one key, so it gets this many times the quota.
const SOCKET_SHARE: u32 = 10;

pub struct Limits<C: Clock = DefaultClock> {
    addresses: Keyed<C>,
    socket: Direct<C>,
    users: Keyed<C>,
    logins: Keyed<C>,
    clock: C,
}

impl Limits {
    /// `rate` requests a minute per address and per user; `login_rate` logins a minute per
    /// address.
    pub fn new(rate: u32, login_rate: u32) -> Limits {
        Limits::with_clock(rate, login_rate, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    fn with_clock(rate: u32, login_rate: u32, clock: C) -> Limits<C> {
        let per_minute = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Limits {
            addresses: RateLimiter::dashmap_with_clock(per_minute(rate), clock.clone()),
            socket: RateLimiter::direct_with_clock(
                per_minute(rate.saturating_mul(SOCKET_SHARE)),
                clock.clone(),
            ),
            users: RateLimiter::dashmap_with_clock(per_minute(rate), clock.clone()),
            logins: RateLimiter::dashmap_with_clock(per_minute(login_rate), clock.clone()),
            clock,
        }
    }

    /// None if the request may go on; else the whole seconds to wait (at least 1), for a
    /// Retry-After header.
    pub fn check(&self, limit: Limit) -> Option<u64> {
        let verdict = match limit {
            Limit::Address("unix") => self.socket.check(),
            Limit::Address(a) => self.addresses.check_key(&a.to_string()),
            Limit::User(u) => self.users.check_key(&u.to_string()),
            Limit::Login(a) => self.logins.check_key(&a.to_string()),
        };
        let wait = verdict.err()?.wait_time_from(self.clock.now());
        Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).map(|s| s.max(1))
    }

    /// Forgets keys idle long enough that their state is the same as a new key's, so only
    /// memory changes. Called from a timer, so that many addresses cannot keep the maps large.
    pub fn forget_idle(&self) {
        for l in [&self.addresses, &self.users, &self.logins] {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limits(rate: u32, login_rate: u32) -> (Limits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (Limits::with_clock(rate, login_rate, clock.clone()), clock)
    }

    #[test]
    fn a_key_spends_its_quota_at_once_then_earns_one_request_back_per_share_of_the_minute() {
        let (l, clock) = limits(6, 3);
        assert!((0..6).all(|_| l.check(Limit::User("dev")).is_none()));
        assert_eq!(
            l.check(Limit::User("dev")),
            Some(10),
            "a sixth of a minute until the next"
        );
        clock.advance(Duration::from_secs(9));
        assert_eq!(l.check(Limit::User("dev")), Some(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check(Limit::User("dev")), None);
        assert!(l.check(Limit::User("dev")).is_some());
    }

    #[test]
    fn no_key_sends_twice_its_quota_across_the_edge_of_a_minute() {
        let (l, clock) = limits(10, 3);
        let mut allowed = 0;
        // Fixed windows allowed 10 at 0:59 and 10 more at 1:00; a rate allows 10 and one more.
        clock.advance(Duration::from_secs(59));
        allowed += (0..10)
            .filter(|_| l.check(Limit::Address("192.0.2.1")).is_none())
            .count();
        clock.advance(Duration::from_secs(2));
        allowed += (0..10)
            .filter(|_| l.check(Limit::Address("192.0.2.1")).is_none())
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn keys_and_classes_are_counted_apart() {
        let (l, _) = limits(2, 1);
        assert!(l.check(Limit::Login("192.0.2.1")).is_none());
        assert!(
            l.check(Limit::Login("192.0.2.1")).is_some(),
            "logins are limited more strictly"
        );
        assert!(
            l.check(Limit::Login("192.0.2.2")).is_none(),
            "another address has its own quota"
        );
        assert!(
            l.check(Limit::Address("192.0.2.1")).is_none(),
            "a refused login does not spend the address's quota"
        );
        assert!(l.check(Limit::User("dev")).is_none());
        assert!(l.check(Limit::User("ops")).is_none());
    }

    #[test]
    fn the_unix_socket_shares_ten_times_an_addresss_quota() {
        let (l, _) = limits(3, 1);
        assert_eq!(
            (0..40)
                .filter(|_| l.check(Limit::Address("unix")).is_none())
                .count(),
            30
        );
        assert_eq!(
            (0..40)
                .filter(|_| l.check(Limit::Address("192.0.2.1")).is_none())
                .count(),
            3
        );
    }

    #[test]
    fn forgetting_idle_keys_frees_them_and_changes_no_answer() {
        let (l, clock) = limits(2, 1);
        for i in 0..100 {
            assert!(l.check(Limit::Address(&format!("192.0.2.{i}"))).is_none());
        }
        assert!(l.check(Limit::User("busy")).is_none() && l.check(Limit::User("busy")).is_none());
        clock.advance(Duration::from_secs(31));
        assert!(
            l.check(Limit::User("busy")).is_none(),
            "half a minute earned one back"
        );
        clock.advance(Duration::from_secs(30));
        l.forget_idle();
        assert_eq!(
            l.addresses.len(),
            0,
            "addresses idle for a minute are forgotten"
        );
        assert_eq!(l.users.len(), 1, "a user still spending is remembered");
        assert!(l.check(Limit::User("busy")).is_none());
        assert!(l.check(Limit::User("busy")).is_some(), "and still limited");
    }
}
