//! Erasure over the API: `DELETE /v1/contacts/{id}?erase=true`, `DELETE
//! /v1/contacts?email=…&erase=true` (or `mobile`, `external_id`), the audit
//! trail (`GET /v1/erasures`) and lifting a suppression (`DELETE
//! /v1/suppressions?email=…`). The rules are core's (`convene_core::erase`).

use axum::Json;
use axum::extract::State;
use convene_core::Error;
use convene_core::erase::{EraseTarget, Erasure, target_from};
use convene_core::identity::IdentityKind;
use convene_core::page::PageRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::CommonErrors;
use super::dto::{PageParams, Paged};
use crate::http::auth::{Need, scopes};
use crate::http::error::ApiResult;
use crate::http::query::AppQuery;
use crate::state::AppState;

/// An identity given in the query: exactly one.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdentityQuery {
    /// The contact's email.
    #[param(max_length = 254)]
    pub email: Option<String>,
    /// The contact's phone number.
    #[param(max_length = 254)]
    pub mobile: Option<String>,
    /// The contact's external id.
    #[param(max_length = 254)]
    pub external_id: Option<String>,
    /// Must be `true`: deleting by identity always erases.
    pub erase: Option<bool>,
}

impl IdentityQuery {
    fn pairs(&self) -> [(IdentityKind, Option<&str>); 3] {
        [
            (IdentityKind::Email, self.email.as_deref()),
            (IdentityKind::Mobile, self.mobile.as_deref()),
            (IdentityKind::ExternalId, self.external_id.as_deref()),
        ]
    }
}

/// One identity of an erased contact, as a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct HashedIdentity {
    /// email, mobile, external_id or anonymous_id.
    pub kind: String,
    /// SHA-256 (hex) of the workspace id, the kind and the value.
    pub hash: String,
}

/// What an erasure removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    /// Events deleted.
    pub events: u64,
    /// Messages whose content was erased.
    pub messages: u64,
    /// Conversations unlinked (subject and call details erased; kept for reports).
    pub conversations: u64,
    /// Job results whose row errors named an identity, rewritten.
    pub jobs: u64,
    /// Deduplication records carrying an identity, deleted.
    pub dedupe: u64,
}

/// The audit record of an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureOut {
    /// `era_…`
    pub id: String,
    /// The erased contact's id.
    pub contact_id: i64,
    /// Its identities, hashed.
    pub identities: Vec<HashedIdentity>,
    /// Who asked (`key:<id>`).
    pub actor: String,
    /// When.
    pub erased_at: chrono::DateTime<chrono::Utc>,
    /// What was removed.
    pub removed: Removed,
}

impl From<Erasure> for ErasureOut {
    fn from(e: Erasure) -> Self {
        ErasureOut {
            id: e.id,
            contact_id: e.contact_id,
            identities: e
                .identities
                .into_iter()
                .map(|(k, hash)| HashedIdentity { kind: k.field().to_string(), hash })
                .collect(),
            actor: e.actor,
            erased_at: e.erased_at,
            removed: Removed {
                events: e.events,
                messages: e.messages,
                conversations: e.conversations,
                jobs: e.jobs,
                dedupe: e.dedupe,
            },
        }
    }
}

/// Erases a contact on behalf of a key.
pub async fn erase(state: &AppState, ws: &str, key_id: &str, target: EraseTarget) -> Result<ErasureOut, Error> {
    let erasure = state.store.erase_contact(ws, target, format!("key:{key_id}")).await?;
    tracing::info!(erasure = %erasure.id, workspace = %ws, "contact erased");
    Ok(erasure.into())
}

/// Erase the contact holding an identity (`erase=true` is required).
#[utoipa::path(delete, path = "/v1/contacts", tag = "contacts", params(IdentityQuery),
    responses((status = 200, description = "Erased: the audit record", body = ErasureOut), CommonErrors),
    security(("bearer" = ["contacts:write"]), ("api_key" = ["contacts:write"])))]
pub async fn erase_by_identity(
    auth: Need<scopes::ContactsWrite>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<IdentityQuery>,
) -> ApiResult<Json<ErasureOut>> {
    if q.erase != Some(true) {
        return Err(Error::validation("erase", "deleting by identity erases: add erase=true").into());
    }
    let target = target_from(None, &q.pairs())?;
    Ok(Json(erase(&state, auth.workspace(), &auth.key.key_id, target).await?))
}

/// The workspace's erasures (audit records: identities as hashes).
#[utoipa::path(get, path = "/v1/erasures", tag = "contacts", params(PageParams),
    responses((status = 200, description = "A page of erasures", body = Paged<ErasureOut>), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn list_erasures(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<PageParams>,
) -> ApiResult<Json<Paged<ErasureOut>>> {
    let page = PageRequest::parse(q.cursor.as_deref(), q.limit)?;
    Ok(Json(Paged::from_page(state.store.list_erasures(auth.workspace(), page).await?, ErasureOut::from)))
}

/// Whether a suppression was lifted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lifted {
    /// Always true (no suppression is 404).
    pub lifted: bool,
}

/// Lift the suppression of an erased identity: it may be used again.
#[utoipa::path(delete, path = "/v1/suppressions", tag = "contacts", params(IdentityQuery),
    responses((status = 200, description = "Lifted", body = Lifted), CommonErrors),
    security(("bearer" = ["admin"]), ("api_key" = ["admin"])))]
pub async fn lift_suppression(
    auth: Need<scopes::Admin>,
    State(state): State<AppState>,
    AppQuery(q): AppQuery<IdentityQuery>,
) -> ApiResult<Json<Lifted>> {
    let EraseTarget::Identity(kind, value) = target_from(None, &q.pairs())? else {
        return Err(Error::bad_request("name the identity by email, mobile or external_id").into());
    };
    if !state.store.lift_suppression(auth.workspace(), kind, &value).await? {
        return Err(Error::NotFound { entity: "suppression" }.into());
    }
    Ok(Json(Lifted { lifted: true }))
}
