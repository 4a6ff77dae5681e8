//! The fills CSV (`ts,side,qty,price,fee,cash_after,position_after`): one format for `fills --csv`
//! and a backtest's `--trades` file, exact values.

use std::io::{self, Write};

use nanotrader_broker::Fill;

use crate::exact::write_plain;

/// The trades CSV's first line.
pub const FILLS_CSV_HEADER: &[u8] = b"ts,side,qty,price,fee,cash_after,position_after\n";

/// The trades CSV's rows for `fills` (what `write_fills_csv` writes after its header), added to
/// `out`: for a backtest that formats its fills as they are made.
pub fn push_fill_rows(out: &mut Vec<u8>, fills: &[Fill]) {
    for f in fills {
        write_fill_row(out, f).expect("writing to memory does not fail");
    }
}

pub fn write_fills_csv(out: &mut impl Write, fills: &[Fill]) -> io::Result<()> {
    use rayon::prelude::*;
    out.write_all(FILLS_CSV_HEADER)?;
    // Formatted in blocks on all cores (a backtest's 100,000 fills are 8 MB of text), written
    // in order.
    let blocks: Vec<io::Result<Vec<u8>>> = fills
        .par_chunks(8192)
        .map(|block| {
            let mut text = Vec::with_capacity(block.len() * 80);
            for f in block {
                write_fill_row(&mut text, f)?;
            }
            Ok(text)
        })
        .collect();
    for block in blocks {
        out.write_all(&block?)?;
    }
    Ok(())
}

fn write_fill_row(out: &mut impl Write, f: &Fill) -> io::Result<()> {
    if f.ts.nanos() % 1_000_000_000 == 0 {
        out.write_all(itoa::Buffer::new().format(f.ts.secs()).as_bytes())?;
    } else {
        out.write_all(f.ts.unix_secs_text().as_bytes())?;
    }
    out.write_all(b",")?;
    out.write_all(f.side.as_str().as_bytes())?;
    for value in [f.qty, f.price, f.fee, f.cash_after, f.position_after] {
        out.write_all(b",")?;
        write_plain(out, value)?;
    }
    out.write_all(b"\n")
}
