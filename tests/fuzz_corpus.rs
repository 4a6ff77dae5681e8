//! Replays the fuzzers' seed corpus and every crash they ever found (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) through the same functions the cargo-fuzz targets call, so a
//! plain `cargo test` on stable catches a regression. Any panic fails the test, naming the file.

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

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds = files(&root.join("seeds").join(target));
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
    replay("kraken_ws", nanotrader::fuzzing::kraken_ws);
}

#[test]
fn kraken_rest_corpus() {
    replay("kraken_rest", nanotrader::fuzzing::kraken_rest);
}

#[test]
fn csv_loader_corpus() {
    replay("csv_loader", nanotrader::fuzzing::csv_loader);
}

#[test]
fn config_corpus() {
    replay("config", nanotrader::fuzzing::config);
}
