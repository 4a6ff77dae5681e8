//! Kraken's request authentication (reference 4.1): `API-Sign`, nonces, the decaying counters
//! and the ids and tokens the private API hands out.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256, Sha512};
use tokio::time::Instant;

type HmacSha512 = Hmac<Sha512>;

/// The HMAC over `uri_path ++ SHA256(nonce ++ post_data)`, keyed by the decoded secret; `None`
/// when the secret is not base64.
fn mac(secret_b64: &str, uri_path: &str, nonce: &str, post_data: &[u8]) -> Option<HmacSha512> {
    let mut sha = Sha256::new();
    sha.update(nonce.as_bytes());
    sha.update(post_data);
    let inner = sha.finalize();
    let key = STANDARD.decode(secret_b64).ok()?;
    let mut mac = HmacSha512::new_from_slice(&key).ok()?;
    mac.update(uri_path.as_bytes());
    mac.update(&inner);
    Some(mac)
}

/// `API-Sign` as a client computes it (used by the tests; the mock only verifies).
#[cfg(test)]
pub(crate) fn api_sign(secret_b64: &str, uri_path: &str, nonce: &str, post_data: &[u8]) -> String {
    mac(secret_b64, uri_path, nonce, post_data)
        .map(|mac| STANDARD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `signature` (base64) signs this request; compared in constant time.
pub(crate) fn verify(secret_b64: &str, uri_path: &str, nonce: &str, post_data: &[u8], signature: &str) -> bool {
    let Ok(signature) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(secret_b64, uri_path, nonce, post_data).is_some_and(|mac| mac.verify_slice(&signature).is_ok())
}

/// A counter that goes up by cost and decays linearly with wall time (Kraken's API and trading
/// counters).
#[derive(Clone, Copy, Debug)]
pub(super) struct Decaying {
    value: f64,
    at: Instant,
}

impl Decaying {
    pub(super) fn new() -> Self {
        Self {
            value: 0.0,
            at: Instant::now(),
        }
    }

    pub(super) fn value(&self, decay_per_sec: f64) -> f64 {
        let elapsed = Instant::now().saturating_duration_since(self.at).as_secs_f64();
        (self.value - elapsed * decay_per_sec).max(0.0)
    }

    /// Adds `cost` unless that would take the counter above `max`; false when refused (the
    /// refused call adds nothing).
    pub(super) fn try_add(&mut self, cost: f64, max: f64, decay_per_sec: f64) -> bool {
        let now = self.value(decay_per_sec);
        if now + cost > max {
            return false;
        }
        self.value = now + cost;
        self.at = Instant::now();
        true
    }
}

/// Kraken-style ids: `OU22CG-KLAF2-FWUDD7` for orders (`O`), `T…` trades, `L…` ledger entries.
pub(super) fn kraken_id(prefix: char) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut pick = |n| {
        (0..n)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect::<String>()
    };
    format!("{prefix}{}-{}-{}", pick(5), pick(5), pick(6))
}

/// A WebSocket token like Kraken's: 43 characters of base64 (32 random bytes, unpadded).
pub(super) fn ws_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Checks a configured secret is base64, as Kraken's are.
pub(super) fn decodes(secret_b64: &str) -> Result<(), String> {
    STANDARD
        .decode(secret_b64)
        .map(drop)
        .map_err(|e| format!("the API secret is not base64: {e}"))
}
