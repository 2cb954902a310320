//! Environment overrides: addresses and secrets that differ per deployment. Each secret can
//! come from its variable or, as container platforms mount them, from a file named by the
//! same variable with `_FILE` appended (one trailing newline is dropped). A file that
//! cannot be read fails at startup naming the variable and the path, never the content.

use super::{Config, ConfigError, Secret};

/// The secret variables, each also readable from `<name>_FILE`.
pub const SECRETS: [&str; 3] = [
    "CXP_KAFKA_SASL_PASSWORD",
    "CXP_SCHEMA_REGISTRY_PASSWORD",
    "CXP_CLICKHOUSE_PASSWORD",
];

fn secret(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    errs: &mut Vec<String>,
) -> Option<Secret> {
    let file_var = format!("{name}_FILE");
    match (get(name), get(&file_var)) {
        (Some(_), Some(_)) => {
            errs.push(format!(
                "{name} and {file_var} are both set; set one of them"
            ));
            None
        }
        (Some(v), None) => Some(Secret::new(v)),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.strip_suffix('\n').unwrap_or(&text);
                Some(Secret::new(text.strip_suffix('\r').unwrap_or(text)))
            }
            Err(e) => {
                errs.push(format!(
                    "{file_var} = {path:?}: cannot read it: {}",
                    e.kind()
                ));
                None
            }
        },
        (None, None) => None,
    }
}

impl Config {
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if let Some(v) = get("CXP_KAFKA_BROKERS") {
            self.kafka.brokers = v;
        }
        if let Some(v) = get("CXP_GROUP_INSTANCE_ID").filter(|v| !v.is_empty()) {
            self.kafka.group_instance_id = Some(v);
        }
        if let Some(v) = secret(&get, SECRETS[0], &mut errs) {
            self.kafka.sasl_password = Some(v);
        }
        if let Some(v) = get("CXP_SCHEMA_REGISTRY_URL") {
            self.codec.schema_registry_url = Some(v.into());
        }
        if let Some(v) = secret(&get, SECRETS[1], &mut errs) {
            self.codec.schema_registry_password = Some(v);
        }
        if let Some(v) = get("CXP_CLICKHOUSE_URL") {
            self.clickhouse.url = v.into();
        }
        if let Some(v) = secret(&get, SECRETS[2], &mut errs) {
            self.clickhouse.password = v;
        }
        if let Some(v) = get("CXP_METRICS_LISTEN") {
            self.metrics.listen = v;
        }
        if let Some(v) = get("CXP_ALERTMANAGER_URL") {
            self.detector.alertmanager_url = v.into();
        }
        if let Some(v) = get("CXP_DETECTOR_METRICS_LISTEN") {
            self.detector.metrics_listen = v;
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errs))
        }
    }
}
