//! The detector's state machine: one step per hour with every segment's class counts; it
//! refits baselines and thresholds at each UTC midnight, runs the CUSUM bank of every
//! segment, and returns alert events and, at midnight, the digest. Pure: no clock, no I/O, so
//! the ClickHouse service, the simulation harness and the tests drive the same code.

use super::alert::{AlertEvent, DigestEntry, Severity};
use super::baseline::{prior_strength, raw, Baseline, History, Raw};
use super::cusum::{alternative, kl_per_answer, step_bank, threshold, Cusum};
use super::incident::Incident;
use super::segment::{Hierarchy, SegmentKey};
use super::Params;
use crate::stats::{tilt, Counts};

mod describe;
mod digest;
mod follow;
mod group;
pub use group::{IncidentView, OverlapRequest};
use std::collections::HashMap;

/// An open alert and what following it needs.
pub struct Active {
    pub event: AlertEvent,
    fired_hour: i64,
    change_start: i64,
    /// The baseline in force when it fired: recovery and deepening are judged against it.
    baseline: Baseline,
    /// Evidence for recovery: a CUSUM of the reversed log-ratio.
    recovery: f64,
    /// Current drop estimate (mean score): the size of the CUSUM that fired, plus each
    /// further drop found while open.
    drop: f64,
    /// CUSUMs for a further drop below the current level (baseline − drop).
    follow: Vec<Cusum>,
    /// Where the current level began: the drop's start, or where it last deepened.
    level_start: i64,
    aged: bool,
}

struct Seg {
    key: SegmentKey,
    parent: Option<usize>,
    children: Vec<usize>,
    history: History,
    baseline: Option<Baseline>,
    bank: Vec<Cusum>,
    active: Option<Active>,
    /// First hour with answers: history, volume and the minimum history count from here.
    first_hour: Option<i64>,
    /// The baseline window starts here at the earliest (an accepted new level).
    epoch: i64,
    /// Of a nested grouping (agents): its share of the budget is `nested_budget_share`.
    nested: bool,
    /// In-control run length each CUSUM of its bank is held to (hours).
    arl: f64,
}

/// What one hour produced.
#[derive(Debug, Default)]
pub struct Output {
    pub alerts: Vec<AlertEvent>,
    pub digest: Vec<DigestEntry>,
}

pub struct Detector {
    set: Params,
    hier: Hierarchy,
    segs: Vec<Seg>,
    ids: HashMap<SegmentKey, usize>,
    first_hour: Option<i64>,
    last_hour: Option<i64>,
    day: Option<i64>,
    ring: usize,
    /// Open incidents, oldest first.
    incidents: Vec<Incident>,
}

impl Detector {
    pub fn new(set: Params, hier: Hierarchy) -> Self {
        let ring = ((set.baseline_days + set.gap_days + 1) * 24) as usize;
        Detector {
            set,
            hier,
            segs: Vec::new(),
            ids: HashMap::new(),
            first_hour: None,
            last_hour: None,
            day: None,
            ring,
            incidents: Vec::new(),
        }
    }

    pub fn hierarchy_mut(&mut self) -> &mut Hierarchy {
        &mut self.hier
    }

    pub fn last_hour(&self) -> Option<i64> {
        self.last_hour
    }

    pub fn segments(&self) -> usize {
        self.segs.len()
    }

    /// Segments with a baseline, by grouping: what is being watched.
    pub fn watched(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in self.segs.iter().filter(|s| s.baseline.is_some()) {
            *m.entry(s.key.grouping()).or_insert(0) += 1;
        }
        m
    }

    /// A segment's baseline in effect and the thresholds of its CUSUM bank.
    pub fn baseline_of(&self, id: usize) -> Option<(&Baseline, Vec<(f64, f64)>)> {
        let s = self.segs.get(id)?;
        let b = s.baseline.as_ref()?;
        Some((b, s.bank.iter().map(|c| (c.delta, c.threshold)).collect()))
    }

    /// The in-control run length one CUSUM in place of the segment's whole bank would get
    /// from the same budget: the harness's ideal reference is held to it.
    pub fn single_arl(&self, id: usize) -> Option<f64> {
        let s = self.segs.get(id)?;
        s.baseline.as_ref()?;
        Some(s.arl / (s.bank.len() as f64).sqrt())
    }

    /// Adds what only the facts can tell (detractor categories and ids) to an active alert,
    /// so re-sent copies carry it too.
    pub fn annotate(
        &mut self,
        alert_id: &str,
        cats: Vec<super::alert::CategoryShare>,
        ids: Vec<String>,
        flags: Vec<String>,
    ) {
        for s in &mut self.segs {
            if let Some(a) = s.active.as_mut().filter(|a| a.event.alert_id == alert_id) {
                a.event.detractor_categories = cats;
                a.event.detractor_response_ids = ids;
                a.event.data_flags = flags;
                return;
            }
        }
    }

    pub fn active(&self) -> impl Iterator<Item = &Active> {
        self.segs.iter().filter_map(|s| s.active.as_ref())
    }

    /// The id of a segment, registering it on first sight (ids feed [`Detector::step_ids`]).
    pub fn register(&mut self, key: &SegmentKey) -> usize {
        self.id(key)
    }

    fn id(&mut self, key: &SegmentKey) -> usize {
        if let Some(&i) = self.ids.get(key) {
            return i;
        }
        let i = self.segs.len();
        let delta = self.set.delta(key.mask);
        self.segs.push(Seg {
            key: key.clone(),
            parent: None,
            children: Vec::new(),
            history: History::new(self.ring),
            baseline: None,
            bank: Cusum::bank(delta, self.set.max_delta.max(delta)),
            active: None,
            first_hour: None,
            epoch: i64::MIN,
            nested: self.hier.is_nested(key.mask),
            arl: f64::INFINITY,
        });
        self.ids.insert(key.clone(), i);
        i
    }

    /// Feeds one hour (Unix hour number: seconds / 3600). Hours must come in order; skipped
    /// hours count as hours without answers, an hour at or before the last one is ignored.
    pub fn step(&mut self, hour: i64, rows: &[(SegmentKey, Counts)]) -> Output {
        let rows: Vec<(usize, Counts)> = rows.iter().map(|(k, c)| (self.id(k), *c)).collect();
        self.step_ids(hour, &rows)
    }

    /// [`Detector::step`] with registered ids.
    pub fn step_ids(&mut self, hour: i64, rows: &[(usize, Counts)]) -> Output {
        let mut out = Output::default();
        if let Some(last) = self.last_hour {
            if hour <= last {
                return out;
            }
            for h in last + 1..hour {
                self.advance(h, &[], &mut out);
            }
        }
        self.advance(hour, rows, &mut out);
        // In segment order, not in the order segments were first seen.
        out.alerts
            .sort_by(|a, b| (a.at, &a.grouping, &a.segment).cmp(&(b.at, &b.grouping, &b.segment)));
        out.digest.sort_by(|a, b| {
            (a.day, a.period_days, &a.grouping, &a.segment).cmp(&(
                b.day,
                b.period_days,
                &b.grouping,
                &b.segment,
            ))
        });
        out
    }

    fn advance(&mut self, hour: i64, rows: &[(usize, Counts)], out: &mut Output) {
        self.first_hour.get_or_insert(hour);
        let day = hour.div_euclid(24);
        if self.day != Some(day) {
            if self.day.is_some() {
                out.digest = self.digest(day);
            }
            self.rebaseline(day);
            self.day = Some(day);
        }
        self.last_hour = Some(hour);
        let mut counts = vec![Counts::default(); self.segs.len()];
        for &(i, c) in rows {
            if let Some(x) = counts.get_mut(i) {
                x.add(&c);
            }
        }
        for (s, c) in self.segs.iter_mut().zip(&counts) {
            s.history.set(hour, c);
            if c.n() > 0 {
                s.first_hour.get_or_insert(hour);
            }
            if s.active.is_some() {
                s.history.exclude(hour);
            }
        }
        let ready = self.first_hour.is_some_and(|f| {
            hour >= f + i64::from((self.set.gap_days + self.set.min_history_days) * 24)
        });
        if !ready {
            return;
        }
        for (i, c) in counts.iter().enumerate() {
            if let Some(e) = self.evaluate(i, hour, c) {
                out.alerts.push(e);
            }
        }
    }

    fn evaluate(&mut self, i: usize, hour: i64, c: &Counts) -> Option<AlertEvent> {
        if self.segs[i].active.is_some() {
            return self.follow(i, hour, c);
        }
        let margin = self.set.baseline_margin_se;
        if c.n() == 0 {
            return None;
        }
        // A nested segment (an agent in its team) does not page while its parent does: it
        // is listed among the parent's contributors instead. Overall never folds anything.
        let s = &self.segs[i];
        let folded = s
            .parent
            .is_some_and(|p| p != i && self.segs[p].key.mask != 0 && self.segs[p].active.is_some());
        let s = &mut self.segs[i];
        let b = s.baseline.as_ref()?;
        let m0 = b.expected(hour, margin);
        let null = b.null_mix(hour, margin);
        let k = step_bank(&mut s.bank, hour, c, null, m0, b.phi)?;
        if folded {
            for cu in &mut s.bank {
                cu.s = cu.s.min(cu.threshold);
            }
            return None;
        }
        let cu = s.bank[k].clone();
        let baseline = b.clone();
        for h in cu.start.max(hour + 1 - self.ring as i64)..=hour {
            s.history.exclude(h);
        }
        let mut follow = s.bank.clone();
        for f in &mut follow {
            f.reset(hour + 1);
        }
        let mut e = self.describe(i, hour, cu.start, cu.delta, cu.s, cu.threshold, &baseline);
        e.alert_id = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(format!("{}|{}|{}", e.grouping, e.segment, hour).as_bytes())
        );
        // The drop is at least the size that fired, and at least what the answers since the
        // change start show with 97.5 % confidence: a large drop found by a small CUSUM
        // starts at its severity instead of escalating an hour later.
        let drop = cu.delta.max((e.baseline_nps - e.nps_high) / 100.0);
        e.drop = 100.0 * drop;
        e.severity = self.severity(i, e.drop, false);
        self.segs[i].active = Some(Active {
            event: e.clone(),
            fired_hour: hour,
            change_start: cu.start,
            baseline,
            recovery: 0.0,
            drop,
            follow,
            level_start: cu.start,
            aged: false,
        });
        Some(e)
    }

    /// The one place severity is decided for a segment ([`Severity::of`]).
    fn severity(&self, i: usize, drop_points: f64, aged: bool) -> Severity {
        let mask = self.segs[i].key.mask;
        Severity::of(
            self.set.pages_at_delta(mask),
            drop_points,
            self.set.delta(mask),
            aged,
        )
    }

    /// Refits every segment's baseline from the window ending `gap_days` before `day`, then
    /// every threshold from the budget.
    fn rebaseline(&mut self, day: i64) {
        let Some(first) = self.first_hour else { return };
        let to = (day - i64::from(self.set.gap_days)) * 24;
        let from = (to - i64::from(self.set.baseline_days) * 24).max(first);
        if to - from < i64::from(self.set.min_history_days) * 24 {
            return;
        }
        // Parents (creating any not seen yet), children and a parents-first order.
        let mut i = 0;
        while i < self.segs.len() {
            let key = self.segs[i].key.clone();
            let p = self.hier.parent(&key).map(|pk| self.id(&pk));
            self.segs[i].parent = p;
            i += 1;
        }
        for s in &mut self.segs {
            s.children.clear();
        }
        let depth: Vec<usize> = (0..self.segs.len())
            .map(|i| {
                let (mut d, mut j) = (0, i);
                while let Some(p) = self.segs[j].parent {
                    d += 1;
                    j = p;
                    if d > 16 {
                        break;
                    }
                }
                d
            })
            .collect();
        let mut order: Vec<usize> = (0..self.segs.len()).collect();
        // By key, not by id: ids follow the order rows first arrived in, and every sum over
        // siblings must come out the same however the input was batched.
        order.sort_by(|&a, &b| (depth[a], &self.segs[a].key).cmp(&(depth[b], &self.segs[b].key)));
        let mut siblings: HashMap<(usize, u8), Vec<usize>> = HashMap::new();
        for &i in &order {
            if let Some(p) = self.segs[i].parent {
                self.segs[p].children.push(i);
                siblings
                    .entry((p, self.segs[i].key.mask))
                    .or_default()
                    .push(i);
            }
        }
        // Each segment from its own first hour (or accepted new level): a two-day-old agent
        // has two days of volume, not two days spread over four weeks.
        let min_h = i64::from(self.set.min_history_days) * 24;
        let starts: Vec<Option<i64>> = self
            .segs
            .iter()
            .map(|s| {
                let f = from.max(s.first_hour?).max(s.epoch);
                (to - f >= min_h).then_some(f)
            })
            .collect();
        let raws: Vec<Raw> = self
            .segs
            .iter()
            .zip(&starts)
            .map(|(s, f)| f.map_or_else(Raw::default, |f| raw(&s.history, f, to)))
            .collect();
        let mut fitted: Vec<Option<Baseline>> = vec![None; self.segs.len()];
        let mut strength: HashMap<(usize, u8), f64> = HashMap::new();
        for &i in &order {
            let Some(seg_from) = starts[i] else { continue };
            let prior = match self.segs[i].parent {
                None => None,
                Some(p) => {
                    let Some(pb) = fitted[p].as_ref() else {
                        continue;
                    };
                    let key = (p, self.segs[i].key.mask);
                    let k = *strength.entry(key).or_insert_with(|| {
                        let group: Vec<&Raw> = siblings[&key].iter().map(|&c| &raws[c]).collect();
                        prior_strength(pb, &group)
                    });
                    Some((pb, k))
                }
            };
            let mut b = Baseline::fit(&raws[i], prior);
            b.fit_dispersion(&self.segs[i].history, seg_from, to);
            fitted[i] = Some(b);
        }
        for (s, b) in self.segs.iter_mut().zip(fitted) {
            s.baseline = b;
        }
        self.set_thresholds();
    }

    /// Every CUSUM's threshold from the budget.
    fn set_thresholds(&mut self) {
        // The budget is shared by every segment's bank. The CUSUMs of one bank watch the same
        // answers and cross together, so a bank of m pages about √m times as often as one
        // CUSUM, not m times (calibrated by the harness, docs/DETECTOR.md): each CUSUM's
        // in-control run length is Σ√m × 168 h / budget.
        // Nested segments (agents) share `nested_budget_share` of it, the others the rest
        // (all of it when nothing is nested).
        let effective = |nested: bool| -> f64 {
            self.segs
                .iter()
                .filter(|s| s.baseline.is_some() && s.nested == nested)
                .map(|s| (s.bank.len() as f64).sqrt())
                .sum()
        };
        let (eff_nested, eff_other) = (effective(true), effective(false));
        let share = if eff_nested == 0.0 {
            0.0
        } else if eff_other == 0.0 {
            1.0
        } else {
            self.set.nested_budget_share
        };
        let budget = self.set.budget_per_week;
        let arl_nested = eff_nested.max(1.0) * 168.0 / (budget * share).max(1e-9);
        let arl_other = eff_other.max(1.0) * 168.0 / (budget * (1.0 - share)).max(1e-9);
        let margin = self.set.baseline_margin_se;
        for s in &mut self.segs {
            let Some(b) = &s.baseline else { continue };
            let arl = if s.nested { arl_nested } else { arl_other };
            s.arl = arl;
            let m0 = b.mix.mean() - margin * b.se;
            let null = tilt(b.mix, m0).0;
            for cu in &mut s.bank {
                let (theta, lnz) = alternative(null, m0, cu.delta);
                let rate = b.per_hour * kl_per_answer(m0, theta, lnz) / b.phi;
                cu.threshold = threshold(arl, rate);
            }
        }
    }
}
