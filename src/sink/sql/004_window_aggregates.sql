-- Partial aggregates per window x grouping set x dimension values x source partition x
-- revision. Revision 0 is the window's own row, holding the on-time events; `version`
-- counts the operations applied to it, so FINAL keeps its complete state. Every late event (behind
-- its stream's floor, within window.late_horizon) adds correction rows of its own
-- (revision = its source record), final at once; a survey revised by a late contact
-- rewrites its own (revision = the survey's record), with sign = -1 on the rows that take
-- it out of a segment. Sum sign * x across revisions, partitions (and dimension values):
--   NPS  = 100 * (sum(sign * promoters) - sum(sign * detractors)) / sum(sign * nps_n)
--   CSAT = 100 * sum(sign * csat_satisfied) / sum(sign * csat_n)
--   AHT  = sum(sign * handle_ms) / sum(sign * contacts) / 1000 seconds
-- Ungrouped dimension columns hold ''; `grouping` lists the grouped ones ('' = overall).
CREATE TABLE IF NOT EXISTS {db}.window_aggregates
(
    window_size_s    UInt32,
    window_start     DateTime('UTC'),
    window_end       DateTime('UTC'),
    grouping         String,
    region           String,
    channel          String,
    team             String,
    agent            String,
    product          String,
    tier             String,
    bucket           String,
    source_partition Int32,
    revision         UInt64,
    version          UInt64,
    is_final         UInt8,
    responses        UInt64,
    nps_n            UInt64,
    promoters        UInt64,
    passives         UInt64,
    detractors       UInt64,
    csat_n           UInt64,
    csat_satisfied   UInt64,
    csat_sum         UInt64,
    attributed       UInt64,
    contacts         UInt64,
    handle_ms        UInt64,
    talk_ms          UInt64,
    hold_ms          UInt64,
    wrap_ms          UInt64,
    updated_at       DateTime('UTC'),
    sign             Int8 DEFAULT 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY (window_size_s, toYYYYMM(window_start))
ORDER BY (window_size_s, grouping, window_start, region, channel, team, agent, product, tier, bucket, source_partition, revision)
