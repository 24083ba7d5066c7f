//! Typed settings for the AWS tiers: region, profile, per-service endpoint
//! overrides and timeouts. Deserialized from the `[aws]` section of Weir's
//! config; [`AwsSettings::validate`] checks them without doing any I/O.

use serde::Deserialize;

/// Settings shared by every AWS client Weir builds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    /// Region; when absent the standard chain decides (env, profile, IMDS),
    /// and `us-east-1` when that finds nothing.
    pub region: Option<String>,
    /// Named profile of the shared config/credentials files.
    pub profile: Option<String>,
    /// Per-service endpoint override URLs (LocalStack, moto, VPC endpoints…).
    pub endpoints: Endpoints,
    /// Deadline of one operation (all its attempts), in milliseconds.
    pub timeout_ms: u64,
    /// TCP + TLS connect deadline, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Address S3 buckets in the path (`http://host/bucket/key`) rather than
    /// as a virtual host; needed by most S3-compatible servers.
    pub s3_force_path_style: bool,
    /// Timestream for LiveAnalytics: find the ingest endpoint with
    /// `DescribeEndpoints` (what AWS requires) instead of using the
    /// configured/default endpoint directly. Unset: on when
    /// `endpoints.timestream` is unset, off when it is set (local servers
    /// answer every operation at the configured URL). See [`crate::timestream`].
    pub timestream_endpoint_discovery: Option<bool>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            endpoints: Endpoints::default(),
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            s3_force_path_style: false,
            timestream_endpoint_discovery: None,
        }
    }
}

/// Endpoint override per service; `None` means the SDK's regional default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub s3: Option<String>,
    pub sns: Option<String>,
    pub kinesis: Option<String>,
    pub timestream: Option<String>,
    pub sqs: Option<String>,
}

impl Endpoints {
    /// Every service pointed at one URL (moto, LocalStack).
    pub fn all(url: &str) -> Self {
        let u = Some(url.to_string());
        Self {
            dynamodb: u.clone(),
            s3: u.clone(),
            sns: u.clone(),
            kinesis: u.clone(),
            timestream: u.clone(),
            sqs: u,
        }
    }

    fn named(&self) -> [(&'static str, &Option<String>); 6] {
        [
            ("dynamodb", &self.dynamodb),
            ("s3", &self.s3),
            ("sns", &self.sns),
            ("kinesis", &self.kinesis),
            ("timestream", &self.timestream),
            ("sqs", &self.sqs),
        ]
    }
}

impl AwsSettings {
    /// Whether Timestream endpoint discovery is on, after defaulting.
    pub fn timestream_discovery_enabled(&self) -> bool {
        self.timestream_endpoint_discovery
            .unwrap_or(self.endpoints.timestream.is_none())
    }

    /// Check the settings; no I/O. The error names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(region) = &self.region {
            let ok = !region.is_empty()
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err(format!("aws.region: {region:?} is not a region name"));
            }
        }
        if let Some(profile) = &self.profile {
            if profile.trim().is_empty() {
                return Err("aws.profile: empty".into());
            }
        }
        for (name, url) in self.endpoints.named() {
            if let Some(url) = url {
                validate_url(url).map_err(|e| format!("aws.endpoints.{name}: {e}"))?;
            }
        }
        if self.timeout_ms == 0 {
            return Err("aws.timeout_ms: must be > 0".into());
        }
        if self.connect_timeout_ms == 0 {
            return Err("aws.connect_timeout_ms: must be > 0".into());
        }
        Ok(())
    }
}

fn validate_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let s: AwsSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, AwsSettings::default());
        assert_eq!(s.timeout_ms, 10_000);
        assert!(s.validate().is_ok());
        let err = serde_json::from_str::<AwsSettings>(r#"{"regoin":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `regoin`"), "{err}");
        let err =
            serde_json::from_str::<AwsSettings>(r#"{"endpoints":{"dynamo":"x"}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `dynamo`"), "{err}");
    }

    #[test]
    fn validate_rejects_bad_values() {
        let mut s = AwsSettings {
            region: Some("eu-west-1".into()),
            endpoints: Endpoints::all("http://127.0.0.1:4566"),
            ..Default::default()
        };
        assert_eq!(s.validate(), Ok(()));
        s.endpoints.kinesis = Some("127.0.0.1:4566".into());
        assert_eq!(
            s.validate(),
            Err(
                "aws.endpoints.kinesis: \"127.0.0.1:4566\" must start with http:// or https://"
                    .into()
            )
        );
        s.endpoints.kinesis = Some("http:///x".into());
        assert_eq!(
            s.validate(),
            Err("aws.endpoints.kinesis: \"http:///x\" has no host".into())
        );
        s.endpoints.kinesis = None;
        s.region = Some("EU West".into());
        assert_eq!(
            s.validate(),
            Err("aws.region: \"EU West\" is not a region name".into())
        );
        s.region = None;
        s.timeout_ms = 0;
        assert_eq!(s.validate(), Err("aws.timeout_ms: must be > 0".into()));
    }
}
