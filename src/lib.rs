//! nanotrader: a real-time crypto trading bot. The binary is a thin shell over this library.

pub mod broker;
pub mod market;
pub mod strategy;
