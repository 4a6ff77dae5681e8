//! `nanotrader serve --db-url postgres://...`: the fleet dashboard. One server for every run in a
//! PostgreSQL store, on any machine that reaches the database: it reads (and LISTENs), never
//! writes. The dashboard itself is `nanotrader_web` (its fleet module); this is the command.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use merge::Merge as _;

use crate::app::{AppError, wait_for_stop_signal};
use crate::options::WebOptions;
use crate::stores::StoreTarget;
use nanotrader_store_pg::PgStore;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub web: WebOptions,

    /// Seconds between re-reads of every run in case a notification was lost (the live path is
    /// the database's notifications; this is only the safety net).
    #[arg(long, env = "NANOTRADER_RECHECK_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400), hide = true)]
    pub recheck_secs: u64,
}

pub async fn serve(target: &StoreTarget, args: ServeArgs, file_web: WebOptions) -> Result<(), AppError> {
    let StoreTarget::Postgres(url) = target else {
        return Err(AppError::input(
            "serve shows the runs of a PostgreSQL store: pass --db-url postgres://USER@HOST/DATABASE \
             (a SQLite store's runs are shown by the `run` that writes them)",
        ));
    };
    if args.web.no_web == Some(true) {
        return Err(AppError::input(
            "serve is the dashboard: --no-web leaves it nothing to do",
        ));
    }
    let mut web = args.web;
    web.merge(file_web);
    web.merge(WebOptions::defaults());
    web.no_web = Some(false);
    let config = crate::config::resolve_web(web)?
        .ok_or_else(|| AppError::input("serve is the dashboard: --no-web leaves it nothing to do"))?;
    let store = PgStore::connect_read_only(url)?;
    if !store.notifies()? {
        tracing::warn!(
            "the store {} was last brought up to date by an older nanotrader and does not announce its changes: \
             pages update every {} s until a `run` of this version opens it",
            nanotrader_store_pg::redact(url),
            args.recheck_secs
        );
    }
    let handle = nanotrader_web::start(&config)
        .await
        .map_err(|e| AppError::runtime(e.to_string()))?;
    nanotrader_web::attach_fleet(&handle.server, store, url, Duration::from_secs(args.recheck_secs))?;
    let note = if handle.addr.ip().is_unspecified() {
        " (listening on every interface; use this machine's address)"
    } else {
        ""
    };
    println!(
        "dashboard: {} (the fleet: every run in {}){note}",
        handle.url(),
        nanotrader_store_pg::redact(url)
    );
    let _ = std::io::stdout().flush();
    wait_for_stop_signal().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), handle.stop()).await;
    Ok(())
}
