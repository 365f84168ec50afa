//! Bearer JWTs: owns checking a token (signature against the issuer's key, `iss`, `aud`,
//! `exp`/`nbf` with leeway) with `jsonwebtoken`, and reading its caller from the claims
//! (`sub`, the roles claim, the service claim). Only asymmetric algorithms are accepted:
//! a host holds public keys, never a shared secret.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::jwks::JwksCache;
use super::{AuthError, Caller};
use crate::config::JwtConfig;

/// The signature algorithms accepted (RSA and EC); `HS*` and `none` never are.
const ACCEPTED_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Where the verifying keys come from.
enum Keys {
    /// `public_key_pem`: one key, whatever the `kid`.
    Static(DecodingKey),
    /// The issuer's JWKS, by `kid`.
    Published(JwksCache),
}

/// How claims name a caller's roles and identity (`[auth.jwt]`).
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub roles_claim: String,
    pub customer_role: String,
    pub service_role: String,
    pub admin_role: String,
    pub service_claim: String,
}

/// Checks bearer tokens of one issuer.
pub(crate) struct JwtVerifier {
    keys: Keys,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
    rules: ClaimRules,
}

impl JwtVerifier {
    pub(crate) fn from_config(config: &JwtConfig) -> anyhow::Result<Self> {
        let keys = match &config.public_key_pem {
            Some(pem) => Keys::Static(
                DecodingKey::from_rsa_pem(pem.as_bytes())
                    .or_else(|_| DecodingKey::from_ec_pem(pem.as_bytes()))
                    .map_err(|e| {
                        anyhow::anyhow!("auth.jwt.public_key_pem is no RSA or EC public key: {e}")
                    })?,
            ),
            None => Keys::Published(JwksCache::new(
                &config.issuer,
                config.jwks_url.clone(),
                Duration::from_secs(config.jwks_min_refetch_seconds),
            )?),
        };
        Ok(Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_seconds: config.leeway_seconds,
            rules: ClaimRules {
                roles_claim: config.roles_claim.clone(),
                customer_role: config.customer_role.clone(),
                service_role: config.service_role.clone(),
                admin_role: config.admin_role.clone(),
                service_claim: config.service_claim.clone(),
            },
        })
    }

    /// The caller a valid token names, or why it is not valid.
    pub(crate) async fn caller(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("the bearer token is not a JWT: {e}")))?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = match &self.keys {
            Keys::Static(key) => key.clone(),
            Keys::Published(cache) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
                cache.key_for(kid).await?.key
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_seconds;
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(format!("the token is not valid: {}", why(&e))))?;
        caller_from_claims(&data.claims, &self.rules)
    }
}

/// A short reason for the answer (the library's own words name no secrets).
fn why(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "it is for another audience".into(),
        ErrorKind::InvalidIssuer => "it is from another issuer".into(),
        ErrorKind::InvalidSignature => "its signature does not verify".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no `{claim}` claim"),
        other => format!("{other:?}"),
    }
}

/// The claim at a dotted path (`realm_access.roles`).
fn claim_at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(claims, |value, segment| value.get(segment))
}

/// The roles a claim lists: a JSON array of strings, or one space-separated string (`scope`).
fn roles_in(claim: Option<&Value>) -> Vec<&str> {
    match claim {
        Some(Value::Array(roles)) => roles.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(roles)) => roles.split_whitespace().collect(),
        _ => Vec::new(),
    }
}

/// Which caller a valid token's claims name: admin, else service, else customer (a token
/// carrying several roles gets the strongest); none of the roles is `403`.
pub(crate) fn caller_from_claims(claims: &Value, rules: &ClaimRules) -> Result<Caller, AuthError> {
    let roles = roles_in(claim_at(claims, &rules.roles_claim));
    let has = |role: &str| roles.contains(&role);
    if has(&rules.admin_role) {
        return Ok(Caller::Admin);
    }
    if has(&rules.service_role) {
        let name = claims
            .get(&rules.service_claim)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                AuthError::Invalid(format!(
                    "the service token has no `{}` claim naming the service",
                    rules.service_claim
                ))
            })?;
        return Ok(Caller::Service {
            name: name.to_owned(),
        });
    }
    if has(&rules.customer_role) {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or_else(|| AuthError::Invalid("the token has no subject (sub)".into()))?;
        return Ok(Caller::Customer {
            subject: subject.to_owned(),
        });
    }
    Err(AuthError::Forbidden(format!(
        "the token carries none of the roles {:?}, {:?} or {:?} (claim `{}`)",
        rules.customer_role, rules.service_role, rules.admin_role, rules.roles_claim
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ClaimRules {
        let config = JwtConfig::default();
        ClaimRules {
            roles_claim: config.roles_claim,
            customer_role: config.customer_role,
            service_role: config.service_role,
            admin_role: config.admin_role,
            service_claim: config.service_claim,
        }
    }

    #[test]
    fn a_customer_is_the_tokens_subject() {
        let claims = json!({"sub": "f3a1", "azp": "orderpipe-web",
                            "realm_access": {"roles": ["offline_access", "customer"]}});
        assert_eq!(
            caller_from_claims(&claims, &rules()),
            Ok(Caller::Customer {
                subject: "f3a1".into()
            })
        );
    }

    #[test]
    fn a_service_is_named_by_its_client() {
        let claims = json!({"sub": "9c2e", "azp": "payments",
                            "realm_access": {"roles": ["service"]}});
        assert_eq!(
            caller_from_claims(&claims, &rules()),
            Ok(Caller::Service {
                name: "payments".into()
            })
        );
        let nameless = json!({"sub": "9c2e", "realm_access": {"roles": ["service"]}});
        assert!(matches!(
            caller_from_claims(&nameless, &rules()),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn admin_wins_over_other_roles() {
        let claims = json!({"sub": "a", "realm_access": {"roles": ["customer", "admin"]}});
        assert_eq!(caller_from_claims(&claims, &rules()), Ok(Caller::Admin));
    }

    #[test]
    fn no_known_role_is_forbidden() {
        for claims in [
            json!({"sub": "a", "realm_access": {"roles": ["offline_access"]}}),
            json!({"sub": "a"}),
            json!({"sub": "a", "realm_access": {"roles": "customer-ish"}}),
        ] {
            assert!(
                matches!(
                    caller_from_claims(&claims, &rules()),
                    Err(AuthError::Forbidden(_))
                ),
                "{claims}"
            );
        }
    }

    #[test]
    fn roles_may_be_a_space_separated_claim_at_any_depth() {
        let mut rules = rules();
        rules.roles_claim = "scope".into();
        let claims = json!({"sub": "u1", "scope": "openid customer"});
        assert_eq!(
            caller_from_claims(&claims, &rules),
            Ok(Caller::Customer {
                subject: "u1".into()
            })
        );
        rules.roles_claim = "resource_access.orderpipe.roles".into();
        let claims =
            json!({"sub": "u1", "resource_access": {"orderpipe": {"roles": ["customer"]}}});
        assert!(caller_from_claims(&claims, &rules).is_ok());
    }
}
