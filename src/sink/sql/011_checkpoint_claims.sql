-- The ownership claims of partitions (delivery::claims): one row per attempt to take a
-- partition at an epoch, never replaced nor merged away (plain MergeTree), so that a claimant
-- that reads after its own insert sees every rival that inserted before that read. An attempt
-- that sees a rival at its epoch or above yields; of two attempts at one epoch at most one
-- wins. Rows below a partition's latest epoch but one are dropped at the next claim.
CREATE TABLE IF NOT EXISTS {db}.checkpoint_claims
(
    consumer_group   String,
    source_partition Int32,
    epoch            UInt32,
    owner            UInt64,
    claimed_at       DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY (consumer_group, source_partition, epoch)
