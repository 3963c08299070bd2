//! Authentication and authorization.
//!
//! A token is read from whichever header form the caller uses —
//! `Authorization: Bearer`, HTTP Basic with the token as user name (Segment
//! write keys), `x-conveyour-token` (an `x-conveyour-appkey` is ignored) or
//! `X-API-Key` — then checked: the master key (constant-time), else the
//! token's checksum (no database lookup for a malformed token), then its
//! SHA-256 in the store (remembered for a few seconds by [`KeyCache`]), then
//! revocation and expiry.
//!
//! [`KeyCache`]: crate::state::KeyCache
//!
//! Handlers state the scope they need in their signature:
//! `Need<scopes::ContactsRead>` yields the key's [`KeyPrincipal`] or answers
//! 401/403; [`MasterKey`] admits only the operator.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use base64::Engine;
use convene_core::auth::{KeyPrincipal, Principal};
use convene_core::scope::Scope;
use convene_core::token::{self, TokenHash};
use convene_core::{Error, ids};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::state::AppState;

/// Reads the presented token from the headers, if any.
pub fn presented_token(headers: &HeaderMap) -> Result<Option<String>, Error> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value =
            value.to_str().map_err(|_| Error::Unauthenticated { reason: "the Authorization header is not text" })?;
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Ok(Some(rest.to_string()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(Error::Unauthenticated { reason: "the Basic credentials are not valid base64" })?;
            let (user, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
            let token = if user.is_empty() { password } else { user };
            return Ok((!token.is_empty()).then(|| token.to_string()));
        }
        return Err(Error::Unauthenticated { reason: "the Authorization header must be 'Bearer <token>' or Basic" });
    }
    for name in ["x-conveyour-token", "x-api-key"] {
        if let Some(value) = headers.get(name) {
            let token =
                value.to_str().map_err(|_| Error::Unauthenticated { reason: "the API key header is not text" })?.trim();
            if !token.is_empty() {
                return Ok(Some(token.to_string()));
            }
        }
    }
    Ok(None)
}

/// Authenticates the request's credentials.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, Error> {
    state.limits.check_address()?;
    let token = presented_token(headers).and_then(|t| {
        t.ok_or(Error::Unauthenticated {
            reason: "missing API key: send 'Authorization: Bearer <token>', 'X-API-Key', 'x-conveyour-token' or HTTP Basic",
        })
    });
    match token {
        Ok(token) => authenticate_token(state, &token).await,
        Err(e) => {
            state.limits.failed();
            Err(e)
        }
    }
}

/// Authenticates a token however it arrived (a header, or a dialect's body
/// field such as Segment's `writeKey`).
/// A client address whose failed authentications used up its bucket is
/// refused (429) first; a failure counts against it; a key's request takes
/// a token from the key's bucket.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, Error> {
    state.limits.check_address()?;
    let principal = check_token(state, token).await;
    match &principal {
        Err(Error::Unauthenticated { .. }) => state.limits.failed(),
        Ok(Principal::Key(key)) => state.limits.check_key(&key.key_id, key.kind)?,
        _ => {}
    }
    principal
}

async fn check_token(state: &AppState, token: &str) -> Result<Principal, Error> {
    let token = token.to_string();
    if bool::from(token.as_bytes().ct_eq(state.master_key.expose().as_bytes())) {
        return Ok(Principal::Master);
    }
    if !token::well_formed(&token) {
        return Err(Error::Unauthenticated { reason: "invalid API key" });
    }
    let hash = TokenHash::of(&token);
    let key = match state.key_cache.get(&hash) {
        Ok(key) => key,
        Err(epoch) => {
            let record =
                state.store.find_key(&hash).await?.ok_or(Error::Unauthenticated { reason: "invalid API key" })?;
            if !hash.ct_eq(&record.hash) {
                return Err(Error::Unauthenticated { reason: "invalid API key" });
            }
            state.key_cache.insert(hash, record.key.clone(), epoch);
            record.key
        }
    };
    let now = ids::now();
    key.check_usable(now)?;
    state.key_usage.record(&key.id, now);
    Ok(Principal::Key(KeyPrincipal {
        key_id: key.id,
        workspace_id: key.workspace_id,
        scopes: key.scopes,
        kind: key.kind,
    }))
}

/// A scope a route needs, as a type.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope (named in a 403).
    const SCOPE: Scope;
    /// Other scopes that also admit the caller (any one is enough).
    const OR: &'static [Scope] = &[];
}

/// Marker types for [`Need`], one per scope.
pub mod scopes {
    use super::{RequiredScope, Scope};

    macro_rules! markers {
        ($($name:ident => $scope:ident),* $(,)?) => {$(
            #[doc = concat!("Requires the `", stringify!($scope), "` scope.")]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$scope;
            }
        )*};
    }

    markers! {
        ContactsRead => ContactsRead,
        ContactsWrite => ContactsWrite,
        EventsRead => EventsRead,
        EventsWrite => EventsWrite,
        CompaniesRead => CompaniesRead,
        CompaniesWrite => CompaniesWrite,
        ConversationsRead => ConversationsRead,
        ConversationsWrite => ConversationsWrite,
        RepsRead => RepsRead,
        RepsWrite => RepsWrite,
        ReportsRead => ReportsRead,
        Admin => Admin,
    }

    /// Requires `contacts:write` or `events:write`: any ingest key (reading
    /// its own jobs, sending batches whose items are checked one by one).
    pub struct IngestWrite;
    impl RequiredScope for IngestWrite {
        const SCOPE: Scope = Scope::ContactsWrite;
        const OR: &'static [Scope] = &[Scope::EventsWrite];
    }
}

/// An API key holding scope `S`; the handler works in its workspace.
pub struct Need<S: RequiredScope> {
    /// The authenticated key.
    pub key: KeyPrincipal,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> Need<S> {
    /// The key's workspace.
    pub fn workspace(&self) -> &str {
        &self.key.workspace_id
    }
}

impl<St, S> FromRequestParts<St> for Need<S>
where
    St: Send + Sync,
    AppState: FromRef<St>,
    S: RequiredScope,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let principal = authenticate(&state, &parts.headers).await?;
        let key = match S::OR.iter().find_map(|scope| principal.require(*scope).ok()) {
            Some(key) => key.clone(),
            None => principal.require(S::SCOPE)?.clone(),
        };
        Ok(Need { key, _scope: PhantomData })
    }
}

/// The operator, authenticated by the master key.
pub struct MasterKey;

impl<St> FromRequestParts<St> for MasterKey
where
    St: Send + Sync,
    AppState: FromRef<St>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        authenticate(&state, &parts.headers).await?.require_master()?;
        Ok(MasterKey)
    }
}
