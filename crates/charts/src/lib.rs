//! The chart library the dashboard and the backtest report draw with (lightweight-charts), as
//! fetched from the npm registry at build time at the version `web/package-lock.json` pins
//! (build.rs), and the CSP sources its inline style needs. Nothing third-party is kept in the
//! repository.
//!
//! It owns getting the library and what a page must allow for it; it must not know the pages.

/// `lightweight-charts.standalone.production.js`.
pub const LIGHTWEIGHT_CHARTS_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/lightweight-charts.js"));

/// The CSP sources (`'sha256-...'`, space-separated) of the `<style>` texts the library inserts,
/// so that a strict `style-src` can allow exactly those.
pub const INLINE_STYLE_SOURCES: &str = include_str!(concat!(env!("OUT_DIR"), "/csp_style_hashes.txt"));
