//! The two check-in writes every new iPad makes, carried in batches (see
//! [`crate::group_commit`]): the first Authenticate of a device never seen with an identity
//! never used, and a TokenUpdate that changes the push triple. Each batch is a handful of
//! statements whatever its size. Anything a batch cannot settle by itself (a device that
//! appeared meanwhile, a certificate bound meanwhile, a database error) rolls the batch back
//! and each write is done again on its own by the single-device code, which gives the answer
//! it always gave.

use crate::apple::{
    APPLE_IDENTITY, AuthenticateFacts, authenticate_audit, ended_enrollment, new_apple_device,
    new_apple_enrollment, placeholder,
};
use crate::db::commit;
use crate::devices::to_device;
use crate::entity::{device, enrollment};
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::device::{Device, EnrollmentState, Platform};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    TryIntoModel,
};
use std::collections::HashSet;

/// A TokenUpdate that changes what is stored.
pub(crate) struct TokenWrite {
    pub enrollment_id: String,
    pub device_id: String,
    pub udid: String,
    pub token_hex: String,
    pub push_magic: String,
    pub topic: String,
    pub unlock_sealed: Option<String>,
    /// The enrolment had no token yet: the device counts as enrolled from now.
    pub first: bool,
    pub now: DateTime<Utc>,
}

/// The first Authenticate of a new device, everything decided before the write.
pub(crate) struct FirstContact {
    facts: AuthenticateFacts,
    identity_sha256: String,
    identity_not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    certificate_id: String,
    device: device::ActiveModel,
    enrollment: enrollment::ActiveModel,
}

/// An SQL text with its values; placeholders numbered for the backend.
struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<sea_orm::Value>,
}

impl Sql {
    fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn value(&mut self, v: impl Into<sea_orm::Value>) -> &mut Self {
        self.values.push(v.into());
        let p = placeholder(self.backend, self.values.len());
        self.text.push_str(&p);
        self
    }

    /// `column = CASE id WHEN … THEN … ELSE column END` over `rows`.
    fn case<T>(
        &mut self,
        column: &str,
        rows: &[&T],
        id: impl Fn(&T) -> &str,
        then: impl Fn(&mut Self, &T),
    ) -> &mut Self {
        self.push(column).push(" = CASE id");
        for row in rows {
            self.push(" WHEN ").value(id(row)).push(" THEN ");
            then(self, row);
        }
        self.push(" ELSE ").push(column).push(" END")
    }

    fn list<'a>(&mut self, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.push("(");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.value(item);
        }
        self.push(")")
    }

    fn statement(&self) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(self.backend, &self.text, self.values.clone())
    }
}

/// The ids an `UPDATE … RETURNING id` wrote.
async fn returned_ids(
    conn: &impl ConnectionTrait,
    sql: &Sql,
) -> Result<HashSet<String>, CoreError> {
    conn.query_all_raw(sql.statement())
        .await
        .map_err(CoreError::storage)?
        .iter()
        .map(|row| row.try_get::<String>("", "id").map_err(CoreError::storage))
        .collect()
}

/// Why a batch gave up and its writes are done one by one.
fn raced(what: &str) -> CoreError {
    CoreError::Conflict(format!("{what} changed while the batch was written"))
}

impl Store {
    pub(crate) async fn write_token(&self, write: TokenWrite) -> Result<(), CoreError> {
        let store = self.clone();
        self.token_writes
            .submit(write, move |batch| {
                let store = store.clone();
                async move { store.write_tokens(batch).await }
            })
            .await
    }

    async fn write_tokens(&self, writes: Vec<TokenWrite>) -> Vec<Result<(), CoreError>> {
        match self.write_tokens_together(&writes).await {
            Ok(results) => results,
            Err(e) if writes.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, writes = writes.len(), "token batch rolled back, writing one by one");
                let mut results = Vec::with_capacity(writes.len());
                for write in writes.iter() {
                    let one = self
                        .write_tokens_together(std::slice::from_ref(write))
                        .await;
                    // One write in, one answer out; an empty answer would be a bug, not a success.
                    results.push(one.and_then(|mut r| {
                        r.pop().unwrap_or_else(|| {
                            Err(CoreError::storage(std::io::Error::other(
                                "a batch of one gave no answer",
                            )))
                        })
                    }));
                }
                results
            }
        }
    }

    /// All of `writes` in one transaction; each answered `Ok`, or refused when its enrolment
    /// has ended. `Err` when the transaction did not commit.
    async fn write_tokens_together(
        &self,
        writes: &[TokenWrite],
    ) -> Result<Vec<Result<(), CoreError>>, CoreError> {
        // The latest write of an enrolment wins when a device sent two in one batch.
        let mut seen = HashSet::new();
        let rows: Vec<&TokenWrite> = writes
            .iter()
            .rev()
            .filter(|w| seen.insert(w.enrollment_id.as_str()))
            .collect();
        let txn = self.write().await?;
        let mut sql = Sql::new(txn.get_database_backend());
        fn id(w: &TokenWrite) -> &str {
            w.enrollment_id.as_str()
        }
        sql.push("UPDATE enrollments SET ")
            .case("push_token", &rows, id, |s, w| {
                s.value(w.token_hex.as_str());
            })
            .push(", ")
            .case("push_magic", &rows, id, |s, w| {
                s.value(w.push_magic.as_str());
            })
            .push(", ")
            .case("push_topic", &rows, id, |s, w| {
                s.value(w.topic.as_str());
            })
            .push(", ")
            .case("unlock_token", &rows, id, |s, w| {
                s.push("COALESCE(")
                    .value(w.unlock_sealed.clone())
                    .push(", unlock_token)");
            })
            .push(", token_invalid_at = NULL WHERE ended_at IS NULL AND id IN ")
            .list(rows.iter().map(|w| w.enrollment_id.as_str()))
            .push(" RETURNING id");
        let written = returned_ids(&txn, &sql).await?;
        let done: Vec<&&TokenWrite> = rows
            .iter()
            .filter(|w| written.contains(&w.enrollment_id))
            .collect();
        if let Some(now) = done.iter().map(|w| w.now).max() {
            device::Entity::update_many()
                .col_expr(
                    device::Column::EnrollmentState,
                    sea_orm::sea_query::Expr::value(EnrollmentState::Enrolled.as_str()),
                )
                .col_expr(
                    device::Column::LastSeenAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .col_expr(
                    device::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(device::Column::Id.is_in(done.iter().map(|w| w.device_id.as_str())))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            let firsts: Vec<&str> = done
                .iter()
                .filter(|w| w.first)
                .map(|w| w.device_id.as_str())
                .collect();
            if !firsts.is_empty() {
                device::Entity::update_many()
                    .col_expr(
                        device::Column::EnrolledAt,
                        sea_orm::sea_query::Expr::value(now),
                    )
                    .filter(device::Column::Id.is_in(firsts))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
            }
            audit::record_many(
                &txn,
                done.iter().map(|w| {
                    (
                        AuditEntry::new(
                            format!("device:{}", w.udid),
                            "device.token_update",
                            format!("device:{}", w.device_id),
                        )
                        .with_details(serde_json::json!({ "first": w.first })),
                        w.now,
                    )
                }),
            )
            .await?;
        }
        commit(txn).await?;
        Ok(writes
            .iter()
            .map(|w| {
                if written.contains(&w.enrollment_id) {
                    Ok(())
                } else {
                    Err(ended_enrollment())
                }
            })
            .collect())
    }

    /// Check the push topic, and recognise the Authenticate of a device never seen, with an
    /// identity we issued for enrolment and never used: `None` for every other case, which
    /// [`Self::authenticate_alone`] handles. One query, outside the write lock; the batch
    /// checks again what it relies on.
    pub(crate) async fn first_contact(
        &self,
        facts: &AuthenticateFacts,
        identity_sha256: &str,
        identity_not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<FirstContact>, CoreError> {
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            push_topic: Option<String>,
            id: Option<String>,
            kind: Option<String>,
            serial_hex: Option<String>,
            school_id: Option<String>,
            bound: Option<String>,
            revoked_at: Option<DateTime<Utc>>,
            known: i64,
        }
        let mut sql = Sql::new(self.db.get_database_backend());
        sql.push(
            "SELECT t.topic AS push_topic, c.id, c.kind, c.serial_hex, c.school_id, \
             c.device_id AS bound, c.revoked_at, \
             (SELECT COUNT(*) FROM devices d WHERE d.udid = ",
        )
        .value(facts.udid.as_str());
        if let Some(serial) = &facts.inventory.serial_number {
            sql.push(" OR (d.platform = ")
                .value(Platform::Apple.as_str())
                .push(" AND d.serial_number = ")
                .value(serial.as_str())
                .push(")");
        }
        sql.push(
            ") AS known \
             FROM (SELECT (SELECT topic FROM push_certificates WHERE active = ",
        )
        .value(true)
        .push(" LIMIT 1) AS topic) t LEFT JOIN certificates c ON c.sha256 = ")
        .value(identity_sha256);
        let row = <Row as sea_orm::FromQueryResult>::find_by_statement(sql.statement())
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| {
                CoreError::storage(std::io::Error::other("no row from a one-row query"))
            })?;
        if let Some(topic) = &row.push_topic
            && *topic != facts.topic
        {
            return Err(CoreError::Conflict(format!(
                "topic {} is not this server's push topic",
                facts.topic
            )));
        }
        let (Some(certificate_id), Some(serial_hex)) = (row.id, row.serial_hex) else {
            return Ok(None);
        };
        if row.kind.as_deref() != Some(APPLE_IDENTITY)
            || row.revoked_at.is_some()
            || row.bound.is_some()
            || row.known > 0
        {
            return Ok(None);
        }
        let device = new_apple_device(facts, row.school_id, now);
        let enrollment = new_apple_enrollment(
            device.id.as_ref(),
            facts,
            identity_sha256,
            &serial_hex,
            identity_not_after,
            now,
        );
        Ok(Some(FirstContact {
            facts: facts.clone(),
            identity_sha256: identity_sha256.to_owned(),
            identity_not_after,
            now,
            certificate_id,
            device,
            enrollment,
        }))
    }

    pub(crate) async fn write_first_contact(
        &self,
        first: FirstContact,
    ) -> Result<Device, CoreError> {
        let store = self.clone();
        self.first_contacts
            .submit(first, move |batch| {
                let store = store.clone();
                async move { store.write_first_contacts(batch).await }
            })
            .await
    }

    async fn write_first_contacts(
        &self,
        batch: Vec<FirstContact>,
    ) -> Vec<Result<Device, CoreError>> {
        match self.write_first_contacts_together(&batch).await {
            Ok(devices) => devices.into_iter().map(Ok).collect(),
            Err(e) => {
                if batch.len() > 1 {
                    tracing::warn!(error = %e, writes = batch.len(), "authenticate batch rolled back, writing one by one");
                }
                let mut results = Vec::with_capacity(batch.len());
                for f in &batch {
                    results.push(
                        self.authenticate_alone(
                            &f.facts,
                            &f.identity_sha256,
                            f.identity_not_after,
                            f.now,
                        )
                        .await,
                    );
                }
                results
            }
        }
    }

    async fn write_first_contacts_together(
        &self,
        batch: &[FirstContact],
    ) -> Result<Vec<Device>, CoreError> {
        let txn = self.write().await?;
        // Nothing of these devices may exist now: a second Authenticate of the same device in
        // this batch, or a register import since the check, sends everyone the long way.
        let udids: Vec<&str> = batch.iter().map(|f| f.facts.udid.as_str()).collect();
        let distinct: HashSet<&str> = udids.iter().copied().collect();
        let mut exists = same_device(udids.iter().copied(), None);
        for f in batch {
            if let Some(serial) = &f.facts.inventory.serial_number {
                exists = exists.add(same_device([], Some(serial)));
            }
        }
        if distinct.len() < batch.len()
            || device::Entity::find()
                .filter(exists)
                .count(&txn)
                .await
                .map_err(CoreError::storage)?
                > 0
        {
            return Err(raced("a device"));
        }
        device::Entity::insert_many(batch.iter().map(|f| f.device.clone()))
            .exec_without_returning(&txn)
            .await
            .map_err(CoreError::storage)?;
        enrollment::Entity::insert_many(batch.iter().map(|f| f.enrollment.clone()))
            .exec_without_returning(&txn)
            .await
            .map_err(CoreError::storage)?;
        let rows: Vec<&FirstContact> = batch.iter().collect();
        let mut sql = Sql::new(txn.get_database_backend());
        sql.push("UPDATE certificates SET ")
            .case(
                "device_id",
                &rows,
                |f| f.certificate_id.as_str(),
                |s, f| {
                    s.value(f.device.id.as_ref().clone());
                },
            )
            .push(" WHERE device_id IS NULL AND revoked_at IS NULL AND id IN ")
            .list(rows.iter().map(|f| f.certificate_id.as_str()))
            .push(" RETURNING id");
        if returned_ids(&txn, &sql).await?.len() != batch.len() {
            return Err(raced("an identity certificate"));
        }
        audit::record_many(
            &txn,
            batch.iter().map(|f| {
                (
                    authenticate_audit(&f.facts, f.device.id.as_ref(), &f.identity_sha256),
                    f.now,
                )
            }),
        )
        .await?;
        commit(txn).await?;
        batch
            .iter()
            .map(|f| {
                f.device
                    .clone()
                    .try_into_model()
                    .map_err(CoreError::storage)
                    .and_then(to_device)
            })
            .collect()
    }
}

/// Apple devices with one of these UDIDs or this serial number.
fn same_device<'a>(udids: impl IntoIterator<Item = &'a str>, serial: Option<&str>) -> Condition {
    let mut any = Condition::any();
    let udids: Vec<&str> = udids.into_iter().collect();
    if !udids.is_empty() {
        any = any.add(device::Column::Udid.is_in(udids));
    }
    if let Some(serial) = serial {
        any = any.add(
            Condition::all()
                .add(device::Column::SerialNumber.eq(serial))
                .add(device::Column::Platform.eq(Platform::Apple.as_str())),
        );
    }
    any
}
