//! [`AwsClients`]: the one place AWS clients are built. Credentials and region
//! are resolved once (standard chain, or static keys), one HTTPS connector
//! (rustls + ring) is shared by every client, and each service client gets its
//! endpoint override, timeouts and a single SDK-internal attempt (retries are
//! the outbox's job; the Kinesis writer retries failed records itself).
//!
//! Credentials are resolved lazily on the first request and then cached by
//! the SDK's identity cache (refreshed before expiry). Built without
//! aws-config's `sso`/`credentials-login` features (profiles that use
//! `sso_*` keys are not supported; env, shared files, `credential_process`,
//! web identity, ECS and IMDS are) and without `default-https-client` (which
//! would compile aws-lc-sys): the HTTPS client is rustls + ring with the
//! platform's root certificates; `AWS_CA_BUNDLE` is not read.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

use crate::config::AwsSettings;

/// Region used when neither the settings nor the standard chain name one.
pub const FALLBACK_REGION: &str = "us-east-1";

/// Builds and caches every AWS service client Weir uses.
#[derive(Debug)]
pub struct AwsClients {
    settings: AwsSettings,
    sdk: SdkConfig,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    kinesis: OnceLock<aws_sdk_kinesis::Client>,
    timestream_write: OnceLock<aws_sdk_timestreamwrite::Client>,
}

impl AwsClients {
    /// Credentials and region from the standard chain (env, profile, web
    /// identity, ECS, IMDS), or `settings.region` / `settings.profile`.
    pub async fn new(settings: &AwsSettings) -> Self {
        let sdk = loader(settings).load().await;
        Self::from_sdk_config(settings, with_fallback_region(sdk))
    }

    /// Fixed access keys (tests, or a config file that gives keys).
    pub async fn with_static_credentials(settings: &AwsSettings, key: &str, secret: &str) -> Self {
        let creds = Credentials::new(key, secret, None, None, "weir-static");
        let sdk = loader(settings)
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .load()
            .await;
        Self::from_sdk_config(settings, with_fallback_region(sdk))
    }

    fn from_sdk_config(settings: &AwsSettings, sdk: SdkConfig) -> Self {
        Self {
            settings: settings.clone(),
            sdk,
            dynamodb: OnceLock::new(),
            s3: OnceLock::new(),
            sns: OnceLock::new(),
            kinesis: OnceLock::new(),
            timestream_write: OnceLock::new(),
        }
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The shared config (credentials, region, HTTP client, timeouts, one
    /// attempt), for building a client this crate does not wrap, e.g.
    /// `aws_sdk_sqs::config::Builder::from(clients.sdk_config())`.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn region(&self) -> Option<&str> {
        self.sdk.region().map(|r| r.as_ref())
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| {
                let mut b = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
                if let Some(url) = &self.settings.endpoints.dynamodb {
                    b = b.endpoint_url(url);
                }
                aws_sdk_dynamodb::Client::from_conf(b.build())
            })
            .clone()
    }

    /// S3 with path-style addressing when configured. With an endpoint
    /// override (an S3-compatible server) checksums are only computed when an
    /// operation requires them: the default (CRC32 in an `aws-chunked`
    /// trailer) is not understood by moto/s3rver/many compatibles.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.s3
            .get_or_init(|| {
                use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
                let mut b = aws_sdk_s3::config::Builder::from(&self.sdk)
                    .force_path_style(self.settings.s3_force_path_style);
                if let Some(url) = &self.settings.endpoints.s3 {
                    b = b
                        .endpoint_url(url)
                        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                }
                aws_sdk_s3::Client::from_conf(b.build())
            })
            .clone()
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        self.sns
            .get_or_init(|| {
                let mut b = aws_sdk_sns::config::Builder::from(&self.sdk);
                if let Some(url) = &self.settings.endpoints.sns {
                    b = b.endpoint_url(url);
                }
                aws_sdk_sns::Client::from_conf(b.build())
            })
            .clone()
    }

    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        self.kinesis
            .get_or_init(|| {
                let mut b = aws_sdk_kinesis::config::Builder::from(&self.sdk);
                if let Some(url) = &self.settings.endpoints.kinesis {
                    b = b.endpoint_url(url);
                }
                aws_sdk_kinesis::Client::from_conf(b.build())
            })
            .clone()
    }

    /// The Timestream write client, pointed at the configured endpoint (or the
    /// SDK's regional default). It does no endpoint discovery by itself:
    /// [`crate::timestream::TimestreamWriter`] does it when enabled.
    pub fn timestream_write(&self) -> aws_sdk_timestreamwrite::Client {
        self.timestream_write
            .get_or_init(|| {
                let mut b = aws_sdk_timestreamwrite::config::Builder::from(&self.sdk);
                if let Some(url) = &self.settings.endpoints.timestream {
                    b = b.endpoint_url(url);
                }
                aws_sdk_timestreamwrite::Client::from_conf(b.build())
            })
            .clone()
    }
}

fn loader(settings: &AwsSettings) -> aws_config::ConfigLoader {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(Duration::from_millis(settings.timeout_ms))
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(timeouts);
    // Without an explicit region the loader runs the standard chain (env,
    // profile, IMDS) with the HTTP client above; see `with_fallback_region`.
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    loader
}

/// The standard chain found no region: use [`FALLBACK_REGION`].
fn with_fallback_region(sdk: SdkConfig) -> SdkConfig {
    if sdk.region().is_some() {
        return sdk;
    }
    sdk.into_builder()
        .region(Region::from_static(FALLBACK_REGION))
        .build()
}
