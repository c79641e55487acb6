//! Per-key rate limiting: "N per window, burst N", with bounded memory.
//!
//! The limiter is the generic cell rate algorithm (GCRA), which is a token
//! bucket of capacity N refilled at N per window, kept as one instant per
//! key: the theoretical arrival time (TAT) of the next request. A request at
//! `now` conforms when `TAT - now <= (N - 1) * T` (T = window / N); it then
//! moves TAT to `max(TAT, now) + T`. A refused request changes nothing, so
//! hammering does not push a client's own recovery further out.
//!
//! Memory: a key whose TAT has passed holds a full bucket, which behaves
//! exactly like no entry, so the sweep drops it without changing any answer.
//! That happens at most one window after the key's last accepted request,
//! well inside the "idle for two windows" bound. Sweeps run when a new key
//! is inserted and the table has doubled since the last sweep (amortised
//! O(1) per insert). The table never holds more than `max_keys`: when it is
//! full and a sweep frees nothing, new keys are refused (told to retry when
//! the earliest entry expires) rather than the table growing.
//!
//! Pure logic: no clock, no lock; the caller passes `now` and serialises.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Keys one limiter tracks at most.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The table is swept no earlier than this size (doubling from there).
const MIN_SWEEP_AT: usize = 1024;

/// The shortest wait given when the table is full, so a flood of new keys
/// costs at most one full sweep per this interval.
const FULL_TABLE_RETRY: Duration = Duration::from_secs(1);

/// How long the client should wait before its next attempt can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

/// A per-key limiter of `limit` requests per `window`, burst `limit`.
#[derive(Debug)]
pub struct RateLimiter<K> {
    /// N: requests per window, unless a key asks for fewer.
    limit: u32,
    window: Duration,
    /// T: the time one request "costs".
    interval: Duration,
    /// (N - 1) * T: how far ahead of `now` the TAT may run.
    tolerance: Duration,
    max_keys: usize,
    table: HashMap<K, Instant>,
    sweep_at: usize,
    /// While the table is full: when the next sweep may free a slot.
    full_until: Option<Instant>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `limit` per minute, burst `limit`, at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60), DEFAULT_MAX_KEYS)
    }

    /// `limit` per `window`, burst `limit`; a `limit` of 0 is taken as 1.
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> Self {
        let limit = limit.max(1);
        let (interval, tolerance) = gcra_params(limit, window);
        Self {
            limit,
            window,
            interval,
            tolerance,
            max_keys: max_keys.max(1),
            table: HashMap::new(),
            sweep_at: MIN_SWEEP_AT,
            full_until: None,
        }
    }

    /// Counts one request by `key` at `now`, or says how long to wait.
    pub fn check<Q>(&mut self, key: &Q, now: Instant) -> Result<(), RetryAfter>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_at_most(key, self.limit, now)
    }

    /// Like [`RateLimiter::check`], for a key with its own lower `limit`
    /// per window (the limiter's own applies when it is lower). A key
    /// should keep one limit; a changed one takes effect from its next
    /// request.
    pub fn check_at_most<Q>(&mut self, key: &Q, limit: u32, now: Instant) -> Result<(), RetryAfter>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (interval, tolerance) = if limit.max(1) < self.limit {
            gcra_params(limit.max(1), self.window)
        } else {
            (self.interval, self.tolerance)
        };
        if let Some(tat) = self.table.get_mut(key) {
            return conform(tat, now, interval, tolerance);
        }
        self.make_room(now)?;
        self.table.insert(key.to_owned(), now + interval);
        Ok(())
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Drops every key whose bucket has refilled by `now`.
    pub fn purge(&mut self, now: Instant) {
        self.sweep(now);
    }

    /// Sweeps when due; refuses when the table stays full.
    fn make_room(&mut self, now: Instant) -> Result<(), RetryAfter> {
        let full = self.table.len() >= self.max_keys;
        if !full && self.table.len() < self.sweep_at {
            return Ok(());
        }
        if let Some(until) = self.full_until.filter(|&until| full && now < until) {
            return Err(RetryAfter(until - now));
        }
        let earliest = self.sweep(now);
        self.sweep_at = (2 * self.table.len()).max(MIN_SWEEP_AT);
        if self.table.len() < self.max_keys {
            self.full_until = None;
            return Ok(());
        }
        let wait = earliest
            .map_or(FULL_TABLE_RETRY, |at| at.saturating_duration_since(now))
            .max(FULL_TABLE_RETRY);
        self.full_until = Some(now + wait);
        Err(RetryAfter(wait))
    }

    /// Drops refilled keys; returns the earliest TAT among those kept.
    fn sweep(&mut self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        self.table.retain(|_, &mut tat| {
            let keep = tat > now;
            if keep {
                earliest = Some(earliest.map_or(tat, |e| e.min(tat)));
            }
            keep
        });
        earliest
    }
}

/// T and (N - 1) * T for `limit` (at least 1) per `window`.
fn gcra_params(limit: u32, window: Duration) -> (Duration, Duration) {
    let interval = window / limit;
    (interval, interval * (limit - 1))
}

fn conform(
    tat: &mut Instant,
    now: Instant,
    interval: Duration,
    tolerance: Duration,
) -> Result<(), RetryAfter> {
    let ahead = tat.saturating_duration_since(now);
    if ahead > tolerance {
        return Err(RetryAfter(ahead - tolerance));
    }
    *tat = (*tat).max(now) + interval;
    Ok(())
}

/// The key a client address is limited under: IPv4 per address, IPv6 per
/// /64 (one subscriber commonly holds a whole /64 and can rotate through it
/// at will), IPv4-mapped IPv6 as the IPv4 address it carries.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<String>::per_minute(3);
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        // The bucket is empty; one token comes back every 20 s.
        assert_eq!(limiter.check("a", t0), Err(RetryAfter(secs(20))));
        assert_eq!(limiter.check("a", t0 + secs(5)), Err(RetryAfter(secs(15))));
        assert_eq!(limiter.check("a", t0 + secs(20)), Ok(()));
        assert_eq!(limiter.check("a", t0 + secs(20)), Err(RetryAfter(secs(20))));
        // Other keys are independent.
        assert_eq!(limiter.check("b", t0 + secs(20)), Ok(()));
    }

    #[test]
    fn a_key_with_its_own_lower_limit_gets_its_own_burst_and_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<String>::per_minute(6);
        for _ in 0..2 {
            assert_eq!(limiter.check_at_most("tight", 2, t0), Ok(()));
        }
        assert_eq!(
            limiter.check_at_most("tight", 2, t0),
            Err(RetryAfter(secs(30)))
        );
        assert_eq!(limiter.check_at_most("tight", 2, t0 + secs(30)), Ok(()));
        // A limit above the limiter's own is capped at it.
        for _ in 0..6 {
            assert_eq!(limiter.check_at_most("loose", 100, t0), Ok(()));
        }
        assert_eq!(
            limiter.check_at_most("loose", 100, t0),
            Err(RetryAfter(secs(10)))
        );
        // Keys without their own limit are unaffected.
        for _ in 0..6 {
            assert_eq!(limiter.check("other", t0), Ok(()));
        }
    }

    #[test]
    fn a_full_window_later_the_whole_burst_is_back() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<String>::per_minute(2);
        assert!(limiter.check("a", t0).is_ok());
        assert!(limiter.check("a", t0).is_ok());
        assert!(
            limiter.check("a", t0 + secs(59)).is_ok(),
            "one refilled at 30 s"
        );
        assert!(limiter.check("a", t0 + secs(59)).is_err());
        let later = t0 + secs(59) + MINUTE;
        assert!(limiter.check("a", later).is_ok());
        assert!(limiter.check("a", later).is_ok());
        assert!(limiter.check("a", later).is_err(), "burst never exceeds N");
    }

    #[test]
    fn refused_requests_do_not_extend_the_wait() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<String>::per_minute(1);
        assert!(limiter.check("a", t0).is_ok());
        for s in 1..60 {
            assert_eq!(
                limiter.check("a", t0 + secs(s)),
                Err(RetryAfter(secs(60 - s)))
            );
        }
        assert!(limiter.check("a", t0 + MINUTE).is_ok());
    }

    #[test]
    fn sub_second_retry_is_exact() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<String>::new(10, secs(1), 10);
        for _ in 0..10 {
            assert!(limiter.check("k", t0).is_ok());
        }
        let wait = Duration::from_millis(100);
        assert_eq!(limiter.check("k", t0), Err(RetryAfter(wait)));
    }

    #[test]
    fn idle_keys_are_purged_and_purging_changes_no_answer() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<String>::per_minute(2);
        limiter.check("busy", t0).unwrap();
        limiter.check("busy", t0).unwrap();
        limiter.check("once", t0).unwrap();
        limiter.purge(t0 + secs(31));
        assert_eq!(limiter.len(), 1, "'once' refilled at 30 s; 'busy' at 60 s");
        limiter.purge(t0 + 2 * MINUTE + secs(1));
        assert!(limiter.is_empty());
        // A purged key starts again with a full burst.
        let t1 = t0 + 3 * MINUTE;
        assert!(limiter.check("busy", t1).is_ok());
        assert!(limiter.check("busy", t1).is_ok());
        assert!(limiter.check("busy", t1).is_err());
    }

    #[test]
    fn inserts_sweep_once_the_table_has_grown() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<u32>::per_minute(5);
        for k in 0..MIN_SWEEP_AT as u32 {
            limiter.check(&k, t0).unwrap();
        }
        assert_eq!(limiter.len(), MIN_SWEEP_AT);
        // Two windows on, the next new key triggers the sweep.
        limiter.check(&u32::MAX, t0 + 2 * MINUTE).unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn a_full_table_refuses_new_keys_but_serves_known_ones() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<u32>::new(2, MINUTE, 3);
        for k in 0..3 {
            limiter.check(&k, t0).unwrap();
        }
        // Every entry holds a used token until t0 + 30 s.
        assert_eq!(limiter.check(&9, t0), Err(RetryAfter(secs(30))));
        assert_eq!(limiter.len(), 3, "the table did not grow");
        assert!(
            limiter.check(&0, t0 + secs(1)).is_ok(),
            "known keys still served"
        );
        // Within the wait no sweep is attempted and the answer counts down.
        assert_eq!(limiter.check(&9, t0 + secs(10)), Err(RetryAfter(secs(20))));
        // Keys 1 and 2 have refilled by 30 s: the sweep makes room.
        assert!(limiter.check(&9, t0 + secs(30)).is_ok());
        assert_eq!(limiter.len(), 2, "0 kept (used again at 1 s), 9 added");
    }

    #[test]
    fn a_full_table_waits_at_least_a_second_between_sweeps() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::<u32>::new(1000, MINUTE, 1);
        limiter.check(&1, t0).unwrap();
        // Key 1 refills after 60 ms, but a new key waits a whole second.
        assert_eq!(limiter.check(&2, t0), Err(RetryAfter(FULL_TABLE_RETRY)));
        let wait = FULL_TABLE_RETRY - Duration::from_millis(500);
        assert_eq!(
            limiter.check(&2, t0 + Duration::from_millis(500)),
            Err(RetryAfter(wait))
        );
        assert!(limiter.check(&2, t0 + FULL_TABLE_RETRY).is_ok());
    }

    #[test]
    fn ipv6_clients_are_grouped_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let t0 = Instant::now();
        let mut limiter = RateLimiter::per_minute(1);
        assert!(limiter.check(&client_key(a), t0).is_ok());
        assert!(limiter.check(&client_key(b), t0).is_err());
        assert!(limiter.check(&client_key(other), t0).is_ok());
    }

    #[test]
    fn ipv4_clients_are_limited_per_address() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_ne!(client_key(a), client_key(b));
        assert_eq!(client_key(mapped), a, "v4-mapped v6 is the v4 client");
    }
}
