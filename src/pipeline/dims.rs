//! The segment dimensions of an event, borrowed from it: no allocation per event.

use crate::model::{Attribution, Interaction, Survey, DIMENSIONS, UNATTRIBUTED, UNKNOWN};

pub type Dims<'a> = [&'a str; DIMENSIONS.len()];

/// region, channel, team, agent, product, tier, bucket of a contact. Contacts carry no
/// customer attributes, so region and tier are "unknown".
pub fn contact(i: &Interaction) -> Dims<'_> {
    [
        UNKNOWN,
        &i.channel,
        &i.team,
        &i.agent_id,
        i.product.as_deref().unwrap_or(UNKNOWN),
        UNKNOWN,
        &i.bucket,
    ]
}

/// Who handled the contact a survey is attributed to, borrowed from the join state or from
/// an owned attribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handled<'a> {
    pub agent_id: &'a str,
    pub team: &'a str,
    pub channel: &'a str,
    pub bucket: &'a str,
    pub product: Option<&'a str>,
}

impl<'a> From<&'a Attribution> for Handled<'a> {
    fn from(a: &'a Attribution) -> Self {
        Handled {
            agent_id: &a.agent_id,
            team: &a.team,
            channel: &a.channel,
            bucket: &a.bucket,
            product: a.product.as_deref(),
        }
    }
}

/// Dimensions of a survey after the join: customer attributes from the survey, handling
/// attributes from the contact it was attributed to ("unattributed" when none). The one
/// place segment values of a survey are decided.
pub fn survey<'a>(s: &'a Survey, a: Option<Handled<'a>>) -> Dims<'a> {
    let handling = |f: fn(&Handled<'a>) -> &'a str| a.as_ref().map(f).unwrap_or(UNATTRIBUTED);
    let product = s.product.as_deref().or_else(|| a.and_then(|a| a.product));
    [
        s.region.as_deref().unwrap_or(UNKNOWN),
        handling(|a| a.channel),
        handling(|a| a.team),
        handling(|a| a.agent_id),
        product.unwrap_or(UNKNOWN),
        s.customer_tier.as_deref().unwrap_or(UNKNOWN),
        handling(|a| a.bucket),
    ]
}
