//! One pass of the service: find the data clock, (re)build the detector on the first pass,
//! step it through the newly complete hours, deliver what it says, and re-send what is
//! active.

use super::deliver::{am_incident, Links};
use super::store::Store;
use super::{now, Running, ServiceError, Targets, MAX_PENDING};
use crate::config::Validated;
use crate::detect::{AlertEvent, AlertState, Detector, SegmentKey};
use crate::internal_events::{AlertDelivered, AlertDeliveryFailed, DetectorPassed, InternalEvent};
use crate::metrics::DetectorMetrics;
use crate::sink::ClickHouseSink;
use std::collections::{BTreeMap, HashMap, HashSet};

pub(super) struct Pass<'a> {
    pub v: &'a Validated,
    pub sink: &'a ClickHouseSink,
    pub metrics: &'a DetectorMetrics,
}

/// The resolution of an alert recorded as firing that the replay no longer produces.
fn unreproduced(id: String, grouping: String, segment: String, fired_at: u32) -> AlertEvent {
    AlertEvent {
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
        incident_id: String::new(),
        severity: crate::detect::Severity::Ticket,
        reason: "not_reproduced".into(),
        notify: false,
        drop: 0.0,
        phi: 1.0,
        mix_split: None,
        volume_ratio: 0.0,
        data_flags: Vec::new(),
        shadow: false,
    }
}

impl Pass<'_> {
    fn store(&self) -> Store<'_> {
        Store { sink: self.sink }
    }

    pub async fn run(
        &self,
        t: &mut Targets,
        running: &mut Option<Running>,
    ) -> Result<(), ServiceError> {
        let ds = &self.v.detector;
        // After the first pass, only the table's recent partitions can move the clock.
        let since = running.as_ref().map_or(0, |r| {
            r.next
                .saturating_sub(ds.max_partition_lag_hours)
                .saturating_sub(24)
                .max(0)
        });
        let store = self.store();
        let Some((clock, lagging)) = store.data_clock(ds.max_partition_lag_hours, since).await?
        else {
            tracing::info!("no complete hour in ClickHouse yet");
            return Ok(());
        };
        t.lagging = lagging;
        if running.is_none() {
            *running = Some(self.start(clock).await?);
        }
        let Some(r) = running.as_mut() else {
            return Ok(());
        };
        self.step_to(r, t, clock).await?;
        if !r.reconciled {
            self.reconcile(r, t).await?;
        }
        self.resend(r, t).await;
        if clock - 1 > r.delivered {
            store.save_progress(clock - 1).await?;
            r.delivered = clock - 1;
        }
        let firing: Vec<&str> = r.det.active().map(|a| a.event.grouping.as_str()).collect();
        let mut watched: Vec<(String, usize)> = r.det.watched().into_iter().collect();
        watched.sort();
        let incidents: Vec<&'static str> = r
            .det
            .incidents()
            .iter()
            .map(|v| v.severity.route())
            .collect();
        DetectorPassed {
            firing: &firing,
            incidents: &incidents,
            watched: &watched,
            clock_hour: clock,
            now_s: now(),
        }
        .emit(self.metrics);
        Ok(())
    }

    /// A fresh detector replaying `baseline + gap + 7` days before `clock`.
    async fn start(&self, clock: i64) -> Result<Running, ServiceError> {
        let (ds, store) = (&self.v.detector, self.store());
        let st = &ds.params;
        let first = store.first_hour().await?.unwrap_or(clock);
        let replay = i64::from(st.baseline_days + st.gap_days + 7) * 24;
        let from = first.max(clock - replay);
        let mut hier = super::hierarchy(self.v)?;
        for (child, container) in &ds.nesting {
            for (c, p) in store.containers(child, container, from).await? {
                hier.set_container(child, &c, &p);
            }
        }
        let delivered = store.progress().await?.unwrap_or(i64::MIN);
        tracing::info!(from = %crate::detect::rfc3339(from * 3600), delivered_through = delivered, "detector replaying history");
        Ok(Running {
            det: Detector::new(st.clone(), hier),
            next: from,
            delivered,
            reconciled: false,
        })
    }

    /// Steps through the complete hours up to `clock`, a day of rows per read, delivering
    /// only what comes after the hour already delivered.
    async fn step_to(
        &self,
        r: &mut Running,
        t: &mut Targets,
        clock: i64,
    ) -> Result<(), ServiceError> {
        let store = self.store();
        while r.next < clock {
            let end = clock.min(r.next + 24);
            let rows = store.hours(r.next, end).await?;
            let mut by_hour: BTreeMap<i64, Vec<(SegmentKey, crate::stats::Counts)>> =
                BTreeMap::new();
            for (h, k, c) in rows {
                by_hour.entry(h).or_default().push((k, c));
            }
            for h in r.next..end {
                let mut out = r
                    .det
                    .step(h, by_hour.get(&h).map_or(&[][..], |v| v.as_slice()));
                // Incidents are rebuilt on a replay too, so they come out the same.
                let mut overlaps = Vec::new();
                for q in r.det.overlap_requests(&out) {
                    let c = store.shared(&q.x, &q.a, q.from_hour, q.to_hour).await?;
                    overlaps.push((q, c));
                }
                r.det.group(&mut out, &overlaps);
                self.track_incidents(r, t, h > r.delivered);
                if h <= r.delivered {
                    continue;
                }
                if !out.digest.is_empty() {
                    store.write_digest(&out.digest).await?;
                }
                for mut e in out.alerts {
                    if e.state == AlertState::Firing {
                        self.annotate(r, t, &mut e).await?;
                    }
                    self.deliver(t, &e).await?;
                }
            }
            r.next = end;
        }
        Ok(())
    }

    /// What only the facts and the data clock can tell about a new alert: detractor
    /// categories and ids, and the data-quality flags (more answers without a contact than
    /// the week before, partitions lagging).
    async fn annotate(
        &self,
        r: &mut Running,
        t: &Targets,
        e: &mut AlertEvent,
    ) -> Result<(), ServiceError> {
        let Some(key) = e.key() else { return Ok(()) };
        let store = self.store();
        let (cats, ids) = store.explain(&key, e.change_start, e.at).await?;
        let (now, before) = store.unattributed(&key, e.change_start, e.at).await?;
        if now > 2.0 * before + 0.05 {
            e.data_flags.push("unattributed_up".into());
        }
        if t.lagging > 0 {
            e.data_flags.push("partitions_lagging".into());
        }
        e.detractor_categories = cats;
        e.detractor_response_ids = ids;
        r.det.annotate(
            &e.alert_id,
            e.detractor_categories.clone(),
            e.detractor_response_ids.clone(),
            e.data_flags.clone(),
        );
        Ok(())
    }

    /// Resolves alerts recorded as firing that the replay did not reproduce.
    async fn reconcile(&self, r: &mut Running, t: &mut Targets) -> Result<(), ServiceError> {
        let live: HashSet<String> = r.det.active().map(|a| a.event.alert_id.clone()).collect();
        for (id, grouping, segment, fired_at) in self.store().recorded_active().await? {
            if live.contains(&id) {
                continue;
            }
            tracing::info!(alert_id = %id, %segment, "recorded alert not reproduced by the replay; resolving it");
            self.deliver(t, &unreproduced(id, grouping, segment, fired_at))
                .await?;
        }
        r.reconciled = true;
        Ok(())
    }

    /// The Alertmanager alert of every open incident, keyed by incident id.
    fn incident_alerts(&self, r: &Running) -> HashMap<String, serde_json::Value> {
        let ds = &self.v.detector;
        let poll = i64::try_from(ds.poll_interval.as_secs()).unwrap_or(60);
        let ends = now() + 4 * poll.max(60);
        let links = Links {
            grafana_url: &ds.grafana_url,
            runbook_url: &ds.runbook_url,
        };
        r.det
            .incidents()
            .iter()
            .map(|v| (v.id.to_string(), am_incident(v, ends, &links)))
            .collect()
    }

    /// After each hour: an incident that closed, or whose receiver changed, has its old
    /// Alertmanager alert ended (when the hour is new; a replayed hour's were ended before).
    fn track_incidents(&self, r: &Running, t: &mut Targets, deliver: bool) {
        let current = self.incident_alerts(r);
        if deliver && !self.v.detector.shadow && t.am.is_some() {
            for (id, old) in &t.sent {
                let changed = current.get(id).is_none_or(|c| c["labels"] != old["labels"]);
                if changed && t.pending_am.len() < MAX_PENDING {
                    let mut end = old.clone();
                    end["endsAt"] = crate::detect::rfc3339(now()).into();
                    t.pending_am.push(end);
                }
            }
        }
        t.sent = current;
    }

    /// Alertmanager forgets an alert at its endsAt: re-send every open incident each pass
    /// (one alert each) with the endings still owed, and send what the topic still owes.
    /// Nothing goes out in shadow mode.
    async fn resend(&self, r: &Running, t: &mut Targets) {
        if self.v.detector.shadow {
            return;
        }
        let ending: Vec<serde_json::Value> = std::mem::take(&mut t.pending_am);
        let current = self.incident_alerts(r);
        let mut batch = ending.clone();
        batch.extend(current.values().cloned());
        if let Some(am) = &t.am {
            if let Err(e) = am.post(&batch).await {
                AlertDeliveryFailed {
                    target: "alertmanager",
                    error: &e,
                }
                .emit(self.metrics);
                t.pending_am = ending;
            }
        }
        let pending: Vec<AlertEvent> = std::mem::take(&mut t.pending_topic);
        for e in pending {
            self.send_topic(t, e).await;
        }
    }

    async fn send_topic(&self, t: &mut Targets, e: AlertEvent) {
        if self.v.detector.shadow {
            return;
        }
        let Some(topic) = &t.topic else { return };
        if let Err(err) = topic.send(&e).await {
            AlertDeliveryFailed {
                target: "kafka",
                error: &err,
            }
            .emit(self.metrics);
            if t.pending_topic.len() < MAX_PENDING {
                t.pending_topic.push(e);
            }
        }
    }

    /// ClickHouse first (the record of what happened), then Kafka; Alertmanager hears of
    /// incidents with every pass's re-send.
    async fn deliver(&self, t: &mut Targets, e: &AlertEvent) -> Result<(), ServiceError> {
        let mut e = e.clone();
        e.shadow = self.v.detector.shadow;
        self.store().write_alerts(std::slice::from_ref(&e)).await?;
        AlertDelivered { event: &e }.emit(self.metrics);
        self.send_topic(t, e).await;
        Ok(())
    }
}
