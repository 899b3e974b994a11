//! The crate's errors: [`Error`] for starting the server, [`ApiError`] for
//! one request's HTTP error answer.
//!
//! Every failed request becomes an OpenAI-style body in one place,
//! [`ApiError::into_response`]:
//! `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use crate::wire::response::{ErrorBody, ErrorDetail};

/// Why the server did not start.
#[derive(Debug, Error)]
pub enum Error {
    /// Serving beyond loopback without an API key.
    #[error("binding to {addr} exposes the model beyond this machine: pass --api-key (or bind to 127.0.0.1)")]
    ApiKeyRequired {
        /// The address asked for.
        addr: String,
    },
    /// The address did not parse or could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The server's I/O failed while running.
    #[error("the server stopped")]
    Io(#[from] std::io::Error),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One request's failure, answered as OpenAI answers it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// OpenAI's error type.
    pub kind: &'static str,
    /// The request field at fault.
    pub param: Option<&'static str>,
    /// A machine-readable code.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 for a bad value of `param`.
    pub fn bad_param(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param),
            code: None,
        }
    }

    /// A 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
    }

    /// Another status with OpenAI's type and code.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
        }
    }

    /// The engine thread is gone.
    pub fn engine_stopped() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "the engine stopped",
        )
    }

    /// The engine refused or failed a request.
    pub fn from_generate(err: &codelm_generate::Error) -> Self {
        use codelm_generate::Error as G;
        match err {
            G::Model(codelm_model::Error::ContextOverflow { needed, n_ctx }) => ApiError {
                status: StatusCode::BAD_REQUEST,
                message: format!(
                    "this model's context is {n_ctx} tokens, and the prompt needs {needed} (its tokens plus one to generate)"
                ),
                kind: "invalid_request_error",
                param: Some("prompt"),
                code: Some("context_length_exceeded"),
            },
            G::Model(codelm_model::Error::BadToken { .. }) => {
                ApiError::bad_param("prompt", err.to_string())
            }
            G::BadRequest(message) => ApiError::bad_request(message.clone()),
            G::TemplateRender(source) => ApiError::bad_param(
                "messages",
                format!("the model's chat template refused the messages: {source}"),
            ),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                "generation failed",
            ),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                param: self.param,
                kind: self.kind,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::routes::json_response(self.status, &self.body())
    }
}
