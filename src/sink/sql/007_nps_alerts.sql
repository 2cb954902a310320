-- NPS-drop alert events from `cx-pipeline detect`: one row per (alert, state), firing then
-- resolved. Grafana's annotations and the executive board's active-alerts panel read it; an
-- alert is active while its latest state is 'firing'. `payload` is the full event as JSON
-- (contributing segments, detractor categories, detractor response ids; never comments).
CREATE TABLE IF NOT EXISTS {db}.nps_alerts
(
    alert_id       String,
    state          String,
    event_time     DateTime('UTC'),
    fired_at       DateTime('UTC'),
    change_start   DateTime('UTC'),
    grouping       String,
    segment        String,
    nps            Float64,
    nps_low        Float64,
    nps_high       Float64,
    n              UInt64,
    baseline_nps   Float64,
    baseline_low   Float64,
    baseline_high  Float64,
    baseline_n     UInt64,
    effect         Float64,
    delta          Float64,
    statistic      Float64,
    threshold      Float64,
    payload        String,
    written_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (alert_id, state)
