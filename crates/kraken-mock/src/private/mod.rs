//! Kraken's private side: the account (`account`), request authentication (`auth`), the
//! private REST methods (`rest`) and the authenticated WebSocket v2 (`ws`). One account, one
//! API key; everything it does happens on the mock's market clock and tape.

pub(crate) mod account;
pub(crate) mod auth;
pub(crate) mod rest;
pub(crate) mod ws;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::{Faults, PrivateConfig};
use crate::tape::Tape;
use account::{Account, Pair};
use auth::Decaying;
use nanotrader_market::Timestamp;

/// Kraken's WebSocket token lifetime when unused.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// The pair the account trades: the one with market data.
const PAIR_KEY: &str = "XXBTZUSD";

/// The private exchange: settings plus the state every request and socket shares.
pub(crate) struct Private {
    config: PrivateConfig,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) account: Account,
    /// The last nonce accepted for the key.
    last_nonce: Option<u64>,
    api_counter: Decaying,
    /// Token -> wall time it expires unless used.
    tokens: HashMap<String, Instant>,
    /// What is left of the "next N" faults.
    budget: Budget,
}

#[derive(Clone, Copy, Debug, Default)]
struct Budget {
    lose_addorder_reply: u32,
    addorder_http_500: u32,
    service_unavailable: u32,
    invalid_nonce: u32,
}

/// Takes one from a "next N" fault budget: whether this call is hit.
fn take(left: &mut u32) -> bool {
    let hit = *left > 0;
    *left = left.saturating_sub(1);
    hit
}

impl Private {
    pub(crate) fn new(
        config: PrivateConfig,
        faults: &Faults,
        asset_pairs: &Map<String, Value>,
        tape: &Tape,
        now: Timestamp,
    ) -> Result<Self, String> {
        let pair = Pair::from_asset_pairs(asset_pairs, PAIR_KEY)
            .ok_or_else(|| format!("AssetPairs lacks the rules of {PAIR_KEY}"))?;
        if config.api_key.is_empty() {
            return Err("the API key is empty".into());
        }
        auth::decodes(&config.api_secret)?;
        let budget = Budget {
            lose_addorder_reply: faults.lose_addorder_reply,
            addorder_http_500: faults.addorder_http_500,
            service_unavailable: faults.service_unavailable,
            invalid_nonce: faults.invalid_nonce,
        };
        let account = Account::new(&config, pair, tape, now);
        Ok(Self {
            config,
            state: Mutex::new(State {
                account,
                last_nonce: None,
                api_counter: Decaying::new(),
                tokens: HashMap::new(),
                budget,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for a mock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// A new WebSocket token, valid for 15 minutes.
    fn issue_token(&mut self) -> String {
        let now = Instant::now();
        self.tokens.retain(|_, expires| *expires > now);
        let token = auth::ws_token();
        self.tokens.insert(token.clone(), now + TOKEN_LIFETIME);
        token
    }

    /// Whether `token` was issued and has not expired.
    pub(crate) fn token_valid(&self, token: &str) -> bool {
        self.tokens.get(token).is_some_and(|expires| *expires > Instant::now())
    }
}
