//! Schemas in the real registry (Apicurio Registry's Confluent-compatible API), registered
//! through the library's REST client — the calls `cx-pipeline generate` makes — plus an
//! evolved survey writer (one added optional field) registered as version 2 of the same
//! subject. Half of the well-formed surveys are written with it, so every run meets two
//! writer schemas on one topic, each fetched from the registry by id.

use apache_avro::types::Value;
use apache_avro::Schema;
use cx_pipeline::codec::{avro, frame_confluent, Schemas, WireFormat};
use cx_pipeline::generator::{Encoder, GenEvent};
use cx_pipeline::model::Event;
use cx_pipeline::source::registry::Registry;

pub struct TestEncoder {
    base: Encoder,
    evolved: Schema,
    evolved_id: u32,
}

/// The survey schema with `language` (optional, default null) appended: a compatible change.
pub fn evolved_survey_json(schemas: &Schemas) -> String {
    let mut json: serde_json::Value =
        serde_json::from_str(&schemas.survey_json).unwrap_or_else(|e| panic!("{e}"));
    json["fields"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("survey schema has fields"))
        .push(serde_json::json!({"name": "language", "type": ["null", "string"], "default": null}));
    json.to_string()
}

/// Registers the reader schemas as `<topic>-value` and the evolved survey writer after them.
pub async fn register(url: &str, survey_topic: &str, interaction_topic: &str) -> TestEncoder {
    let schemas = Schemas::embedded().unwrap_or_else(|e| panic!("{e}"));
    let r = Registry::new(url, None, None);
    let subject = format!("{survey_topic}-value");
    let survey = r
        .register(&subject, &schemas.survey_json)
        .await
        .unwrap_or_else(|e| panic!("register survey schema: {e}"));
    let interaction = r
        .register(
            &format!("{interaction_topic}-value"),
            &schemas.interaction_json,
        )
        .await
        .unwrap_or_else(|e| panic!("register interaction schema: {e}"));
    let evolved_json = evolved_survey_json(&schemas);
    let evolved_id = r
        .register(&subject, &evolved_json)
        .await
        .unwrap_or_else(|e| panic!("register evolved survey schema: {e}"));
    assert_ne!(evolved_id, survey, "a new version gets a new id");
    // Registering the same schema again returns the same id (the registry dedups).
    let again = r
        .register(&subject, &schemas.survey_json)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, survey);
    TestEncoder {
        base: Encoder {
            format: WireFormat::Confluent,
            schemas,
            ids: (survey, interaction),
        },
        evolved: Schema::parse_str(&evolved_json).unwrap_or_else(|e| panic!("{e}")),
        evolved_id,
    }
}

impl TestEncoder {
    pub fn encode(&self, g: &GenEvent) -> Vec<u8> {
        match &g.event {
            Event::Survey(s)
                if g.malformed.is_none()
                    && s.response_id.bytes().last().is_some_and(|b| b % 2 == 0) =>
            {
                let mut v =
                    avro::survey_value(s, s.nps_score.map(i32::from), s.csat_score.map(i32::from));
                if let Value::Record(fields) = &mut v {
                    fields.push((
                        "language".into(),
                        Value::Union(1, Box::new(Value::String("en".into()))),
                    ));
                }
                let datum = avro::encode(&self.evolved, v).unwrap_or_else(|e| panic!("{e}"));
                frame_confluent(self.evolved_id, &datum)
            }
            _ => self.base.encode(g).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub fn ids(&self) -> (u32, u32, u32) {
        (self.base.ids.0, self.base.ids.1, self.evolved_id)
    }
}

/// The versions the registry holds for a subject (GET /subjects/{subject}/versions).
pub fn subject_versions(url: &str, subject: &str) -> Vec<u32> {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("{url}/subjects/{subject}/versions")])
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}
