//! One incident, one notification (docs/ALERTS.md, *Incidents*). A real drop moves every
//! segment that holds its answers: a team's drop shows in its products, its channels, its
//! region and its agents. An alert that fires while another is open joins that alert's
//! incident when either one's drop is *explained* by the other (the answers they share carry
//! most of it, or what is left once they are taken out shows no drop), or when one lies
//! inside the other and dropped no more than it. Only opening an incident, or sending it to
//! a receiver it has not reached (a ticket turning into a page), is a notification;
//! everything else updates the incident in place.

use crate::stats::Counts;

/// A remainder with fewer answers than this share of the segment's is no evidence of a drop
/// of its own: the segment is (nearly) inside the other.
const INSIDE_SHARE: f64 = 0.1;
/// The remainder counts as dropping only when it carries more than half of the segment's
/// deficit, is at least half of δ down *and* two standard errors below what the baseline
/// expects: a parent whose drop is mostly one child's is that child's incident even when the
/// rest of it dipped a little at the same time.
const REMAINDER_SHARE_OF_DEFICIT: f64 = 0.5;
const REMAINDER_SHARE_OF_DELTA: f64 = 0.5;
const REMAINDER_Z: f64 = 2.0;

#[derive(Clone, Debug)]
pub struct Incident {
    /// The id of the alert that opened it.
    pub id: String,
    pub opened_at: i64,
    /// Grouping and segment of the alert that opened it: the incident keeps them (and so
    /// its Alertmanager labels) after that alert resolves.
    pub grouping: String,
    pub segment: String,
    /// Segment ids of its open alerts, in the order they joined.
    pub members: Vec<usize>,
    /// Receivers already notified ([`crate::detect::Severity::route`]).
    pub notified: Vec<&'static str>,
}

/// A segment's answers over the shared hours: counts, the baseline's expected score sum,
/// its drop size δ (mean score) and the over-dispersion and answer variance of its baseline.
#[derive(Clone, Copy, Debug)]
pub struct Side {
    pub counts: Counts,
    pub expected: f64,
    pub delta: f64,
    pub phi: f64,
    pub var: f64,
}

/// Whether two open alerts are one incident, given the answers they share:
/// - either one's drop is explained by the shared answers: they carry at least half of it,
///   or what is left once they are taken out is not clearly down (a product whose drop is
///   one team's answers);
/// - or one lies (nearly) inside the other and its drop is no larger than the other's,
///   beyond noise (an agent of a team that dropped as a whole). An agent that dropped far
///   more than its team, or a team inside an overall segment that dropped for another
///   reason, is an incident of its own.
pub fn same_incident(x: &Side, a: &Side, shared: &Counts) -> bool {
    match (rest_is_down(x, shared), rest_is_down(a, shared)) {
        (Some(false), _) | (_, Some(false)) => true,
        (None, None) => true,
        (None, Some(true)) => no_larger(x, a),
        (Some(true), None) => no_larger(a, x),
        (Some(true), Some(true)) => false,
    }
}

/// Whether the part of `x` outside the shared answers is clearly down; None when that part
/// is too small to say (`x` lies inside the other).
fn rest_is_down(x: &Side, shared: &Counts) -> Option<bool> {
    let n = x.counts.n() as f64;
    let n_shared = (shared.n() as f64).min(n);
    let n_rest = n - n_shared;
    if n <= 0.0 || n_rest < INSIDE_SHARE * n {
        return None;
    }
    let mean_expected = x.expected / n;
    let total = x.expected - x.counts.score_sum();
    let deficit =
        (x.expected - mean_expected * n_shared) - (x.counts.score_sum() - shared.score_sum());
    let drop = deficit / n_rest;
    let z = deficit / (x.var * x.phi * n_rest).sqrt();
    Some(
        deficit > REMAINDER_SHARE_OF_DEFICIT * total
            && drop >= REMAINDER_SHARE_OF_DELTA * x.delta
            && z >= REMAINDER_Z,
    )
}

/// Whether `inner`'s drop (mean score below its baseline) is no larger than `outer`'s by
/// half of `inner`'s δ and two standard errors.
fn no_larger(inner: &Side, outer: &Side) -> bool {
    let drop = |s: &Side| {
        let n = s.counts.n().max(1) as f64;
        ((s.expected - s.counts.score_sum()) / n, s.var * s.phi / n)
    };
    let ((di, vi), (dout, vout)) = (drop(inner), drop(outer));
    let diff = di - dout;
    diff < REMAINDER_SHARE_OF_DELTA * inner.delta || diff < REMAINDER_Z * (vi + vout).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(p: u64, q: u64, d: u64, expected_nps: f64, delta: f64) -> Side {
        let counts = Counts::new(p, q, d);
        Side {
            counts,
            expected: counts.n() as f64 * expected_nps / 100.0,
            delta,
            phi: 1.0,
            var: 0.6,
        }
    }

    #[test]
    fn a_product_whose_drop_is_one_teams_answers_is_that_teams_incident() {
        // A product of 2,000 answers at NPS 20 against 30 expected; it shares 300 answers
        // with a team (1,000 answers at NPS -37 against 30) that carry all of its drop.
        let product = side(1000, 400, 600, 30.0, 0.1);
        let team = side(330, 300, 370, 30.0, 0.1);
        let shared = Counts::new(100, 9, 191);
        assert!(same_incident(&product, &team, &shared));
        // The same product sharing 300 answers at its own level: its drop is elsewhere.
        let shared = Counts::new(120, 120, 60);
        assert!(!same_incident(&product, &team, &shared));
    }

    #[test]
    fn a_part_joins_its_whole_only_when_it_dropped_no_more_than_the_whole() {
        // A team (1,000 answers, NPS 10 against 30) inside overall (20,000, NPS 28 against
        // 30: 2 points down, all of it the team's) is overall's incident either way round.
        let overall = side(9000, 7600, 3400, 30.0, 0.05);
        let team = side(330, 450, 220, 30.0, 0.1);
        assert!(same_incident(&team, &overall, &team.counts));
        // A team 30 points down inside an overall that is 5 points down for some other
        // reason (the rest of overall is down too): two incidents.
        let overall = side(8000, 8000, 4000, 30.0, 0.05);
        let team = side(250, 250, 500, 30.0, 0.1);
        assert!(!same_incident(&team, &overall, &team.counts));
        // An agent 20 points down in a team 20 points down: the team's incident.
        let team = side(300, 400, 300, 20.0, 0.1);
        let agent = side(10, 10, 10, 20.0, 0.2);
        assert!(same_incident(&agent, &team, &agent.counts));
    }

    #[test]
    fn disjoint_segments_that_both_dropped_are_two_incidents() {
        let a = side(250, 250, 500, 30.0, 0.1);
        let b = side(250, 250, 500, 30.0, 0.1);
        assert!(!same_incident(&a, &b, &Counts::default()));
    }
}
