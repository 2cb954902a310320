//! The header refuses what would make restored offsets or state mean something else, and
//! reads the previous format.

use super::*;
use crate::pipeline::partition::tests::settings;

fn source(cluster: &str, survey_id: &str, partitions: i32) -> SourceIdentity {
    let t = |name: &str, id: &str| TopicIdentity {
        name: name.into(),
        id: Some(id.into()),
        partitions,
    };
    SourceIdentity {
        cluster_id: Some(cluster.into()),
        topics: [t("s", survey_id), t("i", "I1")],
    }
}

fn err(r: Result<Checked<PartitionState>, CheckpointError>) -> String {
    match r {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn same_source_round_trips_and_a_changed_source_is_named() {
    let st = settings();
    let a = source("C1", "S1", 4);
    let ps = PartitionState::new(3);
    let bytes = encode(&ps, &st, &a).unwrap_or_else(|e| panic!("{e}"));
    let back = decode(&bytes, &st, &a).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.value.partition, 3);
    assert!(!back.migrated);

    let e = err(decode(&bytes, &st, &source("C1", "S2", 4)));
    assert!(e.contains("topic s was deleted and created again"), "{e}");
    assert!(e.contains("kafka.state_id"), "{e}");
    let e = err(decode(&bytes, &st, &source("C2", "S1", 4)));
    assert!(e.contains("cluster id was C1 and is now C2"), "{e}");
    let e = err(decode(&bytes, &st, &source("C1", "S1", 8)));
    assert!(e.contains("had 4 partitions and has 8"), "{e}");
    let mut renamed = a.clone();
    renamed.topics[1].name = "other".into();
    let e = err(decode(&bytes, &st, &renamed));
    assert!(
        e.contains("kafka.interaction_topic was i and is now other"),
        "{e}"
    );
    // A broker that gives no ids (or no cluster id) is not held against the checkpoint.
    let mut no_ids = a.clone();
    no_ids.cluster_id = None;
    no_ids.topics[0].id = None;
    assert!(decode(&bytes, &st, &no_ids).is_ok());
}

#[test]
fn format_2_is_read_and_marked_migrated_format_1_and_unknown_refused() {
    let st = settings();
    let ps = PartitionState::new(1);
    let header = Header2 {
        format: FORMAT_2,
        settings: identity(&st),
    };
    let v2 = postcard::to_extend(&header, MAGIC.to_vec()).unwrap_or_else(|e| panic!("{e}"));
    let v2 = postcard::to_extend(&ps, v2).unwrap_or_else(|e| panic!("{e}"));
    let back = decode(&v2, &st, &source("C", "S", 4)).unwrap_or_else(|e| panic!("{e}"));
    assert!(back.migrated);
    assert_eq!(back.value.partition, 1);

    let v1 = postcard::to_allocvec(&ps).unwrap_or_else(|e| panic!("{e}"));
    let e = err(decode(&v1, &st, &SourceIdentity::default()));
    assert!(e.contains("format 1 (no header)"), "{e}");
    let mut v9 = MAGIC.to_vec();
    v9.extend(postcard::to_allocvec(&9u16).unwrap_or_else(|e| panic!("{e}")));
    let e = err(decode(&v9, &st, &SourceIdentity::default()));
    assert!(e.contains("format 9"), "{e}");
}

#[test]
fn changed_settings_are_named_with_old_and_new_values() {
    let st = settings();
    let bytes = encode(&PartitionState::new(0), &st, &SourceIdentity::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut other = st.clone();
    other.late_horizon_ms += 1;
    let e = err(decode(&bytes, &other, &SourceIdentity::default()));
    assert!(e.contains("window.late_horizon was"), "{e}");
}

#[test]
fn an_identity_the_broker_did_not_give_this_time_is_taken_from_the_checkpoint() {
    // A stub of a startup whose cluster-id and DescribeTopics requests timed out: a real
    // broker cannot be made to time out on exactly those two requests.
    let st = settings();
    let recorded = source("C1", "S1", 4);
    let bytes = encode(&PartitionState::new(0), &st, &recorded).unwrap_or_else(|e| panic!("{e}"));
    let mut now = recorded.clone();
    now.cluster_id = None;
    now.topics[0].id = None;
    now.topics[1].id = None;
    let back = recorded_source(&bytes).unwrap_or_else(|| panic!("a format-4 header"));
    let taken = now.adopt_missing(&back);
    assert_eq!(now, recorded, "{taken:?}");
    assert_eq!(taken.len(), 3);
    // What the broker did say is never overwritten, and another topic's id is not taken.
    let mut other = source("C2", "S9", 4);
    other.topics[1].name = "elsewhere".into();
    other.topics[1].id = None;
    let taken = other.adopt_missing(&back);
    assert!(taken.is_empty(), "{taken:?}");
    assert_eq!(other.cluster_id.as_deref(), Some("C2"));
    assert_eq!(other.topics[1].id, None);
    // A later check against a failover is then refused as before.
    let e = err(decode(
        &encode(&PartitionState::new(0), &st, &now).unwrap_or_else(|e| panic!("{e}")),
        &st,
        &source("C2", "S1", 4),
    ));
    assert!(e.contains("cluster id was C1 and is now C2"), "{e}");
}
