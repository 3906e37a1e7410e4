//! Route table: the admin API under `/api/v1`, the operational endpoints, and
//! (in later modules) the device protocols.

mod apple;
pub(crate) mod auth;
pub(crate) mod auth_login;
mod commands;
pub(crate) mod devices;
mod directory;
pub(crate) mod loans;
mod people;
mod profiles;
mod pushes;
pub(crate) mod register;
mod schools;
mod system;

pub use apple::{PushCertificateInfo, import_push_certificate};
pub use auth::{Caller, Credential};
pub use directory::{import_csv, sync_policy};

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
        .routes(routes!(
            apple::get_push_certificate,
            apple::put_push_certificate
        ))
        .routes(routes!(auth_login::login))
        .routes(routes!(auth_login::logout))
        .routes(routes!(auth_login::create_token, auth_login::list_tokens))
        .routes(routes!(auth_login::revoke_token))
        .routes(routes!(directory::start_sync))
        .routes(routes!(directory::latest_run))
        .routes(routes!(directory::get_run))
        .routes(routes!(directory::import))
        .routes(routes!(people::list_people))
        .routes(routes!(people::get_person))
        .routes(routes!(people::list_classes))
        .routes(routes!(
            crate::windows::api::create_enrollment_secret,
            crate::windows::api::list_enrollment_secrets
        ))
        .routes(routes!(crate::windows::api::revoke_enrollment_secret))
        .routes(routes!(profiles::list_profiles, profiles::create_profile))
        .routes(routes!(profiles::validate_profile))
        .routes(routes!(profiles::get_profile, profiles::update_profile))
        .routes(routes!(profiles::list_versions))
        .routes(routes!(profiles::list_assignments))
        .routes(routes!(profiles::device_profiles))
        .routes(routes!(
            profiles::list_device_groups,
            profiles::create_device_group
        ))
        .routes(routes!(
            profiles::list_certificates,
            profiles::request_certificate
        ))
        .routes(routes!(profiles::revoke_certificate))
        .routes(routes!(pushes::list_pushes, pushes::create_push))
        .routes(routes!(pushes::get_push))
        .routes(routes!(pushes::push_devices))
        .routes(routes!(pushes::push_events))
        .routes(routes!(pushes::pause_push))
        .routes(routes!(pushes::resume_push))
        .routes(routes!(pushes::cancel_push))
        .routes(routes!(loans::list_loans, loans::lend))
        .routes(routes!(loans::lend_bulk))
        .routes(routes!(loans::get_loan))
        .routes(routes!(loans::return_loan))
        .routes(routes!(register::import))
        .split_for_parts();
    let openapi = std::sync::Arc::new(openapi);
    Router::new()
        .route("/healthz", axum::routing::get(system::healthz))
        .route("/metrics", axum::routing::get(system::metrics))
        .route("/pki/crl.der", axum::routing::get(profiles::crl))
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
        .merge(crate::web::routes())
        .fallback(system::not_found)
        .with_state(state)
}
