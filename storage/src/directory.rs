//! The directory's projection in Flotte: schools, people, their roles and
//! classes as the last sync left them, the sync runs with their reports, and
//! the scoped queries the API answers from.
//!
//! A sync is read → plan → apply. Reading is the adapter's business and
//! planning is `flotte_core::directory::plan_sync`; this module loads what
//! the planner compares against ([`Store::load_known_directory`]) and applies
//! a plan in one transaction together with the run's report, the cookie for
//! the next incremental read and the audit row ([`Store::apply_directory_plan`]).
//! People are never deleted here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::directory::{
    ClassRef, DirGroup, DirPerson, DirSchool, GroupKind, KnownDirectory, KnownPerson, LoanAlert,
    LoanAlertReason, PersonField, PersonState, Role, SchoolRole, SyncPlan,
};
use flotte_core::jobs::SyncDirectory;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{commit, db_err};
use crate::entity::{
    class, class_member, directory_run, directory_sync_state, person, person_school, school,
};
use crate::{Store, audit, jobs};

/// The one row of `directory_sync_state`: LDAP syncs and CSV imports share
/// the people they manage, so they share the generation counter too.
const STATE_ROW: &str = "directory";

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound variables
/// for the widest table (people, 13 columns).
const CHUNK: usize = 1000;

/// What a sync run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Everything, from LDAP.
    Full,
    /// The changes since the stored cookie, from LDAP.
    Incremental,
    /// A CSV file (the local directory).
    Import,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
            RunKind::Import => "import",
        }
    }
}

/// Where a run stands. Only `applied` changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// The plan was applied (possibly an empty one).
    Applied,
    /// A safety rule refused the read; nothing was applied.
    Aborted,
    /// Reading or applying failed; nothing was applied.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Applied => "applied",
            RunStatus::Aborted => "aborted",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, CoreError> {
        Ok(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "applied" => RunStatus::Applied,
            "aborted" => RunStatus::Aborted,
            "failed" => RunStatus::Failed,
            other => return Err(CoreError::Invalid(format!("unknown run status {other:?}"))),
        })
    }
}

/// What a run did (or would have done), for operators and the admin UI.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunReport {
    pub added: usize,
    pub changed: usize,
    pub disabled: usize,
    pub reenabled: usize,
    pub returned: usize,
    pub departed: usize,
    pub unchanged: usize,
    /// Entries the source skipped or only partly understood.
    pub errors: usize,
    pub schools_added: usize,
    pub schools_updated: usize,
    pub classes_added: usize,
    pub classes_renamed: usize,
    pub classes_removed: usize,
    pub memberships_changed: usize,
    pub held_back: usize,
    pub skipped_exam_accounts: usize,
    /// Borrowers who departed or were disabled in this run.
    pub loan_alerts: Vec<LoanAlert>,
    /// The first problems the source reported (at most 50).
    pub problems: Vec<String>,
    /// Departed people whose user name was taken by someone new; their old
    /// name got a `~<id>` suffix.
    pub parked_usernames: Vec<String>,
    /// How the directory was read: `full`, `content_sync`, `modify_timestamp`, `csv`.
    pub method: Option<String>,
    pub duration_ms: u64,
}

impl RunReport {
    /// The counts of a plan (duration and method are the caller's to fill).
    pub fn from_plan(plan: &SyncPlan) -> RunReport {
        RunReport {
            added: plan.people_added.len(),
            changed: plan.people_changed.len(),
            disabled: plan.people_disabled.len(),
            reenabled: plan.people_reenabled.len(),
            returned: plan.people_returned.len(),
            departed: plan.people_departed.len(),
            unchanged: plan.people_unchanged,
            errors: plan.problems.len(),
            schools_added: plan.schools_added.len(),
            schools_updated: plan.schools_updated.len(),
            classes_added: plan.groups_added.len(),
            classes_renamed: plan.groups_renamed.len(),
            classes_removed: plan.groups_removed.len(),
            memberships_changed: plan.memberships.len(),
            held_back: plan.held_back.len(),
            skipped_exam_accounts: plan.skipped_exam_accounts,
            loan_alerts: plan.loan_alerts.clone(),
            problems: plan.problems.iter().take(50).cloned().collect(),
            parked_usernames: Vec::new(),
            method: None,
            duration_ms: 0,
        }
    }
}

/// One sync run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryRun {
    pub id: String,
    pub kind: String,
    /// `schedule`, `api` or `cli`.
    pub trigger: String,
    pub requested_by: String,
    pub status: RunStatus,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub report: Option<RunReport>,
    /// Why the run was aborted or failed.
    pub error: Option<String>,
}

fn to_run(m: directory_run::Model) -> Result<DirectoryRun, CoreError> {
    Ok(DirectoryRun {
        status: RunStatus::parse(&m.status)?,
        report: m
            .report
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| CoreError::Invalid(format!("stored run report: {e}")))?,
        id: m.id,
        kind: m.kind,
        trigger: m.trigger,
        requested_by: m.requested_by,
        created_at: m.created_at,
        started_at: m.started_at,
        finished_at: m.finished_at,
        error: m.error,
    })
}

/// What Flotte knows, as of one generation of the directory tables.
#[derive(Debug, Clone)]
pub struct KnownState {
    pub known: KnownDirectory,
    /// Hand back to [`Store::apply_directory_plan`]; a sync applied in
    /// between makes the apply refuse.
    pub generation: i64,
    /// Where the last incremental read ended.
    pub cookie: Option<String>,
    pub last_full_at: Option<DateTime<Utc>>,
}

/// What to do with the stored change cookie when a plan is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieUpdate {
    Keep,
    Set(String),
    Clear,
}

/// How a plan came about, for the run row and the sync state.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub run_id: String,
    pub generation: i64,
    pub cookie: CookieUpdate,
    /// A full read: remembered as the last full sync.
    pub full: bool,
    pub report: RunReport,
}

pub(crate) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Pupil => "pupil",
        Role::Teacher => "teacher",
        Role::Staff => "staff",
        Role::SchoolAdmin => "school_admin",
        Role::ExamUser => "exam_user",
    }
}

pub(crate) fn parse_role(s: &str) -> Option<Role> {
    Some(match s {
        "pupil" => Role::Pupil,
        "teacher" => Role::Teacher,
        "staff" => Role::Staff,
        "school_admin" => Role::SchoolAdmin,
        _ => return None,
    })
}

fn state_str(state: PersonState) -> &'static str {
    match state {
        PersonState::Active => "active",
        PersonState::Disabled => "disabled",
        PersonState::Departed => "departed",
    }
}

fn parse_state(s: &str) -> PersonState {
    match s {
        "disabled" => PersonState::Disabled,
        "departed" => PersonState::Departed,
        _ => PersonState::Active,
    }
}

fn kind_str(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Class => "class",
        GroupKind::Workgroup => "workgroup",
    }
}

fn parse_uuid(what: &str, s: &str) -> Result<Uuid, CoreError> {
    Uuid::parse_str(s).map_err(|e| CoreError::Invalid(format!("{what} external id {s:?}: {e}")))
}

impl Store {
    /// Record a run and, in the same transaction, the job that performs it.
    /// Several workers scheduling the same period pass the same `run_id`;
    /// only the first one gets a run (the others get `Ok(None)`).
    pub async fn queue_directory_run(
        &self,
        run_id: &str,
        kind: RunKind,
        trigger: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<DirectoryRun>, CoreError> {
        let txn = self.write().await?;
        if directory_run::Entity::find_by_id(run_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .is_some()
        {
            return Ok(None);
        }
        let row = new_run(run_id, kind, trigger, &actor.actor, RunStatus::Queued, now)
            .insert(&txn)
            .await
            .map_err(db_err("directory run"))?;
        jobs::enqueue(
            &txn,
            &SyncDirectory {
                run_id: run_id.to_owned(),
                full: kind == RunKind::Full,
            },
            now,
        )
        .await?;
        let mut entry = actor.clone();
        entry.target = format!("directory_run:{run_id}");
        entry.details = serde_json::json!({ "kind": kind.as_str(), "trigger": trigger });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        to_run(row).map(Some)
    }

    /// Record a run that starts at once (a CSV import in the request).
    pub async fn start_directory_run(
        &self,
        kind: RunKind,
        trigger: &str,
        requested_by: &str,
        now: DateTime<Utc>,
    ) -> Result<DirectoryRun, CoreError> {
        let id = Uuid::new_v4().to_string();
        let mut row = new_run(&id, kind, trigger, requested_by, RunStatus::Running, now);
        row.started_at = Set(Some(now));
        let row = row
            .insert(&self.db)
            .await
            .map_err(db_err("directory run"))?;
        to_run(row)
    }

    /// A queued run is being worked on. Returns the run; `None` when it does
    /// not exist. A run that already finished is returned unchanged, so a
    /// job delivered twice does not run twice.
    pub async fn mark_directory_run_started(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DirectoryRun>, CoreError> {
        let Some(row) = directory_run::Entity::find_by_id(run_id)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        if row.finished_at.is_some() {
            return to_run(row).map(Some);
        }
        let mut active: directory_run::ActiveModel = row.into();
        active.status = Set(RunStatus::Running.as_str().to_owned());
        active.started_at = Set(Some(now));
        let row = active.update(&self.db).await.map_err(CoreError::storage)?;
        to_run(row).map(Some)
    }

    /// End a run without applying anything (`aborted` by a safety rule, or
    /// `failed`), with its reason and an audit row.
    pub async fn finish_directory_run_unapplied(
        &self,
        run_id: &str,
        status: RunStatus,
        error: &str,
        report: Option<&RunReport>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        let row = directory_run::Entity::find_by_id(run_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("directory run {run_id}")))?;
        let mut active: directory_run::ActiveModel = row.into();
        active.status = Set(status.as_str().to_owned());
        active.error = Set(Some(error.to_owned()));
        active.finished_at = Set(Some(now));
        active.report = Set(report.map(|r| serde_json::to_string(r).unwrap_or_default()));
        active.update(&txn).await.map_err(CoreError::storage)?;
        audit::record(
            &txn,
            &AuditEntry::new(
                "system",
                format!("directory.sync.{}", status.as_str()),
                format!("directory_run:{run_id}"),
            )
            .with_details(serde_json::json!({ "reason": error })),
            now,
        )
        .await?;
        commit(txn).await
    }

    pub async fn find_directory_run(&self, run_id: &str) -> Result<DirectoryRun, CoreError> {
        let row = directory_run::Entity::find_by_id(run_id)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("directory run {run_id}")))?;
        to_run(row)
    }

    /// The newest run, whatever its outcome.
    pub async fn latest_directory_run(&self) -> Result<DirectoryRun, CoreError> {
        let row = directory_run::Entity::find()
            .order_by_desc(directory_run::Column::CreatedAt)
            .order_by_desc(directory_run::Column::Id)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound("directory run".to_owned()))?;
        to_run(row)
    }

    /// Everything the planner compares a directory read with: the schools,
    /// people (those the directory manages) and groups of earlier syncs, and
    /// whether each person has a loan that is not returned.
    pub async fn load_known_directory(&self) -> Result<KnownState, CoreError> {
        let conn = &self.db;
        let state = directory_sync_state::Entity::find_by_id(STATE_ROW)
            .one(conn)
            .await
            .map_err(CoreError::storage)?;

        let school_rows = school::Entity::find()
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        let code_of: HashMap<String, String> = school_rows
            .iter()
            .map(|s| (s.id.clone(), s.code.clone()))
            .collect();
        let mut schools = Vec::new();
        for s in &school_rows {
            if let Some(ext) = &s.external_id {
                schools.push(DirSchool {
                    external_id: parse_uuid("school", ext)?,
                    code: s.code.clone(),
                    display_name: s.name.clone(),
                });
            }
        }

        let people = person::Entity::find()
            .filter(person::Column::ManagedBy.eq("directory"))
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        let mut ext_of: HashMap<String, Uuid> = HashMap::with_capacity(people.len());
        for p in &people {
            ext_of.insert(p.id.clone(), parse_uuid("person", &p.external_id)?);
        }

        let mut roles: HashMap<String, Vec<SchoolRole>> = HashMap::new();
        let memberships: Vec<(String, String, String)> = person_school::Entity::find()
            .select_only()
            .column(person_school::Column::PersonId)
            .column(person_school::Column::SchoolId)
            .column(person_school::Column::Role)
            .into_tuple()
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        for (person_id, school_id, role) in memberships {
            if let (Some(code), Some(role)) = (code_of.get(&school_id), parse_role(&role)) {
                roles.entry(person_id).or_default().push(SchoolRole {
                    school_code: code.clone(),
                    role,
                });
            }
        }

        let class_rows = class::Entity::find()
            .filter(class::Column::ExternalId.is_not_null())
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        let members: Vec<(String, String)> = class_member::Entity::find()
            .select_only()
            .column(class_member::Column::ClassId)
            .column(class_member::Column::PersonId)
            .into_tuple()
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        let mut members_of: HashMap<String, Vec<Uuid>> = HashMap::new();
        let mut classes_of: HashMap<String, Vec<ClassRef>> = HashMap::new();
        let class_by_id: HashMap<&str, &class::Model> =
            class_rows.iter().map(|c| (c.id.as_str(), c)).collect();
        for (class_id, person_id) in members {
            let (Some(c), Some(ext)) = (class_by_id.get(class_id.as_str()), ext_of.get(&person_id))
            else {
                continue;
            };
            members_of.entry(class_id.clone()).or_default().push(*ext);
            if c.kind == "class"
                && let Some(code) = code_of.get(&c.school_id)
            {
                classes_of.entry(person_id).or_default().push(ClassRef {
                    school_code: code.clone(),
                    name: c.name.clone(),
                });
            }
        }
        let mut groups = Vec::with_capacity(class_rows.len());
        for c in &class_rows {
            let (Some(ext), Some(code)) = (&c.external_id, code_of.get(&c.school_id)) else {
                continue;
            };
            let mut member_external_ids = members_of.remove(&c.id).unwrap_or_default();
            member_external_ids.sort();
            groups.push(DirGroup {
                external_id: parse_uuid("class", ext)?,
                school_code: code.clone(),
                name: c.name.clone(),
                kind: if c.kind == "workgroup" {
                    GroupKind::Workgroup
                } else {
                    GroupKind::Class
                },
                member_external_ids,
            });
        }

        let borrowers = open_loan_holders(conn).await?;
        let mut known_people = Vec::with_capacity(people.len());
        for p in people {
            let mut memberships = roles.remove(&p.id).unwrap_or_default();
            memberships.sort();
            let mut classes = classes_of.remove(&p.id).unwrap_or_default();
            classes.sort();
            known_people.push(KnownPerson {
                external_id: ext_of[&p.id],
                has_open_loan: borrowers.contains(&p.id),
                username: p.username,
                given_name: p.given_name,
                family_name: p.family_name,
                mail: p.mail,
                memberships,
                classes,
                state: parse_state(&p.state),
            });
        }
        Ok(KnownState {
            known: KnownDirectory {
                schools,
                people: known_people,
                groups,
            },
            generation: state.as_ref().map(|s| s.generation).unwrap_or(0),
            cookie: state.as_ref().and_then(|s| s.cookie.clone()),
            last_full_at: state.and_then(|s| s.last_full_at),
        })
    }

    /// Apply a sync plan in one transaction, together with the run's report,
    /// the sync state (generation, cookie) and the audit row. Refuses with
    /// `Conflict` when another sync was applied since `ctx.generation` was
    /// loaded. Returns the report as stored.
    pub async fn apply_directory_plan(
        &self,
        plan: &SyncPlan,
        ctx: ApplyContext,
        now: DateTime<Utc>,
    ) -> Result<RunReport, CoreError> {
        let txn = self.write().await?;
        let state = directory_sync_state::Entity::find_by_id(STATE_ROW)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        let generation = state.as_ref().map(|s| s.generation).unwrap_or(0);
        if generation != ctx.generation {
            return Err(CoreError::Conflict(
                "another directory sync was applied while this one was planned; run it again"
                    .to_owned(),
            ));
        }
        let mut report = ctx.report;
        let mut apply = Apply::load(&txn, now).await?;
        apply.schools(plan).await?;
        apply.people(plan, &mut report).await?;
        apply.states(plan).await?;
        apply.groups(plan).await?;
        for problem in apply.problems.drain(..) {
            if report.problems.len() < 50 {
                report.problems.push(problem);
            }
        }

        let cookie = match &ctx.cookie {
            CookieUpdate::Keep => state.as_ref().and_then(|s| s.cookie.clone()),
            CookieUpdate::Set(c) => Some(c.clone()),
            CookieUpdate::Clear => None,
        };
        let last_full_at = if ctx.full {
            Some(now)
        } else {
            state.as_ref().and_then(|s| s.last_full_at)
        };
        let state_row = directory_sync_state::ActiveModel {
            id: Set(STATE_ROW.to_owned()),
            cookie: Set(cookie),
            generation: Set(generation + 1),
            last_full_at: Set(last_full_at),
            updated_at: Set(now),
        };
        if state.is_some() {
            state_row.update(&txn).await.map_err(CoreError::storage)?;
        } else {
            state_row.insert(&txn).await.map_err(CoreError::storage)?;
        }

        let run = directory_run::Entity::find_by_id(&ctx.run_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("directory run {}", ctx.run_id)))?;
        let mut run: directory_run::ActiveModel = run.into();
        run.status = Set(RunStatus::Applied.as_str().to_owned());
        run.finished_at = Set(Some(now));
        run.report = Set(Some(
            serde_json::to_string(&report).map_err(|e| CoreError::Invalid(e.to_string()))?,
        ));
        run.update(&txn).await.map_err(CoreError::storage)?;
        audit::record(
            &txn,
            &AuditEntry::new(
                "system",
                "directory.sync.applied",
                format!("directory_run:{}", ctx.run_id),
            )
            .with_details(serde_json::json!({
                "added": report.added,
                "changed": report.changed,
                "disabled": report.disabled,
                "departed": report.departed,
                "loan_alerts": report.loan_alerts.len(),
                "errors": report.errors,
            })),
            now,
        )
        .await?;
        commit(txn).await?;
        Ok(report)
    }
}

fn new_run(
    id: &str,
    kind: RunKind,
    trigger: &str,
    requested_by: &str,
    status: RunStatus,
    now: DateTime<Utc>,
) -> directory_run::ActiveModel {
    directory_run::ActiveModel {
        id: Set(id.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        trigger: Set(trigger.to_owned()),
        requested_by: Set(requested_by.to_owned()),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        status: Set(status.as_str().to_owned()),
        report: Set(None),
        error: Set(None),
    }
}

/// People with a loan that is not returned. The `loans` table has no entity
/// here yet (loans are another module's), so this is plain SQL.
pub(crate) async fn open_loan_holders(
    conn: &impl ConnectionTrait,
) -> Result<BTreeSet<String>, CoreError> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT DISTINCT person_id FROM loans WHERE returned_at IS NULL",
        ))
        .await
        .map_err(CoreError::storage)?;
    rows.into_iter()
        .map(|r| r.try_get::<String>("", "person_id"))
        .collect::<Result<_, _>>()
        .map_err(CoreError::storage)
}

/// A row of `people` as the apply step needs it.
struct PersonRow {
    id: String,
    external_id: String,
    managed_by: String,
    state: String,
}

/// The state of one apply: id maps loaded once inside the transaction.
struct Apply<'a> {
    txn: &'a DatabaseTransaction,
    now: DateTime<Utc>,
    /// School external id → Flotte id.
    school_by_ext: HashMap<Uuid, String>,
    /// School code (lower case) → Flotte id, after this plan's changes.
    school_by_code: HashMap<String, String>,
    /// Schools without an external id (created by hand), by code.
    unowned_schools: HashMap<String, String>,
    person_by_ext: HashMap<Uuid, String>,
    by_username: HashMap<String, PersonRow>,
    class_by_ext: HashMap<Uuid, String>,
    problems: Vec<String>,
}

impl<'a> Apply<'a> {
    async fn load(txn: &'a DatabaseTransaction, now: DateTime<Utc>) -> Result<Self, CoreError> {
        let mut school_by_ext = HashMap::new();
        let mut school_by_code = HashMap::new();
        let mut unowned_schools = HashMap::new();
        for s in school::Entity::find()
            .all(txn)
            .await
            .map_err(CoreError::storage)?
        {
            school_by_code.insert(s.code.to_lowercase(), s.id.clone());
            match s.external_id.as_deref().map(Uuid::parse_str) {
                Some(Ok(ext)) => {
                    school_by_ext.insert(ext, s.id);
                }
                _ => {
                    unowned_schools.insert(s.code.to_lowercase(), s.id);
                }
            }
        }
        let rows: Vec<(String, String, String, String, String)> = person::Entity::find()
            .select_only()
            .column(person::Column::Id)
            .column(person::Column::ExternalId)
            .column(person::Column::Username)
            .column(person::Column::ManagedBy)
            .column(person::Column::State)
            .into_tuple()
            .all(txn)
            .await
            .map_err(CoreError::storage)?;
        let mut person_by_ext = HashMap::with_capacity(rows.len());
        let mut by_username = HashMap::with_capacity(rows.len());
        for (id, external_id, username, managed_by, state) in rows {
            if let Ok(ext) = Uuid::parse_str(&external_id) {
                person_by_ext.insert(ext, id.clone());
            }
            by_username.insert(
                username,
                PersonRow {
                    id,
                    external_id,
                    managed_by,
                    state,
                },
            );
        }
        let classes: Vec<(String, Option<String>)> = class::Entity::find()
            .select_only()
            .column(class::Column::Id)
            .column(class::Column::ExternalId)
            .into_tuple()
            .all(txn)
            .await
            .map_err(CoreError::storage)?;
        let class_by_ext = classes
            .into_iter()
            .filter_map(|(id, ext)| Some((Uuid::parse_str(&ext?).ok()?, id)))
            .collect();
        Ok(Apply {
            txn,
            now,
            school_by_ext,
            school_by_code,
            unowned_schools,
            person_by_ext,
            by_username,
            class_by_ext,
            problems: Vec::new(),
        })
    }

    async fn schools(&mut self, plan: &SyncPlan) -> Result<(), CoreError> {
        let missing: BTreeSet<Uuid> = plan.schools_missing.iter().copied().collect();
        for s in &plan.schools_added {
            let code = s.code.to_lowercase();
            // A school created by hand before the first sync, or one whose
            // OU the directory re-created under the same code, is adopted
            // rather than duplicated: its devices stay with it.
            let adopt = self.unowned_schools.remove(&code).or_else(|| {
                let holder = self.school_by_code.get(&code)?;
                let (ext, _) = self.school_by_ext.iter().find(|(_, id)| *id == holder)?;
                missing.contains(ext).then(|| holder.clone())
            });
            let id = match adopt {
                Some(id) => {
                    school::Entity::update_many()
                        .col_expr(
                            school::Column::ExternalId,
                            Expr::value(s.external_id.to_string()),
                        )
                        .col_expr(school::Column::Code, Expr::value(s.code.clone()))
                        .col_expr(school::Column::Name, Expr::value(s.display_name.clone()))
                        .col_expr(school::Column::UpdatedAt, Expr::value(self.now))
                        .filter(school::Column::Id.eq(id.clone()))
                        .exec(self.txn)
                        .await
                        .map_err(db_err(&format!("school {}", s.code)))?;
                    self.school_by_ext.retain(|_, v| *v != id);
                    id
                }
                None => {
                    let id = Uuid::new_v4().to_string();
                    school::ActiveModel {
                        id: Set(id.clone()),
                        external_id: Set(Some(s.external_id.to_string())),
                        code: Set(s.code.clone()),
                        name: Set(s.display_name.clone()),
                        created_at: Set(self.now),
                        updated_at: Set(self.now),
                    }
                    .insert(self.txn)
                    .await
                    .map_err(db_err(&format!("school {}", s.code)))?;
                    id
                }
            };
            self.school_by_ext.insert(s.external_id, id.clone());
            self.school_by_code.insert(code, id);
        }
        for s in &plan.schools_updated {
            let Some(id) = self.school_by_ext.get(&s.external_id).cloned() else {
                continue;
            };
            school::Entity::update_many()
                .col_expr(school::Column::Code, Expr::value(s.code.clone()))
                .col_expr(school::Column::Name, Expr::value(s.display_name.clone()))
                .col_expr(school::Column::UpdatedAt, Expr::value(self.now))
                .filter(school::Column::Id.eq(id.clone()))
                .exec(self.txn)
                .await
                .map_err(db_err(&format!("school {}", s.code)))?;
            self.school_by_code.retain(|_, v| *v != id);
            self.school_by_code.insert(s.code.to_lowercase(), id);
        }
        Ok(())
    }

    fn school_id(&mut self, code: &str) -> Option<String> {
        let id = self.school_by_code.get(&code.to_lowercase()).cloned();
        if id.is_none() {
            self.problems
                .push(format!("school {code} is not known; membership not stored"));
        }
        id
    }

    fn membership_rows(
        &mut self,
        person_id: &str,
        p: &DirPerson,
    ) -> Vec<person_school::ActiveModel> {
        let mut seen = BTreeSet::new();
        let mut rows = Vec::new();
        for m in p.memberships.iter().filter(|m| m.role != Role::ExamUser) {
            let Some(school_id) = self.school_id(&m.school_code) else {
                continue;
            };
            if seen.insert((school_id.clone(), m.role)) {
                rows.push(person_school::ActiveModel {
                    person_id: Set(person_id.to_owned()),
                    school_id: Set(school_id),
                    role: Set(role_str(m.role).to_owned()),
                });
            }
        }
        rows
    }

    /// Frees the user names this plan hands out: a departed (or departing)
    /// holder gets a `~<id>` suffix, someone renamed in this plan gets a
    /// temporary name first, so that swaps work too.
    async fn free_usernames(
        &mut self,
        plan: &SyncPlan,
        report: &mut RunReport,
    ) -> Result<(), CoreError> {
        let departing: BTreeSet<String> = plan
            .people_departed
            .iter()
            .map(|id| id.to_string())
            .collect();
        let renamed: BTreeMap<Uuid, &str> = plan
            .people_changed
            .iter()
            .filter(|c| {
                c.fields
                    .iter()
                    .any(|f| matches!(f, PersonField::Username { .. }))
            })
            .map(|c| (c.person.external_id, c.person.username.as_str()))
            .collect();
        for ext in renamed.keys() {
            let Some(id) = self.person_by_ext.get(ext).cloned() else {
                continue;
            };
            let temporary = format!("~{ext}");
            set_username(self.txn, &id, &temporary, self.now).await?;
            let current = self
                .by_username
                .iter()
                .find(|(_, r)| r.id == id)
                .map(|(name, _)| name.clone());
            if let Some(row) = current.and_then(|name| self.by_username.remove(&name)) {
                self.by_username.insert(temporary, row);
            }
        }
        let wanted: Vec<(Uuid, String)> = plan
            .people_added
            .iter()
            .map(|p| (p.external_id, p.username.clone()))
            .chain(renamed.iter().map(|(e, u)| (*e, (*u).to_owned())))
            .collect();
        for (ext, username) in wanted {
            let Some(holder) = self.by_username.get(&username) else {
                continue;
            };
            if holder.external_id == ext.to_string() || holder.managed_by == "local" {
                continue;
            }
            if holder.state == "departed" || departing.contains(&holder.external_id) {
                let parked = format!(
                    "{username}~{}",
                    holder.external_id.get(..8).unwrap_or(&holder.external_id)
                );
                set_username(self.txn, &holder.id, &parked, self.now).await?;
                report.parked_usernames.push(username.clone());
                if let Some(row) = self.by_username.remove(&username) {
                    self.by_username.insert(parked, row);
                }
            } else {
                return Err(CoreError::Conflict(format!(
                    "user name {username} is held by person {} who is still in the directory",
                    holder.external_id
                )));
            }
        }
        Ok(())
    }

    async fn people(&mut self, plan: &SyncPlan, report: &mut RunReport) -> Result<(), CoreError> {
        self.free_usernames(plan, report).await?;
        let disabled: BTreeSet<Uuid> = plan.people_disabled.iter().copied().collect();

        let mut inserts = Vec::new();
        let mut memberships = Vec::new();
        for p in &plan.people_added {
            // Someone created by hand (`flotte user add`) is taken over by
            // the directory once it names them, keeping their id and history.
            let local = self
                .by_username
                .get(&p.username)
                .filter(|r| r.managed_by == "local")
                .map(|r| r.id.clone())
                .or_else(|| self.person_by_ext.get(&p.external_id).cloned());
            let state = if p.disabled || disabled.contains(&p.external_id) {
                PersonState::Disabled
            } else {
                PersonState::Active
            };
            let id = match local {
                Some(id) => {
                    let mut row = person_row(&id, p, state, self.now);
                    row.created_at = sea_orm::ActiveValue::NotSet;
                    row.update(self.txn).await.map_err(db_err("person"))?;
                    person_school::Entity::delete_many()
                        .filter(person_school::Column::PersonId.eq(id.clone()))
                        .exec(self.txn)
                        .await
                        .map_err(CoreError::storage)?;
                    id
                }
                None => {
                    let id = Uuid::new_v4().to_string();
                    inserts.push(person_row(&id, p, state, self.now));
                    id
                }
            };
            memberships.extend(self.membership_rows(&id, p));
            self.person_by_ext.insert(p.external_id, id);
        }
        for chunk in inserts.chunks(CHUNK) {
            person::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(self.txn)
                .await
                .map_err(db_err("a person with this user name or external id"))?;
        }

        for change in &plan.people_changed {
            let p = &change.person;
            let Some(id) = self.person_by_ext.get(&p.external_id).cloned() else {
                continue;
            };
            person::Entity::update_many()
                .col_expr(person::Column::Username, Expr::value(p.username.clone()))
                .col_expr(person::Column::GivenName, Expr::value(p.given_name.clone()))
                .col_expr(
                    person::Column::FamilyName,
                    Expr::value(p.family_name.clone()),
                )
                .col_expr(person::Column::Mail, Expr::value(p.mail.clone()))
                .col_expr(person::Column::UpdatedAt, Expr::value(self.now))
                .filter(person::Column::Id.eq(id.clone()))
                .exec(self.txn)
                .await
                .map_err(db_err(&format!("person {}", p.username)))?;
            if change
                .fields
                .iter()
                .any(|f| matches!(f, PersonField::SchoolRoles { .. }))
            {
                person_school::Entity::delete_many()
                    .filter(person_school::Column::PersonId.eq(id.clone()))
                    .exec(self.txn)
                    .await
                    .map_err(CoreError::storage)?;
                memberships.extend(self.membership_rows(&id, p));
            }
        }
        for chunk in memberships.chunks(CHUNK * 3) {
            person_school::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(self.txn)
                .await
                .map_err(db_err("school membership"))?;
        }
        Ok(())
    }

    async fn set_state(
        &self,
        ids: &[Uuid],
        state: PersonState,
        clear_alert: bool,
    ) -> Result<(), CoreError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        for chunk in ids.chunks(CHUNK) {
            let mut update = person::Entity::update_many()
                .col_expr(person::Column::State, Expr::value(state_str(state)))
                .col_expr(person::Column::StateChangedAt, Expr::value(self.now))
                .col_expr(person::Column::UpdatedAt, Expr::value(self.now));
            if clear_alert {
                update = update
                    .col_expr(
                        person::Column::LoanAlert,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        person::Column::LoanAlertAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    );
            }
            update
                .filter(person::Column::ExternalId.is_in(chunk.to_vec()))
                .exec(self.txn)
                .await
                .map_err(CoreError::storage)?;
        }
        Ok(())
    }

    async fn states(&mut self, plan: &SyncPlan) -> Result<(), CoreError> {
        let disabled: BTreeSet<Uuid> = plan.people_disabled.iter().copied().collect();
        let (returned_disabled, returned_active): (Vec<Uuid>, Vec<Uuid>) = plan
            .people_returned
            .iter()
            .partition(|id| disabled.contains(id));
        self.set_state(&returned_active, PersonState::Active, true)
            .await?;
        self.set_state(&returned_disabled, PersonState::Disabled, true)
            .await?;
        self.set_state(&plan.people_reenabled, PersonState::Active, true)
            .await?;
        let newly_disabled: Vec<Uuid> = plan
            .people_disabled
            .iter()
            .filter(|id| !plan.people_returned.contains(id))
            .copied()
            .collect();
        self.set_state(&newly_disabled, PersonState::Disabled, false)
            .await?;
        self.set_state(&plan.people_departed, PersonState::Departed, false)
            .await?;
        for alert in &plan.loan_alerts {
            let reason = match alert.reason {
                LoanAlertReason::Disabled => "disabled",
                LoanAlertReason::Departed => "departed",
            };
            person::Entity::update_many()
                .col_expr(person::Column::LoanAlert, Expr::value(reason))
                .col_expr(person::Column::LoanAlertAt, Expr::value(self.now))
                .filter(person::Column::ExternalId.eq(alert.external_id.to_string()))
                .exec(self.txn)
                .await
                .map_err(CoreError::storage)?;
        }
        Ok(())
    }

    fn member_rows(&self, class_id: &str, members: &[Uuid]) -> Vec<class_member::ActiveModel> {
        members
            .iter()
            .filter_map(|ext| self.person_by_ext.get(ext))
            .map(|person_id| class_member::ActiveModel {
                class_id: Set(class_id.to_owned()),
                person_id: Set(person_id.clone()),
            })
            .collect()
    }

    async fn groups(&mut self, plan: &SyncPlan) -> Result<(), CoreError> {
        let removed: Vec<String> = plan
            .groups_removed
            .iter()
            .filter_map(|ext| self.class_by_ext.get(ext).cloned())
            .collect();
        for chunk in removed.chunks(CHUNK) {
            class::Entity::delete_many()
                .filter(class::Column::Id.is_in(chunk.to_vec()))
                .exec(self.txn)
                .await
                .map_err(CoreError::storage)?;
        }

        let mut classes = Vec::new();
        let mut members = Vec::new();
        for g in &plan.groups_added {
            let Some(school_id) = self.school_id(&g.school_code) else {
                continue;
            };
            let id = Uuid::new_v4().to_string();
            classes.push(class::ActiveModel {
                id: Set(id.clone()),
                external_id: Set(Some(g.external_id.to_string())),
                school_id: Set(school_id),
                name: Set(g.name.clone()),
                kind: Set(kind_str(g.kind).to_owned()),
                created_at: Set(self.now),
                updated_at: Set(self.now),
            });
            members.extend(self.member_rows(&id, &g.member_external_ids));
            self.class_by_ext.insert(g.external_id, id);
        }
        for chunk in classes.chunks(CHUNK) {
            class::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(self.txn)
                .await
                .map_err(db_err("class"))?;
        }
        for rename in &plan.groups_renamed {
            let (Some(id), Some(school_id)) = (
                self.class_by_ext.get(&rename.external_id).cloned(),
                self.school_id(&rename.to.school_code),
            ) else {
                continue;
            };
            class::Entity::update_many()
                .col_expr(class::Column::Name, Expr::value(rename.to.name.clone()))
                .col_expr(class::Column::SchoolId, Expr::value(school_id))
                .col_expr(class::Column::UpdatedAt, Expr::value(self.now))
                .filter(class::Column::Id.eq(id))
                .exec(self.txn)
                .await
                .map_err(CoreError::storage)?;
        }
        for change in &plan.memberships {
            let Some(class_id) = self.class_by_ext.get(&change.group_external_id).cloned() else {
                continue;
            };
            let gone: Vec<String> = change
                .removed
                .iter()
                .filter_map(|ext| self.person_by_ext.get(ext).cloned())
                .collect();
            if !gone.is_empty() {
                class_member::Entity::delete_many()
                    .filter(class_member::Column::ClassId.eq(class_id.clone()))
                    .filter(class_member::Column::PersonId.is_in(gone))
                    .exec(self.txn)
                    .await
                    .map_err(CoreError::storage)?;
            }
            members.extend(self.member_rows(&class_id, &change.added));
        }
        for chunk in members.chunks(CHUNK * 5) {
            class_member::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(self.txn)
                .await
                .map_err(db_err("class membership"))?;
        }
        Ok(())
    }
}

async fn set_username(
    txn: &DatabaseTransaction,
    id: &str,
    username: &str,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    person::Entity::update_many()
        .col_expr(person::Column::Username, Expr::value(username.to_owned()))
        .col_expr(person::Column::UpdatedAt, Expr::value(now))
        .filter(person::Column::Id.eq(id.to_owned()))
        .exec(txn)
        .await
        .map_err(db_err(&format!("user name {username}")))?;
    Ok(())
}

fn person_row(
    id: &str,
    p: &DirPerson,
    state: PersonState,
    now: DateTime<Utc>,
) -> person::ActiveModel {
    person::ActiveModel {
        id: Set(id.to_owned()),
        external_id: Set(p.external_id.to_string()),
        username: Set(p.username.clone()),
        given_name: Set(p.given_name.clone()),
        family_name: Set(p.family_name.clone()),
        mail: Set(p.mail.clone()),
        state: Set(state_str(state).to_owned()),
        state_changed_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        managed_by: Set("directory".to_owned()),
        loan_alert: Set(None),
        loan_alert_at: Set(None),
    }
}

// ---------------------------------------------------------------------------
// Queries for the API, scoped by school in SQL.

/// A person's role at one school.
#[derive(Debug, Clone, Serialize)]
pub struct PersonSchool {
    pub school_id: String,
    pub school_code: String,
    pub role: Role,
}

/// A class or workgroup a person is in.
#[derive(Debug, Clone, Serialize)]
pub struct PersonClass {
    pub id: String,
    pub school_id: String,
    pub name: String,
    pub kind: String,
}

/// A person as the API shows them. Nothing beyond what device loans and
/// the admin UI need is stored, so nothing more can be shown.
#[derive(Debug, Clone, Serialize)]
pub struct PersonRecord {
    pub id: String,
    pub external_id: String,
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    pub mail: Option<String>,
    /// `active`, `disabled` or `departed`.
    pub state: String,
    pub state_changed_at: Option<DateTime<Utc>>,
    /// Set when the person departed or was disabled while holding a loan.
    pub loan_alert: Option<String>,
    pub loan_alert_at: Option<DateTime<Utc>>,
    /// Only the schools in the caller's scope.
    pub schools: Vec<PersonSchool>,
    pub classes: Vec<PersonClass>,
}

/// Filters for the people list, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    /// School id or code.
    pub school: Option<String>,
    pub role: Option<Role>,
    /// Class id, or a class name (with `school`, or unique within scope).
    pub class: Option<String>,
    pub state: Option<PersonState>,
    /// Part of the name or user name, case-insensitive.
    pub search: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// A class or workgroup as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRecord {
    pub id: String,
    pub external_id: Option<String>,
    pub school_id: String,
    pub school_code: String,
    pub name: String,
    /// `class` or `workgroup`.
    pub kind: String,
    pub members: u64,
}

/// `people.id IN (SELECT person_id FROM person_schools WHERE school_id IN scope)`.
fn in_scope(scope: &SchoolScope) -> Option<Condition> {
    match scope {
        SchoolScope::All => None,
        SchoolScope::Schools(ids) => Some(
            Condition::all().add(
                person::Column::Id.in_subquery(
                    Query::select()
                        .column(person_school::Column::PersonId)
                        .from(person_school::Entity)
                        .and_where(person_school::Column::SchoolId.is_in(ids.clone()))
                        .to_owned(),
                ),
            ),
        ),
    }
}

impl Store {
    async fn resolve_school(&self, key: &str) -> Result<Option<String>, CoreError> {
        Ok(school::Entity::find()
            .filter(
                Condition::any()
                    .add(school::Column::Id.eq(key))
                    .add(school::Column::Code.eq(key)),
            )
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .map(|s| s.id))
    }

    /// People in the caller's schools, filtered.
    pub async fn list_people(
        &self,
        filter: &PeopleFilter,
        scope: &SchoolScope,
    ) -> Result<Vec<PersonRecord>, CoreError> {
        let mut q = person::Entity::find();
        if let Some(cond) = in_scope(scope) {
            q = q.filter(cond);
        }
        let mut school_id = None;
        if let Some(key) = &filter.school {
            // An unknown school matches nobody rather than everybody.
            let id = self.resolve_school(key).await?.unwrap_or_default();
            school_id = Some(id);
        }
        if school_id.is_some() || filter.role.is_some() {
            let mut sub = Query::select()
                .column(person_school::Column::PersonId)
                .from(person_school::Entity)
                .to_owned();
            if let Some(id) = &school_id {
                sub.and_where(person_school::Column::SchoolId.eq(id.clone()));
            }
            if let Some(role) = filter.role {
                sub.and_where(person_school::Column::Role.eq(role_str(role)));
            }
            q = q.filter(person::Column::Id.in_subquery(sub));
        }
        if let Some(key) = &filter.class {
            let mut classes = Query::select()
                .column(class::Column::Id)
                .from(class::Entity)
                .cond_where(
                    Condition::any()
                        .add(class::Column::Id.eq(key.clone()))
                        .add(class::Column::Name.eq(key.clone())),
                )
                .to_owned();
            if let Some(id) = &school_id {
                classes.and_where(class::Column::SchoolId.eq(id.clone()));
            }
            q = q.filter(
                person::Column::Id.in_subquery(
                    Query::select()
                        .column(class_member::Column::PersonId)
                        .from(class_member::Entity)
                        .and_where(class_member::Column::ClassId.in_subquery(classes))
                        .to_owned(),
                ),
            );
        }
        if let Some(state) = filter.state {
            q = q.filter(person::Column::State.eq(state_str(state)));
        }
        if let Some(search) = filter
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let pattern = format!(
                "%{}%",
                search
                    .to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            let like = |expr: Expr| expr.like(LikeExpr::new(pattern.clone()).escape('\\'));
            q = q.filter(
                Condition::any()
                    .add(like(
                        Func::lower(Expr::col(person::Column::GivenName)).into(),
                    ))
                    .add(like(
                        Func::lower(Expr::col(person::Column::FamilyName)).into(),
                    ))
                    .add(like(
                        Func::lower(Expr::col(person::Column::Username)).into(),
                    ))
                    // "Anna Mü" finds Anna Müller: both databases know `||`.
                    .add(like(Expr::cust(
                        "LOWER(\"given_name\" || ' ' || \"family_name\")",
                    ))),
            );
        }
        let rows = q
            .order_by_asc(person::Column::FamilyName)
            .order_by_asc(person::Column::GivenName)
            .order_by_asc(person::Column::Id)
            .limit(Ord::min(filter.limit.unwrap_or(500), 5000))
            .offset(filter.offset.unwrap_or(0))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        self.with_details(rows, scope).await
    }

    /// One person by Flotte id or user name, within the caller's schools.
    pub async fn find_person(
        &self,
        key: &str,
        scope: &SchoolScope,
    ) -> Result<PersonRecord, CoreError> {
        let mut q = person::Entity::find().filter(
            Condition::any()
                .add(person::Column::Id.eq(key))
                .add(person::Column::Username.eq(key)),
        );
        if let Some(cond) = in_scope(scope) {
            q = q.filter(cond);
        }
        let row = q
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("person {key}")))?;
        let mut records = self.with_details(vec![row], scope).await?;
        records
            .pop()
            .ok_or_else(|| CoreError::NotFound(format!("person {key}")))
    }

    async fn with_details(
        &self,
        rows: Vec<person::Model>,
        scope: &SchoolScope,
    ) -> Result<Vec<PersonRecord>, CoreError> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut schools_of: HashMap<String, Vec<PersonSchool>> = HashMap::new();
        let mut classes_of: HashMap<String, Vec<PersonClass>> = HashMap::new();
        let codes: HashMap<String, String> = school::Entity::find()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|s| (s.id, s.code))
            .collect();
        for chunk in ids.chunks(CHUNK) {
            for m in person_school::Entity::find()
                .filter(person_school::Column::PersonId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
            {
                if !scope.allows(Some(&m.school_id)) {
                    continue;
                }
                let Some(role) = parse_role(&m.role) else {
                    continue;
                };
                schools_of
                    .entry(m.person_id)
                    .or_default()
                    .push(PersonSchool {
                        school_code: codes.get(&m.school_id).cloned().unwrap_or_default(),
                        school_id: m.school_id,
                        role,
                    });
            }
            let members = class_member::Entity::find()
                .filter(class_member::Column::PersonId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?;
            let class_ids: Vec<String> = members.iter().map(|m| m.class_id.clone()).collect();
            let classes: HashMap<String, class::Model> = class::Entity::find()
                .filter(class::Column::Id.is_in(class_ids))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect();
            for m in members {
                if let Some(c) = classes.get(&m.class_id)
                    && scope.allows(Some(&c.school_id))
                {
                    classes_of
                        .entry(m.person_id)
                        .or_default()
                        .push(PersonClass {
                            id: c.id.clone(),
                            school_id: c.school_id.clone(),
                            name: c.name.clone(),
                            kind: c.kind.clone(),
                        });
                }
            }
        }
        Ok(rows
            .into_iter()
            .map(|p| {
                let mut schools = schools_of.remove(&p.id).unwrap_or_default();
                schools.sort_by(|a, b| (&a.school_code, a.role).cmp(&(&b.school_code, b.role)));
                let mut classes = classes_of.remove(&p.id).unwrap_or_default();
                classes.sort_by(|a, b| a.name.cmp(&b.name));
                PersonRecord {
                    id: p.id,
                    external_id: p.external_id,
                    username: p.username,
                    given_name: p.given_name,
                    family_name: p.family_name,
                    mail: p.mail,
                    state: p.state,
                    state_changed_at: p.state_changed_at,
                    loan_alert: p.loan_alert,
                    loan_alert_at: p.loan_alert_at,
                    schools,
                    classes,
                }
            })
            .collect())
    }

    /// Classes and workgroups in the caller's schools (optionally one school).
    pub async fn list_classes(
        &self,
        school: Option<&str>,
        scope: &SchoolScope,
    ) -> Result<Vec<ClassRecord>, CoreError> {
        let mut q = class::Entity::find();
        if let SchoolScope::Schools(ids) = scope {
            q = q.filter(class::Column::SchoolId.is_in(ids.clone()));
        }
        if let Some(key) = school {
            let id = self.resolve_school(key).await?.unwrap_or_default();
            q = q.filter(class::Column::SchoolId.eq(id));
        }
        let rows = q
            .order_by_asc(class::Column::SchoolId)
            .order_by_asc(class::Column::Name)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let codes: HashMap<String, String> = school::Entity::find()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|s| (s.id, s.code))
            .collect();
        let counts: Vec<(String, i64)> = class_member::Entity::find()
            .select_only()
            .column(class_member::Column::ClassId)
            .column_as(Expr::col(class_member::Column::PersonId).count(), "n")
            .group_by(class_member::Column::ClassId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let counts: HashMap<String, i64> = counts.into_iter().collect();
        let mut out: Vec<ClassRecord> = rows
            .into_iter()
            .map(|c| ClassRecord {
                members: u64::try_from(counts.get(&c.id).copied().unwrap_or(0)).unwrap_or(0),
                school_code: codes.get(&c.school_id).cloned().unwrap_or_default(),
                id: c.id,
                external_id: c.external_id,
                school_id: c.school_id,
                name: c.name,
                kind: c.kind,
            })
            .collect();
        out.sort_by(|a, b| (&a.school_code, &a.name).cmp(&(&b.school_code, &b.name)));
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// One sync from read to report.

/// What a run read.
#[derive(Debug, Clone)]
pub enum SyncInput {
    /// A full read (LDAP or a CSV file).
    Snapshot(flotte_core::directory::DirectorySnapshot),
    /// An incremental read and the cookie to store once it is applied.
    Changes {
        changes: flotte_core::directory::DirectoryChanges,
        cookie: String,
    },
}

/// A run's read, to be planned and applied.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub run_id: String,
    pub input: SyncInput,
    pub policy: flotte_core::directory::SyncPolicy,
    /// For the report: `full`, `content_sync`, `modify_timestamp`, `csv`.
    pub method: String,
    /// When the run started reading, for the report's duration.
    pub started: std::time::Instant,
}

impl Store {
    /// Plan a read against what Flotte knows and apply it, or refuse it:
    /// the run ends `applied`, `aborted` (a safety rule said no; the reason
    /// is the run's error) or `failed` (the database said no). Either way
    /// the run row gets its report. Incremental reads are merged into a
    /// snapshot first, so both kinds pass the same safety checks.
    ///
    /// The planner is `flotte_core::directory::plan_sync`, with the caller's
    /// policy; storage only feeds it and applies its answer. When another
    /// sync was applied in between, planning is done once more on fresh data.
    pub async fn sync_directory(
        &self,
        request: SyncRequest,
        clock: &dyn flotte_core::Clock,
    ) -> Result<DirectoryRun, CoreError> {
        let full = matches!(request.input, SyncInput::Snapshot(_));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let state = self.load_known_directory().await?;
            let (snapshot, cookie) = match &request.input {
                SyncInput::Snapshot(snapshot) => {
                    (std::borrow::Cow::Borrowed(snapshot), CookieUpdate::Keep)
                }
                SyncInput::Changes { changes, cookie } => (
                    std::borrow::Cow::Owned(state.known.with_changes(changes)),
                    CookieUpdate::Set(cookie.clone()),
                ),
            };
            let now = clock.now();
            let plan =
                match flotte_core::directory::plan_sync(&state.known, &snapshot, &request.policy) {
                    Ok(plan) => plan,
                    Err(abort) => {
                        let report = RunReport {
                            errors: snapshot.problems.len(),
                            problems: snapshot.problems.iter().take(50).cloned().collect(),
                            held_back: snapshot.held_back.len(),
                            method: Some(request.method.clone()),
                            duration_ms: request.started.elapsed().as_millis() as u64,
                            ..RunReport::default()
                        };
                        self.finish_directory_run_unapplied(
                            &request.run_id,
                            RunStatus::Aborted,
                            &abort.to_string(),
                            Some(&report),
                            now,
                        )
                        .await?;
                        return self.find_directory_run(&request.run_id).await;
                    }
                };
            let mut report = RunReport::from_plan(&plan);
            report.method = Some(request.method.clone());
            report.duration_ms = request.started.elapsed().as_millis() as u64;
            let ctx = ApplyContext {
                run_id: request.run_id.clone(),
                generation: state.generation,
                cookie,
                full,
                report,
            };
            match self.apply_directory_plan(&plan, ctx, now).await {
                Ok(_) => return self.find_directory_run(&request.run_id).await,
                Err(CoreError::Conflict(_))
                    if attempts < 2 && self.is_stale(state.generation).await? =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::error!(run = %request.run_id, error = %e, "directory sync could not be applied");
                    self.finish_directory_run_unapplied(
                        &request.run_id,
                        RunStatus::Failed,
                        &format!("applying the sync failed: {}", error_chain(&e)),
                        None,
                        clock.now(),
                    )
                    .await?;
                    return self.find_directory_run(&request.run_id).await;
                }
            }
        }
    }

    /// Where the last incremental read ended (`None`: no cookie yet).
    pub async fn directory_cookie(&self) -> Result<Option<String>, CoreError> {
        Ok(directory_sync_state::Entity::find_by_id(STATE_ROW)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .and_then(|s| s.cookie))
    }

    /// When the last full sync was applied (`None`: never).
    pub async fn last_full_directory_sync(&self) -> Result<Option<DateTime<Utc>>, CoreError> {
        Ok(directory_sync_state::Entity::find_by_id(STATE_ROW)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .and_then(|s| s.last_full_at))
    }

    async fn is_stale(&self, generation: i64) -> Result<bool, CoreError> {
        let now = directory_sync_state::Entity::find_by_id(STATE_ROW)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .map(|s| s.generation)
            .unwrap_or(0);
        Ok(now != generation)
    }
}

/// The error and its sources, for a run report read by technicians.
fn error_chain(e: &CoreError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
