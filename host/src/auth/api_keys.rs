//! Service API keys: owns matching a presented key against the configured SHA-256 digests.
//! Keys themselves are never configured, stored or logged; only their digests are.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::config::ApiKeyConfig;

/// The configured keys, by digest.
pub(crate) struct ApiKeys {
    keys: Vec<([u8; 32], String)>,
}

impl ApiKeys {
    /// Keeps each key's digest (already checked to be 64 hex digits by the config) and service.
    pub(crate) fn from_config(keys: &[ApiKeyConfig]) -> Self {
        Self {
            keys: keys
                .iter()
                .filter_map(|key| Some((hex_digest(&key.digest)?, key.service.clone())))
                .collect(),
        }
    }

    /// The service this key belongs to. Every configured digest is compared, in constant
    /// time, so timings say nothing about which one nearly matched.
    pub(crate) fn service_for(&self, key: &str) -> Option<String> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (digest, service) in &self.keys {
            if same_secret(&presented, digest) {
                found = Some(service.clone());
            }
        }
        found
    }
}

/// The SHA-256 digest (hex) an `[[auth.api_keys]]` entry holds for `key`.
pub fn digest_of(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Equal secrets, compared in constant time (`subtle`).
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

fn hex_digest(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (n, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        digest[n] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, secret: &str, service: &str) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            digest: digest_of(secret),
            service: service.into(),
        }
    }

    #[test]
    fn a_key_is_known_by_its_digest_only() {
        let keys = ApiKeys::from_config(&[
            key("payments-1", "pay-key-0123456789", "payments"),
            key("warehouse-1", "wh-key-0123456789", "warehouse"),
        ]);
        assert_eq!(
            keys.service_for("pay-key-0123456789").as_deref(),
            Some("payments")
        );
        assert_eq!(
            keys.service_for("wh-key-0123456789").as_deref(),
            Some("warehouse")
        );
        assert_eq!(keys.service_for("pay-key-012345678"), None);
        assert_eq!(keys.service_for(""), None);
    }

    #[test]
    fn digest_is_hex_sha256() {
        // printf %s abc | sha256sum
        assert_eq!(
            digest_of("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex_digest(&digest_of("abc")).is_some());
        assert!(hex_digest("xyz").is_none());
    }
}
