//! `[http]`: where the data-plane HTTP API listens and who may call it.

use serde::Deserialize;
use std::net::SocketAddr;

/// The AWS IoT data-plane HTTP API (`iot-data`). Off unless `listen` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address (`http://<addr>`, e.g. `127.0.0.1:8443`); off when absent.
    pub listen: Option<SocketAddr>,
    /// HTTPS for devices with their certificate (mTLS against the fleet
    /// CA, as AWS's port 8443); off when absent, needs `weir ca init`.
    pub tls_listen: Option<SocketAddr>,
    /// How long a shadow request waits for the shadow service's answer
    /// before it is answered 503.
    pub answer_timeout_ms: u64,
    /// Access keys whose AWS Signature Version 4 the API accepts. With none,
    /// requests are not checked, which is allowed only on a loopback address.
    pub credentials: Vec<AccessKey>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: None,
            tls_listen: None,
            answer_timeout_ms: 5000,
            credentials: Vec::new(),
        }
    }
}

/// One access key (what an AWS SDK's `aws_access_key_id` and
/// `aws_secret_access_key` are set to).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl HttpConfig {
    /// Checks made before anything listens.
    pub fn validate(&self) -> Result<(), String> {
        if self.answer_timeout_ms == 0 {
            return Err("http.answer_timeout_ms must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for key in &self.credentials {
            let id = &key.access_key_id;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "http.credentials: access_key_id {id:?} must be letters and digits"
                ));
            }
            if key.secret_access_key.is_empty() {
                return Err(format!(
                    "http.credentials: access key {id} has an empty secret_access_key"
                ));
            }
            if !seen.insert(id) {
                return Err(format!("http.credentials: access key {id} is listed twice"));
            }
        }
        if let Some(addr) = self.listen {
            if !addr.ip().is_loopback() && self.credentials.is_empty() {
                return Err(format!(
                    "http.listen = \"{addr}\" is not a loopback address: set [[http.credentials]] so every request must be signed (AWS Signature Version 4)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HttpConfig, String> {
        let c: HttpConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map(|_| c)
    }

    #[test]
    fn loopback_may_go_unsigned_elsewhere_needs_keys() {
        assert!(parse("listen = \"127.0.0.1:8443\"").is_ok());
        let e = parse("listen = \"0.0.0.0:8443\"").unwrap_err();
        assert!(e.contains("not a loopback address"), "{e}");
        let signed = "listen = \"0.0.0.0:8443\"\n[[credentials]]\naccess_key_id = \"AKIDWEIR\"\nsecret_access_key = \"s\"\n";
        assert!(parse(signed).is_ok());
    }

    #[test]
    fn bad_keys_and_unknown_fields_are_refused() {
        let e = parse("[[credentials]]\naccess_key_id = \"A K\"\nsecret_access_key = \"s\"\n")
            .unwrap_err();
        assert!(e.contains("letters and digits"), "{e}");
        let e = parse("[[credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"\"\n")
            .unwrap_err();
        assert!(e.contains("empty secret"), "{e}");
        let twice = "[[credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n";
        let e = parse(&format!("{twice}{twice}")).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        assert!(parse("port = 1").unwrap_err().contains("unknown field"));
        assert!(parse("answer_timeout_ms = 0").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = parse("[[credentials]]\naccess_key_id = \"A\"\nsecret_access_key = \"hush\"\n")
            .unwrap();
        assert!(!format!("{c:?}").contains("hush"));
    }
}
