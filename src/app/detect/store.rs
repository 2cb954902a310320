//! What the detector reads from and writes to ClickHouse: complete hours of window partials
//! summed across partitions and revisions, the data clock, which team each agent belongs to,
//! the facts behind an alert (detractor categories and ids), and its own alerts, digest and
//! progress. Every statement goes through the sink's retry, so an outage delays the detector
//! instead of stopping it.

use crate::detect::alert::{AlertEvent, CategoryShare, DigestEntry};
use crate::detect::{Counts, SegmentKey};
use crate::model::{DETRACTOR_MAX, DIMENSIONS, PROMOTER_MIN};
use crate::sink::{ClickHouseSink, SinkError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Row, Deserialize)]
struct HourRow {
    ws: u32,
    grouping: String,
    region: String,
    channel: String,
    team: String,
    agent: String,
    product: String,
    tier: String,
    bucket: String,
    p: u64,
    q: u64,
    d: u64,
}

#[derive(Row, Serialize, Deserialize)]
pub struct AlertRow {
    pub alert_id: String,
    pub state: String,
    pub event_time: u32,
    pub fired_at: u32,
    pub change_start: u32,
    pub grouping: String,
    pub segment: String,
    pub nps: f64,
    pub nps_low: f64,
    pub nps_high: f64,
    pub n: u64,
    pub baseline_nps: f64,
    pub baseline_low: f64,
    pub baseline_high: f64,
    pub baseline_n: u64,
    pub effect: f64,
    pub delta: f64,
    pub statistic: f64,
    pub threshold: f64,
    pub payload: String,
    pub written_at: u32,
}

#[derive(Row, Serialize)]
struct DigestRow {
    day: u16,
    period_days: u8,
    grouping: String,
    segment: String,
    nps: f64,
    nps_low: f64,
    nps_high: f64,
    n: u64,
    expected_nps: f64,
    p_value: f64,
    paging: u8,
    written_at: u32,
}

#[derive(Row, Serialize)]
struct ProgressRow {
    name: String,
    evaluated_hour: u32,
    written_at: u32,
}

fn secs(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

/// Promoters, passives and detractors of `survey_facts` rows as three `countIf` columns
/// (old servers make `countIf` over a Nullable condition Nullable, hence the `ifNull`).
pub(super) fn class_counts() -> String {
    format!(
        "countIf(ifNull(nps_score, 0) >= {PROMOTER_MIN}), \
         countIf(ifNull(nps_score, 0) > {DETRACTOR_MAX} AND ifNull(nps_score, 0) < {PROMOTER_MIN}), \
         countIf(ifNull(nps_score, 255) <= {DETRACTOR_MAX})"
    )
}

pub struct Store<'a> {
    pub sink: &'a ClickHouseSink,
}

impl Store<'_> {
    fn db(&self) -> &str {
        self.sink.database()
    }

    /// The end of the last hour every live partition has finalized (Unix hour), ignoring
    /// partitions more than `max_lag` hours behind the most advanced one. `since` (a Unix
    /// hour, from the previous clock) bounds the scan to recent partitions of the table: a
    /// partition with nothing final after it is that far behind anyway.
    /// Also how many partitions lag the clock (a data-quality flag on the alerts).
    pub async fn data_clock(
        &self,
        max_lag: i64,
        since: i64,
    ) -> Result<Option<(i64, usize)>, SinkError> {
        let sql = format!(
            "SELECT source_partition, toUInt32(max(window_end)) FROM {}.window_aggregates \
             WHERE window_size_s = 3600 AND is_final = 1 AND window_start >= toDateTime(?) \
             GROUP BY source_partition",
            self.db()
        );
        let rows: Vec<(i32, u32)> = self
            .sink
            .retrying("SELECT", "window_aggregates", || {
                self.sink
                    .client()
                    .query(&sql)
                    .bind(secs(since * 3600))
                    .fetch_all()
            })
            .await?;
        let ends: Vec<i64> = rows.iter().map(|r| i64::from(r.1) / 3600).collect();
        let Some(&newest) = ends.iter().max() else {
            return Ok(None);
        };
        let clock = ends
            .iter()
            .copied()
            .filter(|&e| e >= newest - max_lag)
            .min();
        Ok(clock.map(|c| (c, ends.iter().filter(|&&e| e < c).count())))
    }

    /// A `SELECT toUInt32(<time>), count()`: the Unix hour of the time, None over no rows.
    async fn hour_if_any(&self, sql: &str, table: &'static str) -> Result<Option<i64>, SinkError> {
        let (t, n): (u32, u64) = self
            .sink
            .retrying("SELECT", table, || {
                self.sink.client().query(sql).fetch_one()
            })
            .await?;
        Ok((n > 0).then_some(i64::from(t) / 3600))
    }

    /// The first hour with any NPS answer.
    pub async fn first_hour(&self) -> Result<Option<i64>, SinkError> {
        let sql = format!(
            "SELECT toUInt32(min(window_start)), count() FROM {}.window_aggregates \
             WHERE window_size_s = 3600 AND nps_n > 0",
            self.db()
        );
        self.hour_if_any(&sql, "window_aggregates").await
    }

    /// Class counts per (hour, segment) for hours `[from, to)`.
    pub async fn hours(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, SegmentKey, Counts)>, SinkError> {
        let sql = format!(
            "SELECT toUInt32(window_start) AS ws, grouping, region, channel, team, agent, product, \
             tier, bucket, toUInt64(greatest(sum(sign * promoters), 0)) AS p, \
             toUInt64(greatest(sum(sign * passives), 0)) AS q, toUInt64(greatest(sum(sign * detractors), 0)) AS d \
             FROM {}.window_aggregates FINAL \
             WHERE window_size_s = 3600 AND window_start >= toDateTime(?) AND window_start < toDateTime(?) \
             GROUP BY ws, grouping, region, channel, team, agent, product, tier, bucket \
             HAVING sum(sign * nps_n) > 0 ORDER BY ws",
            self.db()
        );
        let rows: Vec<HourRow> = self
            .sink
            .retrying("SELECT", "window_aggregates", || {
                self.sink
                    .client()
                    .query(&sql)
                    .bind(secs(from * 3600))
                    .bind(secs(to * 3600))
                    .fetch_all()
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let values = [
                    r.region, r.channel, r.team, r.agent, r.product, r.tier, r.bucket,
                ];
                let key = SegmentKey::from_row(&r.grouping, values)?;
                Some((i64::from(r.ws) / 3600, key, Counts::new(r.p, r.q, r.d)))
            })
            .collect())
    }

    /// For a nesting (child, container): each child value's most frequent container value
    /// among attributed answers since `from` (Unix hour).
    pub async fn containers(
        &self,
        child: &str,
        container: &str,
        from: i64,
    ) -> Result<Vec<(String, String)>, SinkError> {
        // Both names are checked against DIMENSIONS by the config; never user text here.
        if !DIMENSIONS.contains(&child) || !DIMENSIONS.contains(&container) {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {child}, argMax({container}, c) FROM (SELECT {child}, {container}, count() AS c \
             FROM {}.survey_facts WHERE attributed = 1 AND submitted_at >= toDateTime(?) \
             GROUP BY {child}, {container}) GROUP BY {child}",
            self.db()
        );
        self.sink
            .retrying("SELECT", "survey_facts", || {
                self.sink
                    .client()
                    .query(&sql)
                    .bind(secs(from * 3600))
                    .fetch_all()
            })
            .await
    }

    fn segment_filter(key: &SegmentKey) -> (String, Vec<String>) {
        let mut sql = String::new();
        let mut binds = Vec::new();
        for (d, v) in key.dims() {
            sql.push_str(&format!(" AND {d} = ?"));
            binds.push(v.to_string());
        }
        (sql, binds)
    }

    /// Contact categories over-represented among the detractors of `key` in `[from, to)`
    /// (Unix seconds), and up to five detractor response ids, newest first.
    pub async fn explain(
        &self,
        key: &SegmentKey,
        from: i64,
        to: i64,
    ) -> Result<(Vec<CategoryShare>, Vec<String>), SinkError> {
        let (filter, binds) = Self::segment_filter(key);
        let where_ = format!(
            "submitted_at >= toDateTime(?) AND submitted_at < toDateTime(?) AND isNotNull(nps_score){filter}"
        );
        let sql = format!(
            "SELECT category, countIf(ifNull(nps_score, 255) <= {DETRACTOR_MAX}) AS d, count() AS n \
             FROM {}.survey_facts FINAL WHERE {where_} GROUP BY category",
            self.db()
        );
        // The period's bounds, then the segment's values, in the order the SQL names them.
        let query = |sql: &str| {
            let mut q = self
                .sink
                .client()
                .query(sql)
                .bind(secs(from))
                .bind(secs(to));
            for b in &binds {
                q = q.bind(b.as_str());
            }
            q
        };
        let cats: Vec<(String, u64, u64)> = self
            .sink
            .retrying("SELECT", "survey_facts", || query(&sql).fetch_all())
            .await?;
        let (dt, nt) = cats
            .iter()
            .fold((0u64, 0u64), |a, c| (a.0 + c.1, a.1 + c.2));
        let mut shares: Vec<CategoryShare> = cats
            .into_iter()
            .filter(|_| dt > 0 && nt > 0)
            .map(|(category, d, n)| CategoryShare {
                category,
                among_detractors: d as f64 / dt as f64,
                among_all: n as f64 / nt as f64,
            })
            .filter(|c| c.among_detractors > c.among_all)
            .collect();
        shares.sort_by(|a, b| {
            (b.among_detractors - b.among_all).total_cmp(&(a.among_detractors - a.among_all))
        });
        shares.truncate(3);
        let sql = format!(
            "SELECT response_id FROM {}.survey_facts FINAL WHERE {where_} AND nps_score <= {DETRACTOR_MAX} \
             ORDER BY submitted_at DESC, response_id LIMIT 5",
            self.db()
        );
        let ids: Vec<String> = self
            .sink
            .retrying("SELECT", "survey_facts", || query(&sql).fetch_all())
            .await?;
        Ok((shares, ids))
    }

    /// NPS classes of the answers in both segments over `[from_hour, to_hour)`: what the
    /// incident rule needs (`Detector::group`).
    pub async fn shared(
        &self,
        x: &SegmentKey,
        a: &SegmentKey,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<crate::stats::Counts, SinkError> {
        let (fx, mut binds) = Self::segment_filter(x);
        let (fa, ba) = Self::segment_filter(a);
        binds.extend(ba);
        let sql = format!(
            "SELECT {} FROM {}.survey_facts FINAL \
             WHERE submitted_at >= toDateTime(?) AND submitted_at < toDateTime(?) AND isNotNull(nps_score){fx}{fa}",
            class_counts(),
            self.db()
        );
        let (p, q, d): (u64, u64, u64) = self
            .sink
            .retrying("SELECT", "survey_facts", || {
                let mut qy = self
                    .sink
                    .client()
                    .query(&sql)
                    .bind(secs(from_hour * 3600))
                    .bind(secs(to_hour * 3600));
                for b in &binds {
                    qy = qy.bind(b.as_str());
                }
                qy.fetch_one()
            })
            .await?;
        Ok(crate::stats::Counts::new(p, q, d))
    }

    /// Share of the segment's answers no contact was attributed to, over `[from, to)` and
    /// over the week before it (Unix seconds).
    pub async fn unattributed(
        &self,
        key: &SegmentKey,
        from: i64,
        to: i64,
    ) -> Result<(f64, f64), SinkError> {
        let (filter, binds) = Self::segment_filter(key);
        let sql = format!(
            "SELECT countIf(submitted_at >= toDateTime(?) AND attributed = 0), countIf(submitted_at >= toDateTime(?)), \
             countIf(submitted_at < toDateTime(?) AND attributed = 0), countIf(submitted_at < toDateTime(?)) \
             FROM {}.survey_facts FINAL WHERE submitted_at >= toDateTime(?) AND submitted_at < toDateTime(?){filter}",
            self.db()
        );
        let (un, n, ub, nb): (u64, u64, u64, u64) = self
            .sink
            .retrying("SELECT", "survey_facts", || {
                let mut q = self.sink.client().query(&sql);
                for t in [from, from, from, from, from - 7 * 86_400, to] {
                    q = q.bind(secs(t));
                }
                for b in &binds {
                    q = q.bind(b.as_str());
                }
                q.fetch_one()
            })
            .await?;
        let share = |u: u64, n: u64| if n > 0 { u as f64 / n as f64 } else { 0.0 };
        Ok((share(un, n), share(ub, nb)))
    }

    pub async fn write_alerts(&self, events: &[AlertEvent]) -> Result<(), SinkError> {
        let now = crate::sink::clickhouse::now_s();
        let rows: Vec<AlertRow> = events
            .iter()
            .map(|e| AlertRow {
                alert_id: e.alert_id.clone(),
                state: e.state.as_str().into(),
                event_time: secs(e.at),
                fired_at: secs(e.fired_at),
                change_start: secs(e.change_start),
                grouping: e.grouping.clone(),
                segment: e.segment.clone(),
                nps: e.nps,
                nps_low: e.nps_low,
                nps_high: e.nps_high,
                n: e.n,
                baseline_nps: e.baseline_nps,
                baseline_low: e.baseline_low,
                baseline_high: e.baseline_high,
                baseline_n: e.baseline_n,
                effect: e.effect,
                delta: e.delta,
                statistic: e.statistic,
                threshold: e.threshold,
                payload: serde_json::to_string(e).unwrap_or_default(),
                written_at: now,
            })
            .collect();
        self.sink.insert("nps_alerts", &rows).await
    }

    pub async fn write_digest(&self, entries: &[DigestEntry]) -> Result<(), SinkError> {
        let now = crate::sink::clickhouse::now_s();
        let rows: Vec<DigestRow> = entries
            .iter()
            .map(|e| DigestRow {
                day: u16::try_from(e.day.max(0) / 86_400).unwrap_or(u16::MAX),
                period_days: u8::try_from(e.period_days).unwrap_or(u8::MAX),
                grouping: e.grouping.clone(),
                segment: e.segment.clone(),
                nps: e.nps,
                nps_low: e.nps_low,
                nps_high: e.nps_high,
                n: e.n,
                expected_nps: e.expected_nps,
                p_value: e.p_value,
                paging: u8::from(e.paging),
                written_at: now,
            })
            .collect();
        self.sink.insert("nps_digest", &rows).await
    }

    /// Alerts whose latest recorded state is firing: (alert_id, grouping, segment, fired_at).
    pub async fn recorded_active(&self) -> Result<Vec<(String, String, String, u32)>, SinkError> {
        let sql = format!(
            "SELECT alert_id, any(grouping), any(segment), min(fired_at) FROM {}.nps_alerts \
             GROUP BY alert_id HAVING countIf(state = 'resolved') = 0",
            self.db()
        );
        self.sink
            .retrying("SELECT", "nps_alerts", || {
                self.sink.client().query(&sql).fetch_all()
            })
            .await
    }

    pub async fn progress(&self) -> Result<Option<i64>, SinkError> {
        let sql = format!(
            "SELECT toUInt32(max(evaluated_hour)), count() FROM {}.nps_detector_progress",
            self.db()
        );
        self.hour_if_any(&sql, "nps_detector_progress").await
    }

    pub async fn save_progress(&self, hour: i64) -> Result<(), SinkError> {
        let row = ProgressRow {
            name: "detector".into(),
            evaluated_hour: secs(hour * 3600),
            written_at: crate::sink::clickhouse::now_s(),
        };
        self.sink.insert("nps_detector_progress", &[row]).await
    }
}
