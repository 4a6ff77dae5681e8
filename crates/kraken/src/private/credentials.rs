//! The API key and its decoded secret. Neither is ever printed: `Debug` and `Display` say
//! `<redacted>`, and both are wiped from memory when dropped.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use super::sign::api_sign;

/// Environment variables read by [`Credentials::from_env`]: the documented names first, then
/// the original program's lower-case ones.
pub const ENV_KEY: [&str; 2] = ["KRAKEN_API_KEY", "kraken_key"];
pub const ENV_SECRET: [&str; 2] = ["KRAKEN_API_SECRET", "kraken_secret"];

/// Decoded secret lengths we accept. Kraken's secrets are 64 bytes; anything far from that is a
/// truncated paste or the wrong value, better refused at start-up than as `EAPI:Invalid signature`.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 32..=128;

/// Why credentials could not be had. Messages never contain the key or the secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialsError {
    /// Names the variables (with their fallbacks) that are unset or empty.
    #[error("Kraken credentials missing: set {0}")]
    Missing(String),
    #[error("the Kraken API key is empty")]
    EmptyKey,
    #[error("the Kraken API key has characters that cannot go in an HTTP header")]
    KeyNotPrintable,
    #[error("the Kraken API secret is empty")]
    EmptySecret,
    /// Deliberately without the decoder's detail, which quotes a character of the secret.
    #[error("the Kraken API secret is not valid base64 (standard alphabet, with padding)")]
    SecretNotBase64,
    #[error("the Kraken API secret decodes to {0} bytes; Kraken's are 64")]
    SecretLength(usize),
}

#[derive(Clone)]
pub struct Credentials {
    key: Zeroizing<String>,
    secret: Zeroizing<Vec<u8>>,
}

impl Credentials {
    /// `key` as shown by Kraken, `secret_b64` the base64 secret. Surrounding whitespace (a
    /// newline from a file or a paste) is ignored.
    pub fn new(key: &str, secret_b64: &str) -> Result<Self, CredentialsError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(CredentialsError::EmptyKey);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CredentialsError::KeyNotPrintable);
        }
        let secret_b64 = secret_b64.trim();
        if secret_b64.is_empty() {
            return Err(CredentialsError::EmptySecret);
        }
        let secret = Zeroizing::new(
            STANDARD
                .decode(secret_b64)
                .map_err(|_| CredentialsError::SecretNotBase64)?,
        );
        if !SECRET_BYTES.contains(&secret.len()) {
            return Err(CredentialsError::SecretLength(secret.len()));
        }
        Ok(Self {
            key: Zeroizing::new(key.to_owned()),
            secret,
        })
    }

    /// From `KRAKEN_API_KEY`/`KRAKEN_API_SECRET`, else `kraken_key`/`kraken_secret`.
    pub fn from_env() -> Result<Self, CredentialsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env) with another source of variables (tests, a config file).
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let first = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
                .map(Zeroizing::new)
        };
        let (key, secret) = (first(ENV_KEY), first(ENV_SECRET));
        match (key, secret) {
            (Some(key), Some(secret)) => Self::new(&key, &secret),
            (key, secret) => {
                let missing: Vec<String> = [(key.is_none(), ENV_KEY), (secret.is_none(), ENV_SECRET)]
                    .into_iter()
                    .filter(|(missing, _)| *missing)
                    .map(|(_, [name, fallback])| format!("{name} (or {fallback})"))
                    .collect();
                Err(CredentialsError::Missing(missing.join(" and ")))
            }
        }
    }

    /// The `API-Key` header value. Goes to Kraken only: never log it.
    pub fn api_key(&self) -> &str {
        &self.key
    }

    /// The `API-Sign` of a request made with these credentials.
    pub fn sign(&self, uri_path: &str, nonce: &str, post_data: &str) -> String {
        api_sign(&self.secret, uri_path, nonce, post_data)
    }

    /// The decoded secret, for a verifier (the mock exchange, tests).
    pub fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// A short name for the key that does not reveal it: the first 8 bytes of its SHA-256, in
    /// hex. For file names (the nonce file) and logs that must tell keys apart.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(self.key.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &"<redacted>")
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kraken API key <redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "HBLPcbJ7Yc7kPnS3QJp8ZfSPwU5CB2qVYqSTbB04pF0yoXXXiqSHJA1p";
    /// The secret of Kraken's documented signing example (auth_vector.json).
    const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

    #[test]
    fn valid_credentials_sign_and_never_show_themselves() {
        let creds = Credentials::new(&format!(" {KEY}\n"), &format!("{SECRET}\n")).unwrap();
        assert_eq!(creds.api_key(), KEY);
        assert_eq!(creds.secret().len(), 64);
        let post = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25";
        assert_eq!(
            creds.sign("/0/private/AddOrder", "1616492376594", post),
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
        let shown = format!("{creds:?} {creds} {creds:#?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&KEY[..8]) && !shown.contains(&SECRET[..8]), "{shown}");
        let fp = creds.fingerprint();
        assert_eq!(fp.len(), 16);
        assert!(!KEY.contains(&fp));
        assert_eq!(fp, Credentials::new(KEY, SECRET).unwrap().fingerprint());
        let other = Credentials::new("another-key", SECRET).unwrap();
        assert_ne!(fp, other.fingerprint());
    }

    #[test]
    fn bad_credentials_are_typed_errors() {
        let short = STANDARD.encode([1u8; 16]);
        for (key, secret, expected) in [
            ("", SECRET, CredentialsError::EmptyKey),
            ("  \n", SECRET, CredentialsError::EmptyKey),
            ("a key", SECRET, CredentialsError::KeyNotPrintable),
            ("ké", SECRET, CredentialsError::KeyNotPrintable),
            (KEY, "", CredentialsError::EmptySecret),
            (KEY, "not base64!", CredentialsError::SecretNotBase64),
            (KEY, &SECRET[..SECRET.len() - 1], CredentialsError::SecretNotBase64),
            (KEY, &short, CredentialsError::SecretLength(16)),
        ] {
            assert_eq!(
                Credentials::new(key, secret).unwrap_err(),
                expected,
                "{key:?} {secret:?}"
            );
        }
        // The message of a bad secret quotes nothing of it.
        let msg = Credentials::new(KEY, "kQH5HW-8p1uGOVjb").unwrap_err().to_string();
        assert!(!msg.contains("kQH5") && !msg.contains('-'), "{msg}");
    }

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn environment_names_and_fallbacks() {
        let documented = [("KRAKEN_API_KEY", KEY), ("KRAKEN_API_SECRET", SECRET)];
        assert_eq!(Credentials::from_lookup(lookup(&documented)).unwrap().api_key(), KEY);
        let original = [("kraken_key", "old"), ("kraken_secret", SECRET)];
        assert_eq!(Credentials::from_lookup(lookup(&original)).unwrap().api_key(), "old");
        // The documented name wins; an empty one falls back.
        let both = [
            ("KRAKEN_API_KEY", ""),
            ("kraken_key", "old"),
            ("KRAKEN_API_SECRET", SECRET),
        ];
        assert_eq!(Credentials::from_lookup(lookup(&both)).unwrap().api_key(), "old");

        let none = Credentials::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(
            none,
            CredentialsError::Missing("KRAKEN_API_KEY (or kraken_key) and KRAKEN_API_SECRET (or kraken_secret)".into())
        );
        let no_secret = Credentials::from_lookup(lookup(&[("kraken_key", KEY)])).unwrap_err();
        assert_eq!(
            no_secret.to_string(),
            "Kraken credentials missing: set KRAKEN_API_SECRET (or kraken_secret)"
        );
        let bad = [("KRAKEN_API_KEY", KEY), ("KRAKEN_API_SECRET", "%%%")];
        assert_eq!(
            Credentials::from_lookup(lookup(&bad)).unwrap_err(),
            CredentialsError::SecretNotBase64
        );
    }
}
