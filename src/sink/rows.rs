//! Row types as ClickHouse sees them (RowBinary), built from pipeline outputs.

use crate::model::DIMENSIONS;
use crate::pipeline::partition::{ContactFact, SurveyFact};
use crate::window::{Grouping, WindowUpdate};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

fn secs(ms: i64) -> u32 {
    ms.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32
}

#[derive(Row, Serialize, Debug, Clone)]
pub struct SurveyRow {
    pub response_id: String,
    pub customer_id: String,
    pub ticket_id: String,
    pub submitted_at: u32,
    pub submitted_at_ms: i64,
    pub survey_channel: String,
    pub nps_score: Option<u8>,
    pub csat_score: Option<u8>,
    pub comment: String,
    pub region: String,
    pub product: String,
    pub tier: String,
    pub attributed: u8,
    pub matched_by: String,
    pub interaction_id: String,
    pub attributed_ticket_id: String,
    pub agent: String,
    pub team: String,
    pub channel: String,
    pub bucket: String,
    pub category: String,
    pub source_partition: i32,
    pub is_final: u8,
    pub revision: u32,
    /// 0 provisional, then 1 + revisions: the newest answer wins in ReplacingMergeTree.
    pub version: u32,
}

impl From<&SurveyFact> for SurveyRow {
    fn from(f: &SurveyFact) -> Self {
        let s = &f.resolved.survey;
        let a = f.resolved.attribution.as_ref();
        let un = |g: fn(&crate::model::Attribution) -> &str| {
            a.map(g).unwrap_or(crate::model::UNATTRIBUTED).to_string()
        };
        let unknown =
            |o: &Option<String>| o.clone().unwrap_or_else(|| crate::model::UNKNOWN.into());
        SurveyRow {
            response_id: s.response_id.clone(),
            customer_id: s.customer_id.clone(),
            ticket_id: s.ticket_id.clone().unwrap_or_default(),
            submitted_at: secs(s.submitted_at_ms),
            submitted_at_ms: s.submitted_at_ms,
            survey_channel: s.survey_channel.clone(),
            nps_score: s.nps_score,
            csat_score: s.csat_score,
            comment: s.comment.clone().unwrap_or_default(),
            region: unknown(&s.region),
            product: s
                .product
                .clone()
                .or_else(|| a.and_then(|a| a.product.clone()))
                .unwrap_or_else(|| crate::model::UNKNOWN.into()),
            tier: unknown(&s.customer_tier),
            attributed: u8::from(a.is_some()),
            matched_by: match a {
                Some(a) => a.matched_by.label(),
                None if f.resolved.other_customer => "other_customer",
                None => "none",
            }
            .into(),
            interaction_id: a.map(|a| a.interaction_id.clone()).unwrap_or_default(),
            attributed_ticket_id: a.map(|a| a.ticket_id.clone()).unwrap_or_default(),
            agent: un(|a| &a.agent_id),
            team: un(|a| &a.team),
            channel: un(|a| &a.channel),
            bucket: un(|a| &a.bucket),
            category: un(|a| &a.category),
            source_partition: f.partition,
            is_final: u8::from(f.is_final),
            revision: f.revision,
            version: if f.is_final {
                f.revision.saturating_add(1)
            } else {
                0
            },
        }
    }
}

#[derive(Row, Serialize, Debug, Clone)]
pub struct InteractionRow {
    pub interaction_id: String,
    pub ticket_id: String,
    pub customer_id: String,
    pub agent: String,
    pub team: String,
    pub channel: String,
    pub bucket: String,
    pub category: String,
    pub product: String,
    pub started_at: u32,
    pub ended_at: u32,
    pub ended_at_ms: i64,
    pub talk_ms: u64,
    pub hold_ms: u64,
    pub wrap_ms: u64,
    pub handle_ms: u64,
    pub resolved: u8,
    pub source_partition: i32,
    pub source_offset: i64,
}

impl From<&ContactFact> for InteractionRow {
    fn from(f: &ContactFact) -> Self {
        let i = &f.interaction;
        InteractionRow {
            interaction_id: i.interaction_id.clone(),
            ticket_id: i.ticket_id.clone(),
            customer_id: i.customer_id.clone(),
            agent: i.agent_id.clone(),
            team: i.team.clone(),
            channel: i.channel.clone(),
            bucket: i.bucket.clone(),
            category: i.category.clone(),
            product: i
                .product
                .clone()
                .unwrap_or_else(|| crate::model::UNKNOWN.into()),
            started_at: secs(i.started_at_ms),
            ended_at: secs(i.ended_at_ms),
            ended_at_ms: i.ended_at_ms,
            talk_ms: i.talk_ms as u64,
            hold_ms: i.hold_ms as u64,
            wrap_ms: i.wrap_ms as u64,
            handle_ms: i.handle_ms() as u64,
            resolved: u8::from(i.resolved),
            source_partition: f.partition,
            source_offset: f.offset,
        }
    }
}

#[derive(Row, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub window_size_s: u32,
    pub window_start: u32,
    pub window_end: u32,
    pub grouping: String,
    pub region: String,
    pub channel: String,
    pub team: String,
    pub agent: String,
    pub product: String,
    pub tier: String,
    pub bucket: String,
    pub source_partition: i32,
    pub revision: u64,
    pub version: u64,
    pub is_final: u8,
    pub responses: u64,
    pub nps_n: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub csat_n: u64,
    pub csat_satisfied: u64,
    pub csat_sum: u64,
    pub attributed: u64,
    pub contacts: u64,
    pub handle_ms: u64,
    pub talk_ms: u64,
    pub hold_ms: u64,
    pub wrap_ms: u64,
    pub updated_at: u32,
    pub sign: i8,
}

impl WindowRow {
    /// `epoch`: the writer's ownership epoch of the partition (0 for the embedded demo),
    /// the tie-break in the row's version (`delivery::store::row_version`).
    pub fn new(
        partition: i32,
        epoch: u32,
        u: &WindowUpdate,
        groupings: &[Grouping],
        now_s: u32,
    ) -> Self {
        let k = &u.key;
        let p = &u.partial;
        let d = |i: usize| k.dims[i].to_string();
        debug_assert_eq!(DIMENSIONS.len(), 7);
        WindowRow {
            window_size_s: (k.size_ms / 1000) as u32,
            window_start: secs(k.start_ms()),
            window_end: secs(k.end_ms),
            grouping: groupings
                .get(usize::from(k.grouping))
                .map(|g| g.name.clone())
                .unwrap_or_default(),
            region: d(0),
            channel: d(1),
            team: d(2),
            agent: d(3),
            product: d(4),
            tier: d(5),
            bucket: d(6),
            source_partition: partition,
            version: row_version(u.version, epoch),
            revision: u.revision,
            is_final: u8::from(u.is_final),
            responses: p.responses,
            nps_n: p.nps_n,
            promoters: p.promoters,
            passives: p.passives,
            detractors: p.detractors,
            csat_n: p.csat_n,
            csat_satisfied: p.csat_satisfied,
            csat_sum: p.csat_sum,
            attributed: p.attributed,
            contacts: p.contacts,
            handle_ms: p.handle_ms,
            talk_ms: p.talk_ms,
            hold_ms: p.hold_ms,
            wrap_ms: p.wrap_ms,
            updated_at: now_s,
            sign: u.sign,
        }
    }
}

#[derive(Row, Serialize, Deserialize, Debug, Clone)]
pub struct ProbeRow {
    pub token: String,
    pub at: u32,
}

const OPS_BITS: u32 = 40;
const EPOCH_BITS: u32 = 24;

/// A window row's version: how many operations the row has seen (`ops`, interleaving-free:
/// the complete row has the most), then the writer's epoch. Two writers of the same row
/// (an owner and a stalled former owner) thus never tie with different content: the more
/// complete row wins, and between equally complete ones the newest owner's. Both parts
/// saturate (2^39 operations on one row, 2^24 assignments of one partition), where ties
/// would fall back to insertion order.
pub fn row_version(ops: u64, epoch: u32) -> u64 {
    let ops = ops.min((1 << OPS_BITS) - 1);
    let epoch = u64::from(epoch).min((1 << EPOCH_BITS) - 1);
    (ops << EPOCH_BITS) | epoch
}

#[cfg(test)]
mod version_tests {
    use super::row_version;

    #[test]
    fn row_versions_order_by_completeness_then_epoch() {
        // A more complete row wins over a newer owner's partial one ...
        assert!(row_version(10, 1) > row_version(9, 5));
        // ... and equally complete rows go to the newest owner.
        assert!(row_version(10, 6) > row_version(10, 5));
        // Saturation keeps the order monotonic (never wraps).
        assert!(row_version(u64::MAX, 0) >= row_version(1 << 39, 0));
        assert!(row_version(5, u32::MAX) > row_version(5, 3));
    }
}
