//! The one shape of every error the dashboard answers, on every route: a status and
//! `{"error": "one line"}` (openapi.json: `Error`). The framework's own refusals (no route, a
//! method the route does not take, an unreadable query, path, body or stream upgrade) are put
//! in the same shape here; the security headers are added to errors like to any answer.

use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An answer that is not a success: its status and a one-line message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The router's fallback: a path nothing is served at.
pub async fn no_route() -> ApiError {
    ApiError::not_found("nothing is served at this path")
}

/// A method the route does not take (axum adds the `Allow` header listing the ones it does).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here (the Allow header lists what is)"),
    )
}

/// The framework's rejections keep their status and message, in our shape.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                Self::new(rejection.status(), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(QueryRejection, PathRejection, BytesRejection, WebSocketUpgradeRejection);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_is_its_status_and_a_json_message() {
        let response = ApiError::bad_request("limit 'x' is not a number").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            json!({ "error": "limit 'x' is not a number" })
        );
    }
}
