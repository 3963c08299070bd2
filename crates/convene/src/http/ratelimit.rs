//! Rate limits on every API and dialect: a token bucket per API key (its
//! quota by key kind) and a harder one per client address for failed
//! authentication. The check happens when the key is authenticated, before
//! any handler runs, so a refused request writes nothing; the answer is 429
//! with `Retry-After` in the route's own envelope. Every response to a
//! limited request carries `RateLimit-Policy` and `RateLimit`.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use convene_core::Error;
use convene_core::ratelimit::{Decision, Quota, RateLimiter};
use convene_core::scope::KeyKind;

/// The quotas of a node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// Per full key.
    pub full: Quota,
    /// Per analytics (ingest) key.
    pub analytics: Quota,
    /// Per client address, counting failed authentications.
    pub failed_auth: Quota,
    /// Per console account (email), counting login attempts.
    pub login: Quota,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            full: Quota { per_second: 10_000.0, burst: 20_000 },
            analytics: Quota { per_second: 20_000.0, burst: 40_000 },
            failed_auth: Quota { per_second: 20.0, burst: 200 },
            login: Quota { per_second: 1.0 / 30.0, burst: 10 },
        }
    }
}

/// The buckets of a node.
pub struct RateLimits {
    full: RateLimiter,
    analytics: RateLimiter,
    failed_auth: RateLimiter,
    login: RateLimiter,
}

impl RateLimits {
    /// Empty buckets under `settings`.
    pub fn new(settings: RateLimitSettings) -> Self {
        RateLimits {
            full: RateLimiter::new(settings.full),
            analytics: RateLimiter::new(settings.analytics),
            failed_auth: RateLimiter::new(settings.failed_auth),
            login: RateLimiter::new(settings.login),
        }
    }

    /// Takes a token for a key; a refusal is [`Error::RateLimited`].
    pub fn check_key(&self, key_id: &str, kind: KeyKind) -> Result<(), Error> {
        let (limiter, name) = match kind {
            KeyKind::Full => (&self.full, "key"),
            KeyKind::Analytics => (&self.analytics, "analytics-key"),
        };
        let decision = limiter.check(key_id, Instant::now());
        record(name, limiter.quota(), decision);
        refuse_unless(decision)
    }

    /// Refuses a client address whose failed authentications used up its
    /// bucket (before its credentials are even looked at).
    pub fn check_address(&self) -> Result<(), Error> {
        let Some(ip) = client_address() else { return Ok(()) };
        let decision = self.failed_auth.peek(&ip.to_string(), Instant::now());
        if !decision.allowed {
            record("failed-auth", self.failed_auth.quota(), decision);
        }
        refuse_unless(decision)
    }

    /// Takes a token for a console login attempt on `email` (ten at once,
    /// then one per 30 s), whatever the client address: guessing one
    /// account's password from many addresses stays slow.
    pub fn check_login(&self, email: &str) -> Result<(), Error> {
        let decision = self.login.check(email, Instant::now());
        record("console-login", self.login.quota(), decision);
        refuse_unless(decision)
    }

    /// Counts a failed authentication against the client address.
    pub fn failed(&self) {
        if let Some(ip) = client_address() {
            let decision = self.failed_auth.check(&ip.to_string(), Instant::now());
            record("failed-auth", self.failed_auth.quota(), decision);
        }
    }
}

fn refuse_unless(decision: Decision) -> Result<(), Error> {
    if decision.allowed { Ok(()) } else { Err(Error::RateLimited { retry_after_secs: decision.retry_after_secs }) }
}

/// What the current request's checks found, for its response headers.
struct RequestRate {
    client: Option<IpAddr>,
    seen: RefCell<Option<(&'static str, Quota, Decision)>>,
}

tokio::task_local! {
    static REQUEST: RequestRate;
}

fn client_address() -> Option<IpAddr> {
    REQUEST.try_with(|r| r.client).ok().flatten()
}

fn record(name: &'static str, quota: Quota, decision: Decision) {
    let _ = REQUEST.try_with(|r| *r.seen.borrow_mut() = Some((name, quota, decision)));
}

/// Runs the request with its rate state and adds the headers (called by
/// `http::stack` for every request).
pub async fn run_with_rate_state(req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let state = RequestRate { client, seen: RefCell::new(None) };
    let (mut response, seen) = REQUEST
        .scope(state, async move {
            let response = next.run(req).await;
            let seen = REQUEST.try_with(|r| *r.seen.borrow()).ok().flatten();
            (response, seen)
        })
        .await;
    if let Some((name, quota, decision)) = seen {
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&quota.policy_header(name)) {
            headers.insert("ratelimit-policy", v);
        }
        if let Ok(v) = HeaderValue::from_str(&decision.header(name)) {
            headers.insert("ratelimit", v);
        }
    }
    response
}
