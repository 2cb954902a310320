use super::*;
use crate::model::{Interaction, MatchKind};

const MIN: i64 = 60_000;

fn cfg(policy: AttributionPolicy) -> JoinConfig {
    JoinConfig {
        policy,
        lookback_ms: 7 * 24 * 60 * MIN,
        max_wait_ms: 10 * MIN,
        max_contacts: 1000,
        max_pending: 1000,
        revise_ms: 60 * MIN,
        floor_lag_ms: 5 * MIN,
        max_revisable: 1000,
        max_revisions: 16,
    }
}

fn contact(id: &str, ticket: &str, customer: &str, agent: &str, ended: i64) -> Interaction {
    Interaction {
        interaction_id: id.into(),
        ticket_id: ticket.into(),
        customer_id: customer.into(),
        agent_id: agent.into(),
        team: format!("team-{agent}"),
        channel: "PHONE".into(),
        bucket: "POST_SALES".into(),
        category: "refunds".into(),
        product: None,
        started_at_ms: ended - MIN,
        ended_at_ms: ended,
        talk_ms: 1,
        hold_ms: 1,
        wrap_ms: 1,
        resolved: true,
    }
}

fn survey(id: &str, customer: &str, ticket: Option<&str>, at: i64) -> Survey {
    Survey {
        response_id: id.into(),
        customer_id: customer.into(),
        ticket_id: ticket.map(Into::into),
        submitted_at_ms: at,
        survey_channel: "EMAIL".into(),
        nps_score: Some(9),
        csat_score: None,
        comment: None,
        region: None,
        product: None,
        customer_tier: None,
    }
}

fn resolve_one(j: &mut JoinState, c: &JoinConfig) -> Settled {
    let mut out = j.resolve_until(i64::MAX, c);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

impl JoinState {
    /// An on-time survey with nothing folded yet.
    fn park_survey(&mut self, s: Survey, c: &JoinConfig) -> Option<Settled> {
        self.park(
            Pending {
                survey: s,
                offset: 0,
                late: false,
                lo_ms: i64::MIN,
            },
            c,
        )
    }
}

#[test]
fn ticket_survey_goes_to_last_or_first_agent() {
    for (policy, agent) in [
        (AttributionPolicy::Last, "b"),
        (AttributionPolicy::First, "a"),
    ] {
        let c = cfg(policy);
        let mut j = JoinState::default();
        j.add_contact(
            &contact("i1", "t1", "c1", "a", 1000 * MIN),
            i64::MIN,
            &c,
            &mut Vec::new(),
        );
        j.add_contact(
            &contact("i2", "t1", "c1", "b", 1010 * MIN),
            i64::MIN,
            &c,
            &mut Vec::new(),
        );
        j.add_contact(
            &contact("i3", "t2", "c1", "z", 1020 * MIN),
            i64::MIN,
            &c,
            &mut Vec::new(),
        );
        assert!(j
            .park_survey(survey("s1", "c1", Some("t1"), 1030 * MIN), &c)
            .is_none());
        let r = resolve_one(&mut j, &c);
        let a = r.attribution.expect("attributed");
        assert_eq!(
            (a.agent_id.as_str(), a.matched_by),
            (agent, MatchKind::Ticket)
        );
    }
}

#[test]
fn relationship_survey_takes_the_customers_latest_ticket_within_lookback() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    j.add_contact(
        &contact("i1", "t1", "c1", "a", 1000 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.add_contact(
        &contact("i2", "t2", "c1", "b", 2000 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.add_contact(
        &contact("i3", "t3", "c2", "z", 2500 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.park_survey(survey("s1", "c1", None, 2100 * MIN), &c);
    let a = resolve_one(&mut j, &c).attribution.expect("attributed");
    assert_eq!(
        (a.ticket_id.as_str(), a.matched_by),
        ("t2", MatchKind::Customer)
    );

    // Beyond the lookback: unattributed.
    let far = 2000 * MIN + c.lookback_ms + MIN;
    j.park_survey(survey("s2", "c1", None, far), &c);
    assert!(resolve_one(&mut j, &c).attribution.is_none());
}

#[test]
fn survey_waits_for_the_contact_horizon() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    j.park_survey(survey("s1", "c1", Some("t1"), 1000 * MIN), &c);
    // Horizon exactly at the deadline: a contact ending at the deadline could still come.
    assert!(j.resolve_until(1010 * MIN, &c).is_empty());
    // The contact arrives after the survey (ingestion lag) but inside the wait.
    j.add_contact(
        &contact("i1", "t1", "c1", "a", 1005 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    let out = j.resolve_until(1010 * MIN + 1, &c);
    assert_eq!(out.len(), 1);
    assert!(out[0].attribution.is_some());
    assert_eq!(j.pending_len(), 0);
}

#[test]
fn caps_bound_state_and_report_overflow() {
    let mut c = cfg(AttributionPolicy::Last);
    c.max_contacts = 2;
    c.max_pending = 1;
    let mut j = JoinState::default();
    assert_eq!(
        j.add_contact(
            &contact("i1", "t1", "c1", "a", MIN),
            i64::MIN,
            &c,
            &mut Vec::new()
        ),
        0
    );
    assert_eq!(
        j.add_contact(
            &contact("i2", "t2", "c1", "a", 2 * MIN),
            i64::MIN,
            &c,
            &mut Vec::new()
        ),
        0
    );
    assert_eq!(
        j.add_contact(
            &contact("i3", "t3", "c1", "a", 3 * MIN),
            i64::MIN,
            &c,
            &mut Vec::new()
        ),
        1
    );
    assert_eq!(j.contacts_len(), 2);
    assert!(j
        .park_survey(survey("s1", "c1", Some("t1"), MIN), &c)
        .is_none());
    let forced = j.park_survey(survey("s2", "c1", Some("t2"), 2 * MIN), &c);
    let forced = forced.expect("oldest settled early");
    assert!(forced.forced);
    assert_eq!(forced.pending.survey.response_id, "s1");
    // t1's only contact was evicted by the cap.
    assert!(forced.attribution.is_none());
}

#[test]
fn a_late_contact_revises_the_first_answer_the_same_way_in_either_order() {
    // Whether the survey settles before or after this contact is processed depends on how
    // the consumer interleaved the topics: the first answer excludes it either way, and
    // the revision it causes ends both at the same answer.
    let c = cfg(AttributionPolicy::Last);
    for settle_first in [false, true] {
        let mut j = JoinState::default();
        j.add_contact(
            &contact("i1", "t1", "c1", "a", 1000 * MIN),
            i64::MIN,
            &c,
            &mut Vec::new(),
        );
        j.park_survey(survey("s1", "c1", Some("t1"), 1001 * MIN), &c);
        // Deadline 1011 min; the floor was already at 1020 min when i2 (a late contact
        // inside the survey's range) arrived, the revision floor at 965 min.
        let late = contact("i2", "t1", "c1", "b", 1005 * MIN);
        let mut revised = Vec::new();
        let out = if settle_first {
            let out = j.resolve_until(1020 * MIN, &c);
            j.add_contact(&late, 1020 * MIN, &c, &mut revised);
            out
        } else {
            j.add_contact(&late, 1020 * MIN, &c, &mut revised);
            j.resolve_until(1020 * MIN, &c)
        };
        assert_eq!(out.len(), 1);
        let id =
            |a: &Option<crate::model::Attribution>| a.as_ref().map(|a| a.interaction_id.clone());
        let first = &out[0];
        assert_eq!(
            first
                .answers
                .first()
                .map(|a| a.as_ref().map(|a| a.agent_id.as_str())),
            Some(Some("a")),
            "first answer, settle_first = {settle_first}"
        );
        let last = revised.last().unwrap_or(first);
        assert_eq!(id(&last.attribution).as_deref(), Some("i2"));
        assert_eq!(
            last.answers.len(),
            2,
            "one revision, settle_first = {settle_first}"
        );
        assert_eq!(revised.len(), usize::from(settle_first));
    }
}

#[test]
fn a_ticket_belongs_to_its_customer() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    // Another customer's contact on the same ticket id, later: never a candidate.
    j.add_contact(
        &contact("i1", "t1", "c1", "a", 1000 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.add_contact(
        &contact("i2", "t1", "c9", "z", 1003 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.park_survey(survey("s1", "c1", Some("t1"), 1004 * MIN), &c);
    let r = resolve_one(&mut j, &c);
    assert_eq!(
        r.attribution.map(|a| a.interaction_id).as_deref(),
        Some("i1")
    );
    assert!(!r.other_customer);
    // Only another customer's: unattributed, and said so.
    j.park_survey(survey("s2", "c5", Some("t1"), 1004 * MIN), &c);
    let r = resolve_one(&mut j, &c);
    assert!(r.attribution.is_none());
    assert!(r.other_customer);
}

#[test]
fn a_revisable_survey_is_forgotten_once_the_revision_floor_passes_it() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    j.park_survey(survey("s1", "c1", Some("t1"), 1001 * MIN), &c);
    assert_eq!(j.resolve_until(1012 * MIN, &c).len(), 1);
    assert_eq!(j.revisable_len(), 1);
    // Revision floor = floor + 5 - 60 min: passes the deadline (1011) at floor 1067.
    j.resolve_until(1066 * MIN, &c);
    assert_eq!(j.revisable_len(), 1);
    j.resolve_until(1067 * MIN, &c);
    assert_eq!(j.revisable_len(), 0);
    let mut revised = Vec::new();
    j.add_contact(
        &contact("i9", "t1", "c1", "a", 1005 * MIN),
        1067 * MIN,
        &c,
        &mut revised,
    );
    assert!(revised.is_empty(), "final: nothing revises it");
}

#[test]
fn a_contact_that_arrived_before_the_deadline_passed_counts_even_if_late() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    j.park_survey(survey("s1", "c1", Some("t1"), 1001 * MIN), &c);
    // Behind its own stream's floor (1008 min) but the floor had not passed the deadline.
    j.add_contact(
        &contact("i2", "t1", "c1", "b", 1005 * MIN),
        1008 * MIN,
        &c,
        &mut Vec::new(),
    );
    let a = resolve_one(&mut j, &c)
        .attribution
        .map(|a| a.interaction_id);
    assert_eq!(a.as_deref(), Some("i2"));
}

#[test]
fn refresh_reports_the_current_answer_and_keeps_surveys_pending() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    j.park_survey(survey("s1", "c1", Some("t1"), 1001 * MIN), &c);
    j.add_contact(
        &contact("i1", "t1", "c1", "a", 1002 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    let r = j.refresh(&c);
    assert_eq!((r.len(), r[0].attribution.is_some()), (1, true));
    assert_eq!(j.pending_len(), 1);
}

#[test]
fn eviction_keeps_what_can_still_match() {
    let c = cfg(AttributionPolicy::Last);
    let mut j = JoinState::default();
    j.add_contact(
        &contact("i1", "t1", "c1", "a", 100 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.add_contact(
        &contact("i2", "t2", "c1", "a", 200 * MIN),
        i64::MIN,
        &c,
        &mut Vec::new(),
    );
    j.evict_before(150 * MIN);
    assert_eq!(j.contacts_len(), 1);
    j.park_survey(survey("s1", "c1", None, 210 * MIN), &c);
    let a = resolve_one(&mut j, &c).attribution.expect("attributed");
    assert_eq!(a.interaction_id, "i2");
}

mod against_brute_force {
    use super::*;
    use proptest::prelude::*;

    /// The definition, by scanning every contact: the customer's contacts in range of the
    /// ticket (or of the customer's latest contact's ticket), last or first by (ended_at,
    /// interaction id).
    fn brute(contacts: &[Interaction], s: &Survey, c: &JoinConfig) -> Option<(String, String)> {
        let (lo, hi) = (
            s.submitted_at_ms - c.lookback_ms,
            s.submitted_at_ms + c.max_wait_ms,
        );
        let in_range = |i: &&Interaction| i.ended_at_ms >= lo && i.ended_at_ms <= hi;
        let key = |i: &&Interaction| (i.ended_at_ms, i.interaction_id.clone());
        let ticket = match &s.ticket_id {
            Some(t) => t.clone(),
            None => contacts
                .iter()
                .filter(in_range)
                .filter(|i| i.customer_id == s.customer_id)
                .max_by_key(key)?
                .ticket_id
                .clone(),
        };
        let of_ticket = contacts
            .iter()
            .filter(in_range)
            .filter(|i| i.ticket_id == ticket && i.customer_id == s.customer_id);
        let chosen = match c.policy {
            AttributionPolicy::Last => of_ticket.max_by_key(key),
            AttributionPolicy::First => of_ticket.min_by_key(key),
        }?;
        Some((chosen.interaction_id.clone(), chosen.agent_id.clone()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn attributions_match_and_survive_checkpoints(
            cs in proptest::collection::vec((0u8..6, 0u8..4, 0u8..3, 0i64..100), 0..60),
            ss in proptest::collection::vec((0u8..4, proptest::option::of(0u8..7), 0i64..120), 1..20),
            first in any::<bool>(),
            checkpoint_at in 0usize..60,
        ) {
            let mut c = cfg(if first { AttributionPolicy::First } else { AttributionPolicy::Last });
            c.lookback_ms = 30 * MIN;
            let mut j = JoinState::default();
            let mut all = Vec::new();
            for (n, &(t, cu, ag, at)) in cs.iter().enumerate() {
                if n == checkpoint_at {
                    let b = postcard::to_allocvec(&j).unwrap_or_default();
                    j = postcard::from_bytes(&b).unwrap_or_else(|e| panic!("{e}"));
                }
                let i = contact(&format!("i{}", n % 7), &format!("t{t}"), &format!("c{cu}"),
                    &format!("a{ag}"), at * MIN);
                j.add_contact(&i, i64::MIN, &c, &mut Vec::new());
                all.push(i);
            }
            prop_assert_eq!(j.contacts_len(), cs.len());
            for (n, &(cu, t, at)) in ss.iter().enumerate() {
                let s = survey(&format!("s{n}"), &format!("c{cu}"),
                    t.map(|t| format!("t{t}")).as_deref(), at * MIN);
                let want = brute(&all, &s, &c);
                j.park_survey(s, &c);
                let r = resolve_one(&mut j, &c);
                let got = r.attribution.map(|a| (a.interaction_id, a.agent_id));
                prop_assert_eq!(got, want);
            }
        }
    }
}

#[test]
fn a_customer_keeps_at_most_a_thousand_revisable_surveys() {
    // Every late contact of a customer is checked against its revisable surveys: bounded.
    let mut c = cfg(AttributionPolicy::Last);
    c.max_pending = 10_000;
    let mut j = JoinState::default();
    for n in 0..1_005 {
        j.park_survey(survey(&format!("s{n}"), "c1", None, 1000 * MIN + n), &c);
    }
    assert_eq!(j.resolve_until(1011 * MIN, &c).len(), 1_005);
    assert_eq!(j.revisable_len(), 1_000);
    assert_eq!(j.take_final_early(), 5, "counted");
}
