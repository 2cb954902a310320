//! Consumption gauges, refreshed once per flush: consumed counts, lag, event-time floors and
//! state sizes (emitted as `internal_events::kafka` occurrences).

use super::setup::cached_high_watermark;
use super::Run;
use crate::internal_events::{Consumed, InternalEvent, StateBytes, StateSize, StreamPosition};
use crate::model::Stream;

impl Run<'_> {
    pub(super) fn update_gauges(&mut self) {
        let m = self.job.metrics.clone();
        for ((s, p), count) in self.consumed.drain() {
            Consumed {
                topic: &self.topics[s as usize],
                partition: p,
                count,
            }
            .emit(&m);
        }
        let c = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        let mut size = StateSize {
            join_contacts: 0,
            join_pending_surveys: 0,
            join_revisable_surveys: 0,
            open_windows: 0,
            dedup_ids: 0,
            bytes: StateBytes::default(),
        };
        for ps in c.core().partitions() {
            size.dedup_ids += ps.ids_len();
            size.join_contacts += ps.join().contacts_len();
            size.join_pending_surveys += ps.join().pending_len();
            size.join_revisable_surveys += ps.join().revisable_len();
            size.open_windows += ps.windows().open_len();
            let b = &mut size.bytes;
            b.open_windows += ps.windows().row_bytes();
            b.segments += ps.windows().segment_bytes();
            b.dedup_ids += ps.ids_bytes();
            b.join += ps.join().bytes();
            for s in Stream::ALL {
                let clock = ps.clocks[s as usize];
                let topic = self.topics[s as usize].as_str();
                StreamPosition {
                    topic,
                    stream: s.label(),
                    partition: ps.partition,
                    lag: cached_high_watermark(&self.consumer, topic, ps.partition)
                        .map(|high| high - clock.next_offset),
                    floor_ms: (clock.floor_ms > i64::MIN).then_some(clock.floor_ms),
                }
                .emit(&m);
            }
        }
        size.emit(&m);
    }
}
