-- One row per accepted support contact.
CREATE TABLE IF NOT EXISTS {db}.interaction_facts
(
    interaction_id   String,
    ticket_id        String,
    customer_id      String,
    agent            String,
    team             String,
    channel          String,
    bucket           String,
    category         String,
    product          String,
    started_at       DateTime('UTC'),
    ended_at         DateTime('UTC'),
    ended_at_ms      Int64,
    talk_ms          UInt64,
    hold_ms          UInt64,
    wrap_ms          UInt64,
    handle_ms        UInt64,
    resolved         UInt8,
    source_partition Int32,
    source_offset    Int64
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ended_at)
ORDER BY (ended_at, interaction_id)
