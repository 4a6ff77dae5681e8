//! Webhook URLs carry their credential in the URL itself (Slack's and Discord's path, Telegram's
//! bot token, a `?token=`), so a URL is shown or logged only redacted.

use url::Url;

const HIDDEN: &str = "***";

/// The URL with its secrets replaced by `***`: the userinfo password, every query value (keys
/// kept), the fragment, and the path segments that look like secrets: Telegram's `bot<token>`,
/// Slack's `/services/T…/B…/<secret>`, Discord's `/api/webhooks/<id>/<token>`, and any segment of
/// 20 or more of `[A-Za-z0-9_-]`. A string that does not parse as a URL is hidden whole.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(parsed) => redact(&parsed).0.to_string(),
        Err(_) => HIDDEN.to_owned(),
    }
}

/// The redacted URL and the secret texts taken out of it.
fn redact(url: &Url) -> (Url, Vec<String>) {
    let mut out = url.clone();
    let mut secrets = Vec::new();
    if let Some(password) = url.password() {
        secrets.push(password.to_owned());
        // Only fails for URLs that cannot have a password, and this one has one.
        let _ = out.set_password(Some(HIDDEN));
    }
    if url.query().is_some() {
        let keys: Vec<String> = url
            .query_pairs()
            .map(|(k, v)| {
                secrets.push(v.into_owned());
                k.into_owned()
            })
            .collect();
        let mut pairs = out.query_pairs_mut();
        pairs.clear();
        for key in keys {
            pairs.append_pair(&key, HIDDEN);
        }
    }
    if let Some(fragment) = url.fragment() {
        secrets.push(fragment.to_owned());
        out.set_fragment(Some(HIDDEN));
    }
    if let Some(segments) = url.path_segments() {
        let segments: Vec<&str> = segments.collect();
        let hide: Vec<bool> = (0..segments.len()).map(|i| is_secret_segment(&segments, i)).collect();
        if hide.contains(&true) {
            let path: Vec<&str> = segments
                .iter()
                .zip(&hide)
                .map(|(segment, &hide)| {
                    if hide {
                        secrets.push((*segment).to_owned());
                        HIDDEN
                    } else {
                        segment
                    }
                })
                .collect();
            // The segments are still percent-encoded, and set_path keeps escapes as they are.
            out.set_path(&path.join("/"));
        }
    }
    secrets.retain(|s| !s.is_empty());
    (out, secrets)
}

fn is_secret_segment(segments: &[&str], i: usize) -> bool {
    let segment = segments[i];
    // Telegram: /bot<id>:<token>/sendMessage.
    let telegram = segment
        .strip_prefix("bot")
        .is_some_and(|rest| rest.split_once(':').is_some_and(|(id, _)| is_digits(id)));
    // Slack: /services/T<team>/B<hook>/<secret>; the team and hook ids are not secret.
    let slack = i >= 3 && segments[0] == "services";
    // Discord: /api[/v10]/webhooks/<id>/<token>[/slack|/github].
    let discord = i >= 2 && segments[i - 2] == "webhooks";
    let long_token = segment.len() >= 20
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    telegram || slack || discord || long_token
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Hides one webhook's secrets in any text about it: the URL shown redacted, and the secrets
/// themselves wherever a message from another crate (an HTTP error's chain, a receiver's answer)
/// may have copied them.
#[derive(Clone, Debug)]
pub(crate) struct Redactor {
    shown: String,
    secrets: Vec<String>,
}

/// Shorter secrets are not searched for in text: a `chat_id=42` would mangle every "42" in a
/// message, and such short values are not credentials.
const MIN_SCRUBBED: usize = 6;

impl Redactor {
    pub(crate) fn new(url: &Url) -> Self {
        let (shown, mut secrets) = redact(url);
        secrets.retain(|s| s.len() >= MIN_SCRUBBED);
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self {
            shown: shown.to_string(),
            secrets,
        }
    }

    /// The URL, redacted.
    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    /// `text` with this URL's secrets replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), HIDDEN);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_bot_token_and_chat_id() {
        assert_eq!(
            redact_url("https://api.telegram.org/bot123456789:AAH-abc_DEF/sendMessage?chat_id=-100123"),
            "https://api.telegram.org/***/sendMessage?chat_id=***"
        );
    }

    #[test]
    fn slack_secret_segment() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX"),
            "https://hooks.slack.com/services/T0001/B0002/***"
        );
        // Short secrets are caught by their place, not only their length.
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T1/B2/short"),
            "https://hooks.slack.com/services/T1/B2/***"
        );
    }

    #[test]
    fn discord_token_segment() {
        assert_eq!(
            redact_url("https://discord.com/api/webhooks/123456789012345678/tok-en_abc"),
            "https://discord.com/api/webhooks/123456789012345678/***"
        );
        assert_eq!(
            redact_url("https://discord.com/api/v10/webhooks/1234/abc/slack"),
            "https://discord.com/api/v10/webhooks/1234/***/slack"
        );
    }

    #[test]
    fn userinfo_password_query_values_and_fragment() {
        assert_eq!(
            redact_url("https://alice:hunter2@example.com/hook?token=abc&x=1&flag#frag"),
            "https://alice:***@example.com/hook?token=***&x=***&flag=***#***"
        );
        // A user without a password stays as it is.
        assert_eq!(
            redact_url("http://alice@127.0.0.1:8080/hook"),
            "http://alice@127.0.0.1:8080/hook"
        );
    }

    #[test]
    fn long_token_segments_anywhere() {
        assert_eq!(
            redact_url("https://example.com/hooks/abcdefghij0123456789/send"),
            "https://example.com/hooks/***/send"
        );
        // 19 characters, or a character outside the class: kept.
        assert_eq!(
            redact_url("https://example.com/abcdefghij012345678/a.b.c.d.e.f.g.h.i.j.k"),
            "https://example.com/abcdefghij012345678/a.b.c.d.e.f.g.h.i.j.k"
        );
    }

    #[test]
    fn plain_urls_unchanged_and_garbage_hidden() {
        assert_eq!(
            redact_url("http://127.0.0.1:9000/alerts"),
            "http://127.0.0.1:9000/alerts"
        );
        assert_eq!(redact_url("not a url with a secret"), "***");
    }

    #[test]
    fn redactor_scrubs_secrets_from_text() {
        let url =
            Url::parse("https://u:pa55word@api.telegram.org/bot42:SECRETTOKEN/sendMessage?chat_id=42&key=k3y-value")
                .unwrap();
        let r = Redactor::new(&url);
        assert_eq!(
            r.url(),
            "https://u:***@api.telegram.org/***/sendMessage?chat_id=***&key=***"
        );
        let text = format!("error for {url}: HTTP 429, key k3y-value, chat 42");
        let scrubbed = r.scrub(&text);
        for secret in ["pa55word", "SECRETTOKEN", "k3y-value"] {
            assert!(!scrubbed.contains(secret), "{scrubbed}");
        }
        assert!(
            scrubbed.contains("HTTP 429") && scrubbed.contains("chat 42"),
            "{scrubbed}"
        );
    }
}
