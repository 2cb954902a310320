//! The checkpoint format: a header naming the format version, the settings the state was
//! built under and the Kafka source it covers (cluster, topic names, topic ids, partition
//! counts), then the partition state. State restored under other window or join settings
//! would put rows under the wrong grouping; offsets restored against a recreated topic or
//! another cluster would skip records silently. So a mismatch refuses to start and says what
//! changed and how to proceed; nothing is silently reinterpreted.

use crate::metrics::Business;
use crate::pipeline::partition::{PartitionState, Trailer};
use crate::pipeline::Settings;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"CXPS";
/// Bumped whenever the header or the state's encoding changes. Format 4 splits a checkpoint
/// into a base (the whole state, in `cx.checkpoint_bases`) and marks (offsets and a
/// reference to the base, in `cx.checkpoints`); see docs/DELIVERY.md, "Incremental
/// checkpoints".
pub const FORMAT: u16 = 4;
/// Format 3 held the whole state in each `cx.checkpoints` row; it is read, and a claim
/// rewrites it as a format-4 base and mark.
const FORMAT_3: u16 = 3;
/// Format 2 had no source identity; its state encoding is the same, so it is read and
/// rewritten as format 4 (see [`check`]).
const FORMAT_2: u16 = 2;

/// Which base a mark's state is: the base rows of a partition are keyed by the owner's
/// epoch, a random id of the claiming process (two claimants that read the same epoch
/// never share keys) and a parity the owner alternates, so a new base never overwrites the
/// one the latest mark still points at, and no other owner's writes ever land on it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaseRef {
    pub epoch: u32,
    pub owner: u64,
    pub parity: u8,
    pub version: u64,
}

/// A row of `cx.checkpoints` in format 4: where the state is, and what was published.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub base: BaseRef,
    /// Version of the checkpoint row this owner restored from (claims), or 0: a former
    /// owner whose copy was restored knows its facts were counted (store::recheck).
    pub restored_from: u64,
    /// Business counts published for the partition so far, cumulative over its owners.
    pub published: Business,
}

/// What a row of `cx.checkpoints` holds.
pub enum Stored {
    /// Formats 2 and 3: the whole state.
    Inline(Box<PartitionState>),
    Mark(Mark),
}

/// One input topic as the checkpoint's offsets refer to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct TopicIdentity {
    pub name: String,
    /// Kafka's topic id (base64), where the broker gives one: it changes when a topic is
    /// deleted and created again under the same name.
    pub id: Option<String>,
    pub partitions: i32,
}

/// The Kafka source a checkpoint's offsets belong to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SourceIdentity {
    pub cluster_id: Option<String>,
    /// Survey topic, then interaction topic.
    pub topics: [TopicIdentity; 2],
}

impl SourceIdentity {
    /// Takes what the broker did not say this time (a cluster id or topic id lost to a
    /// timeout at startup) from what a checkpoint recorded for the same topics, so the
    /// checkpoints written now keep it and a later failover or re-created topic is still
    /// noticed. Returns what was taken, for a warning: it is not verified this time.
    pub fn adopt_missing(&mut self, recorded: &SourceIdentity) -> Vec<String> {
        let mut taken = Vec::new();
        if self.cluster_id.is_none() {
            if let Some(c) = &recorded.cluster_id {
                self.cluster_id = Some(c.clone());
                taken.push("the cluster id".to_string());
            }
        }
        for (now, was) in self.topics.iter_mut().zip(&recorded.topics) {
            if now.id.is_none() && now.name == was.name && was.id.is_some() {
                now.id.clone_from(&was.id);
                taken.push(format!("the topic id of {}", now.name));
            }
        }
        taken
    }
}

/// The source a stored row recorded (formats 3 and 4), checking nothing.
pub fn recorded_source(bytes: &[u8]) -> Option<SourceIdentity> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (format, _): (u16, &[u8]) = postcard::take_from_bytes(rest).ok()?;
    if format != FORMAT && format != FORMAT_3 {
        return None;
    }
    let (h, _): (Header, &[u8]) = postcard::take_from_bytes(rest).ok()?;
    Some(h.source)
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: u16,
    settings: Vec<(String, String)>,
    source: SourceIdentity,
}

#[derive(Serialize, Deserialize)]
struct Header2 {
    format: u16,
    settings: Vec<(String, String)>,
}

const NEW_STATE: &str = "start new state under a new kafka.state_id and kafka.group_id (with \
                         the group's offsets where the new state should begin); rows already \
                         written stay in ClickHouse";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "it was written by another version of cx-pipeline (format {found}, this one reads \
         {FORMAT_2} to {FORMAT}); run that version to its end, or {NEW_STATE}"
    )]
    Format { found: String },
    #[error("settings changed since it was written: {0}. Restore the old values, or {NEW_STATE}")]
    SettingsChanged(String),
    #[error(
        "its offsets belong to another Kafka source: {0}. Offsets below the checkpoint would \
         be skipped. Point the job back at the original, or {NEW_STATE}"
    )]
    SourceChanged(String),
    #[error("it cannot be decoded: {0}")]
    Corrupt(String),
    #[error(
        "a `run --until-end --final` declared its input complete and closed every window and \
         survey; later input would reopen what was declared final. Run `--until-end --final` \
         again over the complete input, or {NEW_STATE}"
    )]
    Closed,
}

/// The settings a checkpointed state depends on, as (config key, value).
pub fn identity(st: &Settings) -> Vec<(String, String)> {
    let ms = |x: i64| format!("{x} ms");
    let sizes: Vec<String> = st
        .window
        .sizes_ms()
        .iter()
        .map(|&s| format!("{}s", s / 1000))
        .collect();
    let sets: Vec<String> = st
        .window
        .groupings
        .iter()
        .map(|g| format!("[{}]", g.name))
        .collect();
    vec![
        ("window.sizes".into(), sizes.join(", ")),
        ("window.grouping_sets".into(), sets.join(", ")),
        ("window.out_of_orderness".into(), ms(st.out_of_orderness_ms)),
        ("window.allowed_lateness".into(), ms(st.allowed_lateness_ms)),
        ("window.late_horizon".into(), ms(st.late_horizon_ms)),
        ("join.lookback".into(), ms(st.join.lookback_ms)),
        ("join.max_wait".into(), ms(st.join.max_wait_ms)),
        ("join.attribution".into(), format!("{:?}", st.join.policy)),
        ("join.revise_horizon".into(), ms(st.join.revise_ms)),
    ]
}

pub fn encode(
    ps: &PartitionState,
    st: &Settings,
    source: &SourceIdentity,
) -> Result<Vec<u8>, CheckpointError> {
    let corrupt = |e: postcard::Error| CheckpointError::Corrupt(e.to_string());
    let bytes = postcard::to_extend(ps, header(st, source)?).map_err(corrupt)?;
    let bytes = postcard::to_extend(&ps.early_closed_ms(), bytes).map_err(corrupt)?;
    postcard::to_extend(&ps.trailer(), bytes).map_err(corrupt)
}

/// A mark, behind the same header as a base.
pub fn encode_mark(
    m: &Mark,
    st: &Settings,
    source: &SourceIdentity,
) -> Result<Vec<u8>, CheckpointError> {
    postcard::to_extend(m, header(st, source)?).map_err(|e| CheckpointError::Corrupt(e.to_string()))
}

/// A row of `cx.checkpoints`: a format-4 mark, or a whole state in formats 2 and 3.
pub fn decode_row(
    bytes: &[u8],
    st: &Settings,
    source: &SourceIdentity,
) -> Result<Checked<Stored>, CheckpointError> {
    let c = check(bytes, st, source)?;
    if c.format == FORMAT {
        let (m, _): (Mark, &[u8]) = postcard::take_from_bytes(c.value)
            .map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
        return Ok(Checked {
            value: Stored::Mark(m),
            migrated: false,
            format: c.format,
        });
    }
    let state = decode(bytes, st, source)?;
    Ok(Checked {
        value: Stored::Inline(Box::new(state.value)),
        migrated: true,
        format: c.format,
    })
}

/// The bytes every checkpoint under `st` and `source` starts with (the fuzz target puts
/// arbitrary state bytes behind it, to reach the state decoder past the header check).
pub fn header(st: &Settings, source: &SourceIdentity) -> Result<Vec<u8>, CheckpointError> {
    let header = Header {
        format: FORMAT,
        settings: identity(st),
        source: source.clone(),
    };
    postcard::to_extend(&header, MAGIC.to_vec())
        .map_err(|e| CheckpointError::Corrupt(e.to_string()))
}

/// Checks the header against `st` and `source`, then decodes the state.
pub fn decode(
    bytes: &[u8],
    st: &Settings,
    source: &SourceIdentity,
) -> Result<Checked<PartitionState>, CheckpointError> {
    let c = check(bytes, st, source)?;
    let corrupt = |e: postcard::Error| CheckpointError::Corrupt(e.to_string());
    let (mut state, trailer): (PartitionState, &[u8]) =
        postcard::take_from_bytes(c.value).map_err(corrupt)?;
    // A trailer added within format 3 (absent from older checkpoints, which closed nothing
    // early): the end of the windows closed at the open-row cap.
    if !trailer.is_empty() {
        let (early, rest): (i64, &[u8]) = postcard::take_from_bytes(trailer).map_err(corrupt)?;
        state.restore_early_closed_ms(early);
        // Then, since revisions, the revisable surveys and whether a --final run closed it.
        if !rest.is_empty() {
            let (t, _): (Trailer, &[u8]) = postcard::take_from_bytes(rest).map_err(corrupt)?;
            state.restore_trailer(t);
        }
    }
    Ok(Checked {
        value: state,
        migrated: c.migrated,
        format: c.format,
    })
}

/// A checked checkpoint part; `migrated` when it came from an older format (2 recorded no
/// source to verify; 2 and 3 held the whole state inline), which the claim rewrites.
pub struct Checked<T> {
    pub value: T,
    pub migrated: bool,
    pub format: u16,
}

/// Checks only the header against `st` and `source` (format, settings, source), returning
/// the encoded state: enough to refuse a changed configuration at startup without decoding
/// every partition.
pub fn check<'a>(
    bytes: &'a [u8],
    st: &Settings,
    source: &SourceIdentity,
) -> Result<Checked<&'a [u8]>, CheckpointError> {
    let corrupt = |e: postcard::Error| CheckpointError::Corrupt(e.to_string());
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(CheckpointError::Format {
            found: "1 (no header)".into(),
        });
    };
    let (format, _): (u16, &[u8]) = postcard::take_from_bytes(rest).map_err(corrupt)?;
    let (settings, stored, rest, migrated) = match format {
        FORMAT | FORMAT_3 => {
            let (h, rest): (Header, &[u8]) = postcard::take_from_bytes(rest).map_err(corrupt)?;
            (h.settings, Some(h.source), rest, false)
        }
        FORMAT_2 => {
            let (h, rest): (Header2, &[u8]) = postcard::take_from_bytes(rest).map_err(corrupt)?;
            (h.settings, None, rest, true)
        }
        other => {
            return Err(CheckpointError::Format {
                found: other.to_string(),
            })
        }
    };
    let changed = changed_settings(&settings, &identity(st));
    if !changed.is_empty() {
        return Err(CheckpointError::SettingsChanged(changed.join("; ")));
    }
    if let Some(stored) = stored {
        let changed = changed_source(&stored, source);
        if !changed.is_empty() {
            return Err(CheckpointError::SourceChanged(changed.join("; ")));
        }
    }
    Ok(Checked {
        value: rest,
        migrated,
        format,
    })
}

/// Settings recorded only by later builds: a checkpoint without one was built before it
/// existed (before revisions, surveys settled once), and is read under the value now set.
const ADDED_LATER: &[&str] = &["join.revise_horizon"];

fn changed_settings(old: &[(String, String)], now: &[(String, String)]) -> Vec<String> {
    now.iter()
        .filter_map(|(k, v)| {
            let was = old.iter().find(|(ok, _)| ok == k).map(|x| &x.1);
            if was.is_none() && ADDED_LATER.contains(&k.as_str()) {
                return None;
            }
            (was != Some(v)).then(|| {
                format!(
                    "{k} was {} and is now {v}",
                    was.map_or("unset", String::as_str)
                )
            })
        })
        .collect()
}

/// What differs between the source a checkpoint recorded and the one the job reads now.
/// An id or cluster the broker did not give (old brokers) is not compared.
fn changed_source(old: &SourceIdentity, now: &SourceIdentity) -> Vec<String> {
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (&old.cluster_id, &now.cluster_id) {
        if a != b {
            out.push(format!(
                "the Kafka cluster id was {a} and is now {b} (another cluster, e.g. after a failover)"
            ));
        }
    }
    let keys = ["kafka.survey_topic", "kafka.interaction_topic"];
    for ((key, a), b) in keys.iter().zip(&old.topics).zip(&now.topics) {
        if a.name != b.name {
            out.push(format!("{key} was {} and is now {}", a.name, b.name));
            continue;
        }
        if let (Some(x), Some(y)) = (&a.id, &b.id) {
            if x != y {
                out.push(format!(
                    "topic {} was deleted and created again (topic id was {x} and is now {y})",
                    a.name
                ));
                continue;
            }
        }
        if a.partitions != b.partitions {
            out.push(format!(
                "topic {} had {} partitions and has {} now (customers map to other partitions)",
                a.name, a.partitions, b.partitions
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests;
