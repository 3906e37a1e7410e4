//! The per-device command queue.

use crate::db::{commit, db_err};
use crate::entity::{command, device};
use crate::{Store, audit, devices, jobs};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::command::{Command, CommandStatus};
use flotte_core::jobs::WakeDevice;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

pub type CommandRecord = Command;

/// A command to put into a device's queue.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub request_type: String,
    /// The command as JSON, so it can be rendered for the device when it is sent.
    pub payload: serde_json::Value,
}

pub(crate) fn to_command(m: command::Model) -> Result<Command, CoreError> {
    Ok(Command {
        status: m.status.parse()?,
        id: m.id,
        device_id: m.device_id,
        request_type: m.request_type,
        created_by: m.created_by,
        created_at: m.created_at,
        sent_at: m.sent_at,
        finished_at: m.finished_at,
        result: m.result,
        error: m.error,
    })
}

impl Store {
    /// Queue a command for a device and, in the same transaction, the job that
    /// wakes the device. `coalesce_secs` groups wake-ups for one device.
    pub async fn queue_command(
        &self,
        device_key: &str,
        new: NewCommand,
        scope: &SchoolScope,
        actor: &AuditEntry,
        coalesce_secs: i64,
        now: DateTime<Utc>,
    ) -> Result<Command, CoreError> {
        let txn = self.write().await?;
        let device = devices::scoped(device::Entity::find(), scope)
            .filter(
                sea_orm::Condition::any()
                    .add(device::Column::Id.eq(device_key))
                    .add(device::Column::Udid.eq(device_key))
                    .add(device::Column::SerialNumber.eq(device_key)),
            )
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {device_key}")))?;
        let row = command::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string().to_uppercase()),
            device_id: Set(device.id.clone()),
            request_type: Set(new.request_type.clone()),
            payload: Set(new.payload.to_string()),
            status: Set(CommandStatus::Queued.as_str().to_owned()),
            created_by: Set(actor.actor.clone()),
            push_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            sent_at: Set(None),
            finished_at: Set(None),
            result: Set(None),
            error: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err("command"))?;
        jobs::enqueue(
            &txn,
            &WakeDevice {
                device_id: device.id.clone(),
                window: now.timestamp() / coalesce_secs.max(1),
            },
            now,
        )
        .await?;
        let mut entry = actor.clone();
        entry.target = format!("device:{}", device.id);
        entry.details = serde_json::json!({ "command": row.id, "request_type": new.request_type });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        to_command(row)
    }

    pub async fn list_commands(
        &self,
        device_key: &str,
        scope: &SchoolScope,
        limit: u64,
    ) -> Result<Vec<Command>, CoreError> {
        let device = self.find_device(device_key, scope).await?;
        let rows = command::Entity::find()
            .filter(command::Column::DeviceId.eq(device.id))
            .order_by_desc(command::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        rows.into_iter().map(to_command).collect()
    }

    /// Cancel a command the device has not answered yet.
    pub async fn cancel_command(
        &self,
        device_key: &str,
        command_id: &str,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Command, CoreError> {
        let device = self.find_device(device_key, scope).await?;
        let txn = self.write().await?;
        let row = command::Entity::find_by_id(command_id)
            .filter(command::Column::DeviceId.eq(device.id.clone()))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| {
                CoreError::NotFound(format!("command {command_id} of device {device_key}"))
            })?;
        let status: CommandStatus = row.status.parse()?;
        if !status.can_cancel() {
            return Err(CoreError::Conflict(format!(
                "command {command_id} is already {status} and cannot be cancelled"
            )));
        }
        let mut active: command::ActiveModel = row.into();
        active.status = Set(CommandStatus::Cancelled.as_str().to_owned());
        active.finished_at = Set(Some(now));
        active.updated_at = Set(now);
        let row = active.update(&txn).await.map_err(CoreError::storage)?;
        let mut entry = actor.clone();
        entry.target = format!("device:{}", device.id);
        entry.details = serde_json::json!({ "command": command_id });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        to_command(row)
    }

    /// Commands queued but not yet sent, oldest first: what a device is woken for.
    pub async fn pending_commands(&self, device_id: &str) -> Result<Vec<Command>, CoreError> {
        let rows = command::Entity::find()
            .filter(command::Column::DeviceId.eq(device_id))
            .filter(command::Column::Status.is_in([
                CommandStatus::Queued.as_str(),
                CommandStatus::Sent.as_str(),
                CommandStatus::NotNow.as_str(),
            ]))
            .order_by_asc(command::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        rows.into_iter().map(to_command).collect()
    }
}
