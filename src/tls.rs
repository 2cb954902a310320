//! HTTPS for the ClickHouse and schema-registry clients, on the same system OpenSSL that
//! librdkafka uses (through native-tls): the system's trusted roots, plus a private CA from a
//! PEM file when the deployment uses one (`clickhouse.ca_file`,
//! `codec.schema_registry_ca_file`). Plain `http://` URLs keep working through the same
//! connector.

use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::Duration;

/// Why no HTTPS connector could be built; names the setting.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} = {path:?}: {source}")]
    Read {
        key: String,
        path: String,
        source: std::io::Error,
    },
    #[error("{key} = {path:?}: not a PEM certificate: {source}")]
    Pem {
        key: String,
        path: String,
        source: native_tls::Error,
    },
    #[error("{key}: {source}")]
    Build {
        key: String,
        source: native_tls::Error,
    },
}

/// A connector for `http://` and `https://` URLs. `key` names the setting in errors.
pub fn https_connector(
    ca_file: Option<&str>,
    key: &str,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let mut b = native_tls::TlsConnector::builder();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| TlsError::Read {
            key: key.into(),
            path: path.into(),
            source,
        })?;
        let cert = native_tls::Certificate::from_pem(&pem).map_err(|source| TlsError::Pem {
            key: key.into(),
            path: path.into(),
            source,
        })?;
        b.add_root_certificate(cert);
    }
    let tls = b.build().map_err(|source| TlsError::Build {
        key: key.into(),
        source,
    })?;
    Ok(HttpsConnector::from((http, tls.into())))
}
