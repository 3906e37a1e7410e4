//! Route table: the admin API under `/api/v1`, the operational endpoints, and
//! (in later modules) the device protocols.

mod apple;
mod auth;
mod commands;
pub(crate) mod devices;
mod schools;
mod system;

pub use apple::{PushCertificateInfo, import_push_certificate};
pub use auth::Caller;

use crate::state::AppState;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Flotte admin API", description = "Device inventory, command queue and fleet administration for school devices."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub(crate) fn routes(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(devices::list_devices, devices::register_device))
        .routes(routes!(devices::get_device))
        .routes(routes!(devices::list_commands, devices::queue_command))
        .routes(routes!(devices::cancel_command))
        .routes(routes!(system::audit_log))
        .routes(routes!(schools::list_schools, schools::create_school))
        .routes(routes!(apple::enrollment_profile))
        .routes(routes!(apple::create_link))
        .routes(routes!(apple::get_push_certificate, apple::put_push_certificate))
        .routes(routes!(
            crate::windows::api::create_enrollment_secret,
            crate::windows::api::list_enrollment_secrets
        ))
        .routes(routes!(crate::windows::api::revoke_enrollment_secret))
        .split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    Router::new()
        .route("/healthz", axum::routing::get(system::healthz))
        .route("/metrics", axum::routing::get(system::metrics))
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(api)
        .merge(crate::apple::routes())
        .merge(crate::windows::routes())
        .fallback(system::not_found)
        .with_state(state)
}
