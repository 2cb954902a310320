-- Whole-state bases of partition checkpoints (delivery::bases), in chunks of at most 4 MiB.
-- A row of `checkpoints` is a mark naming one base by (epoch, owner, parity, version); `owner`
-- is a random id of the claiming process and an owner alternates parities, so a new base
-- never replaces the one the latest mark names, nor another claimant's. Bases of
-- old epochs are dropped when a later owner claims the partition. One row per index granule:
-- a read of one base then reads its own chunks, never a merged part's hundreds (sink::migrate).
CREATE TABLE IF NOT EXISTS {db}.checkpoint_bases
(
    consumer_group   String,
    source_partition Int32,
    epoch            UInt32,
    owner            UInt64,
    parity           UInt8,
    chunk            UInt32,
    version          UInt64,
    chunks           UInt32,
    state            String,
    counts           String,
    written_at       DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (consumer_group, source_partition, epoch, owner, parity, chunk)
SETTINGS index_granularity = 1
