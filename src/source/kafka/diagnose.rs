//! librdkafka reports every failed certificate check as "certificate verify failed". When
//! that is why the job cannot start, this repeats the handshake with the same CA file
//! through OpenSSL directly and names the actual reason (expired, unknown issuer, wrong
//! host, ...), so the operator knows which certificate to fix.

use openssl::ssl::{HandshakeError, SslConnector, SslMethod, SslVerifyMode};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The verification result of the first broker's certificate, if the handshake fails on it.
pub(super) fn certificate_problem(brokers: &str, ca_file: Option<&str>) -> Option<String> {
    let first = brokers.split(',').next()?.trim();
    let first = first.rsplit("://").next().unwrap_or(first);
    let (host, _) = first.rsplit_once(':')?;
    let addr = first.to_socket_addrs().ok()?.next()?;
    let mut b = SslConnector::builder(SslMethod::tls_client()).ok()?;
    b.set_verify(SslVerifyMode::PEER);
    if let Some(ca) = ca_file {
        b.set_ca_file(ca).ok()?;
    }
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    match b.build().connect(host.trim_matches(['[', ']']), stream) {
        Err(HandshakeError::Failure(mid)) => {
            let v = mid.ssl().verify_result();
            (v.as_raw() != 0).then(|| {
                format!(
                    "the certificate {first} presents: {} (X509 error {})",
                    v.error_string(),
                    v.as_raw()
                )
            })
        }
        _ => None,
    }
}
