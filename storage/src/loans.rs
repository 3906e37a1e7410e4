//! Device loans to pupils: lending (one or a cart), returning, the lists staff work
//! from, and what the worker does with loans (personalisation, overdue notices,
//! borrowers who left, retention).
//!
//! Each use case is one write transaction with its audit rows and follow-up jobs. The
//! rules themselves are `flotte_core::loans`; this module gathers their facts inside
//! the transaction, within the caller's schools. At most one open loan per device is
//! held by the database (`idx_loans_one_open_per_device`), so two staff members lending
//! the same device at once cannot both succeed, whatever the engine's isolation.

use crate::db::{WriteTxn, commit, db_err};
use crate::directory::role_str;
use crate::entity::{
    class, class_member, command, device, loan, loan_history, person, person_school, school,
};
use crate::{NewCommand, Store, audit, jobs};
use chrono::{DateTime, NaiveDate, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::command::CommandStatus;
use flotte_core::device::Platform;
use flotte_core::directory::Role;
use flotte_core::jobs::{MaintainCertificates, PersonaliseLoanDevice, ReconcileDevice, WakeDevice};
use flotte_core::loans::{
    self, BorrowerFacts, Condition, DeviceFacts, LoanError, LoanPolicy, LoanRuleError, NameFacts,
};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition as Where, ConnectionTrait, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Where a loan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoanStatus {
    Open,
    Overdue,
    Returned,
}

/// The lent device, as a loan shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LoanDevice {
    pub id: String,
    pub platform: Platform,
    pub asset_tag: Option<String>,
    pub serial_number: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
}

impl LoanDevice {
    /// How staff know the device: its asset tag, else its serial number.
    pub fn label(&self) -> String {
        self.asset_tag
            .clone()
            .or_else(|| self.serial_number.clone())
            .unwrap_or_else(|| self.id.clone())
    }
}

/// The borrower, as a loan shows them (nothing beyond what the contract needs).
#[derive(Debug, Clone, Serialize)]
pub struct LoanPerson {
    pub id: String,
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    /// `active`, `disabled` or `departed`.
    pub state: String,
}

/// The lending school.
#[derive(Debug, Clone, Serialize)]
pub struct LoanSchool {
    pub id: String,
    pub code: String,
    pub name: String,
}

/// A loan with what lists and the contract show.
#[derive(Debug, Clone, Serialize)]
pub struct LoanRecord {
    pub id: String,
    pub status: LoanStatus,
    pub device: LoanDevice,
    pub person: LoanPerson,
    pub school: LoanSchool,
    /// The pupil's class at the school when the device was lent.
    pub class_name: Option<String>,
    /// User name of whoever handed the device out.
    pub lent_by: String,
    pub lent_at: DateTime<Utc>,
    pub due_date: Option<NaiveDate>,
    pub accessories: Vec<String>,
    pub condition_out: Option<Condition>,
    pub returned_at: Option<DateTime<Utc>>,
    /// User name of whoever took the device back.
    pub returned_to: Option<String>,
    pub condition_in: Option<Condition>,
    pub accessories_in: Option<Vec<String>>,
    pub damage: Option<String>,
    pub notes: Option<String>,
    /// `departed`, `disabled` or `left_school`: the school has to act.
    pub alert: Option<String>,
    pub alert_at: Option<DateTime<Utc>>,
    pub overdue_notified_at: Option<DateTime<Utc>>,
    pub personalised_at: Option<DateTime<Utc>>,
    /// The erase command a confirmed return queued.
    pub erase_command_id: Option<String>,
}

/// A loan to record. `device` is a device id, serial number, UDID or asset tag;
/// `person` a person id or user name.
#[derive(Debug, Clone)]
pub struct NewLoan {
    pub device: String,
    pub person: String,
    pub due: NaiveDate,
    pub accessories: Vec<String>,
    pub condition_out: Option<Condition>,
    pub notes: Option<String>,
}

/// What comes back with a device.
#[derive(Debug, Clone)]
pub struct ReturnLoan {
    pub condition_in: Condition,
    pub accessories_in: Vec<String>,
    pub damage: Option<String>,
    pub notes: Option<String>,
    /// The erase command to queue (the configured return action, confirmed by staff).
    pub erase: Option<NewCommand>,
}

/// Which loans a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoanState {
    /// Not returned (overdue ones included).
    #[default]
    Open,
    /// Not returned and past the due day.
    Overdue,
    /// Not returned and the borrower left or was disabled.
    Flagged,
    Returned,
    All,
}

/// Filters for the loan list, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct LoanFilter {
    pub state: LoanState,
    /// School id or code.
    pub school: Option<String>,
    /// The class the pupil was in when the device was lent.
    pub class: Option<String>,
    /// Person id or user name.
    pub person: Option<String>,
    /// Device id, serial number or asset tag.
    pub device: Option<String>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// Counts for a school's start page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LoanCounts {
    pub open: u64,
    pub overdue: u64,
    pub flagged: u64,
}

/// What the worker needs to name a lent device.
#[derive(Debug, Clone)]
pub struct PersonalisationFacts {
    pub loan_id: String,
    pub device_id: String,
    pub platform: Platform,
    pub names: NameFacts,
}

/// A loan whose borrower left or was disabled, newly flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedLoan {
    pub loan_id: String,
    pub school_id: String,
    pub alert: String,
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn condition(text: Option<&str>) -> Option<Condition> {
    text.and_then(|t| t.parse().ok())
}

/// `loans.school_id IN scope`.
fn loans_in(scope: &SchoolScope) -> Where {
    match scope {
        SchoolScope::All => Where::all(),
        SchoolScope::Schools(ids) => Where::all().add(loan::Column::SchoolId.is_in(ids.clone())),
    }
}

/// Lower-case equality, for keys people type or scan.
fn same_text(
    column: impl sea_orm::sea_query::IntoColumnRef,
    key: &str,
) -> sea_orm::sea_query::SimpleExpr {
    Expr::expr(Func::lower(Expr::col(column))).eq(key.trim().to_lowercase())
}

/// A device by id, UDID, serial number or asset tag (the last two regardless of case),
/// within `scope`.
pub(crate) async fn device_by_key(
    conn: &impl ConnectionTrait,
    key: &str,
    scope: &SchoolScope,
) -> Result<Option<device::Model>, CoreError> {
    let key = key.trim();
    if key.is_empty() {
        return Ok(None);
    }
    crate::devices::scoped(device::Entity::find(), scope)
        .filter(
            Where::any()
                .add(device::Column::Id.eq(key))
                .add(device::Column::Udid.eq(key))
                .add(same_text(device::Column::SerialNumber, key))
                .add(same_text(device::Column::AssetTag, key)),
        )
        .one(conn)
        .await
        .map_err(CoreError::storage)
}

/// A person by id or user name who belongs to a school in `scope`.
async fn person_by_key(
    conn: &impl ConnectionTrait,
    key: &str,
    scope: &SchoolScope,
) -> Result<Option<person::Model>, CoreError> {
    let key = key.trim();
    let mut q = person::Entity::find().filter(
        Where::any()
            .add(person::Column::Id.eq(key))
            .add(same_text(person::Column::Username, key)),
    );
    if let SchoolScope::Schools(ids) = scope {
        q = q.filter(
            person::Column::Id.in_subquery(
                Query::select()
                    .column(person_school::Column::PersonId)
                    .from(person_school::Entity)
                    .and_where(person_school::Column::SchoolId.is_in(ids.clone()))
                    .to_owned(),
            ),
        );
    }
    q.one(conn).await.map_err(CoreError::storage)
}

async fn open_loan_of(
    conn: &impl ConnectionTrait,
    device_id: &str,
) -> Result<Option<loan::Model>, CoreError> {
    loan::Entity::find()
        .filter(loan::Column::DeviceId.eq(device_id))
        .filter(loan::Column::ReturnedAt.is_null())
        .one(conn)
        .await
        .map_err(CoreError::storage)
}

/// Schools where the person is a pupil.
async fn pupil_schools(
    conn: &impl ConnectionTrait,
    person_id: &str,
) -> Result<Vec<String>, CoreError> {
    Ok(person_school::Entity::find()
        .filter(person_school::Column::PersonId.eq(person_id))
        .filter(person_school::Column::Role.eq(role_str(Role::Pupil)))
        .all(conn)
        .await
        .map_err(CoreError::storage)?
        .into_iter()
        .map(|m| m.school_id)
        .collect())
}

/// The person's class (not workgroup) at `school_id`, if any.
async fn class_at(
    conn: &impl ConnectionTrait,
    person_id: &str,
    school_id: &str,
) -> Result<Option<String>, CoreError> {
    Ok(class::Entity::find()
        .filter(class::Column::SchoolId.eq(school_id))
        .filter(class::Column::Kind.eq("class"))
        .filter(
            class::Column::Id.in_subquery(
                Query::select()
                    .column(class_member::Column::ClassId)
                    .from(class_member::Entity)
                    .and_where(class_member::Column::PersonId.eq(person_id))
                    .to_owned(),
            ),
        )
        .order_by_asc(class::Column::Name)
        .one(conn)
        .await
        .map_err(CoreError::storage)?
        .map(|c| c.name))
}

/// Queue a command on the transaction, with the job that wakes the device (as
/// `Store::queue_command` does, but inside a loan's transaction).
async fn insert_command(
    conn: &impl ConnectionTrait,
    device_id: &str,
    new: &NewCommand,
    created_by: &str,
    coalesce_secs: i64,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    command::ActiveModel {
        id: Set(id.clone()),
        device_id: Set(device_id.to_owned()),
        request_type: Set(new.request_type.clone()),
        payload: Set(new.payload.to_string()),
        status: Set(CommandStatus::Queued.as_str().to_owned()),
        created_by: Set(created_by.to_owned()),
        push_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        sent_at: Set(None),
        finished_at: Set(None),
        result: Set(None),
        error: Set(None),
    }
    .insert(conn)
    .await
    .map_err(db_err("command"))?;
    jobs::enqueue(
        conn,
        &WakeDevice {
            device_id: device_id.to_owned(),
            window: now.timestamp() / Ord::max(coalesce_secs, 1),
        },
        now,
    )
    .await?;
    Ok(id)
}

/// The user name part of an audit actor (`staff:anna` → `anna`).
fn actor_name(actor: &AuditEntry) -> String {
    actor
        .actor
        .split_once(':')
        .map(|(_, name)| name.to_owned())
        .unwrap_or_else(|| actor.actor.clone())
}

/// A failed insert that hit `idx_loans_one_open_per_device`: another loan of the device
/// committed first.
fn is_unique_clash(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

enum LendFailure {
    Failed(LoanError),
    /// The device got an open loan between our check and our insert.
    Raced {
        device_id: String,
        label: String,
    },
}

impl From<CoreError> for LendFailure {
    fn from(e: CoreError) -> Self {
        LendFailure::Failed(e.into())
    }
}

impl From<LoanRuleError> for LendFailure {
    fn from(e: LoanRuleError) -> Self {
        LendFailure::Failed(e.into())
    }
}

/// What every loan of one lending shares.
struct Lending<'a> {
    policy: &'a LoanPolicy,
    scope: &'a SchoolScope,
    actor: &'a AuditEntry,
    now: DateTime<Utc>,
    coalesce_secs: i64,
}

impl Store {
    async fn lend_in(
        &self,
        txn: &WriteTxn,
        new: &NewLoan,
        ctx: &Lending<'_>,
    ) -> Result<String, LendFailure> {
        let Lending {
            policy,
            scope,
            actor,
            now,
            coalesce_secs,
        } = *ctx;
        let device = device_by_key(txn, &new.device, scope)
            .await?
            .ok_or_else(|| LoanRuleError::DeviceNotFound {
                device: new.device.trim().to_owned(),
            })?;
        let label = device
            .asset_tag
            .clone()
            .or_else(|| device.serial_number.clone())
            .unwrap_or_else(|| device.id.clone());
        let open = open_loan_of(txn, &device.id).await?;
        let pupil = person_by_key(txn, &new.person, scope)
            .await?
            .ok_or_else(|| LoanRuleError::PupilNotFound {
                person: new.person.trim().to_owned(),
            })?;
        let facts = DeviceFacts {
            label: label.clone(),
            school_id: device.school_id.clone(),
            open_loan: open.map(|l| l.id),
        };
        let borrower = BorrowerFacts {
            label: pupil.username.clone(),
            state: pupil.state.clone(),
            pupil_at: pupil_schools(txn, &pupil.id).await?,
        };
        let accessories = loans::check_lend(
            &facts,
            &borrower,
            new.due,
            &new.accessories,
            policy,
            now.date_naive(),
        )?;
        let school_id = facts.school_id.unwrap_or_default();
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = loan::ActiveModel {
            id: Set(id.clone()),
            device_id: Set(device.id.clone()),
            person_id: Set(pupil.id.clone()),
            school_id: Set(school_id.clone()),
            lent_by: Set(actor_name(actor)),
            lent_at: Set(now),
            due_at: Set(Some(loans::due_at(new.due))),
            accessories: Set(to_json(&accessories)),
            condition_out: Set(new.condition_out.map(|c| c.as_str().to_owned())),
            returned_at: Set(None),
            returned_to: Set(None),
            condition_in: Set(None),
            damage: Set(None),
            notes: Set(new.notes.clone().filter(|n| !n.trim().is_empty())),
            created_at: Set(now),
            updated_at: Set(now),
            class_name: Set(class_at(txn, &pupil.id, &school_id).await?),
            accessories_in: Set(None),
            alert: Set(None),
            alert_at: Set(None),
            overdue_notified_at: Set(None),
            personalised_at: Set(None),
            erase_command_id: Set(None),
        }
        .insert(txn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_clash(&e) => {
                return Err(LendFailure::Raced {
                    device_id: device.id,
                    label,
                });
            }
            Err(e) => return Err(db_err("loan")(e).into()),
        }
        device::Entity::update_many()
            .col_expr(
                device::Column::AssignedPersonId,
                Expr::value(pupil.id.clone()),
            )
            .col_expr(device::Column::UpdatedAt, Expr::value(now))
            .filter(device::Column::Id.eq(device.id.clone()))
            .exec(txn)
            .await
            .map_err(CoreError::storage)?;
        jobs::enqueue(
            txn,
            &PersonaliseLoanDevice {
                loan_id: id.clone(),
            },
            now,
        )
        .await?;
        jobs::enqueue(
            txn,
            &ReconcileDevice {
                device_id: device.id.clone(),
                window: now.timestamp() / Ord::max(coalesce_secs, 1),
            },
            now,
        )
        .await?;
        let mut entry = actor.clone();
        entry.action = "loan.lend".into();
        entry.target = format!("loan:{id}");
        entry.details = serde_json::json!({
            "device": device.id, "person": pupil.id, "school": school_id,
            "due": new.due, "accessories": accessories,
        });
        audit::record(txn, &entry, now).await?;
        Ok(id)
    }

    /// After a lost race, name the loan that won (it has committed by now).
    async fn raced(&self, device_id: &str, label: &str) -> LoanError {
        match open_loan_of(&self.db, device_id).await {
            Ok(Some(open)) => LoanRuleError::AlreadyLent {
                device: label.to_owned(),
                loan: open.id,
            }
            .into(),
            Ok(None) => LoanRuleError::LentMeanwhile {
                device: label.to_owned(),
            }
            .into(),
            Err(e) => e.into(),
        }
    }

    /// Lend a device to a pupil of its school: the loan, the device's assignment to the
    /// pupil, the jobs that personalise it, and the audit row, in one transaction.
    pub async fn lend(
        &self,
        new: &NewLoan,
        policy: &LoanPolicy,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
        coalesce_secs: i64,
    ) -> Result<LoanRecord, LoanError> {
        let txn = self.write().await?;
        let ctx = Lending {
            policy,
            scope,
            actor,
            now,
            coalesce_secs,
        };
        let id = match self.lend_in(&txn, new, &ctx).await {
            Ok(id) => id,
            Err(LendFailure::Failed(e)) => return Err(e),
            Err(LendFailure::Raced { device_id, label }) => {
                drop(txn);
                return Err(self.raced(&device_id, &label).await);
            }
        };
        commit(txn).await?;
        Ok(self.find_loan(&id, scope, now).await?)
    }

    /// Lend a cart of devices, one to each pupil: all or nothing. An error names the
    /// device and pupil of the pair that failed.
    pub async fn lend_many(
        &self,
        pairs: &[NewLoan],
        policy: &LoanPolicy,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
        coalesce_secs: i64,
    ) -> Result<Vec<LoanRecord>, LoanError> {
        let keys: Vec<(String, String)> = pairs
            .iter()
            .map(|p| {
                (
                    p.device.trim().to_lowercase(),
                    p.person.trim().to_lowercase(),
                )
            })
            .collect();
        loans::check_pairs(&keys)?;
        let txn = self.write().await?;
        let ctx = Lending {
            policy,
            scope,
            actor,
            now,
            coalesce_secs,
        };
        let mut ids = Vec::new();
        for new in pairs {
            let about = |e: LoanError| match e {
                LoanError::Rule(rule) => LoanError::Rule(LoanRuleError::InPair {
                    device: new.device.trim().to_owned(),
                    person: new.person.trim().to_owned(),
                    error: Box::new(rule),
                }),
                other => other,
            };
            match self.lend_in(&txn, new, &ctx).await {
                Ok(id) => ids.push(id),
                Err(LendFailure::Failed(e)) => return Err(about(e)),
                Err(LendFailure::Raced { device_id, label }) => {
                    drop(txn);
                    return Err(about(self.raced(&device_id, &label).await));
                }
            }
        }
        let mut entry = actor.clone();
        entry.action = "loan.lend_many".into();
        entry.target = "loans".into();
        entry.details = serde_json::json!({ "loans": ids });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.push(self.find_loan(id, scope, now).await?);
        }
        Ok(out)
    }

    /// Take a device back: the loan closes with the condition and what came back, the
    /// device is no longer assigned to the pupil, the pupil's certificates for it are
    /// revoked, the confirmed return action is queued, and the device is reconciled (its
    /// personal profiles go), all in one transaction with the audit row.
    #[allow(clippy::too_many_arguments)]
    pub async fn return_loan(
        &self,
        loan_id: &str,
        ret: &ReturnLoan,
        known_accessories: &[String],
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
        coalesce_secs: i64,
    ) -> Result<LoanRecord, LoanError> {
        let accessories_in = loans::normalise_accessories(&ret.accessories_in, known_accessories)?;
        let txn = self.write().await?;
        let row = loan::Entity::find_by_id(loan_id.trim())
            .filter(loans_in(scope))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| LoanRuleError::LoanNotFound {
                loan: loan_id.trim().to_owned(),
            })?;
        loans::check_return(&row.id, row.returned_at)?;
        let device = device::Entity::find_by_id(row.device_id.clone())
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {}", row.device_id)))?;
        let erase_command_id = match &ret.erase {
            Some(new) => {
                Some(insert_command(&txn, &device.id, new, &actor.actor, coalesce_secs, now).await?)
            }
            None => None,
        };
        let closed = loan::Entity::update_many()
            .col_expr(loan::Column::ReturnedAt, Expr::value(now))
            .col_expr(loan::Column::ReturnedTo, Expr::value(actor_name(actor)))
            .col_expr(
                loan::Column::ConditionIn,
                Expr::value(ret.condition_in.as_str()),
            )
            .col_expr(
                loan::Column::AccessoriesIn,
                Expr::value(to_json(&accessories_in)),
            )
            .col_expr(
                loan::Column::Damage,
                Expr::value(ret.damage.clone().filter(|d| !d.trim().is_empty())),
            )
            .col_expr(
                loan::Column::Notes,
                Expr::value(
                    ret.notes
                        .clone()
                        .filter(|n| !n.trim().is_empty())
                        .or(row.notes.clone()),
                ),
            )
            .col_expr(
                loan::Column::EraseCommandId,
                Expr::value(erase_command_id.clone()),
            )
            .col_expr(loan::Column::UpdatedAt, Expr::value(now))
            .filter(loan::Column::Id.eq(row.id.clone()))
            .filter(loan::Column::ReturnedAt.is_null())
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        if closed.rows_affected == 0 {
            // Someone else took it back between our read and our write (PostgreSQL).
            return Err(LoanRuleError::ReturnedMeanwhile { loan: row.id }.into());
        }
        device::Entity::update_many()
            .col_expr(
                device::Column::AssignedPersonId,
                Expr::value(Option::<String>::None),
            )
            .col_expr(device::Column::UpdatedAt, Expr::value(now))
            .filter(device::Column::Id.eq(device.id.clone()))
            .filter(device::Column::AssignedPersonId.eq(row.person_id.clone()))
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        // The pupil's certificates for this device, through the table the profiles
        // module issues them into: revoked now, the CRL refreshed by the next job.
        let revoked = txn
            .execute(
                &Query::update()
                    .table(Alias::new("certificates"))
                    .value(Alias::new("revoked_at"), now)
                    .value(Alias::new("is_current"), false)
                    .value(Alias::new("revocation_reason"), "loan_ended")
                    .and_where(Expr::col(Alias::new("kind")).eq("eap_person"))
                    .and_where(Expr::col(Alias::new("person_id")).eq(row.person_id.clone()))
                    .and_where(Expr::col(Alias::new("device_id")).eq(device.id.clone()))
                    .and_where(Expr::col(Alias::new("revoked_at")).is_null())
                    .to_owned(),
            )
            .await
            .map_err(CoreError::storage)?
            .rows_affected();
        if revoked > 0 {
            jobs::enqueue(
                &txn,
                &MaintainCertificates {
                    requested_by: format!("loan:{}", row.id),
                },
                now,
            )
            .await?;
        }
        jobs::enqueue(
            &txn,
            &ReconcileDevice {
                device_id: device.id.clone(),
                window: now.timestamp() / Ord::max(coalesce_secs, 1),
            },
            now,
        )
        .await?;
        let mut entry = actor.clone();
        entry.action = "loan.return".into();
        entry.target = format!("loan:{}", row.id);
        entry.details = serde_json::json!({
            "device": device.id, "person": row.person_id, "condition": ret.condition_in.as_str(),
            "damage": ret.damage.as_deref().is_some_and(|d| !d.trim().is_empty()),
            "erase_command": erase_command_id, "certificates_revoked": revoked,
        });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(self.find_loan(&row.id, scope, now).await?)
    }

    /// One loan, within the caller's schools.
    pub async fn find_loan(
        &self,
        id: &str,
        scope: &SchoolScope,
        now: DateTime<Utc>,
    ) -> Result<LoanRecord, CoreError> {
        let row = loan::Entity::find_by_id(id.trim())
            .filter(loans_in(scope))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("loan {}", id.trim())))?;
        self.hydrate(vec![row], now)
            .await?
            .pop()
            .ok_or_else(|| CoreError::NotFound(format!("loan {}", id.trim())))
    }

    /// Loans within the caller's schools. Open lists come by school, class and name;
    /// the others newest first.
    pub async fn list_loans(
        &self,
        filter: &LoanFilter,
        scope: &SchoolScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoanRecord>, CoreError> {
        let mut q = loan::Entity::find().filter(loans_in(scope));
        q = match filter.state {
            LoanState::Open => q.filter(loan::Column::ReturnedAt.is_null()),
            LoanState::Overdue => q
                .filter(loan::Column::ReturnedAt.is_null())
                .filter(loan::Column::DueAt.lt(loans::overdue_before(now))),
            LoanState::Flagged => q
                .filter(loan::Column::ReturnedAt.is_null())
                .filter(loan::Column::Alert.is_not_null()),
            LoanState::Returned => q.filter(loan::Column::ReturnedAt.is_not_null()),
            LoanState::All => q,
        };
        // An unknown school, pupil or device matches nothing rather than everything.
        if let Some(key) = filter.school.as_deref().filter(|k| !k.trim().is_empty()) {
            let id = school::Entity::find()
                .filter(
                    Where::any()
                        .add(school::Column::Id.eq(key.trim()))
                        .add(same_text(school::Column::Code, key)),
                )
                .one(&self.db)
                .await
                .map_err(CoreError::storage)?
                .map(|s| s.id)
                .unwrap_or_default();
            q = q.filter(loan::Column::SchoolId.eq(id));
        }
        if let Some(class) = filter.class.as_deref().filter(|k| !k.trim().is_empty()) {
            q = q.filter(same_text(loan::Column::ClassName, class));
        }
        if let Some(key) = filter.person.as_deref().filter(|k| !k.trim().is_empty()) {
            let id = person_by_key(&self.db, key, scope)
                .await?
                .map(|p| p.id)
                .unwrap_or_default();
            q = q.filter(loan::Column::PersonId.eq(id));
        }
        if let Some(key) = filter.device.as_deref().filter(|k| !k.trim().is_empty()) {
            let id = device_by_key(&self.db, key, &SchoolScope::All)
                .await?
                .map(|d| d.id)
                .unwrap_or_default();
            q = q.filter(loan::Column::DeviceId.eq(id));
        }
        let by_name = matches!(
            filter.state,
            LoanState::Open | LoanState::Overdue | LoanState::Flagged
        );
        q = if by_name {
            q.order_by_asc(loan::Column::SchoolId)
                .order_by_asc(loan::Column::ClassName)
        } else {
            q.order_by_desc(loan::Column::LentAt)
        };
        let rows = q
            .order_by_asc(loan::Column::Id)
            .limit(Ord::min(filter.limit.unwrap_or(500), 5000))
            .offset(filter.offset.unwrap_or(0))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let mut out = self.hydrate(rows, now).await?;
        if by_name {
            out.sort_by(|a, b| {
                (
                    &a.school.code,
                    &a.class_name,
                    &a.person.family_name,
                    &a.person.given_name,
                )
                    .cmp(&(
                        &b.school.code,
                        &b.class_name,
                        &b.person.family_name,
                        &b.person.given_name,
                    ))
            });
        }
        Ok(out)
    }

    /// Open, overdue and flagged loans within the caller's schools.
    pub async fn loan_counts(
        &self,
        scope: &SchoolScope,
        now: DateTime<Utc>,
    ) -> Result<LoanCounts, CoreError> {
        let count = |extra: Where| {
            let q = loan::Entity::find()
                .filter(loans_in(scope))
                .filter(loan::Column::ReturnedAt.is_null())
                .filter(extra);
            async move { q.count(&self.db).await.map_err(CoreError::storage) }
        };
        use sea_orm::PaginatorTrait;
        Ok(LoanCounts {
            open: count(Where::all()).await?,
            overdue: count(Where::all().add(loan::Column::DueAt.lt(loans::overdue_before(now))))
                .await?,
            flagged: count(Where::all().add(loan::Column::Alert.is_not_null())).await?,
        })
    }

    /// Open loans by person id, for the pupils a list shows.
    pub async fn open_loans_of_people(
        &self,
        person_ids: &[String],
        scope: &SchoolScope,
    ) -> Result<BTreeMap<String, Vec<String>>, CoreError> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for chunk in person_ids.chunks(500) {
            for row in loan::Entity::find()
                .filter(loans_in(scope))
                .filter(loan::Column::ReturnedAt.is_null())
                .filter(loan::Column::PersonId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
            {
                out.entry(row.person_id).or_default().push(row.id);
            }
        }
        Ok(out)
    }

    async fn hydrate(
        &self,
        rows: Vec<loan::Model>,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoanRecord>, CoreError> {
        let device_ids: BTreeSet<String> = rows.iter().map(|r| r.device_id.clone()).collect();
        let person_ids: BTreeSet<String> = rows.iter().map(|r| r.person_id.clone()).collect();
        let mut devices = BTreeMap::new();
        let mut people = BTreeMap::new();
        let ids: Vec<String> = device_ids.into_iter().collect();
        for chunk in ids.chunks(500) {
            for d in device::Entity::find()
                .filter(device::Column::Id.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
            {
                devices.insert(d.id.clone(), d);
            }
        }
        let ids: Vec<String> = person_ids.into_iter().collect();
        for chunk in ids.chunks(500) {
            for p in person::Entity::find()
                .filter(person::Column::Id.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
            {
                people.insert(p.id.clone(), p);
            }
        }
        let schools: BTreeMap<String, school::Model> = school::Entity::find()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let d = devices
                .get(&r.device_id)
                .ok_or_else(|| CoreError::NotFound(format!("device {}", r.device_id)))?;
            let p = people
                .get(&r.person_id)
                .ok_or_else(|| CoreError::NotFound(format!("person {}", r.person_id)))?;
            let s = schools
                .get(&r.school_id)
                .ok_or_else(|| CoreError::NotFound(format!("school {}", r.school_id)))?;
            let status = if r.returned_at.is_some() {
                LoanStatus::Returned
            } else if loans::is_overdue(r.due_at, false, now) {
                LoanStatus::Overdue
            } else {
                LoanStatus::Open
            };
            out.push(LoanRecord {
                id: r.id,
                status,
                device: LoanDevice {
                    id: d.id.clone(),
                    platform: d.platform.parse()?,
                    asset_tag: d.asset_tag.clone(),
                    serial_number: d.serial_number.clone(),
                    model: d.model.clone(),
                    model_name: d.model_name.clone(),
                },
                person: LoanPerson {
                    id: p.id.clone(),
                    username: p.username.clone(),
                    given_name: p.given_name.clone(),
                    family_name: p.family_name.clone(),
                    state: p.state.clone(),
                },
                school: LoanSchool {
                    id: s.id.clone(),
                    code: s.code.clone(),
                    name: s.name.clone(),
                },
                class_name: r.class_name,
                lent_by: r.lent_by,
                lent_at: r.lent_at,
                due_date: r.due_at.map(|d| d.date_naive()),
                accessories: json_list(&r.accessories),
                condition_out: condition(r.condition_out.as_deref()),
                returned_at: r.returned_at,
                returned_to: r.returned_to,
                condition_in: condition(r.condition_in.as_deref()),
                accessories_in: r.accessories_in.as_deref().map(json_list),
                damage: r.damage,
                notes: r.notes,
                alert: r.alert,
                alert_at: r.alert_at,
                overdue_notified_at: r.overdue_notified_at,
                personalised_at: r.personalised_at,
                erase_command_id: r.erase_command_id,
            });
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------
    // What the worker does with loans.

    /// The facts for naming a lent device, unless the loan was returned or personalised.
    pub async fn loan_to_personalise(
        &self,
        loan_id: &str,
    ) -> Result<Option<PersonalisationFacts>, CoreError> {
        let Some(row) = loan::Entity::find_by_id(loan_id)
            .filter(loan::Column::ReturnedAt.is_null())
            .filter(loan::Column::PersonalisedAt.is_null())
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        let mut records = self
            .hydrate(vec![row], chrono::DateTime::UNIX_EPOCH)
            .await?;
        let Some(r) = records.pop() else {
            return Ok(None);
        };
        Ok(Some(PersonalisationFacts {
            loan_id: r.id,
            device_id: r.device.id.clone(),
            platform: r.device.platform,
            names: NameFacts {
                given_name: r.person.given_name,
                family_name: r.person.family_name,
                class_name: r.class_name,
                asset_tag: r.device.asset_tag,
                serial: r.device.serial_number,
                school_code: Some(r.school.code),
            },
        }))
    }

    /// Queue a lent device's personal configuration, once per loan: `false` when the loan
    /// was returned or personalised meanwhile (nothing is queued then).
    pub async fn record_personalisation(
        &self,
        loan_id: &str,
        device_name: &str,
        commands: &[NewCommand],
        coalesce_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let txn = self.write().await?;
        let Some(row) = loan::Entity::find_by_id(loan_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(false);
        };
        let claimed = loan::Entity::update_many()
            .col_expr(loan::Column::PersonalisedAt, Expr::value(now))
            .filter(loan::Column::Id.eq(loan_id))
            .filter(loan::Column::ReturnedAt.is_null())
            .filter(loan::Column::PersonalisedAt.is_null())
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        if claimed.rows_affected == 0 {
            return Ok(false);
        }
        let mut queued = Vec::new();
        for new in commands {
            queued.push(
                insert_command(&txn, &row.device_id, new, "system", coalesce_secs, now).await?,
            );
        }
        let entry = AuditEntry::new("system", "loan.personalise", format!("loan:{loan_id}"))
            .with_details(serde_json::json!({
                "device": row.device_id, "device_name": device_name, "commands": queued,
            }));
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(true)
    }

    /// Open loans past their due day whose school has not been told yet.
    pub async fn overdue_unnotified(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<LoanRecord>, CoreError> {
        let rows = loan::Entity::find()
            .filter(loan::Column::ReturnedAt.is_null())
            .filter(loan::Column::DueAt.lt(loans::overdue_before(now)))
            .filter(loan::Column::OverdueNotifiedAt.is_null())
            .order_by_asc(loan::Column::SchoolId)
            .order_by_asc(loan::Column::DueAt)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        self.hydrate(rows, now).await
    }

    /// Record that a school was told about these overdue loans (and to how many addresses).
    pub async fn mark_overdue_notified(
        &self,
        school_id: &str,
        loan_ids: &[String],
        recipients: usize,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        loan::Entity::update_many()
            .col_expr(loan::Column::OverdueNotifiedAt, Expr::value(now))
            .filter(loan::Column::Id.is_in(loan_ids.to_vec()))
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        let entry = AuditEntry::new("system", "loans.overdue", format!("school:{school_id}"))
            .with_details(serde_json::json!({ "loans": loan_ids, "mailed_to": recipients }));
        audit::record(&txn, &entry, now).await?;
        commit(txn).await
    }

    /// Flag open loans whose borrower departed, was disabled or is no longer a pupil of
    /// the lending school, and clear flags that no longer hold. Returns the new flags.
    pub async fn flag_borrowers(&self, now: DateTime<Utc>) -> Result<Vec<FlaggedLoan>, CoreError> {
        let txn = self.write().await?;
        let open = loan::Entity::find()
            .filter(loan::Column::ReturnedAt.is_null())
            .all(&txn)
            .await
            .map_err(CoreError::storage)?;
        let person_ids: Vec<String> = open
            .iter()
            .map(|l| l.person_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut states = BTreeMap::new();
        let mut pupil_at: BTreeSet<(String, String)> = BTreeSet::new();
        for chunk in person_ids.chunks(500) {
            for p in person::Entity::find()
                .filter(person::Column::Id.is_in(chunk.to_vec()))
                .all(&txn)
                .await
                .map_err(CoreError::storage)?
            {
                states.insert(p.id, p.state);
            }
            for m in person_school::Entity::find()
                .filter(person_school::Column::PersonId.is_in(chunk.to_vec()))
                .filter(person_school::Column::Role.eq(role_str(Role::Pupil)))
                .all(&txn)
                .await
                .map_err(CoreError::storage)?
            {
                pupil_at.insert((m.person_id, m.school_id));
            }
        }
        let mut flagged = Vec::new();
        for l in open {
            let state = states.get(&l.person_id).map_or("departed", String::as_str);
            let here = pupil_at.contains(&(l.person_id.clone(), l.school_id.clone()));
            let alert = loans::borrower_alert(state, here).map(|a| a.as_str().to_owned());
            if alert == l.alert {
                continue;
            }
            loan::Entity::update_many()
                .col_expr(loan::Column::Alert, Expr::value(alert.clone()))
                .col_expr(
                    loan::Column::AlertAt,
                    Expr::value(alert.as_ref().map(|_| now)),
                )
                .col_expr(loan::Column::UpdatedAt, Expr::value(now))
                .filter(loan::Column::Id.eq(l.id.clone()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            let action = if alert.is_some() {
                "loan.flag"
            } else {
                "loan.unflag"
            };
            let entry = AuditEntry::new("system", action, format!("loan:{}", l.id))
                .with_details(serde_json::json!({ "alert": alert, "person": l.person_id }));
            audit::record(&txn, &entry, now).await?;
            if let Some(alert) = alert {
                flagged.push(FlaggedLoan {
                    loan_id: l.id,
                    school_id: l.school_id,
                    alert,
                });
            }
        }
        commit(txn).await?;
        Ok(flagged)
    }

    /// Anonymise returned loans past their retention: each becomes an anonymous device
    /// history row (no person, no free text) and the loan is deleted; the audit log keeps
    /// that it happened. Loans with recorded damage are kept `days_damaged` days.
    pub async fn anonymise_returned_loans(
        &self,
        now: DateTime<Utc>,
        days: u32,
        days_damaged: u32,
    ) -> Result<u64, CoreError> {
        let cutoff = loans::retention_cutoff(now, days);
        let cutoff_damaged = loans::retention_cutoff(now, days_damaged);
        let txn = self.write().await?;
        let due = loan::Entity::find()
            .filter(loan::Column::ReturnedAt.is_not_null())
            .filter(loan::Column::ReturnedAt.lt(Ord::max(cutoff, cutoff_damaged)))
            .all(&txn)
            .await
            .map_err(CoreError::storage)?;
        let mut done = 0;
        for l in due {
            let Some(returned_at) = l.returned_at else {
                continue;
            };
            let damaged = l.damage.as_deref().is_some_and(|d| !d.trim().is_empty())
                || condition(l.condition_in.as_deref()).is_some_and(Condition::is_damage);
            if returned_at >= if damaged { cutoff_damaged } else { cutoff } {
                continue;
            }
            loan_history::ActiveModel {
                id: Set(l.id.clone()),
                device_id: Set(l.device_id.clone()),
                school_id: Set(Some(l.school_id.clone())),
                lent_at: Set(l.lent_at),
                due_at: Set(l.due_at),
                returned_at: Set(returned_at),
                accessories: Set(l.accessories.clone()),
                accessories_in: Set(l.accessories_in.clone()),
                condition_out: Set(l.condition_out.clone()),
                condition_in: Set(l.condition_in.clone()),
                damaged: Set(damaged),
                anonymised_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(db_err("loan history"))?;
            loan::Entity::delete_by_id(l.id.clone())
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            let entry = AuditEntry::new("system", "loan.anonymise", format!("loan:{}", l.id))
                .with_details(serde_json::json!({
                    "device": l.device_id, "school": l.school_id, "returned_at": returned_at,
                    "damaged": damaged,
                }));
            audit::record(&txn, &entry, now).await?;
            done += 1;
        }
        commit(txn).await?;
        Ok(done)
    }

    /// A device's anonymous history (loans past their retention), newest first.
    pub async fn device_loan_history(
        &self,
        device_id: &str,
    ) -> Result<Vec<loan_history::Model>, CoreError> {
        loan_history::Entity::find()
            .filter(loan_history::Column::DeviceId.eq(device_id))
            .order_by_desc(loan_history::Column::ReturnedAt)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)
    }

    /// Mail addresses of the active school administrators of a school.
    pub async fn school_admin_mails(&self, school_id: &str) -> Result<Vec<String>, CoreError> {
        let mut mails: Vec<String> = person::Entity::find()
            .filter(person::Column::State.eq("active"))
            .filter(person::Column::Mail.is_not_null())
            .filter(
                person::Column::Id.in_subquery(
                    Query::select()
                        .column(person_school::Column::PersonId)
                        .from(person_school::Entity)
                        .and_where(person_school::Column::SchoolId.eq(school_id))
                        .and_where(person_school::Column::Role.eq(role_str(Role::SchoolAdmin)))
                        .to_owned(),
                ),
            )
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .filter_map(|p| p.mail)
            .filter(|m| m.contains('@'))
            .collect();
        mails.sort();
        mails.dedup();
        Ok(mails)
    }
}
