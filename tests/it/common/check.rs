//! The exact comparison every integration test ends with: ClickHouse and the dead-letter
//! topic against the independent oracle (`oracle.rs`).

use super::harness::{params_for, Setup};
use super::oracle::{self, Landed, Params};
use cx_pipeline::generator::GenEvent;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Compares ClickHouse and the dead-letter topic with the oracle over the events that the
/// consumer can see (`landed[i]` is None for an event produced in an aborted transaction):
/// every window row read with FINAL (summed over revisions), every survey fact's
/// attribution and settledness, the contact facts, and the dead letters by reason.
pub async fn check(s: &Setup, evs: &[GenEvent], landed: &[Option<(i32, i64)>]) {
    let exp = expected_for(s, evs, landed);
    let got = observed_rows(s).await;
    compare_rows(&exp.rows, &got);
    assert!(
        exp.rows.len() > 5_000,
        "a meaningful number of rows: {}",
        exp.rows.len()
    );
    let dl = check_dead_letters(s, &exp);
    let reasons: &[&str] = if s.late_horizon_h <= 2 {
        &["too_late", "malformed_avro"]
    } else {
        &["malformed_avro"]
    };
    for &reason in reasons {
        assert!(
            exp.rejected.get(reason).is_some_and(|&n| n > 5),
            "the data set exercises {reason}: {:?}",
            exp.rejected
        );
    }
    let revised = super::count(
        &s.ch,
        &format!(
            "SELECT count() FROM {}.window_aggregates FINAL WHERE revision > 0",
            s.db
        ),
    )
    .await;
    assert!(revised > 0, "the data set exercises late revisions");
    let surveys = check_facts(s, &exp).await;
    eprintln!(
        "checked {} window rows ({revised} correction rows), {dl} distinct dead letters {:?}, {surveys} surveys, {} contacts",
        got.len(),
        exp.rejected,
        exp.contacts
    );
}

/// The oracle over the visible events, with the setup's settings.
pub fn expected_for(
    s: &Setup,
    evs: &[GenEvent],
    landed: &[Option<(i32, i64)>],
) -> oracle::Expected {
    expected_with(&params_for(s.late_horizon_h), evs, landed)
}

pub fn expected_with(
    p: &Params,
    evs: &[GenEvent],
    landed: &[Option<(i32, i64)>],
) -> oracle::Expected {
    assert_eq!(evs.len(), landed.len());
    let l: Vec<Landed<'_>> = evs
        .iter()
        .zip(landed)
        .filter_map(|(g, at)| {
            at.map(|(partition, offset)| Landed {
                partition,
                offset,
                g,
            })
        })
        .collect();
    oracle::expected(&l, p)
}

/// Window rows read with FINAL, summed over revisions with their sign, rows summing to
/// zero dropped.
pub async fn observed_rows(s: &Setup) -> BTreeMap<oracle::Key, oracle::Sums> {
    let rows = super::window_rows(&s.ch, &s.db).await;
    let mut got: BTreeMap<oracle::Key, oracle::Sums> = BTreeMap::new();
    let mut signed: BTreeMap<oracle::Key, [i128; 14]> = BTreeMap::new();
    let mut seen = HashSet::new();
    for r in &rows {
        assert!(
            r.revision == 0 || r.is_final == 1,
            "a correction row is final: {r:?}"
        );
        let key = (
            r.window_size_s,
            r.window_start,
            r.grouping.clone(),
            [
                r.region.clone(),
                r.channel.clone(),
                r.team.clone(),
                r.agent.clone(),
                r.product.clone(),
                r.tier.clone(),
                r.bucket.clone(),
            ],
            r.source_partition,
        );
        assert!(
            seen.insert((key.clone(), r.revision)),
            "duplicate row after FINAL: {key:?} revision {}",
            r.revision
        );
        let sums = [
            r.responses,
            r.nps_n,
            r.promoters,
            r.passives,
            r.detractors,
            r.csat_n,
            r.csat_satisfied,
            r.csat_sum,
            r.attributed,
            r.contacts,
            r.handle_ms,
            r.talk_ms,
            r.hold_ms,
            r.wrap_ms,
        ];
        // Summed with the row's sign, as every documented query does.
        let e = signed.entry(key).or_insert([0; 14]);
        for (a, b) in e.iter_mut().zip(sums) {
            *a += i128::from(r.sign) * i128::from(b);
        }
    }
    for (k, v) in signed {
        assert!(
            v.iter().all(|&x| x >= 0),
            "a segment sums below zero: {k:?} {v:?}"
        );
        if v.iter().any(|&x| x != 0) {
            got.insert(k, v.map(|x| u64::try_from(x).unwrap_or(0)));
        }
    }
    got
}

pub fn compare_rows(
    exp: &BTreeMap<oracle::Key, oracle::Sums>,
    got: &BTreeMap<oracle::Key, oracle::Sums>,
) {
    let missing: Vec<_> = exp
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !exp.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\nextra {extra:?}"
    );
    let wrong = first_differences(exp, got);
    assert!(
        wrong.is_empty(),
        "rows differ (key, expected, got): {wrong:#?}"
    );
}

/// Up to five (key, expected, got) where `got` disagrees with `exp`.
fn first_differences<'a, K: Ord, V: PartialEq>(
    exp: &'a BTreeMap<K, V>,
    got: &'a BTreeMap<K, V>,
) -> Vec<(&'a K, &'a V, Option<&'a V>)> {
    exp.iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| (k, v, got.get(k)))
        .collect()
}

/// Dead letters: exactly the rejects the oracle names, each once (deduplicated by source
/// record, as docs/SEMANTICS.md says to). Returns the distinct count.
pub fn check_dead_letters(s: &Setup, exp: &oracle::Expected) -> usize {
    let dl = super::read_dead_letters(&s.brokers, &s.topics.2);
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    let mut seen = HashSet::new();
    for (reason, topic, p, o) in &dl {
        if seen.insert((topic.clone(), *p, *o)) {
            *by_reason.entry(reason.clone()).or_default() += 1;
        }
    }
    assert_eq!(by_reason, exp.rejected, "dead letters by reason");
    seen.len()
}

/// Survey facts: one per accepted survey with the oracle's attribution and settledness;
/// contact facts: one per accepted contact. Returns the survey count.
pub async fn check_facts(s: &Setup, exp: &oracle::Expected) -> usize {
    let got = super::survey_facts(&s.ch, &s.db).await;
    let got: BTreeMap<String, (Option<String>, bool)> = got
        .into_iter()
        .map(|(id, i, fin)| (id, ((!i.is_empty()).then_some(i), fin == 1)))
        .collect();
    let wrong = first_differences(&exp.surveys, &got);
    assert!(
        wrong.is_empty(),
        "survey facts (id, expected, got): {wrong:?}"
    );
    assert_eq!(got.len(), exp.surveys.len(), "survey fact count");
    let contacts = super::count(
        &s.ch,
        &format!("SELECT count() FROM {}.interaction_facts FINAL", s.db),
    )
    .await;
    assert_eq!(contacts as usize, exp.contacts, "contact facts");
    got.len()
}
