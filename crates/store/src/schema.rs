//! Schema migrations, applied in order and recorded in SQLite's `user_version`.
//!
//! Append new migrations; never edit one that has shipped. Money columns are TEXT holding exact
//! decimals, except the bar values: an INTEGER count of 1e-8 when that is exact (compact and
//! fast for millions of bars), else a BLOB of the decimal's text (the `ANY` columns have NUMERIC
//! affinity, which would turn TEXT into a rounded REAL; older stores may hold such REALs, see
//! `codec::fixed_from_sql`). Times are INTEGER milliseconds since the Unix epoch (UTC).
//!
//! Those exact forms are for nanotrader; people read the `*_v` views (README, "Reading the
//! store"): ISO 8601 UTC times as TEXT, unix seconds and REAL numbers, which `sqlite3` and pandas
//! take as they are.

pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE series (
        id            INTEGER PRIMARY KEY,
        identity      TEXT NOT NULL,
        pair          TEXT NOT NULL,
        interval_secs INTEGER NOT NULL,
        UNIQUE (identity, pair, interval_secs)
    );
    -- Closed bars only: a forming bar is never stored. open..volume: INTEGER units of 1e-8, or
    -- TEXT for a value with more than 8 decimals.
    CREATE TABLE bars (
        series_id INTEGER NOT NULL REFERENCES series(id),
        ts        INTEGER NOT NULL,
        open      ANY NOT NULL,
        high      ANY NOT NULL,
        low       ANY NOT NULL,
        close     ANY NOT NULL,
        volume    ANY NOT NULL,
        trades    INTEGER NOT NULL,
        PRIMARY KEY (series_id, ts)
    ) WITHOUT ROWID;
    -- Intervals with no bar: marked, never filled with an invented bar.
    CREATE TABLE gaps (
        series_id INTEGER NOT NULL REFERENCES series(id),
        from_ts   INTEGER NOT NULL,
        to_ts     INTEGER NOT NULL,
        missing   INTEGER NOT NULL,
        PRIMARY KEY (series_id, from_ts)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id            INTEGER PRIMARY KEY,
        run_key       TEXT NOT NULL,
        series_id     INTEGER NOT NULL REFERENCES series(id),
        status        TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'completed', 'failed')),
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        config        TEXT NOT NULL,
        source_params TEXT NOT NULL,
        initial_cash  TEXT NOT NULL,
        first_bar_ts  INTEGER,
        last_bar_ts   INTEGER,
        bars_seen     INTEGER NOT NULL DEFAULT 0,
        signal        INTEGER NOT NULL DEFAULT 0,
        next_order_id INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX runs_by_key ON runs (run_key, id);
    CREATE TABLE signals (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        ts     INTEGER NOT NULL,
        signal INTEGER NOT NULL,
        change INTEGER NOT NULL,
        PRIMARY KEY (run_id, ts)
    ) WITHOUT ROWID;
    CREATE TABLE orders (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        id     INTEGER NOT NULL,
        ts     INTEGER NOT NULL,
        side   TEXT NOT NULL,
        qty    TEXT NOT NULL,
        reason TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (run_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE fills (
        run_id         INTEGER NOT NULL REFERENCES runs(id),
        order_id       INTEGER NOT NULL,
        ts             INTEGER NOT NULL,
        side           TEXT NOT NULL,
        qty            TEXT NOT NULL,
        price          TEXT NOT NULL,
        fee            TEXT NOT NULL,
        cash_after     TEXT NOT NULL,
        position_after TEXT NOT NULL,
        realized_pnl   TEXT NOT NULL,
        PRIMARY KEY (run_id, order_id)
    ) WITHOUT ROWID;
    CREATE TABLE account_snapshots (
        run_id         INTEGER NOT NULL REFERENCES runs(id),
        ts             INTEGER NOT NULL,
        cash           TEXT NOT NULL,
        position       TEXT NOT NULL,
        avg_entry      TEXT,
        realized_pnl   TEXT NOT NULL,
        unrealized_pnl TEXT NOT NULL,
        equity         TEXT NOT NULL,
        fees_paid      TEXT NOT NULL,
        PRIMARY KEY (run_id, ts)
    ) WITHOUT ROWID;
    ",
    // 2: views for people (sqlite3, pandas, spreadsheets). The tables keep the exact values; the
    // views show them as ISO 8601 UTC TEXT (a fraction of a second only when the time has one;
    // the wall-clock created_at/updated_at always in milliseconds), unix seconds as REAL, and
    // numbers as REAL (the nearest double: for reading and plotting, not for accounts). A bar value
    // is an INTEGER of 1e-8 units (divided: one correctly rounded division), else a BLOB of its
    // text, else (older stores) a REAL. Each is ordered by its table's key.
    "
    CREATE VIEW bars_v AS
    SELECT b.series_id AS series_id,
           s.pair AS pair,
           s.interval_secs AS interval_secs,
           CASE WHEN b.ts % 1000 = 0 THEN strftime('%Y-%m-%dT%H:%M:%SZ', b.ts / 1000, 'unixepoch')
             ELSE strftime('%Y-%m-%dT%H:%M:%fZ', b.ts / 1000.0, 'unixepoch') END AS time,
           b.ts / 1000.0 AS unix_time,
           CASE typeof(b.open) WHEN 'integer' THEN b.open / 100000000.0
             WHEN 'blob' THEN CAST(CAST(b.open AS TEXT) AS REAL) ELSE CAST(b.open AS REAL) END AS open,
           CASE typeof(b.high) WHEN 'integer' THEN b.high / 100000000.0
             WHEN 'blob' THEN CAST(CAST(b.high AS TEXT) AS REAL) ELSE CAST(b.high AS REAL) END AS high,
           CASE typeof(b.low) WHEN 'integer' THEN b.low / 100000000.0
             WHEN 'blob' THEN CAST(CAST(b.low AS TEXT) AS REAL) ELSE CAST(b.low AS REAL) END AS low,
           CASE typeof(b.close) WHEN 'integer' THEN b.close / 100000000.0
             WHEN 'blob' THEN CAST(CAST(b.close AS TEXT) AS REAL) ELSE CAST(b.close AS REAL) END AS close,
           CASE typeof(b.volume) WHEN 'integer' THEN b.volume / 100000000.0
             WHEN 'blob' THEN CAST(CAST(b.volume AS TEXT) AS REAL) ELSE CAST(b.volume AS REAL) END AS volume,
           b.trades AS trades
    FROM bars b JOIN series s ON s.id = b.series_id
    ORDER BY b.series_id, b.ts;
    CREATE VIEW fills_v AS
    SELECT f.run_id AS run_id,
           s.pair AS pair,
           f.order_id AS order_id,
           CASE WHEN f.ts % 1000 = 0 THEN strftime('%Y-%m-%dT%H:%M:%SZ', f.ts / 1000, 'unixepoch')
             ELSE strftime('%Y-%m-%dT%H:%M:%fZ', f.ts / 1000.0, 'unixepoch') END AS time,
           f.ts / 1000.0 AS unix_time,
           f.side AS side,
           o.reason AS reason,
           CAST(f.qty AS REAL) AS qty,
           CAST(f.price AS REAL) AS price,
           CAST(f.fee AS REAL) AS fee,
           CAST(f.cash_after AS REAL) AS cash_after,
           CAST(f.position_after AS REAL) AS position_after,
           CAST(f.realized_pnl AS REAL) AS realized_pnl
    FROM fills f
    JOIN runs r ON r.id = f.run_id
    JOIN series s ON s.id = r.series_id
    LEFT JOIN orders o ON o.run_id = f.run_id AND o.id = f.order_id
    ORDER BY f.run_id, f.order_id;
    CREATE VIEW account_snapshots_v AS
    SELECT a.run_id AS run_id,
           CASE WHEN a.ts % 1000 = 0 THEN strftime('%Y-%m-%dT%H:%M:%SZ', a.ts / 1000, 'unixepoch')
             ELSE strftime('%Y-%m-%dT%H:%M:%fZ', a.ts / 1000.0, 'unixepoch') END AS time,
           a.ts / 1000.0 AS unix_time,
           CAST(a.cash AS REAL) AS cash,
           CAST(a.position AS REAL) AS position,
           CAST(a.avg_entry AS REAL) AS avg_entry,
           CAST(a.realized_pnl AS REAL) AS realized_pnl,
           CAST(a.unrealized_pnl AS REAL) AS unrealized_pnl,
           CAST(a.equity AS REAL) AS equity,
           CAST(a.fees_paid AS REAL) AS fees_paid
    FROM account_snapshots a
    ORDER BY a.run_id, a.ts;
    CREATE VIEW runs_v AS
    SELECT r.id AS run_id,
           s.pair AS pair,
           s.interval_secs AS interval_secs,
           r.series_id AS series_id,
           r.status AS status,
           strftime('%Y-%m-%dT%H:%M:%fZ', r.created_at / 1000.0, 'unixepoch') AS created_at,
           strftime('%Y-%m-%dT%H:%M:%fZ', r.updated_at / 1000.0, 'unixepoch') AS updated_at,
           CASE WHEN r.first_bar_ts % 1000 = 0 THEN strftime('%Y-%m-%dT%H:%M:%SZ', r.first_bar_ts / 1000, 'unixepoch')
             ELSE strftime('%Y-%m-%dT%H:%M:%fZ', r.first_bar_ts / 1000.0, 'unixepoch') END AS first_bar_time,
           CASE WHEN r.last_bar_ts % 1000 = 0 THEN strftime('%Y-%m-%dT%H:%M:%SZ', r.last_bar_ts / 1000, 'unixepoch')
             ELSE strftime('%Y-%m-%dT%H:%M:%fZ', r.last_bar_ts / 1000.0, 'unixepoch') END AS last_bar_time,
           r.bars_seen AS bars_seen,
           CAST(r.initial_cash AS REAL) AS initial_cash,
           (SELECT COUNT(*) FROM fills f WHERE f.run_id = r.id) AS fills,
           r.config AS config
    FROM runs r JOIN series s ON s.id = r.series_id
    ORDER BY r.id;
    ",
    // 3: the journal of orders sent to an exchange. A row is written (and committed) before its
    // order leaves, under the client order id the exchange will know it by; its state follows
    // what the exchange said (or what a lookup proved when the answer was lost).
    "
    CREATE TABLE exchange_orders (
        cl_ord_id  TEXT PRIMARY KEY,
        run_id     INTEGER NOT NULL REFERENCES runs(id),
        order_id   INTEGER NOT NULL,
        ts         INTEGER NOT NULL,
        side       TEXT NOT NULL,
        volume     TEXT NOT NULL,
        validate   INTEGER NOT NULL,
        state      TEXT NOT NULL,
        txid       TEXT,
        detail     TEXT,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX exchange_orders_by_run ON exchange_orders (run_id, order_id);
    CREATE TABLE exchange_fills (
        trade_id  TEXT PRIMARY KEY,
        run_id    INTEGER NOT NULL REFERENCES runs(id),
        order_id  INTEGER NOT NULL,
        cl_ord_id TEXT NOT NULL,
        txid      TEXT NOT NULL,
        ts        INTEGER NOT NULL,
        side      TEXT NOT NULL,
        qty       TEXT NOT NULL,
        price     TEXT NOT NULL,
        cost      TEXT NOT NULL,
        fee       TEXT NOT NULL
    );
    CREATE INDEX exchange_fills_by_run ON exchange_fills (run_id, ts);
    ",
    // 4: client ids committed ahead (state 'reserved'), so no commit sits between a decision and
    // its order: a reserved row has a client id and a run but no order yet, so the order's
    // columns may be NULL. SQLite cannot drop NOT NULL in place: the table is rebuilt, rows kept.
    "
    CREATE TABLE exchange_orders_v4 (
        cl_ord_id  TEXT PRIMARY KEY,
        run_id     INTEGER NOT NULL REFERENCES runs(id),
        order_id   INTEGER,
        ts         INTEGER,
        side       TEXT,
        volume     TEXT,
        validate   INTEGER NOT NULL,
        state      TEXT NOT NULL,
        txid       TEXT,
        detail     TEXT,
        updated_ms INTEGER NOT NULL,
        CHECK (state IN ('reserved', 'retired') OR (order_id IS NOT NULL AND ts IS NOT NULL
                                                    AND side IS NOT NULL AND volume IS NOT NULL))
    );
    INSERT INTO exchange_orders_v4 (cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail,
                                    updated_ms)
        SELECT cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail, updated_ms
        FROM exchange_orders;
    DROP TABLE exchange_orders;
    ALTER TABLE exchange_orders_v4 RENAME TO exchange_orders;
    CREATE INDEX exchange_orders_by_run ON exchange_orders (run_id, order_id);
    CREATE INDEX exchange_orders_reserved ON exchange_orders (run_id, state);
    ",
];

#[cfg(test)]
mod tests {
    use rusqlite::Connection;
    use rusqlite::types::Value::{self, Integer, Null, Real};

    fn migrated() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in super::MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Value>> {
        let mut stmt = conn.prepare(sql).unwrap();
        let width = stmt.column_count();
        stmt.query_map([], |r| (0..width).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn bars_v_shows_every_stored_time_and_value_form() {
        let conn = migrated();
        conn.execute_batch(
            "INSERT INTO series VALUES (1, 'data', 'BTC/USD', 60);
             -- INTEGER units of 1e-8 on a whole second; a BLOB of the text (more than 8 decimals)
             -- half a second later; an older store's REAL; a time before 1970.
             INSERT INTO bars VALUES (1, 1504396820000, 465269000000, 1, 100000000, 0, 663487803, 7);
             INSERT INTO bars VALUES (1, 1504396880500, CAST('0.123456789' AS BLOB), 1, 1, 1, 1, 0);
             INSERT INTO bars VALUES (1, 1504396940001, 218102.59507500002, 1, 1, 1, 1, 0);
             INSERT INTO bars VALUES (1, -1500, 1, 1, 1, 1, 1, 0);",
        )
        .unwrap();
        let got = rows(
            &conn,
            "SELECT time, unix_time, open, high, low, volume, trades, pair, interval_secs FROM bars_v",
        );
        let bar = |time: &str, unix: f64, open: f64, high: f64, low: f64, volume: f64, trades: i64| {
            vec![
                text(time),
                Real(unix),
                Real(open),
                Real(high),
                Real(low),
                Real(volume),
                Integer(trades),
                text("BTC/USD"),
                Integer(60),
            ]
        };
        assert_eq!(
            got,
            [
                bar("1969-12-31T23:59:58.500Z", -1.5, 1e-8, 1e-8, 1e-8, 1e-8, 0),
                bar("2017-09-03T00:00:20Z", 1504396820.0, 4652.69, 1e-8, 1.0, 6.63487803, 7),
                bar(
                    "2017-09-03T00:01:20.500Z",
                    1504396880.5,
                    0.123456789,
                    1e-8,
                    1e-8,
                    1e-8,
                    0
                ),
                bar(
                    "2017-09-03T00:02:20.001Z",
                    1504396940.001,
                    218102.59507500002,
                    1e-8,
                    1e-8,
                    1e-8,
                    0
                ),
            ],
            "ordered by time; a fraction of a second only when there is one; every value form as REAL"
        );
    }

    #[test]
    fn money_and_times_of_runs_fills_and_snapshots_read_as_real_and_iso() {
        let conn = migrated();
        conn.execute_batch(
            "INSERT INTO series VALUES (1, 'data', 'ETH/USD', 300);
             INSERT INTO runs (id, run_key, series_id, status, created_at, updated_at, config, source_params,
                               initial_cash, first_bar_ts, last_bar_ts, bars_seen)
                 VALUES (3, 'k', 1, 'completed', 1504396800123, 1504396860000, '{}', '{}', '100000', 1504396800000,
                         NULL, 2);
             INSERT INTO orders VALUES (3, 1, 1504396800000, 'buy', '0.5', 'entry', 'filled');
             INSERT INTO fills VALUES (3, 1, 1504396800000, 'buy', '0.5', '4652.69', '0.0026', '97673.6524',
                                       '0.5', '-0.0026');
             INSERT INTO account_snapshots VALUES (3, 1504396800000, '97673.6524', '0.5', NULL, '0', '-1.25',
                                                   '99999.99', '0.0026');",
        )
        .unwrap();
        assert_eq!(
            rows(
                &conn,
                "SELECT run_id, pair, interval_secs, created_at, updated_at, first_bar_time, last_bar_time,
                        initial_cash, fills FROM runs_v"
            ),
            [vec![
                Integer(3),
                text("ETH/USD"),
                Integer(300),
                text("2017-09-03T00:00:00.123Z"),
                text("2017-09-03T00:01:00.000Z"),
                text("2017-09-03T00:00:00Z"),
                Null,
                Real(100000.0),
                Integer(1),
            ]],
            "wall-clock times always in milliseconds"
        );
        assert_eq!(
            rows(
                &conn,
                "SELECT time, side, reason, qty, price, fee, cash_after, position_after, realized_pnl FROM fills_v"
            ),
            [vec![
                text("2017-09-03T00:00:00Z"),
                text("buy"),
                text("entry"),
                Real(0.5),
                Real(4652.69),
                Real(0.0026),
                Real(97673.6524),
                Real(0.5),
                Real(-0.0026),
            ]]
        );
        assert_eq!(
            rows(
                &conn,
                "SELECT time, cash, avg_entry, unrealized_pnl, equity FROM account_snapshots_v"
            ),
            [vec![
                text("2017-09-03T00:00:00Z"),
                Real(97673.6524),
                Null,
                Real(-1.25),
                Real(99999.99),
            ]]
        );
        // What the views are for: sums and date functions give the right answers.
        assert_eq!(
            rows(&conn, "SELECT sum(price), datetime(min(time)) FROM fills_v"),
            [vec![Real(4652.69), text("2017-09-03 00:00:00")]]
        );
    }
}
