-- One row per survey response, enriched with the contact the join attributed it to.
-- Replays re-insert identical rows; ReplacingMergeTree folds them (read with FINAL). A
-- bounded run writes its still-unsettled surveys with is_final = 0 (version 0); the settled
-- row (is_final = 1, version 1) replaces it, and each revision by a late contact
-- (revision + 1, version = 1 + revision) replaces that. matched_by: ticket, customer,
-- none, or other_customer (its ticket had other customers' contacts only).
CREATE TABLE IF NOT EXISTS {db}.survey_facts
(
    response_id          String,
    customer_id          String,
    ticket_id            String,
    submitted_at         DateTime('UTC'),
    submitted_at_ms      Int64,
    survey_channel       String,
    nps_score            Nullable(UInt8),
    csat_score           Nullable(UInt8),
    comment              String,
    region               String,
    product              String,
    tier                 String,
    attributed           UInt8,
    matched_by           String,
    interaction_id       String,
    attributed_ticket_id String,
    agent                String,
    team                 String,
    channel              String,
    bucket               String,
    category             String,
    source_partition     Int32,
    is_final             UInt8,
    revision             UInt32,
    version              UInt32
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(submitted_at)
ORDER BY (submitted_at, response_id)
