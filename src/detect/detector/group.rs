//! Grouping an hour's alerts into incidents (the rule is in `detect::incident`). Two steps,
//! so the detector stays pure: [`Detector::overlap_requests`] names the pairs of segments
//! whose shared answers the rule needs, the caller counts them (the service from
//! `survey_facts`, the harness from its answers), and [`Detector::group`] decides.

use super::Detector;
use crate::detect::alert::{AlertState, Severity};
use crate::detect::incident::{same_incident, Incident, Side};
use crate::detect::SegmentKey;
use crate::stats::Counts;

/// Answers in both `x` and `a` over `[from_hour, to_hour)` are needed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverlapRequest {
    pub x: SegmentKey,
    pub a: SegmentKey,
    pub from_hour: i64,
    pub to_hour: i64,
}

/// An open incident as the delivery sees it.
pub struct IncidentView<'a> {
    pub id: &'a str,
    pub opened_at: i64,
    /// Grouping and segment of the alert that opened it.
    pub grouping: &'a str,
    pub segment: &'a str,
    /// Highest severity among its open alerts.
    pub severity: Severity,
    /// Its open alerts, the one that opened it (or the oldest left) first.
    pub members: Vec<&'a crate::detect::AlertEvent>,
}

impl Detector {
    /// The shared-answer counts [`Detector::group`] needs for this hour's new alerts.
    pub fn overlap_requests(&self, out: &super::Output) -> Vec<OverlapRequest> {
        let mut reqs = Vec::new();
        for e in out.alerts.iter().filter(|e| e.state == AlertState::Firing) {
            let Some(&x) = self.ids_by_label(e) else {
                continue;
            };
            let to_hour = e.at / 3600;
            for (j, s) in self.segs.iter().enumerate() {
                let Some(a) = s.active.as_ref().filter(|_| j != x) else {
                    continue;
                };
                reqs.push(OverlapRequest {
                    x: self.segs[x].key.clone(),
                    a: s.key.clone(),
                    from_hour: (e.change_start.max(a.event.change_start)) / 3600,
                    to_hour,
                });
            }
        }
        reqs.sort();
        reqs.dedup();
        reqs
    }

    fn ids_by_label(&self, e: &crate::detect::AlertEvent) -> Option<&usize> {
        self.ids.get(&e.key()?)
    }

    fn side(&self, i: usize, from: i64, to: i64) -> Option<Side> {
        let a = self.segs[i].active.as_ref()?;
        let (counts, expected) = self.observed_vs_expected(i, &a.baseline, from, to - 1);
        Some(Side {
            counts,
            expected,
            delta: self.set.delta(self.segs[i].key.mask) / 100.0,
            phi: a.baseline.phi,
            var: a.baseline.mix.variance(),
        })
    }

    /// Puts this hour's new alerts into incidents and marks the events that notify. A
    /// missing overlap count counts as nothing shared (the alert opens its own incident).
    pub fn group(&mut self, out: &mut super::Output, overlaps: &[(OverlapRequest, Counts)]) {
        for e in out.alerts.iter_mut() {
            let Some(&x) = self.ids_by_label(e) else {
                continue;
            };
            match e.state {
                AlertState::Firing => {
                    let mut joined = None;
                    'incidents: for (k, inc) in self.incidents.iter().enumerate() {
                        for &a in inc.members.iter().filter(|&&a| a != x) {
                            let Some(ev) = self.segs[a].active.as_ref().map(|x| &x.event) else {
                                continue;
                            };
                            let from = (e.change_start.max(ev.change_start)) / 3600;
                            let to = e.at / 3600;
                            let shared = overlaps
                                .iter()
                                .find(|(r, _)| {
                                    r.x == self.segs[x].key
                                        && r.a == self.segs[a].key
                                        && r.from_hour == from
                                })
                                .map_or(Counts::default(), |(_, c)| *c);
                            let (Some(sx), Some(sa)) =
                                (self.side(x, from, to), self.side(a, from, to))
                            else {
                                continue;
                            };
                            if same_incident(&sx, &sa, &shared) {
                                joined = Some(k);
                                break 'incidents;
                            }
                        }
                    }
                    let k = joined.unwrap_or_else(|| {
                        self.incidents.push(Incident {
                            id: e.alert_id.clone(),
                            opened_at: e.fired_at,
                            grouping: e.grouping.clone(),
                            segment: e.segment.clone(),
                            members: Vec::new(),
                            notified: Vec::new(),
                        });
                        self.incidents.len() - 1
                    });
                    self.incidents[k].members.push(x);
                    e.incident_id = self.incidents[k].id.clone();
                    if let Some(a) = self.segs[x].active.as_mut() {
                        a.event.incident_id = e.incident_id.clone();
                    }
                    e.notify = self.notify(k);
                }
                AlertState::Updated => {
                    if let Some(k) = self.incidents.iter().position(|i| i.id == e.incident_id) {
                        e.notify = self.notify(k);
                    }
                }
                AlertState::Resolved => {
                    if let Some(k) = self.incidents.iter().position(|i| i.id == e.incident_id) {
                        self.incidents[k].members.retain(|&m| m != x);
                        if self.incidents[k].members.is_empty() {
                            self.incidents.remove(k);
                        }
                    }
                }
            }
        }
    }

    /// Whether incident `k` now goes to a receiver it has not reached yet (and records it).
    fn notify(&mut self, k: usize) -> bool {
        let route = self.incident_severity(k).route();
        let inc = &mut self.incidents[k];
        if inc.notified.contains(&route) {
            return false;
        }
        inc.notified.push(route);
        true
    }

    fn incident_severity(&self, k: usize) -> Severity {
        self.incidents[k]
            .members
            .iter()
            .filter_map(|&m| self.segs[m].active.as_ref())
            .map(|a| a.event.severity)
            .max()
            .unwrap_or_default()
    }

    /// The open incidents, oldest first.
    pub fn incidents(&self) -> Vec<IncidentView<'_>> {
        (0..self.incidents.len())
            .map(|k| {
                let inc = &self.incidents[k];
                IncidentView {
                    id: &inc.id,
                    opened_at: inc.opened_at,
                    grouping: &inc.grouping,
                    segment: &inc.segment,
                    severity: self.incident_severity(k),
                    members: inc
                        .members
                        .iter()
                        .filter_map(|&m| self.segs[m].active.as_ref().map(|a| &a.event))
                        .collect(),
                }
            })
            .collect()
    }
}
