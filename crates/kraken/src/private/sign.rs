//! Kraken's `API-Sign` (README 4.1): `base64(HMAC-SHA512(secret, uri_path ++ SHA256(nonce ++ body)))`,
//! and the form body it is computed over, encoded once so that what is signed is what is sent.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

type HmacSha512 = Hmac<Sha512>;

/// The `API-Sign` header of a private request. `secret` is the *decoded* API secret, `post_data`
/// the exact body bytes sent (which also start with `nonce=<nonce>`).
pub fn api_sign(secret: &[u8], uri_path: &str, nonce: &str, post_data: &str) -> String {
    STANDARD.encode(mac(secret, uri_path, nonce, post_data).finalize().into_bytes())
}

/// Checks an `API-Sign` in constant time, the way Kraken does: for a mock exchange and tests.
pub fn verify_api_sign(secret: &[u8], uri_path: &str, nonce: &str, post_data: &str, api_sign: &str) -> bool {
    let Ok(tag) = STANDARD.decode(api_sign) else {
        return false;
    };
    mac(secret, uri_path, nonce, post_data).verify_slice(&tag).is_ok()
}

/// SHA-256 of the nonce followed by the body: raw 32 bytes, not hex.
fn inner_digest(nonce: &str, post_data: &str) -> [u8; 32] {
    let mut sha = Sha256::new();
    sha.update(nonce.as_bytes());
    sha.update(post_data.as_bytes());
    sha.finalize().into()
}

fn mac(secret: &[u8], uri_path: &str, nonce: &str, post_data: &str) -> HmacSha512 {
    // HMAC takes a key of any length (long ones are hashed), so this cannot fail.
    let mut mac = HmacSha512::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(uri_path.as_bytes());
    mac.update(&inner_digest(nonce, post_data));
    mac
}

/// A private request body: `nonce` first, then the fields in the order given, form-encoded
/// (`+` as `%2B`, space as `+`). Encoded once: the same text is signed and sent.
pub fn form_body(nonce: &str, fields: &[(&str, &str)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    body.append_pair("nonce", nonce);
    for (name, value) in fields {
        body.append_pair(name, value);
    }
    body.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::fixture;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        secret: String,
        nonce: String,
        uri_path: String,
        post_data: String,
        expected_api_sign: String,
        intermediate: Intermediate,
    }

    #[derive(serde::Deserialize)]
    struct Intermediate {
        sha256_nonce_plus_post_data_hex: String,
        decoded_secret_length_bytes: usize,
        hmac_sha512_hex: String,
    }

    fn vector() -> Vector {
        serde_json::from_str(&fixture("vectors/auth_vector.json")).unwrap()
    }

    #[test]
    fn known_answer_from_krakens_docs() {
        let v = vector();
        let secret = STANDARD.decode(&v.secret).unwrap();
        assert_eq!(secret.len(), v.intermediate.decoded_secret_length_bytes);
        assert_eq!(
            hex(&inner_digest(&v.nonce, &v.post_data)),
            v.intermediate.sha256_nonce_plus_post_data_hex
        );
        let tag = mac(&secret, &v.uri_path, &v.nonce, &v.post_data)
            .finalize()
            .into_bytes();
        assert_eq!(hex(&tag), v.intermediate.hmac_sha512_hex);
        assert_eq!(
            api_sign(&secret, &v.uri_path, &v.nonce, &v.post_data),
            v.expected_api_sign
        );
        assert!(verify_api_sign(
            &secret,
            &v.uri_path,
            &v.nonce,
            &v.post_data,
            &v.expected_api_sign
        ));
    }

    #[test]
    fn verification_refuses_any_change() {
        let v = vector();
        let secret = STANDARD.decode(&v.secret).unwrap();
        let ok = &v.expected_api_sign;
        assert!(!verify_api_sign(
            &secret,
            "/0/private/Balance",
            &v.nonce,
            &v.post_data,
            ok
        ));
        assert!(!verify_api_sign(
            &secret,
            &v.uri_path,
            "1616492376595",
            &v.post_data,
            ok
        ));
        let other_body = v.post_data.replace("1.25", "1.26");
        assert!(!verify_api_sign(&secret, &v.uri_path, &v.nonce, &other_body, ok));
        assert!(!verify_api_sign(&secret[1..], &v.uri_path, &v.nonce, &v.post_data, ok));
        assert!(!verify_api_sign(
            &secret,
            &v.uri_path,
            &v.nonce,
            &v.post_data,
            "not base64!"
        ));
    }

    #[test]
    fn the_docs_body_is_what_form_body_writes() {
        let v = vector();
        let fields = [
            ("ordertype", "limit"),
            ("pair", "XBTUSD"),
            ("price", "37500"),
            ("type", "buy"),
            ("volume", "1.25"),
        ];
        assert_eq!(form_body(&v.nonce, &fields), v.post_data);
    }

    #[test]
    fn form_body_escapes_what_form_encoding_must() {
        let body = form_body(
            "7",
            &[("starttm", "+5"), ("oflags", "post,fciq"), ("cl_ord_id", "a b&c=d/é")],
        );
        assert_eq!(
            body,
            "nonce=7&starttm=%2B5&oflags=post%2Cfciq&cl_ord_id=a+b%26c%3Dd%2F%C3%A9"
        );
        // What the server decodes is what was meant, and the signature covers the escaped text.
        let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        assert_eq!(decoded[1], ("starttm".into(), "+5".into()));
        assert_eq!(decoded[3], ("cl_ord_id".into(), "a b&c=d/é".into()));
        let secret = [7u8; 64];
        let sig = api_sign(&secret, "/0/private/AddOrder", "7", &body);
        assert!(verify_api_sign(&secret, "/0/private/AddOrder", "7", &body, &sig));
        let unescaped = "nonce=7&starttm=+5&oflags=post,fciq&cl_ord_id=a b&c=d/é";
        assert!(!verify_api_sign(&secret, "/0/private/AddOrder", "7", unescaped, &sig));
    }
}
