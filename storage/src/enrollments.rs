//! Enrolments: the bond between a device and its identity, and how to wake it.

use crate::db::commit;
use crate::entity::{device, enrollment};
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::push::PushTarget;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};

/// The push details a device sent in its TokenUpdate.
#[derive(Debug, Clone)]
pub struct TokenUpdate {
    pub token_hex: String,
    pub push_magic: String,
    pub topic: String,
    pub unlock_token: Option<String>,
}

async fn active_enrollment(
    conn: &impl ConnectionTrait,
    device_id: &str,
) -> Result<Option<enrollment::Model>, CoreError> {
    enrollment::Entity::find()
        .filter(enrollment::Column::DeviceId.eq(device_id))
        .filter(enrollment::Column::EndedAt.is_null())
        .order_by_desc(enrollment::Column::StartedAt)
        .one(conn)
        .await
        .map_err(CoreError::storage)
}

impl Store {
    /// Store a device's push token (its current enrolment gets it; a device
    /// without one gets a new enrolment).
    pub async fn record_token_update(
        &self,
        device_id: &str,
        update: TokenUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        let device = device::Entity::find_by_id(device_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {device_id}")))?;
        match active_enrollment(&txn, device_id).await? {
            Some(existing) => {
                let mut active: enrollment::ActiveModel = existing.into();
                active.push_token = Set(Some(update.token_hex));
                active.push_magic = Set(Some(update.push_magic));
                active.push_topic = Set(Some(update.topic));
                if update.unlock_token.is_some() {
                    active.unlock_token = Set(update.unlock_token);
                }
                active.token_invalid_at = Set(None);
                active.update(&txn).await.map_err(CoreError::storage)?;
            }
            None => {
                enrollment::ActiveModel {
                    id: Set(uuid::Uuid::new_v4().to_string()),
                    device_id: Set(device_id.to_owned()),
                    platform: Set(device.platform.clone()),
                    identity_sha256: Set(None),
                    identity_serial: Set(None),
                    identity_not_after: Set(None),
                    push_token: Set(Some(update.token_hex)),
                    push_magic: Set(Some(update.push_magic)),
                    push_topic: Set(Some(update.topic)),
                    unlock_token: Set(update.unlock_token),
                    token_invalid_at: Set(None),
                    bootstrap_token: Set(None),
                    started_at: Set(now),
                    ended_at: Set(None),
                }
                .insert(&txn)
                .await
                .map_err(CoreError::storage)?;
            }
        }
        audit::record(
            &txn,
            &AuditEntry::new(
                format!("device:{device_id}"),
                "device.token_update",
                format!("device:{device_id}"),
            ),
            now,
        )
        .await?;
        commit(txn).await
    }

    /// How to wake a device, if it can be woken at all.
    pub async fn push_target(&self, device_id: &str) -> Result<Option<PushTarget>, CoreError> {
        let Some(e) = active_enrollment(&self.db, device_id).await? else {
            return Ok(None);
        };
        if e.token_invalid_at.is_some() {
            return Ok(None);
        }
        Ok(match (e.push_token, e.push_magic, e.push_topic) {
            (Some(token_hex), Some(push_magic), Some(topic)) => Some(PushTarget {
                device_id: device_id.to_owned(),
                token_hex,
                push_magic,
                topic,
            }),
            _ => None,
        })
    }

    /// APNs said the token is dead: stop pushing until the device sends a new one.
    pub async fn mark_push_token_invalid(
        &self,
        device_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        if let Some(e) = active_enrollment(&txn, device_id).await? {
            let mut active: enrollment::ActiveModel = e.into();
            active.token_invalid_at = Set(Some(now));
            active.update(&txn).await.map_err(CoreError::storage)?;
        }
        audit::record(
            &txn,
            &AuditEntry::new(
                "system",
                "device.push_token_invalid",
                format!("device:{device_id}"),
            )
            .with_details(serde_json::json!({ "reason": reason })),
            now,
        )
        .await?;
        commit(txn).await
    }
}
