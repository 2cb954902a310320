//! Independent recomputation of what the pipeline must write, from the generated events and
//! the partition/offset each landed at. Written from the documented semantics (docs/SEMANTICS.md), not from the pipeline code: batch style, whole partition at once.

use cx_pipeline::generator::GenEvent;
use cx_pipeline::model::{Event, Interaction, Stream, Survey};
use std::collections::{BTreeMap, HashMap};

pub struct Params {
    pub ooo_ms: i64,
    pub lateness_ms: i64,
    pub late_horizon_ms: i64,
    /// `join.revise_horizon` (the late horizon unless a test sets it).
    pub revise_ms: i64,
    /// `run --until-end --final`: every survey settles at the end.
    pub final_run: bool,
    pub max_wait_ms: i64,
    pub lookback_ms: i64,
    pub sizes_ms: Vec<i64>,
    /// Each grouping as the list of dimension names, in column order.
    pub groupings: Vec<Vec<&'static str>>,
    /// `[ingest]`: min event time, max future skew, max duration.
    pub min_event_ms: i64,
    pub max_future_skew_ms: i64,
    pub max_duration_ms: i64,
    /// Every record's Kafka timestamp lies in this range (the test's produce times).
    pub record_ms: (i64, i64),
}

/// (size_s, start_s, grouping, [region, channel, team, agent, product, tier, bucket], partition)
pub type Key = (u32, u32, String, [String; 7], i32);
/// responses, nps_n, promoters, passives, detractors, csat_n, csat_satisfied, csat_sum,
/// attributed, contacts, handle, talk, hold, wrap
pub type Sums = [u64; 14];

pub struct Expected {
    /// Summed over revisions; rows that sum to zero are absent.
    pub rows: BTreeMap<Key, Sums>,
    /// Dead letters by reason (decode reasons come from the generator's malformed kinds).
    pub rejected: HashMap<String, usize>,
    /// response_id -> (attributed interaction id, settled).
    pub surveys: BTreeMap<String, (Option<String>, bool)>,
    pub contacts: usize,
}

pub struct Landed<'a> {
    pub partition: i32,
    pub offset: i64,
    pub g: &'a GenEvent,
}

const COLS: [&str; 7] = [
    "region", "channel", "team", "agent", "product", "tier", "bucket",
];
/// ClickHouse DateTime's last second, in ms.
const MAX_EVENT_MS: i64 = 4_294_967_295_000;

fn time_of(e: &Event) -> i64 {
    match e {
        Event::Survey(s) => s.submitted_at_ms,
        Event::Interaction(i) => i.ended_at_ms,
    }
}

/// The event-time and duration checks; None = passes.
fn range_reason(e: &Event, p: &Params) -> Option<&'static str> {
    let t = time_of(e);
    let (lo_rec, hi_rec) = p.record_ms;
    let ahead_always = t > hi_rec.saturating_add(p.max_future_skew_ms);
    let ahead_never = t <= lo_rec.saturating_add(p.max_future_skew_ms);
    assert!(
        ahead_always || ahead_never,
        "test data must not depend on exact record timestamps: {t}"
    );
    if t < p.min_event_ms || t > MAX_EVENT_MS || ahead_always {
        return Some("event_time_out_of_range");
    }
    // README: ids and segment values longer than ingest.max_key_bytes (default 256) bytes.
    let strings: Vec<&str> = match e {
        Event::Survey(s) => [&s.response_id, &s.customer_id, &s.survey_channel]
            .into_iter()
            .map(String::as_str)
            .chain(
                [&s.ticket_id, &s.region, &s.product, &s.customer_tier]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            )
            .collect(),
        Event::Interaction(i) => [
            &i.interaction_id,
            &i.ticket_id,
            &i.customer_id,
            &i.agent_id,
            &i.team,
            &i.channel,
            &i.bucket,
            &i.category,
        ]
        .into_iter()
        .chain(i.product.as_ref())
        .map(String::as_str)
        .collect(),
    };
    let comment = match e {
        Event::Survey(s) => s.comment.as_ref().map_or(0, String::len),
        Event::Interaction(_) => 0,
    };
    // ... and comments longer than ingest.max_comment_bytes (default 16384).
    if strings.iter().any(|v| v.len() > 256) || comment > 16_384 {
        return Some("too_long");
    }
    if let Event::Interaction(i) = e {
        if [i.talk_ms, i.hold_ms, i.wrap_ms]
            .iter()
            .any(|&d| d > p.max_duration_ms)
        {
            return Some("out_of_range");
        }
    }
    None
}

/// An accepted event, with what the documented rules (docs/SEMANTICS.md) need to know about its arrival.
struct Acc<'a> {
    partition: i32,
    late: bool,
    e: &'a Event,
    /// Contacts: the revision floor (maximum - revise_horizon) just before it arrived.
    /// Surveys: max(t, survey floor after it) - lookback.
    mark: i64,
}

pub fn expected(events: &[Landed<'_>], p: &Params) -> Expected {
    let mut rejected: HashMap<String, usize> = HashMap::new();
    let mut reject = |r: &str| *rejected.entry(r.to_string()).or_default() += 1;
    // 1. Per topic-partition in offset order: validity, lateness, repeats.
    let mut by_tp: BTreeMap<(u8, i32), Vec<&Landed<'_>>> = BTreeMap::new();
    for l in events {
        if let Some(m) = l.g.malformed {
            reject(m.reason());
            continue;
        }
        by_tp
            .entry((l.g.stream as u8, l.partition))
            .or_default()
            .push(l);
    }
    let mut accepted: Vec<Acc<'_>> = Vec::new();
    let mut final_floor: HashMap<(u8, i32), i64> = HashMap::new();
    for (&(stream, part), list) in by_tp.iter_mut() {
        list.sort_by_key(|l| l.offset);
        let mut max: Option<i64> = None;
        let mut seen: HashMap<&str, i64> = HashMap::new();
        let floor_of = |max: Option<i64>| max.map_or(i64::MIN, |m| m - p.ooo_ms - p.lateness_ms);
        for l in list.iter() {
            let e = &l.g.event;
            if let Some(r) = range_reason(e, p) {
                reject(r);
                continue;
            }
            let t = time_of(e);
            let horizon = max.map_or(i64::MIN, |m| m - p.late_horizon_ms);
            if t < horizon {
                reject("too_late");
                continue;
            }
            let id = match e {
                Event::Survey(s) => s.response_id.as_str(),
                Event::Interaction(i) => i.interaction_id.as_str(),
            };
            if seen.get(id).is_some_and(|&first| first >= horizon) {
                reject("duplicate");
                continue;
            }
            seen.insert(id, t);
            let floor_before = floor_of(max);
            let late = t < floor_before;
            if !late {
                max = Some(max.map_or(t, |m| m.max(t)));
            }
            let mark = match e {
                Event::Interaction(_) => max.map_or(i64::MIN, |m| m - p.revise_ms),
                Event::Survey(_) => t.max(floor_of(max)) - p.lookback_ms,
            };
            accepted.push(Acc {
                partition: part,
                late,
                e,
                mark,
            });
        }
        final_floor.insert((stream, part), floor_of(max));
    }
    // 2. Contacts per partition.
    let mut contacts_of: HashMap<i32, Vec<(&Interaction, i64)>> = HashMap::new();
    for a in &accepted {
        if let Event::Interaction(i) = a.e {
            contacts_of
                .entry(a.partition)
                .or_default()
                .push((i, a.mark));
        }
    }
    let mut rows: BTreeMap<Key, Sums> = BTreeMap::new();
    let mut add = |t: i64, dims: [String; 7], part: i32, f: &dyn Fn(&mut Sums)| {
        for &size in &p.sizes_ms {
            let start = t.div_euclid(size) * size;
            for g in &p.groupings {
                let kept: [String; 7] = std::array::from_fn(|i| {
                    if g.contains(&COLS[i]) {
                        dims[i].clone()
                    } else {
                        String::new()
                    }
                });
                let key = (
                    (size / 1000) as u32,
                    (start / 1000) as u32,
                    g.join(","),
                    kept,
                    part,
                );
                f(rows.entry(key).or_insert([0; 14]));
            }
        }
    };
    let mut surveys = BTreeMap::new();
    let mut contacts = 0;
    for a in &accepted {
        match a.e {
            Event::Interaction(i) => {
                contacts += 1;
                let dims = [
                    "unknown".to_string(),
                    i.channel.clone(),
                    i.team.clone(),
                    i.agent_id.clone(),
                    i.product.clone().unwrap_or_else(|| "unknown".into()),
                    "unknown".into(),
                    i.bucket.clone(),
                ];
                let (talk, hold, wrap) = (i.talk_ms as u64, i.hold_ms as u64, i.wrap_ms as u64);
                add(i.ended_at_ms, dims, a.partition, &|s| {
                    s[9] += 1;
                    s[10] += talk + hold + wrap;
                    s[11] += talk;
                    s[12] += hold;
                    s[13] += wrap;
                });
            }
            Event::Survey(s) => {
                let none = Vec::new();
                let cs = contacts_of.get(&a.partition).unwrap_or(&none);
                let chosen = attribute(s, a.mark, cs, p);
                let contact_floor = final_floor
                    .get(&(Stream::Interaction as u8, a.partition))
                    .copied()
                    .unwrap_or(i64::MIN);
                let settled = p.final_run || s.submitted_at_ms + p.max_wait_ms < contact_floor;
                surveys.insert(
                    s.response_id.clone(),
                    (chosen.map(|i| i.interaction_id.clone()), settled),
                );
                // A late survey is counted once it settles; an on-time one at once, as
                // unattributed until it settles.
                if a.late && !settled {
                    continue;
                }
                let chosen = if settled { chosen } else { None };
                let h = |f: fn(&Interaction) -> &String| {
                    chosen.map_or("unattributed".to_string(), |i| f(i).clone())
                };
                let dims = [
                    s.region.clone().unwrap_or_else(|| "unknown".into()),
                    h(|i| &i.channel),
                    h(|i| &i.team),
                    h(|i| &i.agent_id),
                    s.product
                        .clone()
                        .or_else(|| chosen.and_then(|i| i.product.clone()))
                        .unwrap_or_else(|| "unknown".into()),
                    s.customer_tier.clone().unwrap_or_else(|| "unknown".into()),
                    h(|i| &i.bucket),
                ];
                let (nps, csat, attributed) = (s.nps_score, s.csat_score, chosen.is_some());
                add(s.submitted_at_ms, dims, a.partition, &|x| {
                    x[0] += 1;
                    if let Some(n) = nps {
                        x[1] += 1;
                        x[if n >= 9 {
                            2
                        } else if n >= 7 {
                            3
                        } else {
                            4
                        }] += 1;
                    }
                    if let Some(c) = csat {
                        x[5] += 1;
                        x[6] += u64::from(c >= 4);
                        x[7] += u64::from(c);
                    }
                    x[8] += u64::from(attributed);
                });
            }
        }
    }
    Expected {
        rows,
        rejected,
        surveys,
        contacts,
    }
}

/// docs/SEMANTICS.md, Join: candidates are contacts of the survey's customer with `ended_at`
/// in [lo, t + max_wait] (lo: t - lookback, or the survey floor's lookback if later) that
/// arrived before the revision floor passed t + max_wait; by ticket, else the customer's
/// latest candidate's ticket; then that ticket's last. The final answer: the whole set.
fn attribute<'a>(
    s: &Survey,
    lo_mark: i64,
    contacts: &[(&'a Interaction, i64)],
    p: &Params,
) -> Option<&'a Interaction> {
    let hi = s.submitted_at_ms + p.max_wait_ms;
    let lo = (s.submitted_at_ms - p.lookback_ms).max(lo_mark);
    let candidates: Vec<&Interaction> = contacts
        .iter()
        .filter(|(i, rfloor)| {
            i.customer_id == s.customer_id
                && i.ended_at_ms >= lo
                && i.ended_at_ms <= hi
                && *rfloor <= hi
        })
        .map(|(i, _)| *i)
        .collect();
    let latest = |v: Vec<&'a Interaction>| {
        v.into_iter().max_by(|a, b| {
            (a.ended_at_ms, &a.interaction_id).cmp(&(b.ended_at_ms, &b.interaction_id))
        })
    };
    let ticket = match &s.ticket_id {
        Some(t) => t.clone(),
        None => latest(candidates.clone())?.ticket_id.clone(),
    };
    latest(
        candidates
            .into_iter()
            .filter(|i| i.ticket_id == ticket)
            .collect(),
    )
}
