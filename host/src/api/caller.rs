//! The request's [`Caller`] as a handler argument: reads `Authorization: Bearer` and
//! `X-Api-Key` and asks the host's [`crate::auth::Authenticator`]. A request the
//! authenticator refuses is answered `401` (with `WWW-Authenticate`), `403` or `503` before
//! the handler runs. It never decides what the caller may do; `auth::roles` does.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::{ApiError, AppState};
use crate::auth::{API_KEY_HEADER, Caller, Credentials};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.auth.is_open() {
            return Ok(Caller::Anyone);
        }
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token);
        let api_key = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|value| value.to_str().ok());
        Ok(state.auth.identify(Credentials { bearer, api_key }).await?)
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
