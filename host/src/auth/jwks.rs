//! The issuer's signing keys: owns fetching its JWKS (found through its discovery document
//! unless `jwks_url` names it), keeping the keys by `kid`, and fetching again when a token
//! names a key not held yet, at most once per `jwks_min_refetch_seconds`.
//!
//! Every fetch is bounded (time, bytes, keys). It never decides whether a token is valid; it
//! only answers "this is the key for that `kid`".

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

use super::AuthError;

/// The largest JWKS or discovery document read; a real issuer's is a few KiB.
pub(crate) const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys kept from one JWKS; the rest are ignored.
pub(crate) const MAX_JWKS_KEYS: usize = 32;
/// How long one fetch of the discovery document or the JWKS may take.
pub(crate) const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One signing key the issuer published.
#[derive(Clone)]
pub(crate) struct PublishedKey {
    pub key: DecodingKey,
}

/// The keys of one issuer, fetched on demand.
pub(crate) struct JwksCache {
    issuer: String,
    configured_url: Option<String>,
    http: reqwest::Client,
    min_refetch: Duration,
    keys: RwLock<Arc<HashMap<String, PublishedKey>>>,
    /// When the last fetch was tried (held across a fetch, so one runs at a time).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    pub(crate) fn new(
        issuer: &str,
        jwks_url: Option<String>,
        min_refetch: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            configured_url: jwks_url,
            http,
            min_refetch,
            keys: RwLock::new(Arc::new(HashMap::new())),
            last_fetch: tokio::sync::Mutex::new(None),
        })
    }

    fn held(&self) -> Arc<HashMap<String, PublishedKey>> {
        self.keys
            .read()
            .map(|keys| keys.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The key a token's `kid` names: from the cache, else after one (rate-limited) fetch.
    pub(crate) async fn key_for(&self, kid: &str) -> Result<PublishedKey, AuthError> {
        if let Some(key) = self.held().get(kid) {
            return Ok(key.clone());
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.held().get(kid) {
            return Ok(key.clone());
        }
        let may_fetch = last_fetch.is_none_or(|at| at.elapsed() >= self.min_refetch);
        if may_fetch {
            *last_fetch = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => {
                    tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the issuer's signing keys");
                    let keys = Arc::new(keys);
                    match self.keys.write() {
                        Ok(mut held) => *held = keys,
                        Err(poisoned) => *poisoned.into_inner() = keys,
                    }
                }
                Err(detail) => {
                    tracing::warn!(issuer = %self.issuer, %detail, "could not fetch the issuer's signing keys");
                    if self.held().is_empty() {
                        return Err(AuthError::IssuerUnavailable(
                            "the token issuer's keys cannot be fetched".into(),
                        ));
                    }
                }
            }
        } else if self.held().is_empty() {
            return Err(AuthError::IssuerUnavailable(
                "the token issuer's keys cannot be fetched".into(),
            ));
        }
        self.held().get(kid).cloned().ok_or_else(|| {
            AuthError::Invalid(format!("the token is signed by an unknown key ({kid:?})"))
        })
    }

    async fn fetch(&self) -> Result<HashMap<String, PublishedKey>, String> {
        let url = match &self.configured_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!("{}/.well-known/openid-configuration", self.issuer);
                let document = self.get_json(&discovery).await?;
                document
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{discovery} names no jwks_uri"))?
                    .to_owned()
            }
        };
        let document = self.get_json(&url).await?;
        Ok(keys_of(&document))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("GET {url}: larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

/// The signature keys of a JWKS document by `kid`: encryption keys, keys without a `kid` and
/// keys this crate cannot read are skipped; at most [`MAX_JWKS_KEYS`].
pub(crate) fn keys_of(document: &Value) -> HashMap<String, PublishedKey> {
    let Some(keys) = document.get("keys").and_then(Value::as_array) else {
        return HashMap::new();
    };
    keys.iter()
        .filter(|key| key.get("use").and_then(Value::as_str) != Some("enc"))
        .filter_map(|key| {
            let jwk: Jwk = serde_json::from_value(key.clone()).ok()?;
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((kid, PublishedKey { key }))
        })
        .take(MAX_JWKS_KEYS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_signature_keys_by_kid() {
        let document = json!({"keys": [
            {"kid": "sig-1", "kty": "RSA", "alg": "RS256", "use": "sig",
             "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
             "e": "AQAB"},
            {"kid": "enc-1", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kid": "odd", "kty": "weird"},
        ]});
        let keys = keys_of(&document);
        assert_eq!(keys.len(), 1, "{:?}", keys.keys().collect::<Vec<_>>());
        assert!(keys.contains_key("sig-1"));
        assert!(keys_of(&json!({"nope": 1})).is_empty());
    }

    /// A JWKS served on loopback that counts its fetches; `sig-1` is the key it publishes.
    async fn serve_jwks(
        fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> (String, tokio::task::JoinHandle<()>) {
        use std::sync::atomic::Ordering;
        let document = json!({"keys": [
            {"kid": "sig-1", "kty": "RSA", "alg": "RS256", "use": "sig",
             "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
             "e": "AQAB"}]});
        let app = axum::Router::new().route(
            "/certs",
            axum::routing::get(move || {
                let fetches = fetches.clone();
                let document = document.clone();
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    axum::Json(document)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, server)
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_interval_and_cached_keys_outlive_the_issuer()
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fetches = std::sync::Arc::new(AtomicUsize::new(0));
        let (url, server) = serve_jwks(fetches.clone()).await;
        let cache = JwksCache::new("http://unused", Some(url), Duration::from_secs(60)).unwrap();
        assert!(cache.key_for("sig-1").await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // A known kid is answered from the cache.
        assert!(cache.key_for("sig-1").await.is_ok());
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // An unknown kid within the interval: refused without asking the issuer again.
        let error = cache.key_for("rotated").await.err().unwrap();
        assert!(matches!(error, AuthError::Invalid(_)), "{error:?}");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // The issuer goes away: the cached key still verifies.
        server.abort();
        assert!(cache.key_for("sig-1").await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_kid_after_the_interval_refetches() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let fetches = std::sync::Arc::new(AtomicUsize::new(0));
        let (url, _server) = serve_jwks(fetches.clone()).await;
        let cache = JwksCache::new("http://unused", Some(url), Duration::ZERO).unwrap();
        assert!(cache.key_for("rotated").await.is_err());
        assert!(cache.key_for("rotated").await.is_err());
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert!(cache.key_for("sig-1").await.is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_issuer_without_cached_keys_is_unavailable() {
        let cache = JwksCache::new(
            "http://127.0.0.1:9/realms/nowhere",
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        let error = cache.key_for("any").await.err().unwrap();
        assert!(
            matches!(error, AuthError::IssuerUnavailable(_)),
            "{error:?}"
        );
        // Within the refetch interval it does not try again, and still says unavailable.
        let error = cache.key_for("any").await.err().unwrap();
        assert!(
            matches!(error, AuthError::IssuerUnavailable(_)),
            "{error:?}"
        );
    }
}
