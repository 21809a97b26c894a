//! The API's errors: a status, and JSON with a code and a message that says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dataloader_core::{Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// `{"error": {"code": "…", "message": "…"}}`
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `not_found`, `invalid`, `conflict`, `unreachable`,
    /// `unavailable`, `internal` (and, from the router, `method_not_allowed`,
    /// `unsupported_media_type`).
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// The console is fine; the server it was asked to reach is not.
    pub(crate) fn bad_gateway(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, "unreachable", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
}

/// The store's errors carry no secret (it keeps references only); their kind picks the status.
impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match &e {
            Error::UnknownTable { .. } | Error::UnknownConnection { .. } => {
                ApiError::not_found(e.to_string())
            }
            _ => match e.kind() {
                ErrorKind::Config => ApiError::invalid(e.to_string()),
                ErrorKind::Conflict => ApiError::conflict(e.to_string()),
                ErrorKind::Internal => ApiError::internal(e.to_string()),
                _ => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                ),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
