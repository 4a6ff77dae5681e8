//! The request body for each receiver.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use url::Url;

use crate::config::NotifyFormat;
use crate::event::Event;

/// The longest text each chat receiver takes (Discord: 2,000 characters, Telegram: 4,096); a
/// longer one is refused with a 400, which is not retried, so it is cut instead.
const DISCORD_MAX: usize = 2000;
const TELEGRAM_MAX: usize = 4096;

/// The body of `event` for `format`. `at` is when the event was queued: the JSON body's `"ts"`
/// unless the event has its own (a fill's time). `chat_id` is Telegram's, from the URL.
pub(crate) fn render(format: NotifyFormat, event: &Event, at: DateTime<Utc>, chat_id: Option<&str>) -> Value {
    let text = event.text();
    match format {
        NotifyFormat::Json => {
            let mut body = match serde_json::to_value(event) {
                Ok(Value::Object(map)) => map,
                // A tagged enum of plain fields always serializes to an object.
                _ => Map::new(),
            };
            body.insert("text".into(), Value::String(text));
            body.entry("ts").or_insert_with(|| json!(at));
            Value::Object(body)
        }
        NotifyFormat::Slack => json!({ "text": text }),
        NotifyFormat::Discord => json!({ "content": cut(text, DISCORD_MAX) }),
        NotifyFormat::Telegram => {
            let mut body = json!({ "text": cut(text, TELEGRAM_MAX) });
            if let Some(chat_id) = chat_id {
                body["chat_id"] = Value::String(chat_id.to_owned());
            }
            body
        }
    }
}

/// Telegram's `chat_id`, given in the webhook URL's query.
pub(crate) fn chat_id(url: &Url) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == "chat_id")
        .map(|(_, v)| v.into_owned())
}

fn cut(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => {
            let mut cut = text[..end].to_owned();
            cut.pop();
            cut.push('…');
            cut
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00.5Z").unwrap().to_utc()
    }

    fn stopped() -> Event {
        Event::Stopped {
            run: 3,
            pair: "BTC/USD".into(),
            reason: "ctrl-c".into(),
        }
    }

    #[test]
    fn json_body_adds_text_and_ts() {
        assert_eq!(
            render(NotifyFormat::Json, &stopped(), at(), None),
            json!({
                "event": "stopped", "run": 3, "pair": "BTC/USD", "reason": "ctrl-c",
                "text": "Stopped run 3 on BTC/USD: ctrl-c", "ts": "2024-05-01T12:00:00.500Z"
            })
        );
    }

    #[test]
    fn chat_bodies() {
        let text = "Stopped run 3 on BTC/USD: ctrl-c";
        assert_eq!(
            render(NotifyFormat::Slack, &stopped(), at(), Some("1")),
            json!({ "text": text })
        );
        assert_eq!(
            render(NotifyFormat::Discord, &stopped(), at(), None),
            json!({ "content": text })
        );
        assert_eq!(
            render(NotifyFormat::Telegram, &stopped(), at(), Some("-100")),
            json!({ "text": text, "chat_id": "-100" })
        );
        assert_eq!(
            render(NotifyFormat::Telegram, &stopped(), at(), None),
            json!({ "text": text })
        );
    }

    #[test]
    fn store_outage_and_recovery_bodies() {
        let down = Event::StoreDown {
            run: 4,
            detail: "database is locked".into(),
        };
        let up = Event::StoreUp {
            run: 4,
            detail: "writes work again".into(),
        };
        assert_eq!(
            render(NotifyFormat::Json, &down, at(), None),
            json!({
                "event": "store_down", "run": 4, "detail": "database is locked",
                "text": "Store down: database is locked (run 4)", "ts": "2024-05-01T12:00:00.500Z"
            })
        );
        assert_eq!(render(NotifyFormat::Json, &up, at(), None)["event"], json!("store_up"));
        let text = "Store back: writes work again (run 4)";
        assert_eq!(render(NotifyFormat::Slack, &up, at(), None), json!({ "text": text }));
        assert_eq!(
            render(NotifyFormat::Discord, &up, at(), None),
            json!({ "content": text })
        );
        assert_eq!(
            render(NotifyFormat::Telegram, &up, at(), Some("-100")),
            json!({ "text": text, "chat_id": "-100" })
        );
    }

    #[test]
    fn chat_id_from_the_url() {
        let url = Url::parse("https://api.telegram.org/bot1:x/sendMessage?chat_id=-1001&a=b").unwrap();
        assert_eq!(chat_id(&url).as_deref(), Some("-1001"));
        assert_eq!(chat_id(&Url::parse("http://h/x").unwrap()), None);
    }

    #[test]
    fn long_texts_are_cut_to_the_receiver_limit() {
        let long = Event::StoreDown {
            run: 1,
            detail: "é".repeat(5000),
        };
        let body = render(NotifyFormat::Discord, &long, at(), None);
        let content = body["content"].as_str().unwrap();
        assert_eq!(content.chars().count(), DISCORD_MAX);
        assert!(content.ends_with('…'));
        assert_eq!(cut("short".into(), 10), "short");
    }
}
