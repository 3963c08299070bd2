//! Rate limits: a token bucket per key (or per client address), and the
//! IETF `RateLimit-Policy` / `RateLimit` header values that describe it.
//!
//! A bucket holds at most `burst` tokens and refills at `per_second`; a
//! request takes one token or is refused with the seconds until one is
//! back. State is per node (docs/scaling.md says what that means with
//! several nodes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A quota: `per_second` tokens refilled, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Quota {
    /// Parses `RATE/BURST` (e.g. `100/200`) or `RATE` (burst = rate).
    pub fn parse(s: &str) -> Result<Quota, String> {
        let (rate, burst) = s.split_once('/').unwrap_or((s, s));
        let rate: f64 = rate.trim().parse().map_err(|_| format!("'{s}' is not RATE/BURST (e.g. 100/200)"))?;
        let burst: u32 = burst.trim().parse().map_err(|_| format!("'{s}' is not RATE/BURST (e.g. 100/200)"))?;
        if !(rate > 0.0 && rate.is_finite()) || burst == 0 {
            return Err(format!("'{s}': the rate and the burst must be above 0"));
        }
        Ok(Quota { per_second: rate, burst })
    }

    /// Seconds a drained bucket takes to fill up (the policy's window).
    pub fn window_secs(&self) -> u64 {
        (f64::from(self.burst) / self.per_second).ceil().max(1.0) as u64
    }

    /// The `RateLimit-Policy` value: `"<name>";q=<burst>;w=<window>`.
    pub fn policy_header(&self, name: &str) -> String {
        format!("\"{name}\";q={};w={}", self.burst, self.window_secs())
    }
}

/// What one request's check found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Tokens left after this request.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a refused request may succeed (0 when allowed).
    pub retry_after_secs: u64,
}

impl Decision {
    /// The `RateLimit` value: `"<name>";r=<remaining>;t=<reset>`.
    pub fn header(&self, name: &str) -> String {
        format!("\"{name}\";r={};t={}", self.remaining, self.reset_secs)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Shards of buckets, so that checks of different keys rarely contend.
const SHARDS: usize = 16;
/// Buckets a shard holds before full (idle) ones are dropped.
const PRUNE_AT: usize = 4096;

/// Token buckets by key under one quota.
pub struct RateLimiter {
    quota: Quota,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    /// A limiter applying `quota` to every key.
    pub fn new(quota: Quota) -> Self {
        RateLimiter { quota, shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    /// The quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Bucket>> {
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        &self.shards[(h % SHARDS as u64) as usize]
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.quota.per_second).min(f64::from(self.quota.burst));
        bucket.at = now;
    }

    fn decide(&self, bucket: &Bucket, allowed: bool) -> Decision {
        let burst = f64::from(self.quota.burst);
        let missing = (burst - bucket.tokens).max(0.0);
        let retry = if allowed { 0.0 } else { (1.0 - bucket.tokens).max(0.0) / self.quota.per_second };
        Decision {
            allowed,
            remaining: bucket.tokens.floor().max(0.0) as u32,
            reset_secs: (missing / self.quota.per_second).ceil() as u64,
            retry_after_secs: if allowed { 0 } else { retry.ceil().max(1.0) as u64 },
        }
    }

    /// Takes a token for `key` if there is one.
    pub fn check(&self, key: &str, now: Instant) -> Decision {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= PRUNE_AT && !shard.contains_key(key) {
            let (rate, burst) = (self.quota.per_second, f64::from(self.quota.burst));
            // A bucket that would be full again is the same as no bucket.
            shard.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = shard.entry(key.to_string()).or_insert(Bucket { tokens: f64::from(self.quota.burst), at: now });
        self.refill(bucket, now);
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        self.decide(bucket, allowed)
    }

    /// Whether `key` has a token now, without taking it.
    pub fn peek(&self, key: &str, now: Instant) -> Decision {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        match shard.get_mut(key) {
            Some(bucket) => {
                self.refill(bucket, now);
                let allowed = bucket.tokens >= 1.0;
                self.decide(bucket, allowed)
            }
            None => self.decide(&Bucket { tokens: f64::from(self.quota.burst), at: now }, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(Quota { per_second: 2.0, burst: 3 });
        let t0 = Instant::now();
        let seen: Vec<bool> = (0..4).map(|_| limiter.check("k", t0).allowed).collect();
        assert_eq!(seen, [true, true, true, false]);
        let refused = limiter.check("k", t0);
        assert_eq!((refused.remaining, refused.retry_after_secs), (0, 1));
        assert!(limiter.check("other", t0).allowed, "keys have their own buckets");
        // Half a second later one token is back.
        let d = limiter.check("k", t0 + Duration::from_millis(500));
        assert!(d.allowed);
        assert_eq!(d.reset_secs, 2);
        assert!(!limiter.check("k", t0 + Duration::from_millis(600)).allowed);
        assert!(limiter.peek("k", t0 + Duration::from_secs(5)).allowed);
        assert_eq!(limiter.check("k", t0 + Duration::from_secs(5)).remaining, 2);
    }

    #[test]
    fn quotas_parse_and_render() {
        let q = Quota::parse("100/250").unwrap();
        assert_eq!((q.per_second, q.burst, q.window_secs()), (100.0, 250, 3));
        assert_eq!(q.policy_header("key"), "\"key\";q=250;w=3");
        assert_eq!(Quota::parse("5").unwrap().burst, 5);
        for bad in ["", "x/1", "0/5", "5/0", "-1/3"] {
            assert!(Quota::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let limiter = RateLimiter::new(Quota { per_second: 1000.0, burst: 1 });
        let t0 = Instant::now();
        for i in 0..(PRUNE_AT * SHARDS * 2) {
            limiter.check(&format!("k{i}"), t0 + Duration::from_millis(i as u64));
        }
        let total: usize = limiter.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= PRUNE_AT * SHARDS + SHARDS, "{total}");
    }
}
