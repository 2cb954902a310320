//! Revisable surveys in checkpoints: contacts by their position in the saved contact
//! order (restored first, so positions become sequence numbers), handlings by their fields.

use super::revise::{Chain, Fold, Revisable};
use super::{JoinState, NIL};
use crate::join::Pending;
use crate::model::Attribution;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A revisable survey by value, for checkpoints: contacts by their position in the saved
/// contact order, handlings by their fields.
#[derive(Serialize, Deserialize)]
pub struct SavedRevisable {
    key: (i64, u64),
    pending: Pending,
    latest: u32,
    chosen: u32,
    answers: Vec<Option<Attribution>>,
    steps: u32,
}

impl JoinState {
    pub(crate) fn save_revisable(&self) -> Vec<SavedRevisable> {
        let at = |s: u32| {
            if s == NIL || self.contact(s).is_none() {
                NIL
            } else {
                s.wrapping_sub(self.front_seq)
            }
        };
        self.revisable
            .iter()
            .map(|(k, r)| SavedRevisable {
                key: *k,
                pending: r.pending.clone(),
                latest: at(r.chain.fold.latest),
                chosen: at(r.chain.fold.chosen),
                answers: r
                    .chain
                    .handlings
                    .iter()
                    .map(|&h| self.segments_of(h))
                    .collect(),
                steps: r.chain.steps,
            })
            .collect()
    }

    /// After the contacts are restored in their saved order (sequence numbers from 0).
    pub(crate) fn restore_revisable(&mut self, saved: Vec<SavedRevisable>) {
        for r in saved {
            let at = |s: u32| {
                if s == NIL {
                    NIL
                } else {
                    s.wrapping_add(self.front_seq)
                }
            };
            let fold = Fold {
                latest: at(r.latest),
                chosen: at(r.chosen),
            };
            let handlings = r
                .answers
                .iter()
                .map(|a| {
                    a.as_ref().map_or(NIL, |a| {
                        self.intern((
                            &a.agent_id,
                            &a.team,
                            &a.channel,
                            &a.bucket,
                            &a.category,
                            a.product.as_deref(),
                        ))
                    })
                })
                .collect();
            self.by_customer
                .entry(CompactString::from(r.pending.survey.customer_id.as_str()))
                .or_default()
                .push(r.key);
            self.revisable.insert(
                r.key,
                Revisable {
                    pending: r.pending,
                    chain: Chain {
                        fold,
                        handlings,
                        steps: r.steps,
                    },
                },
            );
        }
    }
}
