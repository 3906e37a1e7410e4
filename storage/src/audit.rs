//! The audit log: written in the same transaction as the change it records.

use crate::Store;
use crate::entity::audit_log;
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder, QuerySelect,
};

/// Without reading the row back: on SQLite sea-orm's `insert` follows every INSERT with a
/// SELECT of the new row, and writers holding the write lock have no use for it.
pub(crate) async fn record(
    conn: &impl ConnectionTrait,
    entry: &AuditEntry,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    audit_log::Entity::insert(audit_log::ActiveModel {
        id: NotSet,
        at: Set(now),
        actor: Set(entry.actor.clone()),
        action: Set(entry.action.clone()),
        target: Set(entry.target.clone()),
        source: Set(entry.source.clone()),
        details: Set(entry.details.to_string()),
    })
    .exec_without_returning(conn)
    .await
    .map_err(CoreError::storage)?;
    Ok(())
}

/// Several entries in one INSERT, for writes carried in one batch.
pub(crate) async fn record_many(
    conn: &impl ConnectionTrait,
    entries: impl IntoIterator<Item = (AuditEntry, DateTime<Utc>)>,
) -> Result<(), CoreError> {
    let rows: Vec<audit_log::ActiveModel> = entries
        .into_iter()
        .map(|(entry, at)| audit_log::ActiveModel {
            id: NotSet,
            at: Set(at),
            actor: Set(entry.actor),
            action: Set(entry.action),
            target: Set(entry.target),
            source: Set(entry.source),
            details: Set(entry.details.to_string()),
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    audit_log::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await
        .map_err(CoreError::storage)?;
    Ok(())
}

impl Store {
    /// Record an entry on its own (for events that change nothing else).
    pub async fn audit(&self, entry: &AuditEntry, now: DateTime<Utc>) -> Result<(), CoreError> {
        record(&self.db, entry, now).await
    }

    /// The newest entries first.
    pub async fn recent_audit(&self, limit: u64) -> Result<Vec<audit_log::Model>, CoreError> {
        audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)
    }
}
