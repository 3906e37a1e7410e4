//! The device register and inventory.

use crate::db::{commit, db_err};
use crate::entity::device;
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::device::{Device, EnrollmentState, Platform};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

/// A device as stored.
pub type DeviceRecord = Device;

/// A device entered into the register before it enrols.
#[derive(Debug, Clone)]
pub struct NewDevice {
    pub platform: Platform,
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub asset_tag: Option<String>,
    pub model: Option<String>,
    pub school_id: Option<String>,
}

/// Filters for the inventory list; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub school_id: Option<String>,
    pub platform: Option<Platform>,
    pub enrollment_state: Option<EnrollmentState>,
    pub last_seen_before: Option<DateTime<Utc>>,
    pub last_seen_after: Option<DateTime<Utc>>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

pub(crate) fn to_device(m: device::Model) -> Result<Device, CoreError> {
    Ok(Device {
        platform: m.platform.parse()?,
        enrollment_state: m.enrollment_state.parse()?,
        id: m.id,
        serial_number: m.serial_number,
        udid: m.udid,
        asset_tag: m.asset_tag,
        model: m.model,
        model_name: m.model_name,
        product_name: m.product_name,
        os_version: m.os_version,
        build_version: m.build_version,
        device_name: m.device_name,
        capacity_gb: m.capacity_gb,
        available_gb: m.available_gb,
        battery_level: m.battery_level,
        wifi_mac: m.wifi_mac,
        supervised: m.supervised,
        school_id: m.school_id,
        enrolled_at: m.enrolled_at,
        last_seen_at: m.last_seen_at,
    })
}

/// Confine a device query to the schools in `scope`. Devices without a school
/// are visible to technicians only.
pub(crate) fn scoped(
    select: Select<device::Entity>,
    scope: &SchoolScope,
) -> Select<device::Entity> {
    match scope {
        SchoolScope::All => select,
        SchoolScope::Schools(ids) => select.filter(device::Column::SchoolId.is_in(ids.clone())),
    }
}

impl Store {
    pub async fn register_device(
        &self,
        new: NewDevice,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Device, CoreError> {
        let txn = self.write().await?;
        let model = device::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            platform: Set(new.platform.as_str().to_owned()),
            serial_number: Set(new.serial_number),
            udid: Set(new.udid),
            asset_tag: Set(new.asset_tag),
            model: Set(new.model),
            model_name: Set(None),
            product_name: Set(None),
            os_version: Set(None),
            build_version: Set(None),
            device_name: Set(None),
            capacity_gb: Set(None),
            available_gb: Set(None),
            battery_level: Set(None),
            school_id: Set(new.school_id),
            assigned_person_id: Set(None),
            enrollment_state: Set(EnrollmentState::Registered.as_str().to_owned()),
            enrolled_at: Set(None),
            last_seen_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            wifi_mac: Set(None),
            supervised: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err(
            "a device with this serial number, UDID or asset tag",
        ))?;
        let mut entry = actor.clone();
        entry.target = format!("device:{}", model.id);
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        to_device(model)
    }

    pub async fn list_devices(
        &self,
        filter: &DeviceFilter,
        scope: &SchoolScope,
    ) -> Result<Vec<Device>, CoreError> {
        let mut cond = Condition::all();
        if let Some(school) = &filter.school_id {
            cond = cond.add(device::Column::SchoolId.eq(school.clone()));
        }
        if let Some(platform) = filter.platform {
            cond = cond.add(device::Column::Platform.eq(platform.as_str()));
        }
        if let Some(state) = filter.enrollment_state {
            cond = cond.add(device::Column::EnrollmentState.eq(state.as_str()));
        }
        if let Some(before) = filter.last_seen_before {
            cond = cond.add(device::Column::LastSeenAt.lt(before));
        }
        if let Some(after) = filter.last_seen_after {
            cond = cond.add(device::Column::LastSeenAt.gt(after));
        }
        let rows = scoped(device::Entity::find(), scope)
            .filter(cond)
            .order_by_asc(device::Column::CreatedAt)
            .order_by_asc(device::Column::Id)
            .limit(filter.limit.unwrap_or(500).min(5000))
            .offset(filter.offset.unwrap_or(0))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        rows.into_iter().map(to_device).collect()
    }

    /// Look a device up by Flotte id, UDID or serial number, within `scope`.
    /// A device outside the scope is reported as not found, not as forbidden,
    /// so that staff cannot probe other schools' inventories.
    pub async fn find_device(&self, key: &str, scope: &SchoolScope) -> Result<Device, CoreError> {
        let row = scoped(device::Entity::find(), scope)
            .filter(
                Condition::any()
                    .add(device::Column::Id.eq(key))
                    .add(device::Column::Udid.eq(key))
                    .add(device::Column::SerialNumber.eq(key)),
            )
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {key}")))?;
        to_device(row)
    }
}

impl Store {
    /// Devices per (platform, enrolment state): the `/metrics` gauges.
    pub async fn device_counts(&self) -> Result<Vec<(String, String, i64)>, CoreError> {
        use sea_orm::{
            FromQueryResult,
            sea_query::{Expr, ExprTrait},
        };
        #[derive(FromQueryResult)]
        struct Row {
            platform: String,
            enrollment_state: String,
            n: i64,
        }
        let rows = device::Entity::find()
            .select_only()
            .column(device::Column::Platform)
            .column(device::Column::EnrollmentState)
            .column_as(Expr::col(device::Column::Id).count(), "n")
            .group_by(device::Column::Platform)
            .group_by(device::Column::EnrollmentState)
            .into_model::<Row>()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.platform, r.enrollment_state, r.n))
            .collect())
    }
}
