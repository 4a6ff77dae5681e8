//! Schema migrations, applied in order and recorded in SQLite's `user_version`.
//!
//! Append new migrations; never edit one that has shipped. Money columns are TEXT holding exact
//! decimals, except the bar values: an INTEGER count of 1e-8 when that is exact (compact and
//! fast for millions of bars), else a BLOB of the decimal's text (the `ANY` columns have NUMERIC
//! affinity, which would turn TEXT into a rounded REAL; older stores may hold such REALs, see
//! `codec::fixed_from_sql`). Times are INTEGER milliseconds since the Unix epoch (UTC).

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
];
