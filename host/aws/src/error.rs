//! [`AwsError`]: the two outcomes the delivery layer cares about, and the
//! classification of SDK errors into them.
//!
//! Retryable: throttling, HTTP 5xx, timeouts, connection failures, truncated
//! responses. Permanent: everything the service rejected on its merits
//! (validation, not found, access denied, bad request construction).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// An AWS call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// Try again later (the outbox backs off and retries).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will fail again the same way; dead-letter it.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl AwsError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, AwsError::Retryable(_))
    }

    pub fn message(&self) -> &str {
        match self {
            AwsError::Retryable(m) | AwsError::Permanent(m) => m,
        }
    }
}

/// Error codes that mean "slow down" or "the service had a problem", across
/// the services Weir calls.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSThrottlingException",
];

/// Is this service error code one to retry?
pub fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// Classify any SDK error (every `aws-sdk-*` crate shares this `SdkError`).
pub fn classify<E>(err: &SdkError<E>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ConstructionFailure(_) => AwsError::Permanent(format!(
            "request construction failed: {}",
            source_chain(err)
        )),
        SdkError::TimeoutError(_) => AwsError::Retryable(format!("timeout: {}", source_chain(err))),
        SdkError::DispatchFailure(d) => {
            if d.is_user() {
                AwsError::Permanent(format!("dispatch failed: {}", source_chain(err)))
            } else {
                AwsError::Retryable(format!("dispatch failed: {}", source_chain(err)))
            }
        }
        SdkError::ResponseError(r) => AwsError::Retryable(format!(
            "unreadable response (HTTP {}): {}",
            r.raw().status().as_u16(),
            source_chain(err)
        )),
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let e = s.err();
            let code = e.code().unwrap_or("Unknown");
            let msg = format!(
                "{code}: {} (HTTP {status})",
                e.message().unwrap_or("no message")
            );
            // A 2xx the SDK could not read is ambiguous: retrying is the safe side.
            let unreadable_success = (200..300).contains(&status) && e.code().is_none();
            if status >= 500 || status == 429 || is_retryable_code(code) || unreadable_success {
                AwsError::Retryable(msg)
            } else {
                AwsError::Permanent(msg)
            }
        }
        _ => AwsError::Retryable(source_chain(err)),
    }
}

/// The error code of a service error, if the service answered.
pub fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E>) -> Option<String> {
    match err {
        SdkError::ServiceError(s) => s.err().code().map(str::to_string),
        _ => None,
    }
}

fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Poll `probe` until it reports `true` (a table or stream became ACTIVE),
/// backing off from 50 ms to 1 s, for at most 120 polls; `what` names the
/// resource in the error when it never does.
pub(crate) async fn poll_until_active<F, Fut>(what: &str, mut probe: F) -> Result<(), AwsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, AwsError>>,
{
    let mut delay = std::time::Duration::from_millis(50);
    for _ in 0..120 {
        if probe().await? {
            return Ok(());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(1));
    }
    Err(AwsError::Retryable(format!("{what} did not become ACTIVE")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(is_retryable_code("ProvisionedThroughputExceededException"));
        assert!(is_retryable_code("ThrottlingException"));
        assert!(!is_retryable_code("ResourceNotFoundException"));
        assert!(!is_retryable_code("AccessDeniedException"));
        assert!(!is_retryable_code("ValidationException"));
    }
}
