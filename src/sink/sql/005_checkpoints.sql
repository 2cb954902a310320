-- Per-partition state (join, windows, clocks) with the offsets it covers. Written after the
-- rows it produced were acknowledged and before offsets are committed; restored on assign.
CREATE TABLE IF NOT EXISTS {db}.checkpoints
(
    consumer_group     String,
    source_partition   Int32,
    version            UInt64,
    survey_offset      Int64,
    interaction_offset Int64,
    state              String,
    written_at         DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (consumer_group, source_partition)
