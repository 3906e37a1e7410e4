//! Writing jobs inside our own transactions.
//!
//! apalis' storages push through their own pool connection, which cannot join a
//! sea-orm transaction. So a job is inserted here, with the same statement apalis
//! uses, on the transaction that makes the data change it belongs to. The
//! columns are those of apalis-sqlite/-postgres 1.0.0 (pinned exactly in the
//! workspace manifest); the test `a_job_enqueued_with_a_data_change_is_done_by_the_worker`
//! proves the worker picks such rows up.

use crate::db::is_sqlite;
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::jobs::Job;
use sea_orm::{ConnectionTrait, Statement, Value};

/// Attempts before apalis gives a job up as failed.
const MAX_ATTEMPTS: i64 = 10;

pub(crate) async fn enqueue<J: Job>(
    conn: &impl ConnectionTrait,
    job: &J,
    run_at: DateTime<Utc>,
) -> Result<(), CoreError> {
    let payload = serde_json::to_vec(job)
        .map_err(|e| CoreError::Invalid(format!("job {} cannot be encoded: {e}", J::QUEUE)))?;
    let id = ulid::Ulid::new().to_string();
    let key: Value = job.idempotency_key().into();
    let sql = if is_sqlite(conn) {
        "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
         VALUES (?, ?, ?, 'Pending', 0, ?, ?, 0, NULL, ?) \
         ON CONFLICT (job_type, idempotency_key) DO NOTHING"
    } else {
        "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) \
         VALUES ($1, $2, $3, 'Pending', 0, $4, to_timestamp($5), 0, NULL, $6) \
         ON CONFLICT (job_type, idempotency_key) DO NOTHING"
    };
    let values: Vec<Value> = vec![
        payload.into(),
        id.into(),
        J::QUEUE.into(),
        MAX_ATTEMPTS.into(),
        run_at.timestamp().into(),
        key,
    ];
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        sql,
        values,
    ))
    .await
    .map_err(CoreError::storage)?;
    Ok(())
}

impl crate::Store {
    /// Enqueue a job on its own, for jobs that follow no data change (schedules).
    pub async fn enqueue_job<J: Job>(&self, job: &J, now: DateTime<Utc>) -> Result<(), CoreError> {
        enqueue(&self.db, job, now).await
    }
}
