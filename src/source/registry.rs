//! Confluent schema registry client: fetches writer schemas by id (cached by the decoder,
//! so the registry sees one request per schema id per process) and registers the generator's
//! schemas. Plain HTTP with optional basic auth; the password never reaches Debug output.

use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The largest registry answer read (a schema, or the answer to registering one).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct Registry {
    base: String,
    auth: Option<String>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &crate::secret::redact_url(&self.base))
            .finish_non_exhaustive()
    }
}

pub use crate::codec::Fetch;

/// A schema could not be registered (the generator's and the tests' producers).
#[derive(Debug, thiserror::Error)]
#[error("schema registry: registering {subject}: {detail}")]
pub struct RegisterError {
    pub subject: String,
    pub detail: String,
}

#[derive(serde::Deserialize)]
struct SchemaResponse {
    schema: String,
}

#[derive(serde::Deserialize)]
struct IdResponse {
    id: u32,
}

impl Registry {
    pub fn new(url: &str, user: Option<&str>, password: Option<&Secret>) -> Self {
        let auth = user.map(|u| {
            let pw = password.map(Secret::expose).unwrap_or("");
            format!("Basic {}", base64(format!("{u}:{pw}").as_bytes()))
        });
        Registry {
            base: url.trim_end_matches('/').to_string(),
            auth,
            client: Client::builder(TokioExecutor::new()).build(
                crate::tls::https_connector(None, "codec.schema_registry_url")
                    .unwrap_or_else(|_| HttpsConnector::new()),
            ),
            timeout: Duration::from_secs(10),
        }
    }

    /// The base URL as it may appear in a message.
    fn shown(&self) -> String {
        crate::secret::redact_url(&self.base)
    }

    /// Trusts a private CA (PEM file) for an `https://` registry, besides the system's roots.
    pub fn with_ca_file(mut self, ca_file: &str) -> Result<Self, crate::tls::TlsError> {
        let conn = crate::tls::https_connector(Some(ca_file), "codec.schema_registry_ca_file")?;
        self.client = Client::builder(TokioExecutor::new()).build(conn);
        Ok(self)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("accept", "application/vnd.schemaregistry.v1+json");
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        if body.is_some() {
            req = req.header("content-type", "application/vnd.schemaregistry.v1+json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| format!("no answer from {} within {:?}", self.shown(), self.timeout))?
            .map_err(|e| format!("{}: {e}", self.shown()))?;
        let status = resp.status();
        // A schema is a few KB; the cap keeps a hostile or broken registry answer from
        // exhausting memory before it is parsed.
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{}: answer refused: {e}", self.shown()))?
            .to_bytes();
        Ok((status, bytes))
    }

    /// The writer schema's JSON, or None when the registry says the id does not exist.
    /// The schema for an id; `Ok(None)` when the registry does not know it. 401/403 are
    /// [`Fetch::Denied`]; everything else that fails (5xx, timeouts, no connection, a bad
    /// answer) is [`Fetch::Unavailable`] and worth retrying.
    pub async fn schema_by_id(&self, id: u32) -> Result<Option<String>, Fetch> {
        let (status, body) = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await
            .map_err(Fetch::Unavailable)?;
        match status {
            StatusCode::OK => serde_json::from_slice::<SchemaResponse>(&body)
                .map(|r| Some(r.schema))
                .map_err(|e| Fetch::Unavailable(format!("bad registry answer for id {id}: {e}"))),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Fetch::Denied(format!(
                "{} answered {status} for schema id {id}",
                self.shown()
            ))),
            s => Err(Fetch::Unavailable(format!(
                "registry answered {s} for schema id {id}"
            ))),
        }
    }

    /// Registers `schema` under `subject` and returns its id (idempotent in the registry).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegisterError> {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let fail = |detail: String| RegisterError {
            subject: subject.to_string(),
            detail,
        };
        let (status, resp) = self
            .call(
                Method::POST,
                &format!("/subjects/{subject}/versions"),
                Some(body),
            )
            .await
            .map_err(fail)?;
        if !status.is_success() {
            return Err(fail(format!("registry answered {status}")));
        }
        serde_json::from_slice::<IdResponse>(&resp)
            .map(|r| r.id)
            .map_err(|e| fail(format!("bad registry answer: {e}")))
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The registry as the decoder's schema source: the poll loop runs on a plain thread, so
/// each (rare, cached) lookup blocks on the runtime.
pub struct BlockingRegistry {
    pub registry: Registry,
    pub runtime: tokio::runtime::Handle,
}

impl crate::codec::SchemaSource for BlockingRegistry {
    fn fetch(&self, id: u32) -> Result<Option<String>, Fetch> {
        self.runtime.block_on(self.registry.schema_by_id(id))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(i.as_bytes()), o);
        }
    }
}
