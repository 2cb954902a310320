-- The last hour the detector evaluated and delivered, so a restart replays history without
-- delivering its events twice.
CREATE TABLE IF NOT EXISTS {db}.nps_detector_progress
(
    name           String,
    evaluated_hour DateTime('UTC'),
    written_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree(written_at)
ORDER BY name
