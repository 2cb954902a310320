//! Interns dimension values so window keys share one allocation per distinct value.

use crate::model::{Attribution, DimValues, Interaction, Survey, UNATTRIBUTED, UNKNOWN};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Interner {
    map: HashMap<Box<str>, Arc<str>>,
    empty: Arc<str>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            map: HashMap::new(),
            empty: Arc::from(""),
        }
    }
}

impl Interner {
    pub fn empty(&self) -> &Arc<str> {
        &self.empty
    }

    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.map.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.map.insert(s.into(), a.clone());
        a
    }

    fn opt(&mut self, s: Option<&str>) -> Arc<str> {
        self.get(s.unwrap_or(UNKNOWN))
    }

    /// region, channel, team, agent, product, tier, bucket of a contact. Contacts carry no
    /// customer attributes, so region and tier are "unknown".
    pub fn contact_dims(&mut self, i: &Interaction) -> DimValues {
        [
            self.get(UNKNOWN),
            self.get(&i.channel),
            self.get(&i.team),
            self.get(&i.agent_id),
            self.opt(i.product.as_deref()),
            self.get(UNKNOWN),
            self.get(&i.bucket),
        ]
    }

    /// Dimensions of a survey after the join: customer attributes from the survey, handling
    /// attributes from the contact it was attributed to ("unattributed" when none).
    pub fn survey_dims(&mut self, s: &Survey, a: Option<&Attribution>) -> DimValues {
        let handling = |f: fn(&Attribution) -> &str| a.map(f).unwrap_or(UNATTRIBUTED);
        let product = s
            .product
            .as_deref()
            .or_else(|| a.and_then(|a| a.product.as_deref()));
        [
            self.opt(s.region.as_deref()),
            self.get(handling(|a| &a.channel)),
            self.get(handling(|a| &a.team)),
            self.get(handling(|a| &a.agent_id)),
            self.opt(product),
            self.opt(s.customer_tier.as_deref()),
            self.get(handling(|a| &a.bucket)),
        ]
    }
}
