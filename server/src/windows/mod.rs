//! The Windows device protocol endpoints.

use crate::state::AppState;
use axum::Router;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
