//! A run before its event loop: which run the settings continue (or a new one), where its source
//! starts again, and how it is brought back exactly where it stopped (its account rebuilt from
//! the stored fills and checked, a fresh strategy fed the stored bars). The command line decides
//! *what* to run; [`RunSession`] decides how a run begins or continues, the same way for every
//! source and every store.

use nanotrader_broker::{Account, BrokerConfig, Fill, Guard, PaperBroker, Protections};
use nanotrader_market::{Bar, Interval, Timestamp};
use nanotrader_store::{NewRun, RunRecord, RunStore, StoreError};
use nanotrader_strategy::{LineValues, Signal, Strategy};
use rust_decimal::Decimal;

use crate::ResumeState;

/// Why a run cannot be continued exactly; each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "store {store}: run {run} has {stored} stored bars but {seen} were processed: cannot resume it exactly (start with --fresh)"
    )]
    BarsDisagree {
        store: String,
        run: i64,
        stored: u64,
        seen: u64,
    },
    #[error(
        "store {store}: run {run}'s stored bars lead its strategy to signal {replayed}, not the stored {stored}: cannot resume it exactly (start with --fresh)"
    )]
    SignalDisagrees {
        store: String,
        run: i64,
        replayed: i8,
        stored: i8,
    },
    #[error(
        "store {store}: run {run} fills do not add up (cash {rebuilt} vs {recorded}): the file was changed outside nanotrader"
    )]
    FillsDisagree {
        store: String,
        run: i64,
        rebuilt: rust_decimal::Decimal,
        recorded: rust_decimal::Decimal,
    },
}

/// What a run is, for finding the one these settings continue or creating it.
pub struct RunPlan {
    /// The settings a restart must match to continue a run (speed and looping may change).
    pub key: String,
    /// The same settings as earlier versions spelled them, so their runs resume too.
    pub earlier_keys: Vec<String>,
    /// Start a new run even if one could be continued.
    pub fresh: bool,
    /// The bar series a new run stores into, named by the data it will see: runs share stored
    /// bars only when the bars are the same.
    pub series: String,
    pub pair: String,
    pub interval: Interval,
    /// The settings as shown to people (JSON).
    pub config: String,
    /// What the source needs to deliver the same data again on a restart (JSON).
    pub source_params: String,
    pub initial_cash: Decimal,
}

/// A run at its start: created, or found and about to be continued, with its stored fills.
pub struct RunSession {
    pub run: RunRecord,
    pub fills: Vec<Fill>,
}

impl RunSession {
    /// The unfinished run `plan` continues (unless `fresh`), or a new one.
    pub fn begin(store: &dyn RunStore, plan: &RunPlan) -> Result<Self, SessionError> {
        let found = if plan.fresh {
            None
        } else {
            let mut found = None;
            for key in std::iter::once(&plan.key).chain(&plan.earlier_keys) {
                found = store.resumable_run(key)?;
                if found.is_some() {
                    break;
                }
            }
            found
        };
        let run = match found {
            Some(run) => run,
            None => {
                let series_id = store.series_id(&plan.series, &plan.pair, plan.interval)?;
                store.create_run(&NewRun {
                    run_key: &plan.key,
                    series_id,
                    config: &plan.config,
                    source_params: &plan.source_params,
                    initial_cash: plan.initial_cash,
                })?
            }
        };
        let fills = store.fills(run.id)?;
        Ok(Self { run, fills })
    }

    /// Whether the run continues one that had processed bars.
    pub fn is_resumed(&self) -> bool {
        self.run.bars_seen > 0
    }

    /// The first market time the source must deliver (see [`resume_from`]).
    pub fn resume_from(&self, interval: Interval, passes_bars_through: bool) -> Option<Timestamp> {
        resume_from(self.run.last_bar_ts, interval, passes_bars_through)
    }

    /// The run brought back (see [`restore`]).
    pub fn restore(
        &self,
        store: &dyn RunStore,
        broker: BrokerConfig,
        protections: &Protections,
        books: Books,
        strategy: &mut dyn Strategy,
        on_bar: impl FnMut(&Bar, LineValues),
    ) -> Result<Restored, SessionError> {
        restore(
            store,
            &self.run,
            &self.fills,
            broker,
            protections,
            books,
            strategy,
            on_bar,
        )
    }
}

/// The first market time a resumed run's source must deliver. Bars read at their own interval
/// keep their own times, so the next one is whatever follows the last stored; anything bucketed
/// resumes at the next bucket. `None` for a run with no bar yet.
pub fn resume_from(last_bar: Option<Timestamp>, interval: Interval, passes_bars_through: bool) -> Option<Timestamp> {
    last_bar.map(|ts| {
        if passes_bars_through {
            Timestamp::from_nanos(ts.nanos() + 1)
        } else {
            ts.add_secs(interval.secs())
        }
    })
}

/// Whose books a run keeps: its own (paper: the stored fills must add up to the recorded
/// account), or an exchange's (live: the exchange's balances are the account, taken when the
/// broker starts, so the stored fills are not summed).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Books {
    Paper,
    Exchange,
}

/// A run as it was when it stopped.
pub struct Restored {
    pub broker: PaperBroker,
    pub resume: ResumeState,
    /// The protections as they stood at the last stored bar (paper books; a live run's start
    /// afresh: `None`, the caller builds theirs from the exchange's account).
    pub guard: Option<Guard>,
}

/// Brings `run` back: its account rebuilt from `fills` (its stored fills) and checked against
/// the account the last fill recorded, and `strategy` (fresh) fed every stored bar so that its
/// state and signal are exactly what they were. `on_bar` sees each stored bar with the
/// strategy's lines after it (a dashboard's history). The protections' state is rebuilt the same
/// way: each stored bar's equity from the fills before it, so a halted run stays halted.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    store: &dyn RunStore,
    run: &RunRecord,
    fills: &[Fill],
    broker: BrokerConfig,
    protections: &Protections,
    books: Books,
    strategy: &mut dyn Strategy,
    mut on_bar: impl FnMut(&Bar, LineValues),
) -> Result<Restored, SessionError> {
    let mut guard: Option<Guard> = match books {
        Books::Paper => Guard::new(protections, run.initial_cash),
        Books::Exchange => None,
    };
    let resume = {
        let mut replayed = Account::new(run.initial_cash);
        let mut next_fill = 0;
        replay_stored_bars(store, run, strategy, &mut |bar, lines| {
            if let Some(guard) = &mut guard {
                // The engine checks a bar's equity before the bar's own fill.
                while let Some(fill) = fills.get(next_fill).filter(|f| f.ts < bar.ts) {
                    replayed.apply(fill);
                    next_fill += 1;
                }
                replayed.mark(bar.close);
                guard.observe(bar.ts, replayed.equity());
            }
            on_bar(bar, lines);
        })?
    };
    let account = Account::rebuild(run.initial_cash, fills);
    if books == Books::Paper
        && let Some(last) = fills.last()
        && (last.cash_after != account.cash() || last.position_after != account.position())
    {
        return Err(SessionError::FillsDisagree {
            store: store.location(),
            run: run.id,
            rebuilt: account.cash(),
            recorded: last.cash_after,
        });
    }
    let mut broker = PaperBroker::resume(broker, account, run.next_order_id);
    if let Some(bar) = &resume.last_bar {
        broker.mark(bar.close);
    }
    Ok(Restored { broker, resume, guard })
}

fn replay_stored_bars(
    store: &dyn RunStore,
    run: &RunRecord,
    strategy: &mut dyn Strategy,
    on_bar: &mut impl FnMut(&Bar, LineValues),
) -> Result<ResumeState, SessionError> {
    let (Some(first), Some(last)) = (run.first_bar_ts, run.last_bar_ts) else {
        return Ok(ResumeState::default());
    };
    let mut signal = Signal::Flat;
    let mut last_bar: Option<Bar> = None;
    let count = store.for_each_bar(run.series_id, first, last, &mut |bar| {
        signal = strategy.on_bar(&bar);
        on_bar(&bar, strategy.line_values());
        last_bar = Some(bar);
    })?;
    if count != run.bars_seen {
        return Err(SessionError::BarsDisagree {
            store: store.location(),
            run: run.id,
            stored: count,
            seen: run.bars_seen,
        });
    }
    if signal.as_i8() != run.signal {
        return Err(SessionError::SignalDisagrees {
            store: store.location(),
            run: run.id,
            replayed: signal.as_i8(),
            stored: run.signal,
        });
    }
    Ok(ResumeState {
        bars_seen: run.bars_seen,
        signal,
        last_bar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(key: &str, earlier: &[&str], fresh: bool) -> RunPlan {
        RunPlan {
            key: key.into(),
            earlier_keys: earlier.iter().map(|k| (*k).to_owned()).collect(),
            fresh,
            series: "kraken:BTC/USD".into(),
            pair: "BTC/USD".into(),
            interval: Interval::ONE_MINUTE,
            config: "{}".into(),
            source_params: "{}".into(),
            initial_cash: Decimal::from(100_000),
        }
    }

    #[test]
    fn a_session_continues_its_run_also_under_an_earlier_key_and_fresh_starts_anew() {
        let dir = tempfile::tempdir().unwrap();
        let lock = nanotrader_store::DataDirLock::acquire(dir.path()).unwrap();
        let store = nanotrader_store::Store::open(&lock).unwrap();
        let first = RunSession::begin(&store, &plan("old", &[], false)).unwrap();
        assert!(!first.is_resumed() && first.fills.is_empty());
        // The same settings, as a later release spells them: the same run.
        let again = RunSession::begin(&store, &plan("new", &["old"], false)).unwrap();
        assert_eq!(again.run.id, first.run.id);
        let other = RunSession::begin(&store, &plan("new", &[], false)).unwrap();
        assert_ne!(other.run.id, first.run.id, "other settings: another run");
        let fresh = RunSession::begin(&store, &plan("old", &[], true)).unwrap();
        assert!(fresh.run.id != first.run.id && fresh.run.id != other.run.id);
    }

    #[test]
    fn a_resumed_source_starts_after_the_last_stored_bar() {
        let last = Timestamp::from_secs(1_700_000_017);
        let minute = Interval::ONE_MINUTE;
        assert_eq!(resume_from(None, minute, false), None);
        // Bucketed: the next bucket.
        assert_eq!(
            resume_from(Some(last), minute, false),
            Some(Timestamp::from_secs(1_700_000_077))
        );
        // Bars passed through keep their own times: anything after the last one.
        assert_eq!(
            resume_from(Some(last), minute, true),
            Some(Timestamp::from_nanos(last.nanos() + 1))
        );
    }
}
