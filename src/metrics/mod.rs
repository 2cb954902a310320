//! Prometheus metrics: pipeline health and business counters. Hot paths tally into plain
//! integers and apply them once per batch, so no label lookup happens per event. Business
//! labels are low-cardinality dimensions only, capped by `metrics.max_label_sets`.

mod business;
pub mod detector;
mod schemas;
pub mod server;
mod sink;

pub use business::Business;
pub use detector::DetectorMetrics;
pub use schemas::SchemaMetrics;
pub use server::Exposition;
pub use sink::SinkMetrics;

use crate::pipeline::partition::Outputs;
use prometheus::{
    CounterVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use std::collections::HashSet;
use std::sync::Mutex;

const CLOSED_EARLY: &str =
    "Window rows closed before the clocks allowed, at ingest.max_open_rows_per_partition";

pub struct Metrics {
    pub registry: Registry,
    pub consumed: IntCounterVec,
    pub lag: IntGaugeVec,
    pub decode_errors: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub late: IntCounterVec,
    pub revised: IntCounterVec,
    pub duplicates: IntCounterVec,
    pub join: IntCounterVec,
    pub state: IntGaugeVec,
    /// Estimated bytes of the same state, per kind (the caps bound them).
    pub state_bytes: IntGaugeVec,
    /// Window rows closed before the clocks allowed, at the open-row cap.
    pub closed_early: IntCounter,
    pub watermark: IntGaugeVec,
    /// The ClickHouse series, shared with the detector's own registry.
    pub sink: SinkMetrics,
    pub checkpoints: IntCounter,
    /// Bytes of checkpoints written, by kind (base, mark): the write amplification.
    pub checkpoint_bytes: IntCounterVec,
    pub commit_errors: IntCounter,
    /// Partitions given up without a final checkpoint: `fenced` (a newer owner's epoch was
    /// found) or `lost` (the group expelled this instance).
    pub fenced: IntCounterVec,
    /// The ownership epoch this instance holds per partition (0 once released).
    pub epoch: IntGaugeVec,
    /// Registry lookups that failed transiently; the message waits and is tried again.
    pub registry_retries: IntCounterVec,
    /// The decoder's writer-schema lookups and cache.
    pub schemas: SchemaMetrics,
    pub flush_seconds: Histogram,
    pub responses: IntCounterVec,
    pub nps_answers: IntCounterVec,
    pub csat_answers: IntCounterVec,
    pub csat_satisfied: IntCounterVec,
    pub contacts: IntCounterVec,
    pub handle_seconds: CounterVec,
    pub up: IntGauge,
    cap: usize,
    seen: Mutex<HashSet<Vec<String>>>,
}

/// Registers one series. Metric names and label sets are constants, so registration cannot
/// fail at runtime; a failure is a programming error caught by the unit tests.
pub(crate) fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric registration: {e}"));
    c
}

pub(crate) fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    register(r, c)
}

pub(crate) fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g =
        IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("{name}: {e}"));
    register(r, g)
}

pub(crate) fn single_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

pub(crate) fn single_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        r,
        IntCounter::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}")),
    )
}

/// The business series: what customers said and what contacts cost, by segment.
struct BusinessSeries {
    responses: IntCounterVec,
    nps_answers: IntCounterVec,
    csat_answers: IntCounterVec,
    csat_satisfied: IntCounterVec,
    contacts: IntCounterVec,
    handle_seconds: CounterVec,
}

impl BusinessSeries {
    fn new(r: &Registry) -> Self {
        let biz = ["region", "channel", "bucket"];
        let seg = ["team", "channel", "bucket"];
        BusinessSeries {
            responses: counter(
                r,
                "cx_survey_responses_total",
                "Survey responses folded",
                &biz,
            ),
            nps_answers: counter(
                r,
                "cx_nps_answers_total",
                "NPS answers by class",
                &["region", "channel", "bucket", "class"],
            ),
            csat_answers: counter(r, "cx_csat_answers_total", "CSAT answers", &biz),
            csat_satisfied: counter(r, "cx_csat_satisfied_total", "CSAT answers of 4 or 5", &biz),
            contacts: counter(r, "cx_contacts_total", "Support contacts handled", &seg),
            handle_seconds: register(
                r,
                CounterVec::new(
                    Opts::new(
                        "cx_handle_time_seconds_total",
                        "Sum of handle time (talk+hold+wrap)",
                    ),
                    &seg,
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ),
        }
    }
}

impl Metrics {
    pub fn new(max_label_sets: usize) -> Self {
        let r = Registry::new();
        let b = BusinessSeries::new(&r);
        let tp = ["topic", "partition"];
        Metrics {
            consumed: counter(&r, "cx_consumed_total", "Messages consumed", &tp),
            lag: gauge(&r, "cx_consumer_lag", "High watermark minus next offset", &tp),
            decode_errors: counter(
                &r,
                "cx_decode_errors_total",
                "Messages that failed decoding or validation",
                &["topic", "reason"],
            ),
            dead_lettered: counter(
                &r,
                "cx_dead_lettered_total",
                "Messages sent to the dead-letter topic",
                &["reason"],
            ),
            late: counter(
                &r,
                "cx_late_events_total",
                "Events beyond the late horizon (dead-lettered as too_late)",
                &["topic"],
            ),
            revised: counter(
                &r,
                "cx_late_revisions_total",
                "Events behind their stream's floor but within the late horizon, counted in correction rows",
                &["topic"],
            ),
            duplicates: counter(
                &r,
                "cx_duplicates_total",
                "Repeated response or interaction ids (dead-lettered as duplicate)",
                &["topic"],
            ),
            join: counter(
                &r,
                "cx_join_total",
                "Survey join outcomes; evicted: contacts pushed out by the cap; revised: settled surveys a late contact re-credited; final_early: revisable surveys a cap made final; other_customer: unattributed, their ticket had other customers' contacts only",
                &["result"],
            ),
            state: gauge(&r, "cx_state_entries", "Entries held in join and window state", &["kind"]),
            state_bytes: gauge(&r, "cx_state_bytes", "Estimated bytes of state", &["kind"]),
            closed_early: single_counter(&r, "cx_windows_closed_early_total", CLOSED_EARLY),
            watermark: gauge(
                &r,
                "cx_watermark_seconds",
                "Event-time floor per stream and partition",
                &["stream", "partition"],
            ),
            sink: SinkMetrics::new(&r),
            checkpoints: single_counter(&r, "cx_checkpoints_total", "Partition checkpoints written"),
            checkpoint_bytes: counter(
                &r,
                "cx_checkpoint_bytes_total",
                "Bytes of checkpoints written: whole-state bases and the small marks between them",
                &["kind"],
            ),
            commit_errors: single_counter(&r, "cx_commit_errors_total", "Failed Kafka offset commits"),
            fenced: counter(
                &r,
                "cx_partitions_fenced_total",
                "Partitions given up without writing: a newer owner's epoch was found (fenced) or the group expelled this instance (lost)",
                &["how"],
            ),
            epoch: gauge(
                &r,
                "cx_partition_epoch",
                "Ownership epoch held per input partition (0 when not owned)",
                &["partition"],
            ),
            registry_retries: counter(
                &r,
                "cx_registry_retries_total",
                "Schema lookups that failed transiently and wait to be tried again",
                &["topic"],
            ),
            schemas: SchemaMetrics::new(&r),
            flush_seconds: register(
                &r,
                Histogram::with_opts(HistogramOpts::new(
                    "cx_flush_seconds",
                    "Time the consumer spends per flush: waiting for the previous insert, and when due the checkpoint and commit",
                ))
                .unwrap_or_else(|e| panic!("{e}")),
            ),
            responses: b.responses,
            nps_answers: b.nps_answers,
            csat_answers: b.csat_answers,
            csat_satisfied: b.csat_satisfied,
            contacts: b.contacts,
            handle_seconds: b.handle_seconds,
            up: single_gauge(&r, "cx_pipeline_up", "1 while the pipeline runs"),
            registry: r,
            cap: max_label_sets,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Keeps label sets under the cap: new combinations past it become "other".
    fn capped(&self, labels: [&str; 3]) -> [String; 3] {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&key) || seen.len() < self.cap {
            seen.insert(key.clone());
            return [key[0].clone(), key[1].clone(), key[2].clone()];
        }
        ["other".into(), "other".into(), "other".into()]
    }

    /// Applies a batch's business counters at once (the embedded demo, which keeps no
    /// checkpoints) and its evictions.
    pub fn record_business(&self, out: &Outputs) {
        self.record(&Business::of(out.surveys.iter(), out.contacts.iter()));
        self.record_evicted(out);
    }

    /// Join evictions: a health counter, recorded when they happen.
    pub fn record_evicted(&self, out: &Outputs) {
        for (result, n) in [
            ("evicted", out.join_evicted),
            ("revised", out.join_revisions),
            ("final_early", out.join_final_early),
            ("other_customer", out.join_other_customer),
        ] {
            if n > 0 {
                self.join.with_label_values(&[result]).inc_by(n);
            }
        }
        if out.windows_closed_early > 0 {
            self.closed_early.inc_by(out.windows_closed_early);
        }
    }

    /// Applies business counts with one label lookup per distinct segment.
    pub fn record(&self, b: &Business) {
        for (key, s) in &b.surveys {
            let l = self.capped([&key[0], &key[1], &key[2]]);
            let l: [&str; 3] = [&l[0], &l[1], &l[2]];
            self.responses.with_label_values(&l).inc_by(s.n);
            for (i, class) in ["promoter", "passive", "detractor"].iter().enumerate() {
                if s.classes[i] > 0 {
                    self.nps_answers
                        .with_label_values(&[l[0], l[1], l[2], class])
                        .inc_by(s.classes[i]);
                }
            }
            if s.csat > 0 {
                self.csat_answers.with_label_values(&l).inc_by(s.csat);
                self.csat_satisfied.with_label_values(&l).inc_by(s.sat);
            }
        }
        for (key, (n, ms)) in &b.contacts {
            let l = self.capped([&key[0], &key[1], &key[2]]);
            let l: [&str; 3] = [&l[0], &l[1], &l[2]];
            self.contacts.with_label_values(&l).inc_by(*n);
            self.handle_seconds
                .with_label_values(&l)
                .inc_by(*ms as f64 / 1000.0);
        }
        for (i, r) in ["matched_ticket", "matched_customer", "unattributed"]
            .iter()
            .enumerate()
        {
            if b.matched[i] > 0 {
                self.join.with_label_values(&[r]).inc_by(b.matched[i]);
            }
        }
    }

    /// Text exposition for GET /metrics.
    pub fn render(&self) -> String {
        server::render(&self.registry)
    }
}

impl Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }
    fn degraded(&self) -> Option<&'static str> {
        self.sink.degraded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_are_capped() {
        let m = Metrics::new(2);
        assert_eq!(m.capped(["a", "b", "c"])[0], "a");
        assert_eq!(m.capped(["d", "b", "c"])[0], "d");
        assert_eq!(m.capped(["e", "b", "c"])[0], "other");
        assert_eq!(
            m.capped(["a", "b", "c"])[0],
            "a",
            "known sets keep their labels"
        );
        assert!(m.render().contains("cx_pipeline_up"));
    }
}
