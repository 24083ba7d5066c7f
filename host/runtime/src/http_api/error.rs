//! Responses in AWS's REST-JSON error shape: the status, the exception's
//! name in `x-amzn-ErrorType` (what the AWS SDKs raise) and
//! `{"message": …}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestException", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "ForbiddenException", message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            message,
        )
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            message,
        )
    }

    /// The shadow service's rejection (`{"code": 409, "message": …}`) as
    /// the HTTP API's error.
    pub fn from_rejection(code: u64, message: &str) -> ApiError {
        let (status, kind) = match code {
            400 => (StatusCode::BAD_REQUEST, "InvalidRequestException"),
            401 => (StatusCode::UNAUTHORIZED, "UnauthorizedException"),
            403 => (StatusCode::FORBIDDEN, "ForbiddenException"),
            404 => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            409 => (StatusCode::CONFLICT, "ConflictException"),
            413 => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
            ),
            415 => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedDocumentEncodingException",
            ),
            429 => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            503 => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailureException",
            ),
        };
        ApiError::new(status, kind, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.message }).to_string();
        let mut response = super::json_response(self.status, body);
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_map_to_aws_exceptions() {
        assert_eq!(
            ApiError::from_rejection(409, "Version conflict").kind,
            "ConflictException"
        );
        assert_eq!(
            ApiError::from_rejection(404, "x").status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::from_rejection(500, "x").kind,
            "InternalFailureException"
        );
        let r = ApiError::invalid("Invalid JSON").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()["x-amzn-errortype"], "InvalidRequestException");
    }
}
