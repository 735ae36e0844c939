//! The Dataverse Web API under `/api/data/v9.x/`.

pub mod error;

use crate::state::AppState;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Routes of the Web API.
pub fn routes() -> Router<AppState> {
    Router::new()
}

/// Logs each request at debug level (info with `--verbose`). Never logs headers or bodies,
/// so tokens and secrets do not reach the log.
pub async fn log_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let ms = started.elapsed().as_millis();
    if state.options.verbose {
        tracing::info!(%method, %path, status = resp.status().as_u16(), ms, "request");
    } else {
        tracing::debug!(%method, %path, status = resp.status().as_u16(), ms, "request");
    }
    resp
}
