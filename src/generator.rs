//! Seeded generator of realistic survey and contact events, in arrival order: tickets with
//! one to three contacts, surveys minutes to hours after resolution (NPS leaning on handle
//! time and resolution, so the boards have a story), relationship surveys without a ticket,
//! small out-of-order jitter, ingestion lag, a few very late events and, on request, a share
//! of malformed messages. Tests keep the returned events as ground truth for their oracle.

use crate::codec::{avro, frame_confluent, Schemas, WireFormat};
use crate::model::{Event, Interaction, Stream, Survey};

pub use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    /// Total messages (valid + malformed).
    pub count: usize,
    /// Event time of the first ticket, ms since the epoch.
    pub start_ms: i64,
    /// Mean event-time gap between new tickets.
    pub ticket_gap_ms: i64,
    pub customers: u64,
    /// Share of messages replaced by a malformed one.
    pub malformed_share: f64,
    /// Share of events held back an hour or more (they arrive too late).
    pub late_share: f64,
    /// An injected NPS drop in one team (the detector's tests and demos).
    pub drop: Option<TeamDrop>,
}

/// From `from_ms` to `to_ms` (survey time), each ticket survey rating team `team`'s contact
/// is, with probability `share`, replaced by a detractor's score (0-6).
#[derive(Clone, Debug)]
pub struct TeamDrop {
    pub team: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub share: f64,
    /// From this survey time on (ms), this share instead: a drop that deepens.
    pub deeper: Option<(i64, f64)>,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            count: 10_000,
            start_ms: 1_793_491_200_000, // 2026-11-01T00:00:00Z
            ticket_gap_ms: 3_000,
            customers: 5_000,
            malformed_share: 0.01,
            late_share: 0.003,
            drop: None,
        }
    }
}

/// How a generated message was broken; `reason` is what the pipeline must report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    BadMagic,
    Truncated,
    NpsOutOfRange,
    CsatOutOfRange,
    MissingId,
    NegativeDuration,
    UnknownSchemaId,
}

impl Malformed {
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::BadMagic => "bad_magic_byte",
            Malformed::Truncated => "malformed_avro",
            Malformed::NpsOutOfRange | Malformed::CsatOutOfRange | Malformed::NegativeDuration => {
                "out_of_range"
            }
            Malformed::MissingId => "missing_field",
            Malformed::UnknownSchemaId => "unknown_schema_id",
        }
    }
}

#[derive(Clone, Debug)]
pub struct GenEvent {
    pub stream: Stream,
    /// The Kafka key: the customer id.
    pub key: String,
    pub event: Event,
    pub malformed: Option<Malformed>,
    /// Arrival time used for ordering (event time + lag).
    pub arrival_ms: i64,
}

/// Turns events into payloads in the configured wire format.
pub struct Encoder {
    pub format: WireFormat,
    pub schemas: Schemas,
    /// Confluent schema ids for (survey, interaction).
    pub ids: (u32, u32),
}

/// A schema id no registry will know, for the unknown-id malformation.
pub const UNKNOWN_SCHEMA_ID: u32 = 999_999;

impl Encoder {
    pub fn encode(&self, g: &GenEvent) -> Result<Vec<u8>, apache_avro::Error> {
        let (schema, id, value) = match &g.event {
            Event::Survey(s) => {
                let (nps, csat) = match g.malformed {
                    Some(Malformed::NpsOutOfRange) => (
                        Some(11 + (s.response_id.len() as i32 % 3)),
                        s.csat_score.map(i32::from),
                    ),
                    Some(Malformed::CsatOutOfRange) => (s.nps_score.map(i32::from), Some(0)),
                    _ => (s.nps_score.map(i32::from), s.csat_score.map(i32::from)),
                };
                let mut s = s.clone();
                if g.malformed == Some(Malformed::MissingId) {
                    s.response_id.clear();
                }
                (
                    &self.schemas.survey,
                    self.ids.0,
                    avro::survey_value(&s, nps, csat),
                )
            }
            Event::Interaction(i) => {
                let mut i = i.clone();
                match g.malformed {
                    Some(Malformed::MissingId) => i.agent_id = " ".into(),
                    Some(Malformed::NegativeDuration) => i.hold_ms = -5,
                    _ => {}
                }
                (
                    &self.schemas.interaction,
                    self.ids.1,
                    avro::interaction_value(&i),
                )
            }
        };
        let mut datum = avro::encode(schema, value)?;
        if g.malformed == Some(Malformed::Truncated) {
            datum.truncate(datum.len() / 2);
        }
        let mut payload = match self.format {
            WireFormat::Avro => datum,
            WireFormat::Confluent => {
                let id = if g.malformed == Some(Malformed::UnknownSchemaId) {
                    UNKNOWN_SCHEMA_ID
                } else {
                    id
                };
                frame_confluent(id, &datum)
            }
        };
        if g.malformed == Some(Malformed::BadMagic) {
            match self.format {
                WireFormat::Confluent => payload[0] = 0x7B,
                // A bare datum has no magic byte; an empty payload fails the same early check.
                WireFormat::Avro => payload.clear(),
            }
        }
        Ok(payload)
    }
}

const REGIONS: [&str; 5] = ["emea", "na", "latam", "apac", "anz"];
const PRODUCTS: [&str; 4] = ["router", "mesh", "cloud", "mobile"];
const TIERS: [&str; 3] = ["consumer", "smb", "enterprise"];
const TEAMS: [(&str, f64); 6] = [
    ("billing", 1.0),
    ("tech-l1", 1.3),
    ("tech-l2", 1.8),
    ("orders", 0.8),
    ("returns", 1.1),
    ("presales", 0.9),
];
const PRE: [&str; 3] = ["diagnostics", "order_entry", "product"];
const POST: [&str; 4] = ["order_tracking", "refunds", "nps_surveys", "disputes"];
const CHANNELS: [&str; 4] = ["PHONE", "CHAT", "EMAIL", "SOCIAL"];
const SURVEY_CH: [&str; 4] = ["EMAIL", "SMS", "IN_APP", "WEB"];
const COMMENTS: [&str; 6] = [
    "took far too long to reach someone",
    "agent was great, fixed it on the first call",
    "still waiting for my refund",
    "ok I guess",
    "transferred three times",
    "quick and friendly",
];

/// An arrival lag: mostly ordinary out-of-orderness, some ingestion lag, `late_share` late.
fn lag(r: &mut Rng, late_share: f64, ingest: bool) -> i64 {
    if r.chance(late_share) {
        r.range(3_600_000, 3 * 3_600_000)
    } else if ingest && r.chance(0.03) {
        r.range(60_000, 240_000) // ingestion lag, within allowed lateness
    } else {
        r.range(0, 20_000) // ordinary out-of-orderness
    }
}

/// One ticket as its contacts leave it, for the surveys that rate it.
struct Ticket {
    id: String,
    customer: String,
    region: &'static str,
    tier: &'static str,
    product: &'static str,
    /// When the ticket was opened and when its last contact ended.
    opened: i64,
    end: i64,
    handle_total: i64,
    resolved: bool,
    last_team: &'static str,
}

/// The ticket's 1-3 contacts, pushed to `out`.
fn contacts(r: &mut Rng, cfg: &GenConfig, t: &mut Ticket, seq: &mut u64, out: &mut Vec<GenEvent>) {
    let pre = r.chance(0.35);
    let (bucket, category) = if pre {
        ("PRE_SALES", *r.pick(&PRE))
    } else {
        ("POST_SALES", *r.pick(&POST))
    };
    let n = 1 + r.below(3) as usize;
    for c in 0..n {
        let (team, slow) = *r.pick(&TEAMS);
        t.last_team = team;
        let agent = format!("{team}-a{:02}", r.below(8));
        let channel = *r.pick(&CHANNELS);
        let talk = (r.range(120_000, 600_000) as f64 * slow) as i64;
        let hold = if r.chance(0.4) {
            r.range(10_000, 180_000)
        } else {
            0
        };
        let wrap = r.range(20_000, 120_000);
        let started = t.end + r.range(60_000, 3_600_000);
        t.end = started + talk + hold + wrap;
        t.handle_total += talk + hold + wrap;
        t.resolved = c + 1 == n && r.chance(0.85);
        *seq += 1;
        let i = Interaction {
            interaction_id: format!("i{seq:08}"),
            ticket_id: t.id.clone(),
            customer_id: t.customer.clone(),
            agent_id: agent,
            team: team.into(),
            channel: channel.into(),
            bucket: bucket.into(),
            category: category.into(),
            product: Some(t.product.into()),
            started_at_ms: started,
            ended_at_ms: t.end,
            talk_ms: talk,
            hold_ms: hold,
            wrap_ms: wrap,
            resolved: t.resolved,
        };
        let arrival = t.end + lag(r, cfg.late_share, true);
        out.push(GenEvent {
            stream: Stream::Interaction,
            key: t.customer.clone(),
            event: Event::Interaction(i),
            malformed: None,
            arrival_ms: arrival,
        });
    }
}

/// The ticket's survey (60 %) and a relationship survey without a ticket (8 %).
fn surveys(r: &mut Rng, cfg: &GenConfig, t: &Ticket, seq: &mut u64, out: &mut Vec<GenEvent>) {
    let ticket_survey = r.chance(0.6);
    let relationship = r.chance(0.08);
    for with_ticket in [true, false] {
        if (with_ticket && !ticket_survey) || (!with_ticket && !relationship) {
            continue;
        }
        // Faster, resolved tickets make promoters; long, unresolved ones detractors.
        let minutes = t.handle_total as f64 / 60_000.0;
        let base = 9.5 - minutes / 9.0 - if t.resolved { 0.0 } else { 3.0 } + r.f64() * 3.0 - 1.5;
        let mut nps = base.round().clamp(0.0, 10.0) as u8;
        *seq += 1;
        let submitted = if with_ticket {
            t.end + r.range(120_000, 3 * 3_600_000)
        } else {
            t.opened + r.range(0, 3_600_000)
        };
        if let Some(d) = &cfg.drop {
            let share = match d.deeper {
                Some((at, s)) if submitted >= at => s,
                _ => d.share,
            };
            if with_ticket
                && t.last_team == d.team
                && (d.from_ms..d.to_ms).contains(&submitted)
                && r.chance(share)
            {
                nps = r.below(u64::from(crate::model::DETRACTOR_MAX) + 1) as u8;
            }
        }
        let csat = ((f64::from(nps) / 2.2).round() as u8).clamp(1, 5);
        let s = Survey {
            response_id: format!("r{seq:08}"),
            customer_id: t.customer.clone(),
            ticket_id: with_ticket.then(|| t.id.clone()),
            submitted_at_ms: submitted,
            survey_channel: (*r.pick(&SURVEY_CH)).into(),
            nps_score: r.chance(0.95).then_some(nps),
            csat_score: r.chance(0.7).then_some(csat),
            comment: r.chance(0.3).then(|| (*r.pick(&COMMENTS)).into()),
            region: Some(t.region.into()),
            product: Some(t.product.into()),
            customer_tier: Some(t.tier.into()),
        };
        let arrival = submitted + lag(r, cfg.late_share, false);
        out.push(GenEvent {
            stream: Stream::Survey,
            key: t.customer.clone(),
            event: Event::Survey(s),
            malformed: None,
            arrival_ms: arrival,
        });
    }
}

/// Marks `malformed_share` of the messages with a kind of corruption their stream can have.
fn corrupt(r: &mut Rng, cfg: &GenConfig, format: WireFormat, out: &mut [GenEvent]) {
    let kinds_survey = [
        Malformed::BadMagic,
        Malformed::Truncated,
        Malformed::NpsOutOfRange,
        Malformed::CsatOutOfRange,
        Malformed::MissingId,
        Malformed::UnknownSchemaId,
    ];
    let kinds_contact = [
        Malformed::BadMagic,
        Malformed::Truncated,
        Malformed::MissingId,
        Malformed::NegativeDuration,
        Malformed::UnknownSchemaId,
    ];
    for g in out {
        if r.chance(cfg.malformed_share) {
            let kinds: &[Malformed] = if g.stream == Stream::Survey {
                &kinds_survey
            } else {
                &kinds_contact
            };
            let mut k = *r.pick(kinds);
            if k == Malformed::UnknownSchemaId && format == WireFormat::Avro {
                k = Malformed::Truncated;
            }
            if k == Malformed::NpsOutOfRange {
                if let Event::Survey(s) = &g.event {
                    if s.nps_score.is_none() {
                        k = Malformed::MissingId;
                    }
                }
            }
            g.malformed = Some(k);
        }
    }
}

/// Generates `cfg.count` messages sorted by arrival time.
pub fn generate(cfg: &GenConfig, format: WireFormat) -> Vec<GenEvent> {
    let mut r = Rng::new(cfg.seed);
    let mut out: Vec<GenEvent> = Vec::with_capacity(cfg.count + 8);
    let mut t = cfg.start_ms;
    let mut ticket_no = 0u64;
    let mut seq = 0u64;
    while out.len() < cfg.count {
        t += r.range(cfg.ticket_gap_ms / 2, cfg.ticket_gap_ms * 3 / 2);
        ticket_no += 1;
        let customer = format!("c{:06}", r.below(cfg.customers));
        let cust_rng = &mut Rng::new(cfg.seed ^ customer.len() as u64 ^ hash(&customer));
        let region = *cust_rng.pick(&REGIONS);
        let tier = *cust_rng.pick(&TIERS);
        let product = *cust_rng.pick(&PRODUCTS);
        let mut ticket = Ticket {
            region,
            tier,
            product,
            customer,
            id: format!("t{ticket_no:07}"),
            opened: t,
            end: t,
            handle_total: 0,
            resolved: false,
            last_team: "",
        };
        contacts(&mut r, cfg, &mut ticket, &mut seq, &mut out);
        surveys(&mut r, cfg, &ticket, &mut seq, &mut out);
    }
    out.truncate(cfg.count);
    out.sort_by_key(|g| g.arrival_ms);
    corrupt(&mut r, cfg, format, &mut out);
    out
}

/// FNV-1a, for stable per-customer attributes.
pub fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_and_malformed_payloads_fail_as_labelled() {
        let cfg = GenConfig {
            count: 3000,
            malformed_share: 0.05,
            ..GenConfig::default()
        };
        let a = generate(&cfg, WireFormat::Confluent);
        let b = generate(&cfg, WireFormat::Confluent);
        assert_eq!(a.len(), 3000);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.event == y.event && x.malformed == y.malformed));
        assert!(a.windows(2).all(|w| w[0].arrival_ms <= w[1].arrival_ms));
        let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
        let enc = Encoder {
            format: WireFormat::Confluent,
            schemas: schemas.clone(),
            ids: (1, 2),
        };
        let mut dec = crate::codec::Decoder::new(WireFormat::Confluent, schemas.clone(), None);
        dec.preload(Stream::Survey, 1, schemas.survey.clone());
        dec.preload(Stream::Interaction, 2, schemas.interaction.clone());
        dec.preload_unknown(Stream::Survey, UNKNOWN_SCHEMA_ID);
        dec.preload_unknown(Stream::Interaction, UNKNOWN_SCHEMA_ID);
        let mut bad = 0;
        for g in &a {
            let payload = enc.encode(g).unwrap_or_else(|e| panic!("{e}"));
            match (dec.decode(g.stream, &payload), g.malformed) {
                (Ok(e), None) => assert_eq!(e, g.event),
                (Err(e), Some(m)) => {
                    bad += 1;
                    assert_eq!(e.reason(), m.reason(), "{m:?}: {e}");
                }
                (r, m) => panic!("{m:?} decoded as {r:?}"),
            }
        }
        assert!(bad > 50, "{bad}");
        let surveys = a.iter().filter(|g| g.stream == Stream::Survey).count();
        assert!(surveys > 500 && surveys < 2000, "{surveys}");
    }
}
