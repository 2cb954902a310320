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

/// Dimensions of a survey after the join: customer attributes from the survey, handling
/// attributes from the contact it was attributed to ("unattributed" when none).
pub fn survey<'a>(s: &'a Survey, a: Option<&'a Attribution>) -> Dims<'a> {
    let handling = |f: fn(&Attribution) -> &str| a.map(f).unwrap_or(UNATTRIBUTED);
    let product = s
        .product
        .as_deref()
        .or_else(|| a.and_then(|a| a.product.as_deref()));
    [
        s.region.as_deref().unwrap_or(UNKNOWN),
        handling(|a| &a.channel),
        handling(|a| &a.team),
        handling(|a| &a.agent_id),
        product.unwrap_or(UNKNOWN),
        s.customer_tier.as_deref().unwrap_or(UNKNOWN),
        handling(|a| &a.bucket),
    ]
}
