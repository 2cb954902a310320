use super::*;

fn cfg() -> WindowConfig {
    WindowConfig::new(
        vec![60_000, 3_600_000],
        vec![
            Grouping::new(&[]).unwrap_or_else(|e| panic!("{e}")),
            Grouping::new(&["team".into()]).unwrap_or_else(|e| panic!("{e}")),
        ],
    )
}

fn dims(team: &str) -> [&str; 7] {
    std::array::from_fn(|i| if i == 2 { team } else { "x" })
}

#[test]
fn windows_are_floor_aligned() {
    assert_eq!(window_start(119_999, 60_000), 60_000);
    assert_eq!(window_start(120_000, 60_000), 120_000);
    assert_eq!(window_start(-1, 60_000), -60_000);
}

#[test]
fn grouping_names_follow_column_order() {
    let g = Grouping::new(&["bucket".into(), "channel".into()]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.name, "channel,bucket");
    assert!(Grouping::new(&["colour".into()]).is_err());
}

#[test]
fn one_event_touches_sizes_times_groupings_and_closes_in_end_order() {
    let c = cfg();
    let mut w = WindowState::default();
    w.add(30_000, &dims("a"), &c, |p| p.add_contact(1, 2, 3));
    w.add(90_000, &dims("b"), &c, |p| p.add_contact(1, 0, 0));
    let mut out = Vec::new();
    w.drain_dirty(&c, |u| out.push(u));
    assert_eq!(w.open_len(), 2 * 2 + 2 + 1); // 1m: 2 windows x 2 rows; 1h: overall + 2 teams
    assert_eq!(out.len(), 7);
    out.clear();
    w.drain_dirty(&c, |u| out.push(u));
    assert!(out.is_empty(), "nothing changed since the last drain");
    w.close_until(60_000, &c, |u| out.push(u));
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|u| u.is_final && u.key.end_ms == 60_000));
    let overall = out.iter().find(|u| u.key.grouping == 0).map(|u| u.partial);
    assert_eq!(overall.map(|p| (p.contacts, p.handle_ms)), Some((1, 6)));
    assert_eq!(out[0].version, 3);
}

mod buffered_equals_direct {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// (time, team index, agent index, talk ms)
    type Ev = (i64, u8, u8, u32);

    /// The naive definition: every event straight into every size x grouping.
    fn direct(evs: &[Ev], c: &WindowConfig) -> BTreeMap<(i64, i64, u8, String), Partial> {
        let mut m: BTreeMap<(i64, i64, u8, String), Partial> = BTreeMap::new();
        for &(t, team, agent, talk) in evs {
            for &size in c.sizes_ms() {
                for (gi, g) in c.groupings.iter().enumerate() {
                    let mut key = String::new();
                    if g.mask & (1 << 2) != 0 {
                        key += &format!("team{team}");
                    }
                    if g.mask & (1 << 3) != 0 {
                        key += &format!("/agent{agent}");
                    }
                    let end = t.div_euclid(size) * size + size;
                    m.entry((end, size, gi as u8, key))
                        .or_default()
                        .add_contact(u64::from(talk), 0, 0);
                }
            }
        }
        m
    }

    fn key_of(u: &WindowUpdate) -> (i64, i64, u8, String) {
        let mut key = String::new();
        if !u.key.dims[2].is_empty() {
            key += &u.key.dims[2];
        }
        if !u.key.dims[3].is_empty() {
            key += &format!("/{}", u.key.dims[3]);
        }
        (u.key.end_ms, u.key.size_ms, u.key.grouping, key)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Sizes that do not divide each other (a 30 s cell), drains and checkpoints at
        /// random points: the final rows equal the direct computation.
        #[test]
        fn final_rows_match(
            evs in proptest::collection::vec((-200_000i64..400_000, 0u8..3, 0u8..4, 0u32..1000), 1..300),
            cuts in proptest::collection::vec(0usize..300, 0..6),
        ) {
            let c = WindowConfig::new(
                vec![60_000, 90_000, 3_600_000],
                vec![
                    Grouping::new(&[]).unwrap_or_else(|e| panic!("{e}")),
                    Grouping::new(&["team".into()]).unwrap_or_else(|e| panic!("{e}")),
                    Grouping::new(&["team".into(), "agent".into()]).unwrap_or_else(|e| panic!("{e}")),
                ],
            );
            prop_assert_eq!(c.cell_ms(), 30_000);
            let mut w = WindowState::default();
            let mut out = Vec::new();
            for (n, &(t, team, agent, talk)) in evs.iter().enumerate() {
                if cuts.contains(&n) {
                    w.drain_dirty(&c, |u| out.push(u));
                    let bytes = postcard::to_allocvec(&w).unwrap_or_default();
                    w = postcard::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
                }
                let (team, agent) = (format!("team{team}"), format!("agent{agent}"));
                let dims = ["r", "ch", team.as_str(), agent.as_str(), "p", "tier", "b"];
                w.add(t, &dims, &c, |p| p.add_contact(u64::from(talk), 0, 0));
            }
            let mut finals = Vec::new();
            w.close_until(i64::MAX, &c, |u| finals.push(u));
            prop_assert_eq!(w.open_len(), 0);
            let got: BTreeMap<_, _> = finals.iter().map(|u| (key_of(u), u.partial)).collect();
            prop_assert_eq!(got.len(), finals.len(), "a row was emitted final twice");
            prop_assert_eq!(got, direct(&evs, &c));
            // Every open emission was a prefix of its final state.
            for u in &out {
                let fin = finals.iter().find(|f| f.key == u.key).map(|f| f.partial.events());
                prop_assert!(fin.is_some_and(|f| f >= u.partial.events()));
            }
        }
    }
}
