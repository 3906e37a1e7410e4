//! Bulk pushes: a profile version (or its removal, or a full sync) to a scope, fanned out
//! per device in batches, with per-device progress, and the queueing of profile commands
//! that pushes and reconciliations share.
//!
//! Nothing here is sent twice: a push's devices are rows keyed by (push, device) whose
//! status moves from `pending` exactly once, in the transaction that queues the device's
//! commands; and a device's profile record is claimed (by the pending command it names)
//! in the same transaction, so a push and a reconciliation racing for one device queue one
//! command between them.

use crate::db::{commit, db_err};
use crate::entity::{
    assignment, command, device, device_group_member, enrollment, profile_device_state,
    profile_template, push, push_target,
};
use crate::profiles::{
    find_profile_row, placeholders, platforms_of, scoped_class, scoped_group, scoped_school,
};
use crate::{NewCommand, Store, audit, jobs};
use chrono::{DateTime, Duration, Utc};
use flotte_core::CoreError;
use flotte_core::assignment::{
    AssignmentScope, ProfileCommand, PushAction, PushStatus, TargetStatus, supersedes,
};
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::command::CommandStatus;
use flotte_core::device::Platform;
use flotte_core::jobs::{PushBatch, PushProgress, WakeDevice};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use std::collections::{BTreeMap, BTreeSet};

/// The identifier a sync push carries: it concerns every profile.
pub const ALL_PROFILES: &str = "*";

/// A push to create.
#[derive(Debug, Clone)]
pub struct NewPush {
    /// The template (id or identifier); `None` for [`PushAction::Sync`].
    pub profile: Option<String>,
    /// The version to install; `None` for the newest.
    pub version: Option<i32>,
    pub action: PushAction,
    pub scope: AssignmentScope,
    /// Devices per fan-out job.
    pub batch_size: u32,
    /// Devices silent this long are woken again.
    pub silent_after_secs: u64,
    /// When the first progress tick runs.
    pub first_tick_at: DateTime<Utc>,
    /// When the push stops waiting for devices.
    pub expires_at: DateTime<Utc>,
}

/// A push as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PushRecord {
    pub id: String,
    /// The profile's identifier (`*` for a sync).
    pub profile: String,
    pub version: Option<i32>,
    pub action: PushAction,
    pub scope: AssignmentScope,
    pub school_id: Option<String>,
    pub status: PushStatus,
    /// Devices the push reaches.
    pub total: i32,
    pub batches: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// When the last device's commands were queued.
    pub queued_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// Devices per status (every status listed, zeros included).
    pub counts: BTreeMap<TargetStatus, i64>,
}

impl PushRecord {
    /// Devices whose part is over.
    pub fn done(&self) -> i64 {
        self.counts
            .iter()
            .filter(|(status, _)| status.is_final())
            .map(|(_, n)| n)
            .sum()
    }
}

/// One device of a push.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PushTargetRecord {
    pub device_id: String,
    pub status: TargetStatus,
    pub command_id: Option<String>,
    pub wakes: i32,
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What a fan-out batch has to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PushBatchWork {
    pub push_id: String,
    pub identifier: String,
    pub version: Option<i32>,
    pub action: PushAction,
    pub generation: i32,
    /// The batch's devices still pending.
    pub devices: Vec<String>,
}

/// What the planner saw of a device's record of one profile: the commit goes ahead only if
/// it is still so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub exists: bool,
    pub pending_command_id: Option<String>,
}

/// What to do about one profile on one device.
#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// Queue `commands` (in order) to install this rendering.
    Install {
        version: i32,
        checksum: String,
        commands: Vec<NewCommand>,
        /// Windows: the commands that will undo this version (JSON), kept once installed.
        removal: Option<String>,
    },
    /// Queue `commands` to remove the profile.
    Remove { commands: Vec<NewCommand> },
    /// Nothing to send: the device has it (or it is on its way in the pending command).
    /// `withdraw` cancels a pending command that no longer leads anywhere wanted.
    Keep {
        expected_version: Option<i32>,
        expected_checksum: Option<String>,
        withdraw: bool,
    },
    /// It cannot be rendered or installed on this device.
    Fail { error: String },
    /// Drop the record: neither expected nor on the device.
    Forget,
}

/// One profile's change on one device.
#[derive(Debug, Clone)]
pub struct ProfileChange {
    pub identifier: String,
    pub seen: Seen,
    pub kind: ChangeKind,
}

/// Every change for one device, plus commands to send after them that track nothing (a
/// `ProfileList` after a sync).
#[derive(Debug, Clone)]
pub struct DeviceChanges {
    pub device_id: String,
    pub changes: Vec<ProfileChange>,
    pub trailing: Vec<NewCommand>,
}

/// What one fan-out batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchOutcome {
    /// Devices that got at least one new command.
    pub queued: u64,
    /// Devices that needed nothing, or were already getting it.
    pub unchanged: u64,
    pub failed: u64,
    /// Devices another run had already planned (nothing done for them).
    pub skipped: u64,
    /// Commands inserted.
    pub commands: u64,
    /// Earlier commands withdrawn because these replace them.
    pub superseded: u64,
    /// Devices whose profile records changed between planning and applying: nothing
    /// was decided for them, and they are to be planned again from what is recorded now.
    pub raced: Vec<String>,
}

/// What one progress tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgressReport {
    /// Targets whose status changed.
    pub updated: u64,
    /// Devices woken again.
    pub woken: u64,
    /// The push is over (or gone): stop ticking.
    pub finished: bool,
}

/// The target a device's changes amount to, for a push about `identifier`.
struct TargetResult {
    status: TargetStatus,
    command_id: Option<String>,
    error: Option<String>,
}

fn to_push(m: push::Model, counts: BTreeMap<TargetStatus, i64>) -> Result<PushRecord, CoreError> {
    let mut all: BTreeMap<TargetStatus, i64> =
        TargetStatus::ALL.into_iter().map(|s| (s, 0)).collect();
    all.extend(counts);
    Ok(PushRecord {
        action: m.action.parse()?,
        status: m.status.parse()?,
        scope: AssignmentScope::from_parts(&m.scope_kind, &m.scope_id)?,
        id: m.id,
        profile: m.identifier,
        version: m.version,
        school_id: m.school_id,
        total: m.total,
        batches: m.batches,
        created_by: m.created_by,
        created_at: m.created_at,
        started_at: m.started_at,
        queued_at: m.queued_at,
        finished_at: m.finished_at,
        expires_at: m.expires_at,
        counts: all,
    })
}

async fn counts(
    conn: &impl ConnectionTrait,
    push_id: &str,
) -> Result<BTreeMap<TargetStatus, i64>, CoreError> {
    let rows: Vec<(String, i64)> = push_target::Entity::find()
        .select_only()
        .column(push_target::Column::Status)
        .column_as(Expr::col(push_target::Column::DeviceId).count(), "n")
        .filter(push_target::Column::PushId.eq(push_id))
        .group_by(push_target::Column::Status)
        .into_tuple()
        .all(conn)
        .await
        .map_err(CoreError::storage)?;
    rows.into_iter()
        .map(|(status, n)| Ok((status.parse()?, n)))
        .collect()
}

async fn scoped_push(
    conn: &impl ConnectionTrait,
    id: &str,
    scope: &SchoolScope,
) -> Result<push::Model, CoreError> {
    let mut query = push::Entity::find_by_id(id);
    if let SchoolScope::Schools(ids) = scope {
        query = query.filter(push::Column::SchoolId.is_in(ids.clone()));
    }
    query
        .one(conn)
        .await
        .map_err(CoreError::storage)?
        .ok_or_else(|| CoreError::NotFound(format!("push {id}")))
}

const OPEN: [&str; 3] = ["queued", "sent", "not_now"];

fn new_command_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// The devices a scope reaches, normalised (ids instead of codes), with the school the
/// scope belongs to and the SQL condition on `devices`.
async fn resolve_scope(
    conn: &impl ConnectionTrait,
    scope: &AssignmentScope,
    within: &SchoolScope,
) -> Result<(AssignmentScope, Option<String>, Condition), CoreError> {
    let in_scope = |ids: &Vec<String>| device::Column::SchoolId.is_in(ids.clone());
    let mut cond = Condition::all();
    if let SchoolScope::Schools(ids) = within {
        cond = cond.add(in_scope(ids));
    }
    Ok(match scope {
        AssignmentScope::All => (AssignmentScope::All, None, cond),
        AssignmentScope::Platform(p) => (
            scope.clone(),
            None,
            cond.add(device::Column::Platform.eq(p.as_str())),
        ),
        AssignmentScope::School(key) => {
            let school = scoped_school(conn, key, within).await?;
            (
                AssignmentScope::School(school.id.clone()),
                Some(school.id.clone()),
                cond.add(device::Column::SchoolId.eq(school.id)),
            )
        }
        AssignmentScope::Class(key) => {
            let class = scoped_class(conn, key, within).await?;
            let lent = Query::select()
                .column((Alias::new("loans"), Alias::new("device_id")))
                .from(Alias::new("loans"))
                .inner_join(
                    Alias::new("class_members"),
                    Expr::col((Alias::new("class_members"), Alias::new("person_id")))
                        .equals((Alias::new("loans"), Alias::new("person_id"))),
                )
                .and_where(Expr::col((Alias::new("loans"), Alias::new("returned_at"))).is_null())
                .and_where(
                    Expr::col((Alias::new("class_members"), Alias::new("class_id")))
                        .eq(class.id.clone()),
                )
                .to_owned();
            (
                AssignmentScope::Class(class.id),
                Some(class.school_id),
                cond.add(device::Column::Id.in_subquery(lent)),
            )
        }
        AssignmentScope::DeviceGroup(key) => {
            let group = scoped_group(conn, key, within).await?;
            let members = Query::select()
                .column(device_group_member::Column::DeviceId)
                .from(device_group_member::Entity)
                .and_where(device_group_member::Column::GroupId.eq(group.id.clone()))
                .to_owned();
            (
                AssignmentScope::DeviceGroup(group.id),
                group.school_id,
                cond.add(device::Column::Id.in_subquery(members)),
            )
        }
        AssignmentScope::Device(key) => {
            let mut query = device::Entity::find().filter(
                Condition::any()
                    .add(device::Column::Id.eq(key.as_str()))
                    .add(device::Column::Udid.eq(key.as_str()))
                    .add(device::Column::SerialNumber.eq(key.as_str())),
            );
            if let SchoolScope::Schools(ids) = within {
                query = query.filter(in_scope(ids));
            }
            let d = query
                .one(conn)
                .await
                .map_err(CoreError::storage)?
                .ok_or_else(|| CoreError::NotFound(format!("device {key}")))?;
            (
                AssignmentScope::Device(d.id.clone()),
                d.school_id,
                cond.add(device::Column::Id.eq(d.id)),
            )
        }
    })
}

/// Withdraw the commands no device has fetched yet; the push targets following them become
/// `superseded`. Returns the ids withdrawn (a command already sent stays).
async fn withdraw(
    txn: &DatabaseTransaction,
    command_ids: &[String],
    now: DateTime<Utc>,
) -> Result<BTreeSet<String>, CoreError> {
    let mut withdrawn = BTreeSet::new();
    for chunk in command_ids.chunks(400) {
        let sql = format!(
            "UPDATE commands SET status = 'cancelled', finished_at = {finished}, \
             updated_at = {updated}, \
             error = 'superseded by a newer command for the same profile' \
             WHERE status IN ('queued', 'not_now') AND id IN ({ids}) RETURNING id",
            // Two placeholders for one value: SQLite's `?` are numbered by position.
            finished = placeholders(txn, 1, 1),
            updated = placeholders(txn, 2, 1),
            ids = placeholders(txn, 3, chunk.len()),
        );
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                sql,
                [now.into(), now.into()]
                    .into_iter()
                    .chain(chunk.iter().map(|id| id.clone().into())),
            ))
            .await
            .map_err(CoreError::storage)?;
        for row in rows {
            withdrawn.insert(
                row.try_get::<String>("", "id")
                    .map_err(CoreError::storage)?,
            );
        }
    }
    let ids: Vec<String> = withdrawn.iter().cloned().collect();
    for chunk in ids.chunks(400) {
        push_target::Entity::update_many()
            .col_expr(
                push_target::Column::Status,
                Expr::value(TargetStatus::Superseded.as_str()),
            )
            .col_expr(push_target::Column::UpdatedAt, Expr::value(now))
            .filter(push_target::Column::CommandId.is_in(chunk.to_vec()))
            .filter(push_target::Column::Status.is_in(OPEN))
            .exec(txn)
            .await
            .map_err(CoreError::storage)?;
    }
    Ok(withdrawn)
}

/// What the record's pending command is, in the planner's vocabulary.
fn pending_command(row: &profile_device_state::Model) -> Option<ProfileCommand> {
    let identifier = row.identifier.clone();
    let checksum = row.pending_checksum.clone().unwrap_or_default();
    match row.pending_action.as_deref()? {
        "install" => Some(ProfileCommand::Install {
            identifier,
            checksum,
        }),
        "remove" => Some(ProfileCommand::Remove {
            identifier,
            checksum,
        }),
        _ => None,
    }
}

type Key = (String, String);

/// The records of these devices as they are now. On PostgreSQL the rows are locked until
/// the transaction ends, so a concurrent plan for the same device waits here and then sees
/// this one's result; SQLite runs one writer at a time anyway.
async fn lock_states(
    txn: &DatabaseTransaction,
    device_ids: &[String],
) -> Result<BTreeMap<Key, profile_device_state::Model>, CoreError> {
    let mut out = BTreeMap::new();
    for chunk in device_ids.chunks(400) {
        let mut query = profile_device_state::Entity::find()
            .filter(profile_device_state::Column::DeviceId.is_in(chunk.to_vec()));
        if !crate::db::is_sqlite(txn) {
            query = query.lock_exclusive();
        }
        for row in query.all(txn).await.map_err(CoreError::storage)? {
            out.insert((row.device_id.clone(), row.identifier.clone()), row);
        }
    }
    Ok(out)
}

fn empty_state(
    device_id: &str,
    identifier: &str,
    now: DateTime<Utc>,
) -> profile_device_state::Model {
    profile_device_state::Model {
        device_id: device_id.to_owned(),
        identifier: identifier.to_owned(),
        expected_version: None,
        expected_checksum: None,
        installed_version: None,
        installed_checksum: None,
        installed_at: None,
        removal: None,
        pending_command_id: None,
        pending_action: None,
        pending_version: None,
        pending_checksum: None,
        pending_removal: None,
        last_error: None,
        updated_at: now,
    }
}

/// Creates the records the planner found missing, if they are still missing; returns the
/// keys created here (a key created by a concurrent plan is not among them).
async fn create_states(
    txn: &DatabaseTransaction,
    keys: &[Key],
    now: DateTime<Utc>,
) -> Result<BTreeSet<Key>, CoreError> {
    let mut created = BTreeSet::new();
    for chunk in keys.chunks(200) {
        let values = chunk
            .iter()
            .enumerate()
            .map(|(i, _)| format!("({})", placeholders(txn, 3 * i + 1, 3)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO device_profile_state (device_id, identifier, updated_at) VALUES {values} \
             ON CONFLICT (device_id, identifier) DO NOTHING RETURNING device_id, identifier"
        );
        let params: Vec<sea_orm::Value> = chunk
            .iter()
            .flat_map(|(d, i)| [d.clone().into(), i.clone().into(), now.into()])
            .collect();
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                sql,
                params,
            ))
            .await
            .map_err(CoreError::storage)?;
        for row in rows {
            created.insert((
                row.try_get::<String>("", "device_id")
                    .map_err(CoreError::storage)?,
                row.try_get::<String>("", "identifier")
                    .map_err(CoreError::storage)?,
            ));
        }
    }
    Ok(created)
}

/// Where one device stands after its changes, for a push about `identifier` (or about
/// every profile).
fn target_result(identifier: &str, results: &[(String, TargetResult)]) -> TargetResult {
    let unchanged = || TargetResult {
        status: TargetStatus::Unchanged,
        command_id: None,
        error: None,
    };
    if identifier != ALL_PROFILES {
        return results
            .iter()
            .find(|(i, _)| i == identifier)
            .map(|(_, r)| TargetResult {
                status: r.status,
                command_id: r.command_id.clone(),
                error: r.error.clone(),
            })
            .unwrap_or_else(unchanged);
    }
    let queued = results
        .iter()
        .rev()
        .find(|(_, r)| r.status == TargetStatus::Queued && r.command_id.is_some());
    let failed = results
        .iter()
        .find(|(_, r)| r.status == TargetStatus::Failed);
    match (queued, failed) {
        (Some((_, r)), _) => TargetResult {
            status: TargetStatus::Queued,
            command_id: r.command_id.clone(),
            error: None,
        },
        (None, Some((_, r))) => TargetResult {
            status: TargetStatus::Failed,
            command_id: None,
            error: r.error.clone(),
        },
        (None, None) => unchanged(),
    }
}

/// Applies the changes of several devices in `txn`, in a handful of statements however
/// many devices: records are claimed as the planner saw them (a record changed since is
/// left to the newer plan), commands the new ones supersede are withdrawn, the new commands
/// are queued with `push_id` and their devices woken, and the records say what is pending.
/// Returns where each device stands for a push about `identifier`.
#[allow(clippy::too_many_arguments)]
async fn apply_batch(
    txn: &DatabaseTransaction,
    planned: &[&DeviceChanges],
    push_id: Option<&str>,
    identifier: &str,
    created_by: &str,
    coalesce_secs: i64,
    now: DateTime<Utc>,
    outcome: &mut BatchOutcome,
) -> Result<BTreeMap<String, TargetResult>, CoreError> {
    let device_ids: Vec<String> = planned.iter().map(|p| p.device_id.clone()).collect();
    let mut states = lock_states(txn, &device_ids).await?;
    let missing: Vec<Key> = planned
        .iter()
        .flat_map(|p| {
            p.changes
                .iter()
                .filter(|c| !c.seen.exists)
                .map(|c| (p.device_id.clone(), c.identifier.clone()))
        })
        .collect();
    let created = create_states(txn, &missing, now).await?;
    for key in &created {
        states.insert(key.clone(), empty_state(&key.0, &key.1, now));
    }

    // Which changes still stand, and which pending commands they withdraw.
    let mut standing: Vec<(&DeviceChanges, &ProfileChange, profile_device_state::Model)> =
        Vec::new();
    let mut to_withdraw = Vec::new();
    let mut raced = BTreeSet::new();
    for changes in planned {
        for change in &changes.changes {
            let key = (changes.device_id.clone(), change.identifier.clone());
            let row = match states.get(&key) {
                Some(row) if change.seen.exists => {
                    (row.pending_command_id == change.seen.pending_command_id).then(|| row.clone())
                }
                Some(row) if created.contains(&key) => Some(row.clone()),
                _ => None,
            };
            let Some(row) = row else {
                // Someone else queued for this profile since it was planned: their command
                // stands, and the next plan starts from it.
                raced.insert(changes.device_id.clone());
                continue;
            };
            if let Some(pending) = &row.pending_command_id {
                let old = pending_command(&row);
                let withdraws = match &change.kind {
                    ChangeKind::Install { checksum, .. } => old.as_ref().is_some_and(|old| {
                        supersedes(
                            old,
                            CommandStatus::Queued,
                            &ProfileCommand::Install {
                                identifier: change.identifier.clone(),
                                checksum: checksum.clone(),
                            },
                        )
                    }),
                    ChangeKind::Remove { .. } => old.as_ref().is_some_and(|old| {
                        supersedes(
                            old,
                            CommandStatus::Queued,
                            &ProfileCommand::Remove {
                                identifier: change.identifier.clone(),
                                checksum: row.installed_checksum.clone().unwrap_or_default(),
                            },
                        )
                    }),
                    ChangeKind::Keep { withdraw, .. } => *withdraw,
                    ChangeKind::Fail { .. } | ChangeKind::Forget => false,
                };
                if withdraws {
                    to_withdraw.push(pending.clone());
                }
            }
            standing.push((changes, change, row));
        }
    }
    let withdrawn = withdraw(txn, &to_withdraw, now).await?;
    outcome.superseded += withdrawn.len() as u64;

    let mut commands: Vec<command::ActiveModel> = Vec::new();
    let mut queue = |device_id: &str, new: &[NewCommand]| {
        let mut last = None;
        for command in new {
            let id = new_command_id();
            commands.push(command::ActiveModel {
                id: Set(id.clone()),
                device_id: Set(device_id.to_owned()),
                request_type: Set(command.request_type.clone()),
                payload: Set(command.payload.to_string()),
                status: Set(CommandStatus::Queued.as_str().to_owned()),
                created_by: Set(created_by.to_owned()),
                push_id: Set(push_id.map(str::to_owned)),
                created_at: Set(now),
                updated_at: Set(now),
                sent_at: Set(None),
                finished_at: Set(None),
                result: Set(None),
                error: Set(None),
            });
            last = Some(id);
        }
        last
    };
    let mut upserts: Vec<profile_device_state::Model> = Vec::new();
    let mut deletes: Vec<Key> = Vec::new();
    let mut results: BTreeMap<String, Vec<(String, TargetResult)>> = BTreeMap::new();
    for (changes, change, row) in standing {
        let device_id = changes.device_id.as_str();
        let mut state = row.clone();
        state.updated_at = now;
        let still_pending = row
            .pending_command_id
            .as_ref()
            .filter(|id| !withdrawn.contains(*id))
            .cloned();
        if still_pending.is_none() {
            state.pending_command_id = None;
            state.pending_action = None;
            state.pending_version = None;
            state.pending_checksum = None;
            state.pending_removal = None;
        }
        let result = match &change.kind {
            ChangeKind::Install {
                version,
                checksum,
                commands: new,
                removal,
            } => {
                let last = queue(device_id, new);
                state.expected_version = Some(*version);
                state.expected_checksum = Some(checksum.clone());
                state.pending_command_id = last.clone();
                state.pending_action = Some("install".into());
                state.pending_version = Some(*version);
                state.pending_checksum = Some(checksum.clone());
                state.pending_removal = removal.clone();
                state.last_error = None;
                TargetResult {
                    status: TargetStatus::Queued,
                    command_id: last,
                    error: None,
                }
            }
            ChangeKind::Remove { commands: new } => {
                let last = queue(device_id, new);
                state.expected_version = None;
                state.expected_checksum = None;
                state.pending_command_id = last.clone();
                state.pending_action = Some("remove".into());
                state.pending_version = row.installed_version;
                state.pending_checksum = row.installed_checksum.clone();
                state.pending_removal = None;
                state.last_error = None;
                TargetResult {
                    status: TargetStatus::Queued,
                    command_id: last,
                    error: None,
                }
            }
            ChangeKind::Keep {
                expected_version,
                expected_checksum,
                ..
            } => {
                state.expected_version = *expected_version;
                state.expected_checksum = expected_checksum.clone();
                match &still_pending {
                    Some(id) => TargetResult {
                        status: TargetStatus::Queued,
                        command_id: Some(id.clone()),
                        error: None,
                    },
                    None => TargetResult {
                        status: TargetStatus::Unchanged,
                        command_id: None,
                        error: None,
                    },
                }
            }
            ChangeKind::Fail { error } => {
                state.last_error = Some(error.clone());
                TargetResult {
                    status: TargetStatus::Failed,
                    command_id: None,
                    error: Some(error.clone()),
                }
            }
            ChangeKind::Forget => {
                deletes.push((device_id.to_owned(), change.identifier.clone()));
                results.entry(device_id.to_owned()).or_default().push((
                    change.identifier.clone(),
                    TargetResult {
                        status: TargetStatus::Unchanged,
                        command_id: None,
                        error: None,
                    },
                ));
                continue;
            }
        };
        // A record holding nothing (never installed, nothing pending, not expected) is not
        // kept: it only existed for this plan.
        let holds_nothing = state.installed_checksum.is_none()
            && state.pending_command_id.is_none()
            && state.expected_checksum.is_none()
            && state.last_error.is_none();
        if holds_nothing {
            deletes.push((device_id.to_owned(), change.identifier.clone()));
        } else {
            upserts.push(state);
        }
        results
            .entry(device_id.to_owned())
            .or_default()
            .push((change.identifier.clone(), result));
    }
    for changes in planned {
        queue(&changes.device_id, &changes.trailing);
    }

    for chunk in upserts.chunks(200) {
        profile_device_state::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(IntoActiveModel::into_active_model)
                // `into_active_model` marks every column unchanged; an insert writes them all.
                .map(sea_orm::ActiveModelTrait::reset_all),
        )
        .on_conflict(
            OnConflict::columns([
                profile_device_state::Column::DeviceId,
                profile_device_state::Column::Identifier,
            ])
            .update_columns([
                profile_device_state::Column::ExpectedVersion,
                profile_device_state::Column::ExpectedChecksum,
                profile_device_state::Column::InstalledVersion,
                profile_device_state::Column::InstalledChecksum,
                profile_device_state::Column::InstalledAt,
                profile_device_state::Column::Removal,
                profile_device_state::Column::PendingCommandId,
                profile_device_state::Column::PendingAction,
                profile_device_state::Column::PendingVersion,
                profile_device_state::Column::PendingChecksum,
                profile_device_state::Column::PendingRemoval,
                profile_device_state::Column::LastError,
                profile_device_state::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(CoreError::storage)?;
    }
    for chunk in deletes.chunks(200) {
        let mut any = Condition::any();
        for (device_id, identifier) in chunk {
            any = any.add(
                Condition::all()
                    .add(profile_device_state::Column::DeviceId.eq(device_id.as_str()))
                    .add(profile_device_state::Column::Identifier.eq(identifier.as_str())),
            );
        }
        profile_device_state::Entity::delete_many()
            .filter(any)
            .exec(txn)
            .await
            .map_err(CoreError::storage)?;
    }
    outcome.commands += insert_commands(txn, commands, coalesce_secs, now).await?;
    outcome.raced.extend(raced.iter().cloned());
    Ok(planned
        .iter()
        .filter(|p| !raced.contains(&p.device_id))
        .map(|p| {
            let mine = results.remove(&p.device_id).unwrap_or_default();
            (p.device_id.clone(), target_result(identifier, &mine))
        })
        .collect())
}

/// Inserts the queued commands and wakes their devices (one job per device and window).
async fn insert_commands(
    txn: &DatabaseTransaction,
    rows: Vec<command::ActiveModel>,
    coalesce_secs: i64,
    now: DateTime<Utc>,
) -> Result<u64, CoreError> {
    let mut devices = BTreeSet::new();
    for row in &rows {
        if let sea_orm::ActiveValue::Set(device) = &row.device_id {
            devices.insert(device.clone());
        }
    }
    let count = rows.len() as u64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(400).collect();
        command::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await
            .map_err(db_err("command"))?;
    }
    let window = now.timestamp() / Ord::max(coalesce_secs, 1);
    let devices: Vec<String> = devices.into_iter().collect();
    wake_all(txn, &devices, window, now).await?;
    Ok(count)
}

/// Enqueue a `WakeDevice` job for each device in one statement per few hundred devices:
/// the statement `jobs::enqueue` writes, with many rows (keep the columns in step with it).
async fn wake_all(
    txn: &DatabaseTransaction,
    device_ids: &[String],
    window: i64,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    use flotte_core::jobs::Job as _;
    let sqlite = crate::db::is_sqlite(txn);
    // Only devices a push can reach: one without a usable token (a Windows laptop, an iPad
    // not enrolled yet, a dead token) fetches its commands when it next checks in, and a job
    // per such device would only say so in the audit log.
    let mut reachable: Vec<String> = Vec::with_capacity(device_ids.len());
    for chunk in device_ids.chunks(400) {
        let ids: Vec<String> = enrollment::Entity::find()
            .select_only()
            .column(enrollment::Column::DeviceId)
            .filter(enrollment::Column::DeviceId.is_in(chunk.to_vec()))
            .filter(enrollment::Column::EndedAt.is_null())
            .filter(enrollment::Column::PushToken.is_not_null())
            .filter(enrollment::Column::TokenInvalidAt.is_null())
            .distinct()
            .into_tuple()
            .all(txn)
            .await
            .map_err(CoreError::storage)?;
        reachable.extend(ids);
    }
    for chunk in reachable.chunks(200) {
        let mut values = Vec::new();
        let mut params: Vec<sea_orm::Value> = Vec::new();
        for (i, device_id) in chunk.iter().enumerate() {
            let job = WakeDevice {
                device_id: device_id.clone(),
                window,
            };
            let payload = serde_json::to_vec(&job)
                .map_err(|e| CoreError::Invalid(format!("wake-up job: {e}")))?;
            let n = 5 * i;
            values.push(if sqlite {
                "(?, ?, ?, 'Pending', 0, 10, ?, 0, NULL, ?)".to_owned()
            } else {
                format!(
                    "(${}, ${}, ${}, 'Pending', 0, 10, to_timestamp(${}), 0, NULL, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5
                )
            });
            params.extend([
                payload.into(),
                ulid::Ulid::new().to_string().into(),
                WakeDevice::QUEUE.into(),
                now.timestamp().into(),
                job.idempotency_key().into(),
            ]);
        }
        let table = if sqlite { "Jobs" } else { "apalis.jobs" };
        let sql = format!(
            "INSERT INTO {table} (job, id, job_type, status, attempts, max_attempts, run_at, \
             priority, metadata, idempotency_key) VALUES {} \
             ON CONFLICT (job_type, idempotency_key) DO NOTHING",
            values.join(", ")
        );
        txn.execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            sql,
            params,
        ))
        .await
        .map_err(CoreError::storage)?;
    }
    Ok(())
}

impl Store {
    /// Create a push: change the assignment (install: assign the version to the scope;
    /// remove: withdraw it), take the scope's enrolled devices the template renders for as
    /// the push's targets, and enqueue the fan-out batches and the first progress tick, in
    /// one transaction. A scope that reaches no device is refused and changes nothing.
    pub async fn create_push(
        &self,
        new: &NewPush,
        within: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<PushRecord, CoreError> {
        let txn = self.write().await?;
        let head = match (&new.profile, new.action) {
            (Some(key), PushAction::Install | PushAction::Remove) => {
                Some(find_profile_row(&txn, key).await?)
            }
            (None, PushAction::Sync) => None,
            (None, _) => {
                return Err(CoreError::Invalid(
                    "profile: an install or remove push names a profile".into(),
                ));
            }
            (Some(_), PushAction::Sync) => {
                return Err(CoreError::Invalid(
                    "profile: a sync push concerns every profile; leave it out".into(),
                ));
            }
        };
        let version = match (&head, new.action) {
            (Some(h), PushAction::Install) => {
                let version = new.version.unwrap_or(h.version);
                if version < 1 || version > h.version {
                    return Err(CoreError::NotFound(format!(
                        "version {version} of profile {}",
                        h.identifier
                    )));
                }
                Some(version)
            }
            _ => None,
        };
        let (scope, school_id, mut cond) = resolve_scope(&txn, &new.scope, within).await?;
        let platforms = match &head {
            Some(h) => platforms_of(&h.platform),
            None => vec![Platform::Apple, Platform::Windows],
        };
        cond = cond
            .add(device::Column::EnrollmentState.eq("enrolled"))
            .add(device::Column::Platform.is_in(platforms.iter().map(|p| p.as_str())));

        if let (Some(h), Some(version)) = (&head, version) {
            assignment::Entity::insert(assignment::ActiveModel {
                id: Set(uuid::Uuid::new_v4().to_string()),
                profile_id: Set(h.id.clone()),
                version: Set(version),
                scope_kind: Set(scope.kind().to_owned()),
                scope_id: Set(scope.id().to_owned()),
                school_id: Set(school_id.clone()),
                created_by: Set(actor.actor.clone()),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .on_conflict(
                OnConflict::columns([
                    assignment::Column::ProfileId,
                    assignment::Column::ScopeKind,
                    assignment::Column::ScopeId,
                ])
                .update_columns([assignment::Column::Version, assignment::Column::UpdatedAt])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(CoreError::storage)?;
        } else if let (Some(h), PushAction::Remove) = (&head, new.action) {
            assignment::Entity::delete_many()
                .filter(assignment::Column::ProfileId.eq(h.id.clone()))
                .filter(assignment::Column::ScopeKind.eq(scope.kind()))
                .filter(assignment::Column::ScopeId.eq(scope.id()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }

        let id = uuid::Uuid::new_v4().to_string();
        let identifier = head
            .as_ref()
            .map_or_else(|| ALL_PROFILES.to_owned(), |h| h.identifier.clone());
        let batch_size = Ord::max(new.batch_size, 1) as i32;
        push::ActiveModel {
            id: Set(id.clone()),
            profile_id: Set(head.as_ref().map(|h| h.id.clone())),
            identifier: Set(identifier.clone()),
            version: Set(version),
            action: Set(new.action.as_str().to_owned()),
            scope_kind: Set(scope.kind().to_owned()),
            scope_id: Set(scope.id().to_owned()),
            school_id: Set(school_id.clone()),
            status: Set(PushStatus::Queued.as_str().to_owned()),
            total: Set(0),
            batch_size: Set(batch_size),
            batches: Set(0),
            generation: Set(0),
            silent_after_secs: Set(i64::try_from(new.silent_after_secs).unwrap_or(i64::MAX)),
            created_by: Set(actor.actor.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            started_at: Set(None),
            queued_at: Set(None),
            finished_at: Set(None),
            expires_at: Set(new.expires_at),
        }
        .insert(&txn)
        .await
        .map_err(db_err("push"))?;

        // One statement, however large the scope: the database numbers the devices, and
        // batch n takes the devices numbered [n × size, (n + 1) × size).
        let select = Query::select()
            .expr(Expr::val(id.clone()))
            .column((device::Entity, device::Column::Id))
            .expr(Expr::cust("ROW_NUMBER() OVER (ORDER BY devices.id) - 1"))
            .expr(Expr::val(TargetStatus::Pending.as_str()))
            .expr(Expr::val(0))
            .expr(Expr::val(now))
            .from(device::Entity)
            .cond_where(cond)
            .to_owned();
        let insert = Query::insert()
            .into_table(push_target::Entity)
            .columns([
                push_target::Column::PushId,
                push_target::Column::DeviceId,
                push_target::Column::Seq,
                push_target::Column::Status,
                push_target::Column::Wakes,
                push_target::Column::UpdatedAt,
            ])
            .select_from(select)
            .map_err(|e| CoreError::Invalid(format!("push targets: {e}")))?
            .to_owned();
        let total = txn
            .execute(&insert)
            .await
            .map_err(CoreError::storage)?
            .rows_affected();
        if total == 0 {
            let what = match &head {
                Some(h) => format!("that profile {} renders for ({})", h.identifier, h.platform),
                None => "at all".to_owned(),
            };
            let scope = match scope.id() {
                "" => scope.kind().to_owned(),
                id => format!("{} {id}", scope.kind()),
            };
            return Err(CoreError::Conflict(format!(
                "the scope {scope} reaches no enrolled device {what}: nothing was queued"
            )));
        }
        let total = i32::try_from(total)
            .map_err(|_| CoreError::Invalid("a push reaches at most 2³¹ devices".into()))?;
        let batches = (total + batch_size - 1) / batch_size;
        push::Entity::update_many()
            .col_expr(push::Column::Total, Expr::value(total))
            .col_expr(push::Column::Batches, Expr::value(batches))
            .filter(push::Column::Id.eq(id.clone()))
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        for batch in 0..batches {
            jobs::enqueue(
                &txn,
                &PushBatch {
                    push_id: id.clone(),
                    batch: batch as u32,
                    generation: 0,
                },
                now,
            )
            .await?;
        }
        jobs::enqueue(
            &txn,
            &PushProgress {
                push_id: id.clone(),
                tick: 0,
            },
            new.first_tick_at,
        )
        .await?;
        let mut entry = actor.clone();
        entry.target = format!("push:{id}");
        entry.details = serde_json::json!({
            "profile": identifier, "version": version, "action": new.action,
            "scope": scope, "devices": total,
        });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        self.find_push(&id, within).await
    }

    /// A push with its progress, within `scope`.
    pub async fn find_push(&self, id: &str, scope: &SchoolScope) -> Result<PushRecord, CoreError> {
        let row = scoped_push(&self.db, id, scope).await?;
        let counts = counts(&self.db, id).await?;
        to_push(row, counts)
    }

    /// The newest pushes within `scope`.
    pub async fn list_pushes(
        &self,
        scope: &SchoolScope,
        limit: u64,
    ) -> Result<Vec<PushRecord>, CoreError> {
        let mut query = push::Entity::find()
            .order_by_desc(push::Column::CreatedAt)
            .limit(limit);
        if let SchoolScope::Schools(ids) = scope {
            query = query.filter(push::Column::SchoolId.is_in(ids.clone()));
        }
        let rows = query.all(&self.db).await.map_err(CoreError::storage)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let counts = counts(&self.db, &row.id).await?;
            out.push(to_push(row, counts)?);
        }
        Ok(out)
    }

    /// A push's devices, optionally only those in `status`.
    pub async fn push_targets(
        &self,
        id: &str,
        status: Option<TargetStatus>,
        scope: &SchoolScope,
        limit: u64,
    ) -> Result<Vec<PushTargetRecord>, CoreError> {
        scoped_push(&self.db, id, scope).await?;
        let mut query = push_target::Entity::find()
            .filter(push_target::Column::PushId.eq(id))
            .order_by_asc(push_target::Column::Seq)
            .limit(limit);
        if let Some(status) = status {
            query = query.filter(push_target::Column::Status.eq(status.as_str()));
        }
        query
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|t| {
                Ok(PushTargetRecord {
                    status: t.status.parse()?,
                    device_id: t.device_id,
                    command_id: t.command_id,
                    wakes: t.wakes,
                    error: t.error,
                    updated_at: t.updated_at,
                })
            })
            .collect()
    }

    /// Stop planning further batches; devices already queued keep their commands.
    pub async fn pause_push(
        &self,
        id: &str,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<PushRecord, CoreError> {
        self.transition(id, scope, actor, now, |status| match status {
            PushStatus::Queued | PushStatus::Running => Ok(PushStatus::Paused),
            other => Err(format!("push {id} is {other} and cannot be paused")),
        })
        .await
    }

    /// Resume a paused push: the batches with devices still pending run again, under a new
    /// generation so their jobs are stored afresh.
    pub async fn resume_push(
        &self,
        id: &str,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<PushRecord, CoreError> {
        self.transition(id, scope, actor, now, |status| match status {
            PushStatus::Paused => Ok(PushStatus::Running),
            other => Err(format!("push {id} is {other}, not paused")),
        })
        .await
    }

    /// Cancel a push that has not finished: pending devices are skipped and commands not
    /// yet fetched are withdrawn. Cancelling a finished push is a conflict.
    pub async fn cancel_push(
        &self,
        id: &str,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<PushRecord, CoreError> {
        self.transition(id, scope, actor, now, |status| {
            if status.is_finished() {
                Err(format!(
                    "push {id} is already {status} and cannot be cancelled"
                ))
            } else {
                Ok(PushStatus::Cancelled)
            }
        })
        .await
    }

    async fn transition(
        &self,
        id: &str,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
        next: impl FnOnce(PushStatus) -> Result<PushStatus, String>,
    ) -> Result<PushRecord, CoreError> {
        let txn = self.write().await?;
        let row = scoped_push(&txn, id, scope).await?;
        let status: PushStatus = row.status.parse()?;
        let to = next(status).map_err(CoreError::Conflict)?;
        // Conditional on the status read, so a concurrent transition cannot be overwritten.
        let mut update = push::Entity::update_many()
            .col_expr(push::Column::Status, Expr::value(to.as_str()))
            .col_expr(push::Column::UpdatedAt, Expr::value(now))
            .filter(push::Column::Id.eq(id))
            .filter(push::Column::Status.eq(status.as_str()));
        if to == PushStatus::Cancelled {
            update = update.col_expr(push::Column::FinishedAt, Expr::value(Some(now)));
        }
        let generation = row.generation + 1;
        if status == PushStatus::Paused && to == PushStatus::Running {
            update = update.col_expr(push::Column::Generation, Expr::value(generation));
        }
        if update
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?
            .rows_affected
            != 1
        {
            return Err(CoreError::Conflict(format!(
                "push {id} changed meanwhile; try again"
            )));
        }
        if to == PushStatus::Cancelled {
            push_target::Entity::update_many()
                .col_expr(
                    push_target::Column::Status,
                    Expr::value(TargetStatus::Cancelled.as_str()),
                )
                .col_expr(push_target::Column::UpdatedAt, Expr::value(now))
                .filter(push_target::Column::PushId.eq(id))
                .filter(push_target::Column::Status.eq(TargetStatus::Pending.as_str()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            let withdrawn: Vec<String> = command::Entity::find()
                .select_only()
                .column(command::Column::Id)
                .filter(command::Column::PushId.eq(id))
                .filter(command::Column::Status.is_in([
                    CommandStatus::Queued.as_str(),
                    CommandStatus::NotNow.as_str(),
                ]))
                .into_tuple()
                .all(&txn)
                .await
                .map_err(CoreError::storage)?;
            for chunk in withdrawn.chunks(500) {
                command::Entity::update_many()
                    .col_expr(
                        command::Column::Status,
                        Expr::value(CommandStatus::Cancelled.as_str()),
                    )
                    .col_expr(command::Column::FinishedAt, Expr::value(Some(now)))
                    .col_expr(command::Column::UpdatedAt, Expr::value(now))
                    .filter(command::Column::Id.is_in(chunk.to_vec()))
                    .filter(command::Column::Status.is_in([
                        CommandStatus::Queued.as_str(),
                        CommandStatus::NotNow.as_str(),
                    ]))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
                push_target::Entity::update_many()
                    .col_expr(
                        push_target::Column::Status,
                        Expr::value(TargetStatus::Cancelled.as_str()),
                    )
                    .col_expr(push_target::Column::UpdatedAt, Expr::value(now))
                    .filter(push_target::Column::PushId.eq(id))
                    .filter(push_target::Column::CommandId.is_in(chunk.to_vec()))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
            }
        }
        if status == PushStatus::Paused && to == PushStatus::Running {
            let seqs: Vec<i32> = push_target::Entity::find()
                .select_only()
                .column(push_target::Column::Seq)
                .filter(push_target::Column::PushId.eq(id))
                .filter(push_target::Column::Status.eq(TargetStatus::Pending.as_str()))
                .into_tuple()
                .all(&txn)
                .await
                .map_err(CoreError::storage)?;
            let batches: BTreeSet<i32> = seqs
                .into_iter()
                .map(|seq| seq / Ord::max(row.batch_size, 1))
                .collect();
            for batch in batches {
                jobs::enqueue(
                    &txn,
                    &PushBatch {
                        push_id: id.to_owned(),
                        batch: batch as u32,
                        generation: generation as u32,
                    },
                    now,
                )
                .await?;
            }
        }
        let mut entry = actor.clone();
        entry.target = format!("push:{id}");
        entry.details = serde_json::json!({ "from": status, "to": to });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        self.find_push(id, scope).await
    }

    /// The devices a fan-out batch still has to plan, or `None` when the batch has nothing
    /// to do (the push paused, cancelled, finished, or resumed under a newer generation).
    /// Marks a queued push as running.
    pub async fn push_batch_work(
        &self,
        job: &PushBatch,
        now: DateTime<Utc>,
    ) -> Result<Option<PushBatchWork>, CoreError> {
        let Some(row) = push::Entity::find_by_id(job.push_id.as_str())
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        let status: PushStatus = row.status.parse()?;
        if !matches!(status, PushStatus::Queued | PushStatus::Running)
            || row.generation != job.generation as i32
        {
            return Ok(None);
        }
        if status == PushStatus::Queued {
            push::Entity::update_many()
                .col_expr(
                    push::Column::Status,
                    Expr::value(PushStatus::Running.as_str()),
                )
                .col_expr(push::Column::StartedAt, Expr::value(Some(now)))
                .col_expr(push::Column::UpdatedAt, Expr::value(now))
                .filter(push::Column::Id.eq(row.id.as_str()))
                .filter(push::Column::Status.eq(PushStatus::Queued.as_str()))
                .exec(&self.db)
                .await
                .map_err(CoreError::storage)?;
        }
        let first = job.batch as i32 * row.batch_size;
        let devices: Vec<String> = push_target::Entity::find()
            .select_only()
            .column(push_target::Column::DeviceId)
            .filter(push_target::Column::PushId.eq(row.id.as_str()))
            .filter(push_target::Column::Seq.gte(first))
            .filter(push_target::Column::Seq.lt(first + row.batch_size))
            .filter(push_target::Column::Status.eq(TargetStatus::Pending.as_str()))
            .order_by_asc(push_target::Column::Seq)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(Some(PushBatchWork {
            action: row.action.parse()?,
            push_id: row.id,
            identifier: row.identifier,
            version: row.version,
            generation: row.generation,
            devices,
        }))
    }

    /// Commit one fan-out batch: claim the planned devices still pending (a device another
    /// run got first is skipped), apply each device's changes, queue the commands with the
    /// push's id and wake the devices, all in one transaction. Nothing is committed when
    /// the push was paused or cancelled meanwhile.
    pub async fn commit_push_batch(
        &self,
        work: &PushBatchWork,
        planned: &[DeviceChanges],
        coalesce_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, CoreError> {
        let mut outcome = BatchOutcome::default();
        if planned.is_empty() {
            return Ok(outcome);
        }
        let txn = self.write().await?;
        let row = push::Entity::find_by_id(work.push_id.as_str())
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("push {}", work.push_id)))?;
        let status: PushStatus = row.status.parse()?;
        if status != PushStatus::Running || row.generation != work.generation {
            return Ok(outcome);
        }
        let ids: Vec<String> = planned.iter().map(|p| p.device_id.clone()).collect();
        let mut claimed: BTreeMap<String, i32> = BTreeMap::new();
        for chunk in ids.chunks(400) {
            let sql = format!(
                "UPDATE push_targets SET status = 'queued' WHERE push_id = {} AND \
                 status = 'pending' AND device_id IN ({}) RETURNING device_id, seq",
                placeholders(&txn, 1, 1),
                placeholders(&txn, 2, chunk.len())
            );
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    txn.get_database_backend(),
                    sql,
                    std::iter::once(work.push_id.clone().into())
                        .chain(chunk.iter().map(|id| id.clone().into())),
                ))
                .await
                .map_err(CoreError::storage)?;
            for row in rows {
                claimed.insert(
                    row.try_get::<String>("", "device_id")
                        .map_err(CoreError::storage)?,
                    row.try_get::<i32>("", "seq").map_err(CoreError::storage)?,
                );
            }
        }
        let mine: Vec<&DeviceChanges> = planned
            .iter()
            .filter(|p| claimed.contains_key(&p.device_id))
            .collect();
        outcome.skipped += (planned.len() - mine.len()) as u64;
        let results = apply_batch(
            &txn,
            &mine,
            Some(&work.push_id),
            &work.identifier,
            &row.created_by,
            coalesce_secs,
            now,
            &mut outcome,
        )
        .await?;
        let targets: Vec<push_target::ActiveModel> = results
            .into_iter()
            .map(|(device_id, result)| {
                match result.status {
                    TargetStatus::Failed => outcome.failed += 1,
                    TargetStatus::Unchanged => outcome.unchanged += 1,
                    _ => outcome.queued += 1,
                }
                push_target::ActiveModel {
                    push_id: Set(work.push_id.clone()),
                    seq: Set(claimed.get(&device_id).copied().unwrap_or_default()),
                    device_id: Set(device_id),
                    status: Set(result.status.as_str().to_owned()),
                    command_id: Set(result.command_id),
                    woken_at: Set(Some(now)),
                    wakes: Set(0),
                    error: Set(result.error),
                    updated_at: Set(now),
                }
            })
            .collect();
        for chunk in targets.chunks(200) {
            push_target::Entity::insert_many(chunk.to_vec())
                .on_conflict(
                    OnConflict::columns([
                        push_target::Column::PushId,
                        push_target::Column::DeviceId,
                    ])
                    .update_columns([
                        push_target::Column::Status,
                        push_target::Column::CommandId,
                        push_target::Column::WokenAt,
                        push_target::Column::Error,
                        push_target::Column::UpdatedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        // Raced devices go back to pending, for the batch to plan them again.
        for chunk in outcome.raced.chunks(400) {
            push_target::Entity::update_many()
                .col_expr(
                    push_target::Column::Status,
                    Expr::value(TargetStatus::Pending.as_str()),
                )
                .filter(push_target::Column::PushId.eq(work.push_id.as_str()))
                .filter(push_target::Column::DeviceId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        let left = push_target::Entity::find()
            .filter(push_target::Column::PushId.eq(work.push_id.as_str()))
            .filter(push_target::Column::Status.eq(TargetStatus::Pending.as_str()))
            .limit(1)
            .count(&txn)
            .await
            .map_err(CoreError::storage)?;
        if left == 0 {
            push::Entity::update_many()
                .col_expr(push::Column::QueuedAt, Expr::value(Some(now)))
                .filter(push::Column::Id.eq(work.push_id.as_str()))
                .filter(push::Column::QueuedAt.is_null())
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        commit(txn).await?;
        Ok(outcome)
    }

    /// Apply one device's changes outside any push (a reconciliation), in one transaction.
    pub async fn apply_profile_changes(
        &self,
        changes: &DeviceChanges,
        created_by: &str,
        coalesce_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, CoreError> {
        let mut outcome = BatchOutcome::default();
        let txn = self.write().await?;
        let results = apply_batch(
            &txn,
            &[changes],
            None,
            ALL_PROFILES,
            created_by,
            coalesce_secs,
            now,
            &mut outcome,
        )
        .await?;
        if !outcome.raced.is_empty() {
            // Dropping the transaction rolls it back: nothing half-applied.
            return Err(CoreError::Conflict(
                "the device's profile records changed while it was planned; plan it again".into(),
            ));
        }
        for result in results.values() {
            match result.status {
                TargetStatus::Failed => outcome.failed += 1,
                TargetStatus::Unchanged => outcome.unchanged += 1,
                _ => outcome.queued += 1,
            }
        }
        commit(txn).await?;
        Ok(outcome)
    }

    /// One progress tick: copy the devices' answers to the push's targets, fold finished
    /// commands into the devices' profile records, wake devices silent for longer than the
    /// push allows, and finish the push when no device is open any more (or it expired).
    pub async fn push_progress(
        &self,
        push_id: &str,
        coalesce_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<ProgressReport, CoreError> {
        let mut report = ProgressReport::default();
        let Some(row) = push::Entity::find_by_id(push_id)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            report.finished = true;
            return Ok(report);
        };
        let status: PushStatus = row.status.parse()?;
        if status.is_finished() {
            report.finished = true;
            return Ok(report);
        }
        // Targets following a command, with that command's status now.
        let open: Vec<OpenTarget> = push_target::Entity::find()
            .select_only()
            .column(push_target::Column::DeviceId)
            .column(push_target::Column::Status)
            .column(push_target::Column::CommandId)
            .column(push_target::Column::WokenAt)
            .filter(push_target::Column::PushId.eq(push_id))
            .filter(push_target::Column::Status.is_in(OPEN))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let command_ids: Vec<String> = open.iter().filter_map(|t| t.2.clone()).collect();
        let statuses = crate::profiles::command_statuses(&self.db, &command_ids).await?;
        let mut moves: BTreeMap<TargetStatus, Vec<String>> = BTreeMap::new();
        let mut silent = Vec::new();
        let silent_before = now - Duration::seconds(row.silent_after_secs);
        for (device_id, current, command_id, woken_at) in &open {
            let current: TargetStatus = current.parse()?;
            let next = command_id
                .as_ref()
                .and_then(|id| statuses.get(id))
                .map_or(current, |s| TargetStatus::of_command(*s));
            if next != current {
                moves.entry(next).or_default().push(device_id.clone());
            } else if !next.is_final()
                && status != PushStatus::Cancelled
                && woken_at.is_none_or(|at| at < silent_before)
            {
                silent.push(device_id.clone());
            }
        }
        let moved: Vec<String> = moves.values().flatten().cloned().collect();
        let txn = self.write().await?;
        for (next, devices) in &moves {
            for chunk in devices.chunks(500) {
                report.updated += push_target::Entity::update_many()
                    .col_expr(push_target::Column::Status, Expr::value(next.as_str()))
                    .col_expr(push_target::Column::UpdatedAt, Expr::value(now))
                    .filter(push_target::Column::PushId.eq(push_id))
                    .filter(push_target::Column::DeviceId.is_in(chunk.to_vec()))
                    .filter(push_target::Column::Status.is_in(OPEN))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?
                    .rows_affected;
            }
        }
        // A window of its own per tick, so the re-push is not swallowed by the wake-up the
        // batch enqueued for the same device.
        let window = now.timestamp() / Ord::max(coalesce_secs, 1) * Ord::max(coalesce_secs, 1) + 1;
        for chunk in silent.chunks(500) {
            push_target::Entity::update_many()
                .col_expr(push_target::Column::WokenAt, Expr::value(Some(now)))
                .col_expr(
                    push_target::Column::Wakes,
                    Expr::col(push_target::Column::Wakes).add(1),
                )
                .filter(push_target::Column::PushId.eq(push_id))
                .filter(push_target::Column::DeviceId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        wake_all(&txn, &silent, window, now).await?;
        report.woken += silent.len() as u64;
        let expired = now >= row.expires_at;
        if expired {
            push_target::Entity::update_many()
                .col_expr(
                    push_target::Column::Status,
                    Expr::value(TargetStatus::Expired.as_str()),
                )
                .col_expr(push_target::Column::UpdatedAt, Expr::value(now))
                .filter(push_target::Column::PushId.eq(push_id))
                .filter(
                    push_target::Column::Status
                        .is_in(OPEN.iter().copied().chain([TargetStatus::Pending.as_str()])),
                )
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        let still_open = push_target::Entity::find()
            .filter(push_target::Column::PushId.eq(push_id))
            .filter(
                push_target::Column::Status
                    .is_in(OPEN.iter().copied().chain([TargetStatus::Pending.as_str()])),
            )
            .limit(1)
            .count(&txn)
            .await
            .map_err(CoreError::storage)?;
        if row.queued_at.is_none() {
            // Concurrent batches on PostgreSQL each see the others' devices still pending
            // when they commit, so the last one may not notice it was last: the tick does.
            let pending = push_target::Entity::find()
                .filter(push_target::Column::PushId.eq(push_id))
                .filter(push_target::Column::Status.eq(TargetStatus::Pending.as_str()))
                .limit(1)
                .count(&txn)
                .await
                .map_err(CoreError::storage)?;
            if pending == 0 {
                // When the last command was queued, not when this tick noticed.
                let last: Option<Option<DateTime<Utc>>> = command::Entity::find()
                    .select_only()
                    .column_as(Expr::col(command::Column::CreatedAt).max(), "last")
                    .filter(command::Column::PushId.eq(push_id))
                    .into_tuple()
                    .one(&txn)
                    .await
                    .map_err(CoreError::storage)?;
                let queued_at = last.flatten().unwrap_or(now);
                push::Entity::update_many()
                    .col_expr(push::Column::QueuedAt, Expr::value(Some(queued_at)))
                    .filter(push::Column::Id.eq(push_id))
                    .filter(push::Column::QueuedAt.is_null())
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
            }
        }
        if still_open == 0 && status != PushStatus::Paused {
            let done = push::Entity::update_many()
                .col_expr(
                    push::Column::Status,
                    Expr::value(PushStatus::Completed.as_str()),
                )
                .col_expr(push::Column::FinishedAt, Expr::value(Some(now)))
                .col_expr(push::Column::UpdatedAt, Expr::value(now))
                .filter(push::Column::Id.eq(push_id))
                .filter(
                    push::Column::Status
                        .is_in([PushStatus::Queued.as_str(), PushStatus::Running.as_str()]),
                )
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?
                .rows_affected;
            if done == 1 {
                let counts = counts(&txn, push_id).await?;
                audit::record(
                    &txn,
                    &AuditEntry::new("system", "push.complete", format!("push:{push_id}"))
                        .with_details(serde_json::json!({
                            "expired": expired,
                            "counts": counts
                                .iter()
                                .map(|(s, n)| (s.as_str(), *n))
                                .collect::<BTreeMap<_, _>>(),
                        })),
                    now,
                )
                .await?;
            }
            report.finished = true;
        }
        commit(txn).await?;
        if !moved.is_empty() {
            self.settle_profile_states(Some(&moved), now).await?;
        }
        Ok(report)
    }

    /// Delete finished pushes (and their targets) that ended before `older_than`.
    pub async fn prune_pushes(&self, older_than: DateTime<Utc>) -> Result<u64, CoreError> {
        let ids: Vec<String> = push::Entity::find()
            .select_only()
            .column(push::Column::Id)
            .filter(push::Column::Status.is_in([
                PushStatus::Completed.as_str(),
                PushStatus::Cancelled.as_str(),
            ]))
            .filter(push::Column::FinishedAt.lt(older_than))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let mut deleted = 0;
        for chunk in ids.chunks(200) {
            let txn = self.write().await?;
            push_target::Entity::delete_many()
                .filter(push_target::Column::PushId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            deleted += push::Entity::delete_many()
                .filter(push::Column::Id.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?
                .rows_affected;
            commit(txn).await?;
        }
        Ok(deleted)
    }

    /// Rows in the queue tables Flotte owns, by table: what the hygiene test and the
    /// benchmark report.
    pub async fn queue_table_rows(&self) -> Result<BTreeMap<String, i64>, CoreError> {
        let mut out = BTreeMap::new();
        for table in [
            "commands",
            "pushes",
            "push_targets",
            "device_profile_state",
            "certificates",
        ] {
            let row = self
                .db
                .query_one_raw(Statement::from_string(
                    self.db.get_database_backend(),
                    format!("SELECT COUNT(*) AS n FROM {table}"),
                ))
                .await
                .map_err(CoreError::storage)?;
            let n = row
                .map(|r| r.try_get::<i64>("", "n"))
                .transpose()
                .map_err(CoreError::storage)?
                .unwrap_or(0);
            out.insert(table.to_owned(), n);
        }
        for (status, n) in self.job_counts().await? {
            *out.entry("jobs".to_owned()).or_default() += n;
            out.insert(format!("jobs.{status}"), n);
        }
        Ok(out)
    }

    /// The profile identifiers with a head row, so a reconciliation knows which expected
    /// identifiers still exist as templates.
    pub async fn profile_identifiers(&self) -> Result<BTreeSet<String>, CoreError> {
        let rows: Vec<String> = profile_template::Entity::find()
            .select_only()
            .column(profile_template::Column::Identifier)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(rows.into_iter().collect())
    }
}

/// A push target that follows a command: device, target status, command id, command update time.
type OpenTarget = (String, String, Option<String>, Option<DateTime<Utc>>);
