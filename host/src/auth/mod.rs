//! Who is calling, and what they may do: owns turning a request's credential (a bearer JWT, an
//! `X-Api-Key`, the admin token) into a [`Caller`], and the role rules every pipeline route
//! applies to one ([`roles`]).
//!
//! It never reads a store or a record and never answers HTTP itself: the API asks it for a
//! caller and a verdict and maps [`AuthError`] to `401`/`403`/`503`. With `[auth] mode =
//! "none"` (the default) every request is [`Caller::Anyone`] and nothing is checked.

mod api_keys;
mod jwks;
mod jwt;
pub(crate) mod roles;

use std::sync::Arc;

use crate::config::{AuthConfig, AuthMode};

pub(crate) use api_keys::ApiKeys;
pub use api_keys::digest_of;
pub(crate) use jwt::JwtVerifier;

/// The longest credential read from a header: a JWT from a real issuer is 1–3 KiB; anything
/// far longer is refused before it is parsed.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The header a service's API key travels in.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// Who a request comes from, as the role rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `mode = "none"`: nobody is identified and everything is allowed (today's open API).
    Anyone,
    /// A person: owns the records created with their token's subject.
    Customer { subject: String },
    /// A service (a client-credentials token or an API key), named as in `[auth.services]`.
    Service { name: String },
    /// The admin token, or a token with the admin role: every record, every event.
    Admin,
}

/// Why a request is not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No credential where one is required (`401`).
    #[error("{0}")]
    Missing(String),
    /// A credential that does not prove anything: bad signature, expired, another audience,
    /// unknown key (`401`).
    #[error("{0}")]
    Invalid(String),
    /// Valid, but this caller may not do this (`403`).
    #[error("{0}")]
    Forbidden(String),
    /// The token's issuer cannot be reached and none of its keys is cached (`503`).
    #[error("{0}")]
    IssuerUnavailable(String),
}

/// The credentials one request carries, as read from its headers.
#[derive(Debug, Default)]
pub(crate) struct Credentials<'a> {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<&'a str>,
    /// `X-Api-Key: <key>`.
    pub api_key: Option<&'a str>,
}

/// Turns credentials into a [`Caller`] per the configured modes. One per host, shared.
pub struct Authenticator {
    /// What each role may do on the pipelines.
    pub(crate) permissions: roles::Permissions,
    open: bool,
    jwt: Option<JwtVerifier>,
    api_keys: Option<ApiKeys>,
    admin_token: Option<String>,
}

impl Authenticator {
    /// Builds the authenticator `[auth]` asks for (fetching nothing yet: the JWKS is read on
    /// the first token).
    pub(crate) fn from_config(
        config: &AuthConfig,
        admin_token: Option<String>,
    ) -> anyhow::Result<Arc<Self>> {
        let modes = config.enabled_modes();
        let jwt = if modes.contains(&AuthMode::Jwt) {
            Some(JwtVerifier::from_config(&config.jwt)?)
        } else {
            None
        };
        let api_keys = modes
            .contains(&AuthMode::ApiKeys)
            .then(|| ApiKeys::from_config(&config.api_keys));
        Ok(Arc::new(Self {
            permissions: roles::Permissions::from_config(config),
            open: config.is_open(),
            jwt,
            api_keys,
            admin_token,
        }))
    }

    /// Whether bearer JWTs are accepted (`mode = "jwt"`).
    pub(crate) fn accepts_jwt(&self) -> bool {
        self.jwt.is_some()
    }

    /// Whether service API keys are accepted (`mode = "api_keys"`).
    pub(crate) fn accepts_api_keys(&self) -> bool {
        self.api_keys.is_some()
    }

    /// Whether requests are served without credentials.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// Who presents these credentials, or why they prove nothing.
    pub(crate) async fn identify(&self, credentials: Credentials<'_>) -> Result<Caller, AuthError> {
        if self.open {
            return Ok(Caller::Anyone);
        }
        if let Some(key) = credentials.api_key {
            if key.len() > MAX_TOKEN_BYTES {
                return Err(AuthError::Invalid("the API key is too long".into()));
            }
            return match &self.api_keys {
                Some(keys) => keys
                    .service_for(key)
                    .map(|name| Caller::Service { name })
                    .ok_or_else(|| AuthError::Invalid("the API key is not known".into())),
                None => Err(AuthError::Invalid(
                    "API keys are not accepted by this host".into(),
                )),
            };
        }
        let Some(token) = credentials.bearer else {
            return Err(AuthError::Missing(self.how_to_authenticate()));
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "the bearer token is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if let Some(admin) = &self.admin_token
            && api_keys::same_secret(token.as_bytes(), admin.as_bytes())
        {
            return Ok(Caller::Admin);
        }
        match &self.jwt {
            Some(verifier) => verifier.caller(token).await,
            None => Err(AuthError::Invalid(
                "bearer tokens are not accepted by this host (use X-Api-Key)".into(),
            )),
        }
    }

    fn how_to_authenticate(&self) -> String {
        match (&self.jwt, &self.api_keys) {
            (Some(_), Some(_)) => {
                "authentication required: send `Authorization: Bearer <token>` or `X-Api-Key`"
            }
            (None, Some(_)) => "authentication required: send `X-Api-Key: <key>`",
            _ => "authentication required: send `Authorization: Bearer <token>`",
        }
        .into()
    }
}
