//! Consumption gauges, refreshed once per flush: consumed counts, lag, event-time floors and
//! state sizes.

use super::setup::cached_high_watermark;
use super::Run;
use crate::model::Stream;

impl Run<'_> {
    pub(super) fn update_gauges(&mut self) {
        let m = self.job.metrics.clone();
        for ((s, p), n) in self.consumed.drain() {
            m.consumed
                .with_label_values(&[self.topics[s as usize].as_str(), &p.to_string()])
                .inc_by(n);
        }
        let c = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        let (mut contacts, mut pending, mut windows, mut ids) = (0, 0, 0, 0);
        for ps in c.core.partitions() {
            ids += ps.ids_len();
            contacts += ps.join().contacts_len();
            pending += ps.join().pending_len();
            windows += ps.windows().open_len();
            let p = ps.partition.to_string();
            for s in Stream::ALL {
                let clock = ps.clocks[s as usize];
                let topic = self.topics[s as usize].as_str();
                if let Some(high) = cached_high_watermark(&self.consumer, topic, ps.partition) {
                    m.lag
                        .with_label_values(&[topic, &p])
                        .set((high - clock.next_offset).max(0));
                }
                if clock.floor_ms > i64::MIN {
                    m.watermark
                        .with_label_values(&[s.label(), &p])
                        .set(clock.floor_ms / 1000);
                }
            }
        }
        m.state
            .with_label_values(&["join_contacts"])
            .set(contacts as i64);
        m.state
            .with_label_values(&["join_pending_surveys"])
            .set(pending as i64);
        m.state
            .with_label_values(&["open_windows"])
            .set(windows as i64);
        m.state.with_label_values(&["dedup_ids"]).set(ids as i64);
    }
}
