//! `cx-pipeline detect`: the detector as a service. ClickHouse is the one place that holds
//! every partition's share of every window, so the detector reads complete hours from there
//! (one instance per deployment), steps [`Detector`] through them in data time, and delivers
//! what it says to ClickHouse, Kafka and Alertmanager.
//!
//! Restarts: the detector is a function of the hourly data, so a restart replays the last
//! `baseline + gap + 7` days and delivers only events after the hour recorded in
//! `nps_detector_progress`. An alert recorded as firing that the replay no longer produces
//! (late corrections changed history) is resolved explicitly.

mod deliver;
mod store;

use crate::config::{Config, Validated};
use crate::detect::{AlertEvent, AlertState, Detector, Hierarchy, SegmentKey};
use crate::metrics::{server, Metrics};
use crate::model::DIMENSIONS;
use crate::sink::ClickHouseSink;
pub use deliver::ALERT_NAME;
use deliver::{am_alert, AlertTopic, Alertmanager, Gauges};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::Store;

/// Most undelivered Alertmanager or Kafka messages kept for the next pass.
const MAX_PENDING: usize = 10_000;

struct Targets {
    am: Option<Alertmanager>,
    topic: Option<AlertTopic>,
    pending_am: Vec<serde_json::Value>,
    pending_topic: Vec<AlertEvent>,
}

struct Running {
    det: Detector,
    next: i64,
    delivered: i64,
    reconciled: bool,
}

fn now() -> i64 {
    i64::from(crate::sink::clickhouse::now_s())
}

fn key_of(e: &AlertEvent) -> Option<SegmentKey> {
    let values: [String; 7] =
        std::array::from_fn(|i| e.dims.get(DIMENSIONS[i]).cloned().unwrap_or_default());
    SegmentKey::from_row(&e.grouping, values)
}

pub async fn run(
    cfg: Config,
    v: Validated,
    once: bool,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    if cfg.clickhouse.url.is_empty() {
        return Err(
            "clickhouse.url must be set: the detector reads the window partials from ClickHouse"
                .into(),
        );
    }
    if !v.settings.window.sizes_ms().contains(&3_600_000) {
        return Err(
            "window.sizes must include \"1h\": the detector works on hourly windows".into(),
        );
    }
    let metrics = Arc::new(Metrics::new(cfg.metrics.max_label_sets));
    let gauges = Gauges::new(&metrics.registry);
    if !cfg.detector.metrics_listen.is_empty() {
        let addr = server::serve(&cfg.detector.metrics_listen, metrics.clone())
            .await
            .map_err(|e| {
                format!(
                    "detector.metrics_listen = {:?}: {e}",
                    cfg.detector.metrics_listen
                )
            })?;
        tracing::info!(%addr, "detector metrics at /metrics");
    }
    let sink = ClickHouseSink::connect(&cfg.clickhouse, metrics.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut targets = Targets {
        am: match cfg.detector.alertmanager_url.as_str() {
            "" => None,
            url => Some(Alertmanager::new(url)?),
        },
        topic: match cfg.detector.alert_topic.as_str() {
            "" => None,
            t => Some(AlertTopic::new(cfg.kafka_client(), &cfg.kafka.brokers, t)?),
        },
        pending_am: Vec::new(),
        pending_topic: Vec::new(),
    };
    let mut running: Option<Running> = None;
    loop {
        if let Err(e) = pass(&v, &sink, &gauges, &mut targets, &mut running).await {
            tracing::warn!(error = %e, "detector pass failed; replaying from the last delivered hour next pass");
            running = None;
            if once {
                return Err(e);
            }
        }
        if once {
            return Ok(());
        }
        let until = std::time::Instant::now() + v.detector.poll_interval;
        while std::time::Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn pass(
    v: &Validated,
    sink: &ClickHouseSink,
    gauges: &Gauges,
    t: &mut Targets,
    running: &mut Option<Running>,
) -> Result<(), String> {
    let store = Store { sink };
    let ds = &v.detector;
    // After the first pass, only the table's recent partitions can move the clock.
    let since = running.as_ref().map_or(0, |r| {
        r.next
            .saturating_sub(ds.max_partition_lag_hours)
            .saturating_sub(24)
            .max(0)
    });
    let Some(clock) = store
        .data_clock(ds.max_partition_lag_hours, since)
        .await
        .map_err(|e| e.to_string())?
    else {
        tracing::info!("no complete hour in ClickHouse yet");
        return Ok(());
    };
    if running.is_none() {
        let st = &ds.stats;
        let first = store
            .first_hour()
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or(clock);
        let replay = i64::from(st.baseline_days + st.gap_days + 7) * 24;
        let from = first.max(clock - replay);
        let groupings: Vec<String> = v
            .settings
            .window
            .groupings
            .iter()
            .map(|g| g.name.clone())
            .collect();
        let mut hier = Hierarchy::new(&groupings, &ds.nesting)?;
        for (child, container) in &ds.nesting {
            for (c, p) in store
                .containers(child, container, from)
                .await
                .map_err(|e| e.to_string())?
            {
                hier.set_container(child, &c, &p);
            }
        }
        let delivered = store
            .progress()
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or(i64::MIN);
        tracing::info!(from = %crate::detect::rfc3339(from * 3600), delivered_through = delivered, "detector replaying history");
        *running = Some(Running {
            det: Detector::new(st.clone(), hier),
            next: from,
            delivered,
            reconciled: false,
        });
    }
    let Some(r) = running.as_mut() else {
        return Ok(());
    };
    while r.next < clock {
        let end = clock.min(r.next + 24);
        let rows = store.hours(r.next, end).await.map_err(|e| e.to_string())?;
        let mut by_hour: BTreeMap<i64, Vec<(SegmentKey, crate::detect::Counts)>> = BTreeMap::new();
        for (h, k, c) in rows {
            by_hour.entry(h).or_default().push((k, c));
        }
        for h in r.next..end {
            let out = r
                .det
                .step(h, by_hour.get(&h).map_or(&[][..], |v| v.as_slice()));
            if h <= r.delivered {
                continue;
            }
            if !out.digest.is_empty() {
                store
                    .write_digest(&out.digest)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            for mut e in out.alerts {
                if e.state == AlertState::Firing {
                    if let Some(key) = key_of(&e) {
                        let (cats, ids) = store
                            .explain(&key, e.change_start, e.at)
                            .await
                            .map_err(|e| e.to_string())?;
                        e.detractor_categories = cats.clone();
                        e.detractor_response_ids = ids.clone();
                        r.det.annotate(&e.alert_id, cats, ids);
                    }
                }
                deliver(&store, gauges, t, &e).await?;
            }
        }
        r.next = end;
    }
    if !r.reconciled {
        let live: HashSet<&str> = r.det.active().map(|a| a.event.alert_id.as_str()).collect();
        for (id, grouping, segment, fired_at) in
            store.recorded_active().await.map_err(|e| e.to_string())?
        {
            if live.contains(id.as_str()) {
                continue;
            }
            tracing::info!(alert_id = %id, %segment, "recorded alert not reproduced by the replay; resolving it");
            let e = AlertEvent {
                alert_id: id,
                state: AlertState::Resolved,
                grouping,
                segment,
                dims: BTreeMap::new(),
                at: now(),
                fired_at: i64::from(fired_at),
                change_start: i64::from(fired_at),
                nps: 0.0,
                nps_low: 0.0,
                nps_high: 0.0,
                n: 0,
                baseline_nps: 0.0,
                baseline_low: 0.0,
                baseline_high: 0.0,
                baseline_n: 0,
                effect: 0.0,
                delta: 0.0,
                statistic: 0.0,
                threshold: 0.0,
                contributors: Vec::new(),
                detractor_categories: Vec::new(),
                detractor_response_ids: Vec::new(),
            };
            deliver(&store, gauges, t, &e).await?;
        }
        r.reconciled = true;
    }
    // Alertmanager forgets an alert at its endsAt: re-send every active one each pass.
    let ends = now()
        + 4 * i64::try_from(ds.poll_interval.as_secs())
            .unwrap_or(60)
            .max(60);
    let resolved: Vec<serde_json::Value> = std::mem::take(&mut t.pending_am);
    let mut batch = resolved.clone();
    batch.extend(r.det.active().map(|a| am_alert(&a.event, ends)));
    if let Some(am) = &t.am {
        if let Err(e) = am.post(&batch).await {
            gauges
                .delivery_failures
                .with_label_values(&["alertmanager"])
                .inc();
            tracing::warn!(error = %e, "Alertmanager unreachable; re-sending next pass");
            t.pending_am = resolved;
        }
    }
    let pending: Vec<AlertEvent> = std::mem::take(&mut t.pending_topic);
    for e in pending {
        send_topic(gauges, t, e).await;
    }
    if clock - 1 > r.delivered {
        store
            .save_progress(clock - 1)
            .await
            .map_err(|e| e.to_string())?;
        r.delivered = clock - 1;
    }
    gauges.firing.reset();
    for a in r.det.active() {
        let g = if a.event.grouping.is_empty() {
            "overall"
        } else {
            a.event.grouping.as_str()
        };
        gauges.firing.with_label_values(&[g]).inc();
    }
    for (g, n) in r.det.watched() {
        let g = if g.is_empty() {
            "overall".to_string()
        } else {
            g
        };
        gauges
            .watched
            .with_label_values(&[&g])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    gauges.evaluated_hour.set(clock * 3600);
    gauges.last_evaluation.set(now());
    Ok(())
}

async fn send_topic(gauges: &Gauges, t: &mut Targets, e: AlertEvent) {
    let Some(topic) = &t.topic else { return };
    if let Err(err) = topic.send(&e).await {
        gauges.delivery_failures.with_label_values(&["kafka"]).inc();
        tracing::warn!(error = %err, "alert topic write failed; retrying next pass");
        if t.pending_topic.len() < MAX_PENDING {
            t.pending_topic.push(e);
        }
    }
}

/// ClickHouse first (the record of what happened), then Kafka, then Alertmanager for a
/// resolution (firing alerts go out with every pass's re-send).
async fn deliver(
    store: &Store<'_>,
    gauges: &Gauges,
    t: &mut Targets,
    e: &AlertEvent,
) -> Result<(), String> {
    tracing::info!(
        alert_id = %e.alert_id, state = e.state.as_str(), segment = %e.segment,
        nps = e.nps, baseline = e.baseline_nps, n = e.n, "NPS alert"
    );
    store
        .write_alerts(std::slice::from_ref(e))
        .await
        .map_err(|x| x.to_string())?;
    gauges.count(e);
    send_topic(gauges, t, e.clone()).await;
    if e.state == AlertState::Resolved && t.am.is_some() && t.pending_am.len() < MAX_PENDING {
        let mut a = am_alert(e, e.at);
        if e.dims.is_empty() {
            a["annotations"]["description"] =
                "Resolved: the detector no longer reproduces this alert after a restart.".into();
        }
        t.pending_am.push(a);
    }
    Ok(())
}
