//! Replays the fuzzers' seed corpus and every crash they ever found (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) through the same functions the cargo-fuzz targets call, so a
//! plain `cargo test` on stable catches a regression. Any panic fails the test, naming the file.
//! The Kraken targets' seeds also include the recorded payloads in `tests/fixtures/kraken`
//! (`ws_*.json`, `rest_*.json`), read from there rather than kept twice.

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

/// The recorded Kraken payloads whose names start with `prefix`.
fn fixtures(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kraken");
    let found: Vec<PathBuf> = files(&dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
        .collect();
    assert!(!found.is_empty(), "no {prefix}*.json in {}", dir.display());
    found
}

fn replay(target: &str, run: fn(&[u8])) {
    replay_with(target, Vec::new(), run);
}

fn replay_with(target: &str, fixtures: Vec<PathBuf>, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut seeds = files(&root.join("seeds").join(target));
    seeds.extend(fixtures);
    assert!(!seeds.is_empty(), "no seed inputs in fuzz/seeds/{target}");
    let regressions = files(&root.join("regressions").join(target));
    for path in seeds.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
    }
    eprintln!(
        "{target}: {} seeds, {} regressions replayed",
        seeds.len(),
        regressions.len()
    );
}

#[test]
fn kraken_ws_corpus() {
    replay_with("kraken_ws", fixtures("ws_"), nanotrader::fuzzing::kraken_ws);
}

#[test]
fn kraken_rest_corpus() {
    replay_with("kraken_rest", fixtures("rest_"), nanotrader::fuzzing::kraken_rest);
}

#[test]
fn csv_loader_corpus() {
    replay("csv_loader", nanotrader::fuzzing::csv_loader);
}

#[test]
fn config_corpus() {
    replay("config", nanotrader::fuzzing::config);
}
