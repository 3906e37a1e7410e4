//! Keeping the queue tables bounded: finished commands and finished jobs are
//! deleted once they are older than their retention.

use crate::Store;
use crate::db::is_sqlite;
use crate::entity::command;
use chrono::{DateTime, Duration, Utc};
use flotte_core::CoreError;
use flotte_core::command::CommandStatus;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub commands_deleted: u64,
    pub jobs_deleted: u64,
}

impl Store {
    pub async fn prune(
        &self,
        now: DateTime<Utc>,
        command_days: u32,
        job_days: u32,
    ) -> Result<PruneReport, CoreError> {
        let command_cutoff = now - Duration::days(i64::from(command_days));
        let finished: Vec<&str> = [
            CommandStatus::Acknowledged,
            CommandStatus::Error,
            CommandStatus::FormatError,
            CommandStatus::Cancelled,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        let commands = command::Entity::delete_many()
            .filter(command::Column::Status.is_in(finished))
            .filter(command::Column::FinishedAt.lt(command_cutoff))
            .exec(&self.db)
            .await
            .map_err(CoreError::storage)?
            .rows_affected;

        let job_cutoff = (now - Duration::days(i64::from(job_days))).timestamp();
        let sql = if is_sqlite(&self.db) {
            "DELETE FROM Jobs WHERE status IN ('Done', 'Failed', 'Killed') AND done_at IS NOT NULL AND done_at < ?"
        } else {
            "DELETE FROM apalis.jobs WHERE status IN ('Done', 'Failed', 'Killed') AND done_at IS NOT NULL AND done_at < to_timestamp($1)"
        };
        let jobs = self
            .db
            .execute_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                sql,
                [job_cutoff.into()],
            ))
            .await
            .map_err(CoreError::storage)?
            .rows_affected();
        Ok(PruneReport {
            commands_deleted: commands,
            jobs_deleted: jobs,
        })
    }

    /// How many job rows exist per status, for `/metrics` and the pruning tests.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, CoreError> {
        let sql = if is_sqlite(&self.db) {
            "SELECT status, COUNT(*) AS n FROM Jobs GROUP BY status ORDER BY status"
        } else {
            "SELECT status, COUNT(*) AS n FROM apalis.jobs GROUP BY status ORDER BY status"
        };
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .map_err(CoreError::storage)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String>("", "status")
                        .map_err(CoreError::storage)?,
                    r.try_get::<i64>("", "n").map_err(CoreError::storage)?,
                ))
            })
            .collect()
    }
}
