//! The fills CSV (`ts,side,qty,price,fee,cash_after,position_after`): one format for `fills --csv`
//! and a backtest's `--trades` file, exact values, written by the `csv` crate.

use std::io::{self, Write};

use nanotrader_broker::Fill;

use crate::exact::write_plain;

/// The fills CSV's columns.
pub const FILLS_CSV_COLUMNS: [&str; 7] = ["ts", "side", "qty", "price", "fee", "cash_after", "position_after"];

/// The fills CSV's first line, for rows made ahead (`push_fill_rows`).
pub const FILLS_CSV_HEADER: &[u8] = b"ts,side,qty,price,fee,cash_after,position_after\n";

/// The fills CSV's rows for `fills` (what `write_fills_csv` writes after its header), added to
/// `out`: for a backtest that formats its fills as they are made, on the core beside the books.
///
/// Written by hand, not by the csv crate, for a measured reason: on the 2M-bar trades benchmark
/// (BENCHMARKS.md section 8, 118,065 rows) the csv crate's writer, even without quoting, made
/// the backtest's compute 7 ms (20 %) and the whole run 10 % slower. The fields need no quoting
/// (numbers, `buy`, `sell`); a test holds the two writers' bytes equal.
pub fn push_fill_rows(out: &mut Vec<u8>, fills: &[Fill]) {
    for f in fills {
        write_fill_row(out, f);
    }
}

fn write_fill_row(out: &mut Vec<u8>, f: &Fill) {
    if f.ts.nanos() % 1_000_000_000 == 0 {
        out.extend_from_slice(itoa::Buffer::new().format(f.ts.secs()).as_bytes());
    } else {
        out.extend_from_slice(f.ts.unix_secs_text().as_bytes());
    }
    out.push(b',');
    out.extend_from_slice(f.side.as_str().as_bytes());
    for value in [f.qty, f.price, f.fee, f.cash_after, f.position_after] {
        out.push(b',');
        write_plain(out, value).expect("writing to memory does not fail");
    }
    out.push(b'\n');
}

pub fn write_fills_csv(out: &mut impl Write, fills: &[Fill]) -> io::Result<()> {
    use rayon::prelude::*;
    out.write_all(FILLS_CSV_HEADER)?;
    // Formatted in blocks on all cores (a backtest's 100,000 fills are 8 MB of text), written
    // in order.
    let blocks: Vec<io::Result<Vec<u8>>> = fills
        .par_chunks(8192)
        .map(|block| write_rows(Vec::with_capacity(block.len() * 80), block))
        .collect();
    for block in blocks {
        out.write_all(&block?)?;
    }
    Ok(())
}

/// A run's stored fills (`fills --csv`): the fills CSV's columns, then `order_id,trade_id`, the
/// ids the broker gave. A paper fill is its order's one trade: both are the run's order id.
pub fn write_run_fills_csv(out: &mut impl Write, fills: &[Fill]) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = FILLS_CSV_COLUMNS.to_vec();
    header.extend(["order_id", "trade_id"]);
    csv.write_record(&header)?;
    let rows = write_rows(Vec::new(), fills)?;
    for (line, f) in rows.split(|&b| b == b'\n').zip(fills) {
        let id = f.order_id.to_string();
        let mut record: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        record.extend([id.as_bytes(), id.as_bytes()]);
        csv.write_record(&record)?;
    }
    csv.flush()
}

/// `fills` as CSV records after what `out` holds. The fields are exact decimals made without
/// allocating (`write_plain`); the csv crate joins, quotes (never needed here) and ends them.
fn write_rows<W: Write>(out: W, fills: &[Fill]) -> io::Result<W> {
    // Numbers and `buy`/`sell` never need quotes: not looking for characters that would is
    // 14 % of a 2M-bar backtest's whole run with its trades file (118,065 rows).
    let mut csv = csv::WriterBuilder::new()
        .has_headers(false)
        .quote_style(csv::QuoteStyle::Never)
        .buffer_capacity(64 << 10)
        .from_writer(out);
    let mut fields: [Vec<u8>; 7] = Default::default();
    for f in fills {
        for field in &mut fields {
            field.clear();
        }
        if f.ts.nanos() % 1_000_000_000 == 0 {
            fields[0].extend_from_slice(itoa::Buffer::new().format(f.ts.secs()).as_bytes());
        } else {
            fields[0].extend_from_slice(f.ts.unix_secs_text().as_bytes());
        }
        fields[1].extend_from_slice(f.side.as_str().as_bytes());
        for (field, value) in fields[2..]
            .iter_mut()
            .zip([f.qty, f.price, f.fee, f.cash_after, f.position_after])
        {
            write_plain(field, value)?;
        }
        csv.write_record(&fields)?;
    }
    csv.into_inner().map_err(|e| e.into_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_rows_are_the_csv_crates_rows() {
        use nanotrader_market::{Side, Timestamp};
        let fill = |ts: Timestamp, side, qty: &str, price: &str| Fill {
            order_id: 1,
            ts,
            side,
            qty: qty.parse().unwrap(),
            price: price.parse().unwrap(),
            fee: "0.1234".parse().unwrap(),
            cash_after: "-0.000001".parse().unwrap(),
            position_after: "0".parse().unwrap(),
            realized_pnl: rust_decimal::Decimal::ZERO,
        };
        let fills = [
            fill(Timestamp::from_secs(1_500_000_000), Side::Buy, "0.021", "4659.99"),
            fill(
                Timestamp::from_millis(1_500_000_017_250),
                Side::Sell,
                "1000000",
                "0.00000001",
            ),
        ];
        let mut quick = Vec::new();
        push_fill_rows(&mut quick, &fills);
        let kept = write_rows(Vec::new(), &fills).unwrap();
        assert_eq!(String::from_utf8(quick).unwrap(), String::from_utf8(kept).unwrap());
    }

    #[test]
    fn a_runs_fills_end_with_the_brokers_ids() {
        use nanotrader_market::{Side, Timestamp};
        let fill = Fill {
            order_id: 7,
            ts: Timestamp::from_secs(60),
            side: Side::Sell,
            qty: "0.5".parse().unwrap(),
            price: "100".parse().unwrap(),
            fee: "0".parse().unwrap(),
            cash_after: "50".parse().unwrap(),
            position_after: "0".parse().unwrap(),
            realized_pnl: rust_decimal::Decimal::ZERO,
        };
        let mut out = Vec::new();
        write_run_fills_csv(&mut out, &[fill]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ts,side,qty,price,fee,cash_after,position_after,order_id,trade_id\n60,sell,0.5,100,0,50,0,7,7\n"
        );
    }

    #[test]
    fn the_header_names_the_columns() {
        assert_eq!(
            FILLS_CSV_HEADER,
            format!("{}\n", FILLS_CSV_COLUMNS.join(",")).as_bytes()
        );
    }
}
