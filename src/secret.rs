//! A value that must never be printed: passwords from config, env or `*_FILE`. Debug shows a
//! placeholder, and there is no Display, so a secret cannot reach a log line by accident.

use serde::{Deserialize, Serialize};

/// A value that must never be printed. Debug shows a placeholder.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A URL as it may be printed: userinfo (`user:password@`) and the values of query
/// parameters that carry credentials are replaced by `***`. Every message that names a
/// server the operator configured goes through this.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.find("://") {
        Some(s) => {
            let rest = &head[s + 3..];
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}***{}", &head[..s + 3], &rest[at..]),
                None => head.to_string(),
            }
        }
        None => head.to_string(),
    };
    if let Some(q) = query {
        const SECRET_KEYS: [&str; 6] = ["password", "pass", "pwd", "token", "secret", "key"];
        let parts: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_and_credential_parameters_never_survive() {
        assert_eq!(
            redact_url("http://cx:hunter2@ch.internal:8123/?database=cx&password=hunter2"),
            "http://***@ch.internal:8123/?database=cx&password=***"
        );
        assert_eq!(
            redact_url("https://oncall:s3cret@127.0.0.1:9093"),
            "https://***@127.0.0.1:9093"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8081/apis/ccompat/v7"),
            "http://127.0.0.1:8081/apis/ccompat/v7"
        );
        // An @ in the path is not userinfo.
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}
