//! The device register: devices exist before they first enrol, entered from the
//! supplier's delivery list (serial number, model, platform, asset tag, school, funding
//! programme, purchase date, warranty end). An enrolling device finds its entry by serial
//! number. The list is taken whole or not at all, and a dry run shows what it would change.

use crate::db::{commit, db_err};
use crate::entity::{device_register, loan, person, school};
use crate::{Store, audit};
use chrono::{DateTime, NaiveDate, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::device::{EnrollmentState, Platform};
use flotte_core::loans::{
    self, DeliveryRow, ImportAction, ImportChange, RegisteredDevice, RowError,
};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// The open loan of a register entry, as lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoanSummary {
    pub loan_id: String,
    pub person_id: String,
    pub person_name: String,
    pub class_name: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub overdue: bool,
}

/// A device as the register shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RegisterEntry {
    pub id: String,
    pub platform: Platform,
    pub serial_number: Option<String>,
    pub asset_tag: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub device_name: Option<String>,
    pub school_id: Option<String>,
    pub school_code: Option<String>,
    pub enrollment_state: EnrollmentState,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub funding_programme: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub warranty_end: Option<NaiveDate>,
    pub open_loan: Option<OpenLoanSummary>,
}

impl RegisterEntry {
    /// How staff know the device: its asset tag, else its serial number.
    pub fn label(&self) -> String {
        self.asset_tag
            .clone()
            .or_else(|| self.serial_number.clone())
            .unwrap_or_else(|| self.id.clone())
    }
}

/// Filters for the register list, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct RegisterFilter {
    /// School id or code.
    pub school: Option<String>,
    /// Part of the asset tag, serial number, model or device name.
    pub search: Option<String>,
    /// Only devices without an open loan.
    pub available_only: bool,
    /// Only these device ids.
    pub ids: Option<Vec<String>>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// What a delivery list did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ImportOutcome {
    pub dry_run: bool,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub changes: Vec<ImportChange>,
}

fn scoped(
    q: sea_orm::Select<device_register::Entity>,
    scope: &SchoolScope,
) -> sea_orm::Select<device_register::Entity> {
    match scope {
        SchoolScope::All => q,
        SchoolScope::Schools(ids) => q.filter(device_register::Column::SchoolId.is_in(ids.clone())),
    }
}

impl Store {
    /// Register entries within the caller's schools, by school and asset tag.
    pub async fn list_register(
        &self,
        filter: &RegisterFilter,
        scope: &SchoolScope,
        now: DateTime<Utc>,
    ) -> Result<Vec<RegisterEntry>, CoreError> {
        let mut q = scoped(device_register::Entity::find(), scope);
        if let Some(key) = filter.school.as_deref().filter(|k| !k.trim().is_empty()) {
            let id = school::Entity::find()
                .filter(
                    Condition::any()
                        .add(school::Column::Id.eq(key.trim()))
                        .add(school::Column::Code.eq(key.trim())),
                )
                .one(&self.db)
                .await
                .map_err(CoreError::storage)?
                .map(|s| s.id)
                .unwrap_or_default();
            q = q.filter(device_register::Column::SchoolId.eq(id));
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
            let like = |c: device_register::Column| {
                Expr::expr(Func::lower(Expr::col(c)))
                    .like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            q = q.filter(
                Condition::any()
                    .add(like(device_register::Column::AssetTag))
                    .add(like(device_register::Column::SerialNumber))
                    .add(like(device_register::Column::Model))
                    .add(like(device_register::Column::ModelName))
                    .add(like(device_register::Column::DeviceName)),
            );
        }
        if let Some(ids) = &filter.ids {
            q = q.filter(device_register::Column::Id.is_in(ids.clone()));
        }
        if filter.available_only {
            q = q.filter(
                device_register::Column::Id.not_in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(loan::Column::DeviceId)
                        .from(loan::Entity)
                        .and_where(loan::Column::ReturnedAt.is_null())
                        .to_owned(),
                ),
            );
        }
        let rows = q
            .order_by_asc(device_register::Column::SchoolId)
            .order_by_asc(device_register::Column::AssetTag)
            .order_by_asc(device_register::Column::SerialNumber)
            .order_by_asc(device_register::Column::Id)
            .limit(Ord::min(filter.limit.unwrap_or(500), 5000))
            .offset(filter.offset.unwrap_or(0))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        self.register_entries(rows, now).await
    }

    /// One register entry by id, serial number, UDID or asset tag (case ignored), within
    /// the caller's schools: what a scanned label finds.
    pub async fn find_register_entry(
        &self,
        key: &str,
        scope: &SchoolScope,
        now: DateTime<Utc>,
    ) -> Result<RegisterEntry, CoreError> {
        let device = crate::loans::device_by_key(&self.db, key, scope)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("device {}", key.trim())))?;
        let row = device_register::Entity::find_by_id(device.id.clone())
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {}", key.trim())))?;
        self.register_entries(vec![row], now)
            .await?
            .pop()
            .ok_or_else(|| CoreError::NotFound(format!("device {}", key.trim())))
    }

    async fn register_entries(
        &self,
        rows: Vec<device_register::Model>,
        now: DateTime<Utc>,
    ) -> Result<Vec<RegisterEntry>, CoreError> {
        let codes: BTreeMap<String, String> = school::Entity::find()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|s| (s.id, s.code))
            .collect();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut open: BTreeMap<String, loan::Model> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            for l in loan::Entity::find()
                .filter(loan::Column::ReturnedAt.is_null())
                .filter(loan::Column::DeviceId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
            {
                open.insert(l.device_id.clone(), l);
            }
        }
        let person_ids: Vec<String> = open.values().map(|l| l.person_id.clone()).collect();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for chunk in person_ids.chunks(500) {
            for p in person::Entity::find()
                .filter(person::Column::Id.is_in(chunk.to_vec()))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
            {
                names.insert(p.id, format!("{} {}", p.given_name, p.family_name));
            }
        }
        rows.into_iter()
            .map(|r| {
                let open_loan = open.remove(&r.id).map(|l| OpenLoanSummary {
                    overdue: loans::is_overdue(l.due_at, false, now),
                    due_date: l.due_at.map(|d| d.date_naive()),
                    person_name: names.get(&l.person_id).cloned().unwrap_or_default(),
                    person_id: l.person_id,
                    class_name: l.class_name,
                    loan_id: l.id,
                });
                Ok(RegisterEntry {
                    platform: r.platform.parse()?,
                    enrollment_state: r.enrollment_state.parse()?,
                    school_code: r.school_id.as_ref().and_then(|s| codes.get(s).cloned()),
                    id: r.id,
                    serial_number: r.serial_number,
                    asset_tag: r.asset_tag,
                    model: r.model,
                    model_name: r.model_name,
                    device_name: r.device_name,
                    school_id: r.school_id,
                    last_seen_at: r.last_seen_at,
                    funding_programme: r.funding_programme,
                    purchase_date: r.purchase_date,
                    warranty_end: r.warranty_end,
                    open_loan,
                })
            })
            .collect()
    }

    /// Enter a delivery list into the register, or (`dry_run`) only say what it would
    /// change. The list is planned against the register inside the write transaction,
    /// so what a dry run shows is what an import does when nothing changed in between.
    /// `Ok(Err(rows))` names every bad row; then nothing was changed.
    pub async fn import_delivery_list(
        &self,
        rows: &[DeliveryRow],
        dry_run: bool,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Result<ImportOutcome, Vec<RowError>>, CoreError> {
        let txn = self.write().await?;
        let mut schools = BTreeMap::new();
        for s in school::Entity::find()
            .all(&txn)
            .await
            .map_err(CoreError::storage)?
        {
            schools.insert(s.code.clone(), s.id.clone());
            schools.insert(s.code.to_lowercase(), s.id.clone());
            schools.insert(s.id.clone(), s.id);
        }
        let mut existing = BTreeMap::new();
        let serials: Vec<String> = rows.iter().map(|r| r.serial_number.clone()).collect();
        for chunk in serials.chunks(500) {
            let lowered: Vec<String> = chunk.iter().map(|s| s.to_lowercase()).collect();
            for d in device_register::Entity::find()
                .filter(
                    Expr::expr(Func::lower(Expr::col(
                        device_register::Column::SerialNumber,
                    )))
                    .is_in(lowered),
                )
                .all(&txn)
                .await
                .map_err(CoreError::storage)?
            {
                let Some(serial) = d.serial_number.clone() else {
                    continue;
                };
                existing.insert(
                    serial.to_uppercase(),
                    RegisteredDevice {
                        platform: d.platform.parse()?,
                        id: d.id,
                        serial_number: serial,
                        model: d.model,
                        asset_tag: d.asset_tag,
                        school_id: d.school_id,
                        funding_programme: d.funding_programme,
                        purchase_date: d.purchase_date,
                        warranty_end: d.warranty_end,
                    },
                );
            }
        }
        let tags: BTreeMap<String, String> = device_register::Entity::find()
            .select_only()
            .column(device_register::Column::AssetTag)
            .column(device_register::Column::Id)
            .filter(device_register::Column::AssetTag.is_not_null())
            .into_tuple::<(String, String)>()
            .all(&txn)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|(tag, id)| (tag.to_lowercase(), id))
            .collect();
        let changes = match loans::plan_import(rows, &existing, &tags, &schools) {
            Ok(changes) => changes,
            Err(errors) => return Ok(Err(errors)),
        };
        let count = |a: ImportAction| changes.iter().filter(|c| c.action == a).count();
        let outcome = ImportOutcome {
            dry_run,
            created: count(ImportAction::Create),
            updated: count(ImportAction::Update),
            unchanged: count(ImportAction::Unchanged),
            changes,
        };
        if dry_run {
            // Dropping the transaction rolls it back; nothing was written anyway.
            return Ok(Ok(outcome));
        }
        // Asset tags move between devices only through a free tag: clear the tags that
        // change first, so that swapping two tags in one list does not clash midway.
        for c in outcome.changes.iter().filter(|c| {
            c.action == ImportAction::Update && c.changed.iter().any(|f| f == "asset_tag")
        }) {
            if let Some(id) = &c.device_id {
                device_register::Entity::update_many()
                    .col_expr(
                        device_register::Column::AssetTag,
                        Expr::value(Option::<String>::None),
                    )
                    .filter(device_register::Column::Id.eq(id.clone()))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
            }
        }
        for c in &outcome.changes {
            match (&c.action, &c.device_id) {
                (ImportAction::Create, _) => {
                    device_register::ActiveModel {
                        id: Set(uuid::Uuid::new_v4().to_string()),
                        platform: Set(c.platform.as_str().to_owned()),
                        serial_number: Set(Some(c.serial_number.clone())),
                        udid: Set(None),
                        asset_tag: Set(c.asset_tag.clone()),
                        model: Set(c.model.clone()),
                        model_name: Set(None),
                        device_name: Set(None),
                        school_id: Set(Some(c.school_id.clone())),
                        assigned_person_id: Set(None),
                        enrollment_state: Set(EnrollmentState::Registered.as_str().to_owned()),
                        enrolled_at: Set(None),
                        last_seen_at: Set(None),
                        created_at: Set(now),
                        updated_at: Set(now),
                        funding_programme: Set(c.funding_programme.clone()),
                        purchase_date: Set(c.purchase_date),
                        warranty_end: Set(c.warranty_end),
                    }
                    .insert(&txn)
                    .await
                    .map_err(db_err(&format!(
                        "line {}: a device with serial number {} or asset tag {}",
                        c.line,
                        c.serial_number,
                        c.asset_tag.as_deref().unwrap_or("-")
                    )))?;
                }
                (ImportAction::Update, Some(id)) => {
                    device_register::Entity::update_many()
                        .col_expr(device_register::Column::Model, Expr::value(c.model.clone()))
                        .col_expr(
                            device_register::Column::AssetTag,
                            Expr::value(c.asset_tag.clone()),
                        )
                        .col_expr(
                            device_register::Column::SchoolId,
                            Expr::value(Some(c.school_id.clone())),
                        )
                        .col_expr(
                            device_register::Column::FundingProgramme,
                            Expr::value(c.funding_programme.clone()),
                        )
                        .col_expr(
                            device_register::Column::PurchaseDate,
                            Expr::value(c.purchase_date),
                        )
                        .col_expr(
                            device_register::Column::WarrantyEnd,
                            Expr::value(c.warranty_end),
                        )
                        .col_expr(device_register::Column::UpdatedAt, Expr::value(now))
                        .filter(device_register::Column::Id.eq(id.clone()))
                        .exec(&txn)
                        .await
                        .map_err(db_err(&format!("line {}: asset tag", c.line)))?;
                }
                _ => {}
            }
        }
        let mut entry = actor.clone();
        entry.action = "device.import".into();
        entry.target = "register".into();
        entry.details = serde_json::json!({
            "created": outcome.created, "updated": outcome.updated, "unchanged": outcome.unchanged,
        });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(Ok(outcome))
    }
}
