-- Startup self-test: one row is inserted with the configured compression and read back, so
-- a server that acknowledges inserts it does not store is caught before any data flows.
CREATE TABLE IF NOT EXISTS {db}.insert_probe
(
    token String,
    at    DateTime('UTC')
)
ENGINE = MergeTree()
ORDER BY token
