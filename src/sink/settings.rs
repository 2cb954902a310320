//! What the ClickHouse sink is built from, already validated by the config (`[clickhouse]`).

use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// LZ4 on servers that honour it, none on the old ones that silently drop it.
    #[default]
    Auto,
    Lz4,
    None,
}

/// The server, the database and how to talk to it.
#[derive(Clone, Debug)]
pub struct ClickHouseSettings {
    /// Empty disables ClickHouse (embedded demo only; the Kafka job needs it).
    pub url: crate::secret::Url,
    pub database: String,
    /// Where `demo` writes its synthetic rows: never the pipeline's database.
    pub demo_database: String,
    pub user: String,
    pub password: Secret,
    pub compression: Compression,
    /// One request's limit; a hung server counts as a failed attempt and is retried.
    pub timeout: Duration,
    /// A private CA (PEM) for an `https://` URL, besides the system's trusted roots.
    pub ca_file: Option<String>,
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: Default::default(),
            database: "cx".into(),
            demo_database: "cx_demo".into(),
            user: "default".into(),
            password: Secret::default(),
            compression: Compression::Auto,
            timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }
}

impl ClickHouseSettings {
    /// The same server with another database (the demo's).
    pub fn with_database(&self, database: &str) -> Self {
        ClickHouseSettings {
            database: database.to_string(),
            ..self.clone()
        }
    }
}
