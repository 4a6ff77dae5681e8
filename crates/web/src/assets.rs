//! The page and its assets, embedded in the binary. `NANOTRADER_WEB_DIR` serves our own files
//! (not the library) from disk instead, to work on the page without rebuilding.
//!
//! Each answer carries an ETag (a hash of its content) and `Cache-Control: no-cache`: a reload
//! asks again with `If-None-Match` and gets an empty 304 while the content is the same, so the
//! 256 KB chart library is fetched once, and an upgraded binary's page is never stale. (Fixed
//! URLs with validators keep index.html and app.js as they are; hashed file names would not.)

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use headers::{ETag, HeaderMapExt, IfNoneMatch};
use sha2::{Digest, Sha256};

use super::errors::ApiError;

const INDEX_HTML: &str = include_str!("../../../web/src/index.html");
const APP_JS: &str = include_str!("../../../web/src/app.js");
const THEME_CSS: &str = include_str!("../../../web/src/theme.css");
const STYLE_CSS: &str = include_str!("../../../web/src/style.css");
const RUNS_HTML: &str = include_str!("../../../web/src/runs.html");
const RUNS_JS: &str = include_str!("../../../web/src/runs.js");
const CHARTS_JS: &str = nanotrader_charts::LIGHTWEIGHT_CHARTS_JS;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

struct Asset {
    /// The file under web/src (and `NANOTRADER_WEB_DIR`); `None` for the library.
    file: Option<&'static str>,
    body: &'static str,
    kind: &'static str,
    /// Hashed once, on first use.
    etag: LazyLock<ETag>,
}

static INDEX: Asset = Asset {
    file: Some("index.html"),
    body: INDEX_HTML,
    kind: HTML,
    etag: LazyLock::new(|| etag_of(INDEX_HTML)),
};
static APP: Asset = Asset {
    file: Some("app.js"),
    body: APP_JS,
    kind: JS,
    etag: LazyLock::new(|| etag_of(APP_JS)),
};
static THEME: Asset = Asset {
    file: Some("theme.css"),
    body: THEME_CSS,
    kind: CSS,
    etag: LazyLock::new(|| etag_of(THEME_CSS)),
};
static STYLE: Asset = Asset {
    file: Some("style.css"),
    body: STYLE_CSS,
    kind: CSS,
    etag: LazyLock::new(|| etag_of(STYLE_CSS)),
};
static RUNS_PAGE: Asset = Asset {
    file: Some("runs.html"),
    body: RUNS_HTML,
    kind: HTML,
    etag: LazyLock::new(|| etag_of(RUNS_HTML)),
};
static RUNS_SCRIPT: Asset = Asset {
    file: Some("runs.js"),
    body: RUNS_JS,
    kind: JS,
    etag: LazyLock::new(|| etag_of(RUNS_JS)),
};
static CHARTS: Asset = Asset {
    file: None,
    body: CHARTS_JS,
    kind: JS,
    etag: LazyLock::new(|| etag_of(CHARTS_JS)),
};

/// A weak validator: the compression layer may send the same content gzip- or br-encoded, which
/// a strong one would have to tell apart (RFC 9110, 8.8.1). If-None-Match compares weakly anyway.
fn etag_of(content: &str) -> ETag {
    let digest = Sha256::digest(content.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
        .parse()
        .expect("a quoted hex string is an entity tag")
}

/// The asset at `path` (`/`, `/assets/...`): 200 with its content, 304 when the request's
/// `If-None-Match` names its current ETag, or 404.
pub fn asset(path: &str, request: &HeaderMap) -> Response {
    let asset = match path {
        "/" | "/index.html" => &INDEX,
        "/assets/app.js" => &APP,
        "/assets/theme.css" => &THEME,
        "/assets/style.css" => &STYLE,
        // The fleet dashboard's runs list (`/` and `/runs` of `nanotrader serve`).
        "/runs.html" => &RUNS_PAGE,
        "/assets/runs.js" => &RUNS_SCRIPT,
        "/assets/lightweight-charts.js" => &CHARTS,
        _ => return ApiError::not_found("no such asset").into_response(),
    };
    let from_disk = asset
        .file
        .zip(std::env::var_os("NANOTRADER_WEB_DIR"))
        .and_then(|(file, dir)| std::fs::read_to_string(std::path::Path::new(&dir).join(file)).ok());
    let (body, etag): (Cow<'static, str>, Cow<'_, ETag>) = match from_disk {
        Some(text) => {
            let etag = etag_of(&text);
            (text.into(), Cow::Owned(etag))
        }
        None => (asset.body.into(), Cow::Borrowed(&*asset.etag)),
    };
    let unchanged = request
        .typed_get::<IfNoneMatch>()
        .is_some_and(|wanted| !wanted.precondition_passes(&etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = axum::body::Body::from(body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.kind));
        response
    };
    let headers = response.headers_mut();
    headers.typed_insert(etag.into_owned());
    // Always revalidated: cheap with the ETag, and never stale after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The compression layer says so on answers it may encode; a 304 must say it too (RFC 9110,
    // 15.4.5), and the layer leaves bodiless answers alone.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag(response: &Response) -> HeaderValue {
        response.headers()[header::ETAG].clone()
    }

    #[test]
    fn an_unchanged_asset_is_a_304_without_a_body() {
        let first = asset("/assets/lightweight-charts.js", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let tag = etag(&first);
        assert!(tag.to_str().unwrap().starts_with("W/\""), "{tag:?}");
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-cache");

        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, tag.clone());
        let second = asset("/assets/lightweight-charts.js", &again);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(etag(&second), tag);
        assert_eq!(second.headers()[header::VARY], "accept-encoding");
        assert!(second.headers().get(header::CONTENT_TYPE).is_none());

        // Another asset's tag, or a stale one, gets the content.
        let other = etag(&asset("/assets/app.js", &HeaderMap::new()));
        assert_ne!(other, tag);
        let mut stale = HeaderMap::new();
        stale.insert(header::IF_NONE_MATCH, other);
        assert_eq!(asset("/assets/lightweight-charts.js", &stale).status(), StatusCode::OK);
        // A list, and the strong spelling of the same tag, match (weak comparison).
        let strong = tag.to_str().unwrap().trim_start_matches("W/").to_owned();
        let mut list = HeaderMap::new();
        list.insert(header::IF_NONE_MATCH, format!("\"x\", {strong}").parse().unwrap());
        assert_eq!(
            asset("/assets/lightweight-charts.js", &list).status(),
            StatusCode::NOT_MODIFIED
        );
    }

    #[test]
    fn unknown_assets_are_404() {
        assert_eq!(
            asset("/assets/nope.js", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
