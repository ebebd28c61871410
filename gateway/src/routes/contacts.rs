//! (being written)
use utoipa_axum::router::OpenApiRouter;
use crate::state::AppState;
pub fn router() -> OpenApiRouter<AppState> { OpenApiRouter::new() }
