-- The detector's daily digest: segments whose NPS over the last day or week is below their
-- baseline beyond chance, Benjamini-Hochberg across all segments (drops too small to page).
CREATE TABLE IF NOT EXISTS {db}.nps_digest
(
    day          Date,
    period_days  UInt8,
    grouping     String,
    segment      String,
    nps          Float64,
    nps_low      Float64,
    nps_high     Float64,
    n            UInt64,
    expected_nps Float64,
    p_value      Float64,
    paging       UInt8,
    written_at   DateTime('UTC')
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(day)
ORDER BY (day, period_days, grouping, segment)
