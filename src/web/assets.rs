//! The page and its assets, embedded in the binary. `NANOTRADER_WEB_DIR` serves our own files
//! (not the library) from disk instead, to work on the page without rebuilding.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/src/index.html");
const APP_JS: &str = include_str!("../../web/src/app.js");
const THEME_CSS: &str = include_str!("../../web/src/theme.css");
const STYLE_CSS: &str = include_str!("../../web/src/style.css");
const CHARTS_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/lightweight-charts.js"));

/// The asset at `path` (`/`, `/assets/...`), or 404.
pub fn asset(path: &str) -> Response {
    let (name, body, kind): (&str, &'static str, &str) = match path {
        "/" | "/index.html" => ("index.html", INDEX_HTML, "text/html; charset=utf-8"),
        "/assets/app.js" => ("app.js", APP_JS, "text/javascript; charset=utf-8"),
        "/assets/theme.css" => ("theme.css", THEME_CSS, "text/css; charset=utf-8"),
        "/assets/style.css" => ("style.css", STYLE_CSS, "text/css; charset=utf-8"),
        "/assets/lightweight-charts.js" => ("", CHARTS_JS, "text/javascript; charset=utf-8"),
        _ => return super::errors::ApiError::not_found("no such asset").into_response(),
    };
    let body = match std::env::var_os("NANOTRADER_WEB_DIR") {
        Some(dir) if !name.is_empty() => match std::fs::read_to_string(std::path::Path::new(&dir).join(name)) {
            Ok(text) => text.into(),
            Err(_) => body.into(),
        },
        _ => axum::body::Body::from(body),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(kind).expect("static content type"),
    );
    // The page must be fresh after an upgrade; the library only changes with the binary.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
