//! Independent recomputation of what the pipeline must write, from the generated events and
//! the partition/offset each landed at. Written from the documented semantics (README
//! "Semantics"), not from the pipeline code: batch style, whole partition at once.

use cx_pipeline::generator::GenEvent;
use cx_pipeline::model::{Event, Interaction, Stream, Survey};
use std::collections::{BTreeMap, HashMap};

pub struct Params {
    pub ooo_ms: i64,
    pub lateness_ms: i64,
    pub max_wait_ms: i64,
    pub lookback_ms: i64,
    pub sizes_ms: Vec<i64>,
    /// Each grouping as the list of dimension names, in column order.
    pub groupings: Vec<Vec<&'static str>>,
}

/// (size_s, start_s, grouping, [region, channel, team, agent, product, tier, bucket], partition)
pub type Key = (u32, u32, String, [String; 7], i32);
/// responses, nps_n, promoters, passives, detractors, csat_n, csat_satisfied, csat_sum,
/// attributed, contacts, handle, talk, hold, wrap
pub type Sums = [u64; 14];

pub struct Expected {
    pub rows: BTreeMap<Key, Sums>,
    pub too_late: usize,
}

pub struct Landed<'a> {
    pub partition: i32,
    pub offset: i64,
    pub g: &'a GenEvent,
}

const COLS: [&str; 7] = [
    "region", "channel", "team", "agent", "product", "tier", "bucket",
];

pub fn expected(events: &[Landed<'_>], p: &Params) -> Expected {
    // 1. Lateness, per topic-partition in offset order.
    let mut by_tp: HashMap<(Stream, i32), Vec<&Landed<'_>>> = HashMap::new();
    for l in events.iter().filter(|l| l.g.malformed.is_none()) {
        by_tp.entry((l.g.stream, l.partition)).or_default().push(l);
    }
    let mut accepted: Vec<&Landed<'_>> = Vec::new();
    let mut too_late = 0;
    for list in by_tp.values_mut() {
        list.sort_by_key(|l| l.offset);
        let mut max: Option<i64> = None;
        for l in list.iter() {
            let t = match &l.g.event {
                Event::Survey(s) => s.submitted_at_ms,
                Event::Interaction(i) => i.ended_at_ms,
            };
            if matches!(max, Some(m) if t < m - p.ooo_ms - p.lateness_ms) {
                too_late += 1;
                continue;
            }
            max = Some(max.map_or(t, |m| m.max(t)));
            accepted.push(l);
        }
    }
    // 2. Contacts per partition, indexed by ticket and by customer.
    let mut by_ticket: HashMap<(i32, &str), Vec<&Interaction>> = HashMap::new();
    let mut by_customer: HashMap<(i32, &str), Vec<&Interaction>> = HashMap::new();
    for l in &accepted {
        if let Event::Interaction(i) = &l.g.event {
            by_ticket
                .entry((l.partition, &i.ticket_id))
                .or_default()
                .push(i);
            by_customer
                .entry((l.partition, &i.customer_id))
                .or_default()
                .push(i);
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
    for l in &accepted {
        match &l.g.event {
            Event::Interaction(i) => {
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
                add(i.ended_at_ms, dims, l.partition, &|s| {
                    s[9] += 1;
                    s[10] += talk + hold + wrap;
                    s[11] += talk;
                    s[12] += hold;
                    s[13] += wrap;
                });
            }
            Event::Survey(s) => {
                let a = attribute(s, l.partition, &by_ticket, &by_customer, p);
                let h = |f: fn(&Interaction) -> &String| {
                    a.map_or("unattributed".to_string(), |i| f(i).clone())
                };
                let dims = [
                    s.region.clone().unwrap_or_else(|| "unknown".into()),
                    h(|i| &i.channel),
                    h(|i| &i.team),
                    h(|i| &i.agent_id),
                    s.product
                        .clone()
                        .or_else(|| a.and_then(|i| i.product.clone()))
                        .unwrap_or_else(|| "unknown".into()),
                    s.customer_tier.clone().unwrap_or_else(|| "unknown".into()),
                    h(|i| &i.bucket),
                ];
                let (nps, csat, attributed) = (s.nps_score, s.csat_score, a.is_some());
                add(s.submitted_at_ms, dims, l.partition, &|x| {
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
    Expected { rows, too_late }
}

fn attribute<'a>(
    s: &Survey,
    part: i32,
    by_ticket: &HashMap<(i32, &str), Vec<&'a Interaction>>,
    by_customer: &HashMap<(i32, &str), Vec<&'a Interaction>>,
    p: &Params,
) -> Option<&'a Interaction> {
    let (lo, hi) = (
        s.submitted_at_ms - p.lookback_ms,
        s.submitted_at_ms + p.max_wait_ms,
    );
    let in_range = |i: &&&Interaction| i.ended_at_ms >= lo && i.ended_at_ms <= hi;
    let latest = |v: Vec<&'a Interaction>| {
        v.into_iter().max_by(|a, b| {
            (a.ended_at_ms, &a.interaction_id).cmp(&(b.ended_at_ms, &b.interaction_id))
        })
    };
    let ticket = match &s.ticket_id {
        Some(t) => t.clone(),
        None => {
            let mine: Vec<&Interaction> = by_customer
                .get(&(part, s.customer_id.as_str()))?
                .iter()
                .filter(in_range)
                .copied()
                .collect();
            latest(mine)?.ticket_id.clone()
        }
    };
    let contacts: Vec<&Interaction> = by_ticket
        .get(&(part, ticket.as_str()))?
        .iter()
        .filter(in_range)
        .copied()
        .collect();
    latest(contacts)
}
