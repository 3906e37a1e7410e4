//! People and classes from the directory, as far as the caller's schools go.

use super::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use flotte_core::directory::{PersonState, Role};
use flotte_storage::{ClassRecord, PeopleFilter, PersonRecord};
use serde::Deserialize;

/// A person's state, as the API spells it.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StateParam {
    Active,
    Disabled,
    Departed,
}

/// A role, as the API spells it (`student` is accepted for `pupil`).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RoleParam {
    #[serde(alias = "student")]
    Pupil,
    Teacher,
    Staff,
    SchoolAdmin,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct PeopleQuery {
    /// School id or code.
    school: Option<String>,
    role: Option<RoleParam>,
    /// Class id or name.
    class: Option<String>,
    state: Option<StateParam>,
    /// Part of the name or user name.
    q: Option<String>,
    /// At most 5000; default 500.
    limit: Option<u64>,
    offset: Option<u64>,
}

/// People in the caller's schools, filtered and searched by name.
#[utoipa::path(get, path = "/api/v1/people", params(PeopleQuery),
    responses((status = 200, body = Vec<serde_json::Value>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_people(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<PeopleQuery>,
) -> Result<Json<Vec<PersonRecord>>, ApiError> {
    let filter = PeopleFilter {
        school: q.school,
        role: q.role.map(|r| match r {
            RoleParam::Pupil => Role::Pupil,
            RoleParam::Teacher => Role::Teacher,
            RoleParam::Staff => Role::Staff,
            RoleParam::SchoolAdmin => Role::SchoolAdmin,
        }),
        class: q.class,
        state: q.state.map(|s| match s {
            StateParam::Active => PersonState::Active,
            StateParam::Disabled => PersonState::Disabled,
            StateParam::Departed => PersonState::Departed,
        }),
        search: q.q,
        limit: q.limit,
        offset: q.offset,
    };
    Ok(Json(
        state
            .store
            .list_people(&filter, &caller.principal.scope())
            .await?,
    ))
}

/// One person, by Flotte id or user name (404 outside the caller's schools).
#[utoipa::path(get, path = "/api/v1/people/{id}", params(("id" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_person(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PersonRecord>, ApiError> {
    Ok(Json(
        state
            .store
            .find_person(&id, &caller.principal.scope())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ClassQuery {
    /// School id or code.
    school: Option<String>,
}

/// Classes and workgroups in the caller's schools, with member counts.
#[utoipa::path(get, path = "/api/v1/classes", params(ClassQuery),
    responses((status = 200, body = Vec<serde_json::Value>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_classes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ClassQuery>,
) -> Result<Json<Vec<ClassRecord>>, ApiError> {
    Ok(Json(
        state
            .store
            .list_classes(q.school.as_deref(), &caller.principal.scope())
            .await?,
    ))
}
