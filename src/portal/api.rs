//! The JSON API under `/api/v1` (`shared/PORTAL.md`), with typed request
//! and response structs. Errors are `{"error": "..."}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::extract::{api_error, ApiUser};
use super::Portal;
use crate::account::profile::{CanChange, Profile, ProfileChange};
use crate::account::AccountError;

/// `GET /api/v1/me`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Me {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub dn: String,
    /// `null`: auto-detect.
    pub locale: Option<String>,
    pub can_change: CanChange,
}

impl From<Profile> for Me {
    fn from(p: Profile) -> Me {
        Me {
            username: p.username,
            name: p.name,
            email: p.email,
            dn: p.dn,
            locale: p.locale,
            can_change: p.can_change,
        }
    }
}

/// `PATCH /api/v1/me`: the fields to change; an absent field stays.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MePatch {
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `""`: auto-detect.
    pub locale: Option<String>,
}

/// `GET /api/v1/me`.
pub async fn me(State(portal): State<Portal>, me: ApiUser) -> Response {
    answer(portal.accounts.profile(&me.actor(), me.username()).await)
}

/// `PATCH /api/v1/me`.
pub async fn patch_me(
    State(portal): State<Portal>,
    me: ApiUser,
    body: Result<Json<MePatch>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(patch)) = body else {
        return api_error(StatusCode::BAD_REQUEST, "the body is not a valid change");
    };
    let change = ProfileChange {
        username: patch.username,
        name: patch.name,
        email: patch.email,
        locale: patch.locale,
    };
    answer(
        portal
            .accounts
            .update_profile(&me.actor(), me.username(), change)
            .await,
    )
}

fn answer(result: Result<Profile, AccountError>) -> Response {
    match result {
        Ok(p) => Json(Me::from(p)).into_response(),
        Err(e) => error(e),
    }
}

/// An account refusal as an API error: the text of refusals the caller
/// can act on, a generic text (and a log line) for the rest.
pub(super) fn error(e: AccountError) -> Response {
    let status = match &e {
        AccountError::Denied(_) => StatusCode::FORBIDDEN,
        AccountError::NotFound(_) => StatusCode::NOT_FOUND,
        AccountError::AlreadyExists(_) => StatusCode::CONFLICT,
        AccountError::Invalid(_) | AccountError::Password(_) => StatusCode::BAD_REQUEST,
        AccountError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        AccountError::Store(_) | AccountError::Internal(_) => {
            tracing::error!(error = %e, "portal API");
            return api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    api_error(status, &e.to_string())
}
