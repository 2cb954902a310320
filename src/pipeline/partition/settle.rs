//! How a partition's surveys settle, are revised and end (docs/SEMANTICS.md, "Settled,
//! revised, final" and "Bounded runs"): the window rows and facts each answer writes.

use super::{survey_partial, Outputs, PartitionState, SurveyFact};
use crate::join::{Resolved, Settled};
use crate::model::{Attribution, Stream};
use crate::pipeline::dims::{self, Dims, Handled};
use crate::pipeline::Settings;
use crate::window::aggregate::Partial;
use crate::window::correction_id;

impl PartitionState {
    /// End of a bounded input: nothing is settled or closed that later input could still
    /// change (a live run may follow). Pending surveys are written as provisional facts
    /// with the answer the input so far gives; the windows keep them as unattributed until
    /// they settle. Open windows go out at the next drain.
    pub fn finish(&mut self, st: &Settings, out: &mut Outputs) {
        for s in self.join.refresh(&st.join) {
            out.surveys.push(SurveyFact {
                partition: self.partition,
                resolved: Resolved {
                    survey: s.pending.survey,
                    attribution: s.attribution,
                    forced: false,
                    other_customer: s.other_customer,
                },
                is_final: false,
                revision: 0,
                first: None,
            });
        }
    }

    /// End of a complete input (`run --until-end --final`): every pending survey settles
    /// with every candidate, every window closes, nothing stays revisable, and the state
    /// records that it is closed.
    pub fn finish_final(&mut self, st: &Settings, out: &mut Outputs) {
        for s in self.join.settle_all_final(&st.join) {
            self.settled(s, st, out);
        }
        let p = self.partition;
        self.windows
            .close_until(i64::MAX, &st.window, |u| out.windows.push((p, u)));
        // Anything a repeated --final run reads after this is counted as late: the rows it
        // would fold into are written final.
        self.early_closed_ms = i64::MAX;
        self.final_run = true;
    }

    /// A survey's answer, at settlement or revised: an on-time survey's first answer moves
    /// its own-row contribution out of the unattributed rows; a late survey, or a revised
    /// one, rewrites its own correction rows; its fact is queued.
    pub(super) fn settled(&mut self, s: Settled, st: &Settings, out: &mut Outputs) {
        let survey = &s.pending.survey;
        let t = survey.submitted_at_ms;
        let first = s.answers.first().cloned().flatten();
        if s.first && !s.pending.late {
            if let Some(a) = &first {
                // Out of the unattributed rows, into its segment's, now counted as attributed.
                let (from, to) = (
                    dims::survey(survey, None),
                    dims::survey(survey, Some(a.into())),
                );
                let (was, is) = (survey_partial(survey, false), survey_partial(survey, true));
                self.windows
                    .move_event(t, (&from, &was), (&to, &is), &st.window);
            }
        }
        if s.rewrite {
            self.survey_rows(&s, st, out);
        }
        if !s.first {
            out.join_revisions += 1;
        }
        if s.first && s.other_customer {
            out.join_other_customer += 1;
        }
        out.surveys.push(SurveyFact {
            partition: self.partition,
            revision: s.revision,
            first: s.first.then_some(first),
            resolved: Resolved {
                survey: s.pending.survey,
                attribution: s.attribution,
                forced: s.forced,
                other_customer: s.other_customer,
            },
            is_final: true,
        });
    }

    /// A survey's own correction rows (docs/SEMANTICS.md, "Windows and segments"): its
    /// current answer in, an on-time survey's first answer (held in its window's own row)
    /// out, and zeros in every segment an earlier answer named; the version is the number of
    /// segment changes, so the newest segments win whichever run wrote them (a revision
    /// within the same segments rewrites only the fact).
    fn survey_rows(&mut self, s: &Settled, st: &Settings, out: &mut Outputs) {
        let survey = &s.pending.survey;
        fn handled(a: &Option<Attribution>) -> Option<Handled<'_>> {
            a.as_ref().map(Handled::from)
        }
        let zero = Partial::default();
        let mut parts: Vec<(Dims<'_>, Partial, bool)> = s
            .answers
            .iter()
            .map(|a| (dims::survey(survey, handled(a)), zero, false))
            .collect();
        let now = handled(&s.attribution);
        parts.push((
            dims::survey(survey, now),
            survey_partial(survey, now.is_some()),
            false,
        ));
        if !s.pending.late {
            let first = s.answers.first().and_then(handled);
            parts.push((
                dims::survey(survey, first),
                survey_partial(survey, first.is_some()),
                true,
            ));
        }
        let parts: Vec<(&Dims<'_>, Partial, bool)> =
            parts.iter().map(|(d, p, o)| (d, *p, *o)).collect();
        let (part, rev) = (
            self.partition,
            correction_id(Stream::Survey, s.pending.offset),
        );
        let version = u64::try_from(s.answers.len()).unwrap_or(u64::MAX);
        self.windows.rewrite(
            survey.submitted_at_ms,
            &parts,
            &st.window,
            rev,
            version,
            |u| out.windows.push((part, u)),
        );
    }
}
