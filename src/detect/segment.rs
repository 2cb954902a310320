//! What a segment is to the detector, and the one rule that names its parent (the segment its
//! baseline is shrunk toward and whose alert lists it as a contributor).
//!
//! Parent rule: if the segment's grouping holds a nested dimension (by default `agent`, nested
//! in `team`) and the grouping with that dimension swapped for its container is configured,
//! the parent is that segment, with the container value the data says the child belongs to.
//! Otherwise it is the segment of the largest configured grouping whose dimensions are a
//! strict subset of this one's (the first listed on a tie), with the same values; the overall segment has none.

use crate::model::{UnknownDimension, DIMENSIONS};
use std::collections::HashMap;

const N: usize = DIMENSIONS.len();

/// A grouping (bit i = DIMENSIONS[i]) and the values of the dimensions it keeps ("" elsewhere).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentKey {
    pub mask: u8,
    pub values: [String; N],
}

impl SegmentKey {
    pub fn overall() -> Self {
        SegmentKey {
            mask: 0,
            values: Default::default(),
        }
    }

    /// The segment of the given (dimension index, value) pairs; its grouping is those
    /// dimensions. Indexes outside DIMENSIONS are ignored.
    pub fn of(pairs: &[(usize, &str)]) -> Self {
        let mut key = SegmentKey::overall();
        for &(i, v) in pairs.iter().filter(|(i, _)| *i < N) {
            key.mask |= 1 << i;
            key.values[i] = v.to_string();
        }
        key
    }

    /// From a window row's `grouping` column ("" or "channel,bucket") and dimension values.
    pub fn from_row(grouping: &str, values: [String; N]) -> Option<Self> {
        let mask = grouping_mask(grouping)?;
        let mut values = values;
        for (i, v) in values.iter_mut().enumerate() {
            if mask & (1 << i) == 0 {
                v.clear();
            }
        }
        Some(SegmentKey { mask, values })
    }

    /// The `grouping` column's spelling: kept dimensions joined by ','.
    pub fn grouping(&self) -> String {
        grouping_name(self.mask)
    }

    /// `overall`, or `team=billing`, `channel=CHAT,bucket=PRE_SALES`.
    pub fn label(&self) -> String {
        if self.mask == 0 {
            return "overall".into();
        }
        self.dims()
            .map(|(d, v)| format!("{d}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// (dimension, value) of each kept dimension, in DIMENSIONS order.
    pub fn dims(&self) -> impl Iterator<Item = (&'static str, &str)> {
        (0..N)
            .filter(|i| self.mask & (1 << i) != 0)
            .map(|i| (DIMENSIONS[i], self.values[i].as_str()))
    }
}

pub fn grouping_mask(grouping: &str) -> Option<u8> {
    let mut mask = 0u8;
    for d in grouping.split(',').filter(|d| !d.is_empty()) {
        let i = DIMENSIONS.iter().position(|x| *x == d)?;
        mask |= 1 << i;
    }
    Some(mask)
}

pub fn grouping_name(mask: u8) -> String {
    (0..N)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| DIMENSIONS[i])
        .collect::<Vec<_>>()
        .join(",")
}

/// The configured groupings and nestings, and what the data says each nested value belongs to.
#[derive(Clone, Debug, Default)]
pub struct Hierarchy {
    masks: Vec<u8>,
    /// (child dimension index, container dimension index).
    nestings: Vec<(usize, usize)>,
    /// (child dimension index, child value) → container value.
    containers: HashMap<(usize, String), String>,
}

impl Hierarchy {
    pub fn new(
        groupings: &[String],
        nestings: &[(String, String)],
    ) -> Result<Self, UnknownDimension> {
        let mut masks = Vec::new();
        for g in groupings {
            masks.push(grouping_mask(g).ok_or_else(|| UnknownDimension::Grouping(g.clone()))?);
        }
        let idx = |d: &str| {
            DIMENSIONS
                .iter()
                .position(|x| *x == d)
                .ok_or_else(|| UnknownDimension::Dimension(d.to_string()))
        };
        let nestings = nestings
            .iter()
            .map(|(c, p)| Ok((idx(c)?, idx(p)?)))
            .collect::<Result<Vec<_>, UnknownDimension>>()?;
        Ok(Hierarchy {
            masks,
            nestings,
            containers: HashMap::new(),
        })
    }

    /// Records that `child_value` of dimension `child` belongs to `container` (e.g. an agent's
    /// team, as the survey facts show it).
    pub fn set_container(&mut self, child: &str, child_value: &str, container: &str) {
        if let Some(i) = DIMENSIONS.iter().position(|x| *x == child) {
            self.containers
                .insert((i, child_value.to_string()), container.to_string());
        }
    }

    /// Whether a grouping holds a nested (child) dimension, e.g. `agent`.
    pub fn is_nested(&self, mask: u8) -> bool {
        self.nestings.iter().any(|&(c, _)| mask & (1 << c) != 0)
    }

    pub fn parent(&self, key: &SegmentKey) -> Option<SegmentKey> {
        if key.mask == 0 {
            return None;
        }
        for &(child, container) in &self.nestings {
            let swapped = (key.mask & !(1 << child)) | (1 << container);
            if key.mask & (1 << child) == 0
                || key.mask & (1 << container) != 0
                || !self.masks.contains(&swapped)
            {
                continue;
            }
            let Some(cv) = self.containers.get(&(child, key.values[child].clone())) else {
                continue;
            };
            let mut values = key.values.clone();
            values[child].clear();
            values[container] = cv.clone();
            return Some(SegmentKey {
                mask: swapped,
                values,
            });
        }
        let best = self
            .masks
            .iter()
            .rev()
            .copied()
            .filter(|&m| m != key.mask && m & key.mask == m)
            .max_by_key(|m| m.count_ones())
            .unwrap_or(0);
        let mut values = key.values.clone();
        for (i, v) in values.iter_mut().enumerate() {
            if best & (1 << i) == 0 {
                v.clear();
            }
        }
        Some(SegmentKey { mask: best, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(grouping: &str, pairs: &[(&str, &str)]) -> SegmentKey {
        let mut values: [String; N] = Default::default();
        for (d, v) in pairs {
            let i = DIMENSIONS.iter().position(|x| x == d).unwrap();
            values[i] = v.to_string();
        }
        SegmentKey::from_row(grouping, values).unwrap()
    }

    #[test]
    fn parents_follow_nesting_then_the_largest_subset() {
        let gs: Vec<String> = ["", "region", "team", "agent", "region,team"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut h = Hierarchy::new(&gs, &[("agent".into(), "team".into())]).unwrap();
        h.set_container("agent", "a1", "billing");
        let agent = key("agent", &[("agent", "a1")]);
        assert_eq!(h.parent(&agent), Some(key("team", &[("team", "billing")])));
        // An agent whose team is unknown falls back to the overall segment.
        assert_eq!(
            h.parent(&key("agent", &[("agent", "a9")])),
            Some(SegmentKey::overall())
        );
        let rt = key("region,team", &[("region", "emea"), ("team", "t")]);
        assert_eq!(h.parent(&rt), Some(key("region", &[("region", "emea")])));
        assert_eq!(
            h.parent(&key("region", &[("region", "emea")])),
            Some(SegmentKey::overall())
        );
        assert_eq!(h.parent(&SegmentKey::overall()), None);
        assert_eq!(rt.label(), "region=emea,team=t");
        assert_eq!(rt.grouping(), "region,team");
    }
}
