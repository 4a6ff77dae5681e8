//! Fetches the dashboard's chart library from the npm registry (pinned by web/package-lock.json,
//! checked against the lock's integrity hashes by `npm ci`) into OUT_DIR, where this crate embeds
//! it. Nothing third-party is kept in the repository, and the source tree is left untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

const LIBRARY_FILE: &str = "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js";

fn main() {
    println!("cargo::rerun-if-changed=../../web/package.json");
    println!("cargo::rerun-if-changed=../../web/package-lock.json");
    println!("cargo::rerun-if-env-changed=NANOTRADER_CHARTS_JS");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = out_dir.join("lightweight-charts.js");
    let source = match std::env::var_os("NANOTRADER_CHARTS_JS") {
        Some(path) => PathBuf::from(path),
        None => match install(&out_dir.join("npm")) {
            Ok(path) => path,
            Err(message) => {
                println!("cargo::error={message}");
                return;
            }
        },
    };
    if let Err(e) = std::fs::copy(&source, &target) {
        println!(
            "cargo::error=cannot copy the chart library from {}: {e}",
            source.display()
        );
        return;
    }
    let hashes = std::fs::read_to_string(&target)
        .map(|library| inline_style_hashes(&library))
        .unwrap_or_default();
    if hashes.is_empty() {
        println!("cargo::warning=no inline style found in the chart library: the CSP will block its logo style");
    }
    if let Err(e) = std::fs::write(out_dir.join("csp_style_hashes.txt"), hashes) {
        println!("cargo::error=cannot write the CSP hashes: {e}");
    }
}

/// The CSP sources (`'sha256-...'`) of the `<style>` texts the library inserts (`innerText="..."`
/// after `createElement("style")`), so a strict CSP can allow exactly those.
fn inline_style_hashes(library: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    const STYLE: &str = "createElement(\"style\")";
    const TEXT: &str = "innerText=\"";
    let mut sources = Vec::new();
    for (at, _) in library.match_indices(STYLE) {
        let rest = &library[at..];
        let Some(start) = rest.find(TEXT).map(|i| i + TEXT.len()) else {
            continue;
        };
        let Some(len) = rest[start..].find('"') else {
            continue;
        };
        let digest = sha2::Sha256::digest(&rest.as_bytes()[start..start + len]);
        sources.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
    }
    sources.join(" ")
}

/// `npm ci` into `dir` unless the lock there already equals ours (then it is installed).
fn install(dir: &Path) -> Result<PathBuf, String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../../web");
    let lock = read(&manifest.join("package-lock.json"))?;
    let library = dir.join(LIBRARY_FILE);
    if library.is_file() && read(&dir.join("package-lock.json")).is_ok_and(|installed| installed == lock) {
        return Ok(library);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(manifest.join(file), dir.join(file)).map_err(|e| format!("cannot copy web/{file}: {e}"))?;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let output = Command::new(npm)
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()
        .map_err(|e| {
            format!(
                "the dashboard's chart library is installed from the npm registry at build time, but `npm` \
                 cannot run ({e}): install Node.js and npm, or set NANOTRADER_CHARTS_JS to a copy of \
                 lightweight-charts.standalone.production.js"
            )
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        return Err(format!("`npm ci` for the dashboard's chart library failed: {first}"));
    }
    if !library.is_file() {
        return Err(format!(
            "npm installed the chart library but {} is missing",
            library.display()
        ));
    }
    Ok(library)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
