//! The brokers with their tasks on the engine's own thread (a current-thread runtime, as the
//! binary runs a Kraken broker's engine): nothing the engine calls may block waiting for them.
//! The mock exchange runs on a runtime of its own, as the exchange would.

use super::*;
use nanotrader_kraken_mock::OrderStatus;

/// The exchange's runtime: a thread of its own.
fn exchange() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test]
async fn on_one_thread_a_validation_is_awaited_not_waited_for() {
    let exchange = exchange();
    let mock = exchange.spawn(mock(Faults::default())).await.unwrap();
    let mut rig = rig(&mock, rails());
    let price = Decimal::from(10_000);
    assert!(
        rig.broker.follow(1, Timestamp::from_secs(60), price).is_none(),
        "left for the engine to await"
    );
    let (order, fill) = rig
        .broker
        .answer()
        .expect("an answer to await")
        .await
        .expect("validated and filled");
    assert!(rig.broker.answer().is_none(), "nothing left to await");
    assert_eq!(fill.qty, Decimal::new(1, 3));
    assert_eq!(rig.broker.account().position(), Decimal::new(1, 3));
    assert_eq!(add_orders(&mock), 1, "one AddOrder");
    let journal = rig.store.sent_orders(1).unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].state, OrderState::Validated);
    assert_eq!(journal[0].order_id, order.id);
    // A person's Flatten the same way.
    assert!(
        rig.broker
            .exit(Timestamp::from_secs(120), price, OrderReason::Flatten)
            .is_none()
    );
    let (_, sold) = rig
        .broker
        .answer()
        .expect("an answer to await")
        .await
        .expect("the exit");
    assert_eq!(sold.qty, Decimal::new(1, 3));
    assert_eq!(rig.broker.account().position(), Decimal::ZERO);
    assert_eq!(add_orders(&mock), 2);
    exchange.spawn(mock.shutdown()).await.unwrap();
    exchange.shutdown_background();
}

#[tokio::test]
async fn on_one_thread_the_stop_is_awaited_and_cancels_what_rests() {
    let exchange = exchange();
    let mock = exchange.spawn(live_mock(Faults::default(), 1)).await.unwrap();
    let rig = LiveRig::new();
    let mut broker = rig
        .broker_with(&mock, settings(&mock, limit(600, LimitFallback::Skip)))
        .await;
    broker.mark(Decimal::from(PRICE));
    broker.quote(Decimal::from(5_000), Decimal::from(11_000));
    assert!(
        broker
            .follow(1, Timestamp::from_secs(60), Decimal::from(PRICE))
            .is_none()
    );
    let wake = broker.updates().unwrap();
    while broker.venue().unwrap().orders.first().map(|o| o.state.as_str()) != Some("open") {
        broker.poll();
        let _ = tokio::time::timeout(Duration::from_millis(50), wake.notified()).await;
    }
    assert_eq!(mock.placed_orders().len(), 1);
    // Ctrl-C: the engine awaits the stop; the desk, on this same thread, cancels the order.
    broker.stop_async().await;
    let journal = rig.store.sent_orders(rig.run_id).unwrap();
    assert!(journal.iter().all(|o| o.state == OrderState::Closed), "{journal:?}");
    assert_eq!(mock.placed_orders()[0].status, OrderStatus::Canceled);
    assert_books_are_the_exchanges(&rig, &broker, &mock);
    drop(broker);
    exchange.spawn(mock.shutdown()).await.unwrap();
    exchange.shutdown_background();
}
