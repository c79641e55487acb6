//! Cluster-wide limits, each decided atomically inside Redis by one script.
//!
//! - **Call rates** per client and per widget: the same generic cell rate
//!   algorithm as the node's own limiter (`http::guard`), "N per minute,
//!   burst N", kept as one theoretical arrival time per key, in
//!   microseconds of Redis's clock. The client is checked first; a client
//!   refused by the widget's rate has still spent its own token, as on one
//!   node. A refused request changes nothing of its own key.
//! - **Concurrency** per tenant, widget and number: a sorted set per slot
//!   of leases scored by when they expire. Taking slots drops the expired
//!   leases, then adds the new one to every set only if each has room:
//!   all or nothing.
//! - **Renewal** writes a node's leases back with a fresh expiry, whether
//!   Redis still had them or not (see [`super::leases`]).
//!
//! All times are Redis's own (`TIME`), so nodes' clocks need not agree.
//! Scripts that call `TIME` before writing need Redis 5 or later (effects
//! replication).

use std::time::Duration;

use redis::Script;

use super::keys::SlotScope;

/// Checks and spends a client's and a widget's call rate.
/// KEYS: client, widget. ARGV: each one's interval and tolerance (µs).
/// Returns `{0, 0}`, or `{1|2, wait µs}` for the key that refused.
const RATE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function wait_or_take(key, interval, tolerance)
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  if tat - now > tolerance then return tat - now - tolerance end
  local next_tat = tat + interval
  local ttl_ms = math.ceil((next_tat - now) / 1000)
  redis.call('SET', key, string.format('%.0f', next_tat), 'PX', ttl_ms)
  return 0
end
local wait = wait_or_take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))
if wait > 0 then return {1, wait} end
wait = wait_or_take(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
if wait > 0 then return {2, wait} end
return {0, 0}
";

/// Takes a slot in every set of KEYS for member ARGV[1], for ARGV[2] ms,
/// where ARGV[2 + i] is the limit of KEYS[i]. Returns 0, or the index of
/// the first full set (nothing is written then).
const ACQUIRE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, ttl = ARGV[1], tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local held = redis.call('ZSCORE', key, member)
  if not held and redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, string.format('%.0f', now + ttl), member)
  redis.call('PEXPIRE', key, ttl)
end
return 0
";

/// Renews (or writes back) leases: member ARGV[1 + i] in KEYS[i], each for
/// ARGV[1] ms. Returns how many were written.
const RENEW_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, string.format('%.0f', now + ttl), ARGV[1 + i])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
";

/// The three scripts, loaded once per node (Redis caches them by hash).
#[derive(Debug)]
pub struct Scripts {
    pub rate: Script,
    pub acquire: Script,
    pub renew: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            rate: Script::new(RATE_SCRIPT),
            acquire: Script::new(ACQUIRE_SCRIPT),
            renew: Script::new(RENEW_SCRIPT),
        }
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

/// One rate of "`per_minute` calls per minute, burst `per_minute`", as the
/// rate script takes it: the interval one call costs and how far ahead of
/// now the arrival time may run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval_us: u64,
    pub tolerance_us: u64,
}

impl Rate {
    /// A limit of 0 is taken as 1, as on one node.
    pub fn per_minute(per_minute: u32) -> Self {
        let limit = u64::from(per_minute.max(1));
        let interval_us = 60_000_000 / limit;
        Self {
            interval_us,
            tolerance_us: (limit - 1) * interval_us,
        }
    }
}

/// What the rate script decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    Allowed,
    /// The client's rate is spent; retry after this long.
    Client(Duration),
    /// The widget's rate is spent (the client's token was taken).
    Widget(Duration),
}

impl RateVerdict {
    /// Reads the script's `{which, wait µs}` reply.
    pub fn from_reply((which, wait_us): (i64, i64)) -> Self {
        let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
        match which {
            1 => RateVerdict::Client(wait),
            2 => RateVerdict::Widget(wait),
            _ => RateVerdict::Allowed,
        }
    }
}

/// One slot a call needs: the set of `scope`'s, holding at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotClaim {
    pub scope: SlotScope,
    pub key: String,
    pub limit: u32,
}

/// Reads the acquire script's reply: `None` when every slot was taken,
/// or the claim whose set was full.
pub fn full_claim(claims: &[SlotClaim], reply: i64) -> Option<&SlotClaim> {
    let index = usize::try_from(reply).ok()?.checked_sub(1)?;
    claims.get(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_spreads_a_minute_over_its_calls_with_a_full_burst() {
        let rate = Rate::per_minute(6);
        assert_eq!(rate.interval_us, 10_000_000);
        assert_eq!(rate.tolerance_us, 50_000_000);
        assert_eq!(Rate::per_minute(0), Rate::per_minute(1));
        assert_eq!(Rate::per_minute(1).tolerance_us, 0);
    }

    #[test]
    fn replies_name_what_refused() {
        assert_eq!(RateVerdict::from_reply((0, 0)), RateVerdict::Allowed);
        assert_eq!(
            RateVerdict::from_reply((1, 1_500_000)),
            RateVerdict::Client(Duration::from_millis(1500))
        );
        assert_eq!(
            RateVerdict::from_reply((2, 7)),
            RateVerdict::Widget(Duration::from_micros(7))
        );
        let claims = [
            SlotClaim {
                scope: SlotScope::Tenant,
                key: "t".into(),
                limit: 2,
            },
            SlotClaim {
                scope: SlotScope::Widget,
                key: "w".into(),
                limit: 1,
            },
        ];
        assert_eq!(full_claim(&claims, 0), None);
        assert_eq!(
            full_claim(&claims, 2).map(|c| c.scope),
            Some(SlotScope::Widget)
        );
        assert_eq!(full_claim(&claims, 3), None);
        assert_eq!(full_claim(&claims, -1), None);
    }
}
