-- The live brokers' client ids committed ahead (state 'reserved'), as the SQLite store's schema 4:
-- a reserved row has a client id and a run but no order yet, so the order's columns may be NULL
-- there and only there. `seq` keeps the order ids were reserved in (SQLite's rowid): a start
-- looks them up oldest first.
ALTER TABLE exchange_orders
    ALTER COLUMN order_id DROP NOT NULL,
    ALTER COLUMN ts DROP NOT NULL,
    ALTER COLUMN side DROP NOT NULL,
    ALTER COLUMN volume DROP NOT NULL,
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
    ADD CONSTRAINT exchange_orders_state CHECK (state IN ('sending', 'validated', 'placed', 'closed', 'rejected',
                                                          'unknown', 'not_placed', 'reserved', 'retired')),
    ADD CONSTRAINT exchange_orders_details CHECK (state IN ('reserved', 'retired')
        OR (order_id IS NOT NULL AND ts IS NOT NULL AND side IS NOT NULL AND volume IS NOT NULL));
CREATE INDEX exchange_orders_reserved ON exchange_orders (run_id, seq) WHERE state = 'reserved';
