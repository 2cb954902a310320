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

/// A configured server address. Debug goes through [`redact_url`], so printing a config or
/// its settings never shows `user:password@` or a credential parameter.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(transparent)]
pub struct Url(String);

impl Url {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Url {
    fn from(s: String) -> Self {
        Url(s)
    }
}

impl From<&str> for Url {
    fn from(s: &str) -> Self {
        Url(s.to_string())
    }
}

impl std::ops::Deref for Url {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

/// librdkafka settings passed through as written. Their values may be credentials
/// (`ssl.key.password`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`, a JAAS config), so
/// Debug prints the keys and only values of keys known to be harmless.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Passthrough(std::collections::BTreeMap<String, String>);

impl Passthrough {
    /// Keys whose values are shown: nothing that names a credential, key or token.
    fn shown(key: &str) -> bool {
        let k = key.to_ascii_lowercase();
        const HIDDEN: [&str; 8] = [
            "password",
            "secret",
            "key",
            "pem",
            "token",
            "credential",
            "jaas",
            "config",
        ];
        !HIDDEN.iter().any(|h| k.contains(h))
    }
}

impl std::ops::Deref for Passthrough {
    type Target = std::collections::BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Passthrough {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if Self::shown(k) {
                m.entry(k, v);
            } else {
                m.entry(k, &"<redacted>");
            }
        }
        m.finish()
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
    // Without a scheme (`user:pw@host:8123`) the authority starts at the beginning.
    let authority_start = head.find("://").map_or(0, |s| s + 3);
    let rest = &head[authority_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let mut out = match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &head[..authority_start], &rest[at..]),
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
        // Nor does a missing scheme let userinfo through.
        assert_eq!(redact_url("cx:hunter2@ch:8123"), "***@ch:8123");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
        let url = Url::from("http://cx:hunter2@ch:8123/?password=hunter2");
        assert!(!format!("{url:?}").contains("hunter2"));
        let mut client = Passthrough::default();
        for (k, v) in [
            ("ssl.key.password", "hunter2"),
            ("sasl.oauthbearer.client.secret", "hunter2"),
            ("ssl.key.pem", "hunter2"),
            ("sasl.oauthbearer.config", "clientSecret=hunter2"),
            ("ssl.keystore.password", "hunter2"),
            ("security.protocol", "SASL_SSL"),
        ] {
            client.insert(k.into(), v.into());
        }
        let dbg = format!("{client:?}");
        assert!(
            !dbg.contains("hunter2") && dbg.contains("SASL_SSL"),
            "{dbg}"
        );
    }
}
