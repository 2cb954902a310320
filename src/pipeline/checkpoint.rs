//! The checkpoint format: a header naming the format version and the settings the state
//! was built under, then the partition state. State restored under other window or join
//! settings would put rows under the wrong grouping or change answers mid-stream, so a
//! mismatch refuses to start and says what changed; nothing is silently reinterpreted.

use super::partition::PartitionState;
use super::Settings;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 4] = b"CXPS";
/// Bumped whenever the state's encoding changes.
pub const FORMAT: u16 = 2;

#[derive(Serialize, Deserialize)]
struct Header {
    format: u16,
    settings: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "it was written by another version of cx-pipeline (format {found}, this one reads \
         {FORMAT}); run that version to its end, or start new state under a new \
         kafka.state_id and kafka.group_id"
    )]
    Format { found: String },
    #[error(
        "settings changed since it was written: {0}. Restore the old values, or start new \
         state under a new kafka.state_id and kafka.group_id (with the group's offsets where \
         the new state should begin); rows already written stay in ClickHouse"
    )]
    SettingsChanged(String),
    #[error("it cannot be decoded: {0}")]
    Corrupt(String),
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
    ]
}

pub fn encode(ps: &PartitionState, st: &Settings) -> Result<Vec<u8>, CheckpointError> {
    let mut out = MAGIC.to_vec();
    let header = Header {
        format: FORMAT,
        settings: identity(st),
    };
    out = postcard::to_extend(&header, out).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
    postcard::to_extend(ps, out).map_err(|e| CheckpointError::Corrupt(e.to_string()))
}

/// Checks the header against `st`, then decodes the state.
pub fn decode(bytes: &[u8], st: &Settings) -> Result<PartitionState, CheckpointError> {
    let rest = check(bytes, st)?;
    postcard::from_bytes(rest).map_err(|e| CheckpointError::Corrupt(e.to_string()))
}

/// Checks only the header against `st` (format and settings), returning the encoded state:
/// enough to refuse a changed configuration at startup without decoding every partition.
pub fn check<'a>(bytes: &'a [u8], st: &Settings) -> Result<&'a [u8], CheckpointError> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(CheckpointError::Format {
            found: "1 (no header)".into(),
        });
    };
    let (header, rest): (Header, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
    if header.format != FORMAT {
        return Err(CheckpointError::Format {
            found: header.format.to_string(),
        });
    }
    let now = identity(st);
    let changed: Vec<String> = now
        .iter()
        .filter_map(|(k, v)| {
            let old = header.settings.iter().find(|(ok, _)| ok == k).map(|x| &x.1);
            (old != Some(v)).then(|| {
                format!(
                    "{k} was {} and is now {v}",
                    old.map_or("unset", String::as_str)
                )
            })
        })
        .collect();
    if !changed.is_empty() {
        return Err(CheckpointError::SettingsChanged(changed.join("; ")));
    }
    Ok(rest)
}
