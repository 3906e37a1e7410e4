//! The Apple MDM protocol's storage: enrolment identities and links, the push
//! certificate, check-in state, and the command loop of the connect endpoint.

use crate::db::{commit, db_err};
use crate::devices::to_device;
use crate::entity::{
    certificate, command, device, enrollment, enrollment_link, installed_profile, push_certificate,
    school,
};
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::command::{CommandStatus, DeviceVerdict};
use flotte_core::device::{Device, EnrollmentState, InstalledProfile, InventoryUpdate, Platform};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    TryIntoModel,
};

/// `last_seen_at` is kept to the minute: refreshing it on every poll would
/// turn every read into a write.
const LAST_SEEN_GRANULARITY_SECS: i64 = 60;

/// The certificate kind of an Apple MDM identity we issued.
pub const APPLE_IDENTITY: &str = "apple_identity";

/// A certificate Flotte issued, as recorded.
#[derive(Debug, Clone)]
pub struct IssuedRecord {
    pub kind: String,
    pub serial_hex: String,
    pub sha256: String,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub school_id: Option<String>,
    pub person_id: Option<String>,
    pub device_id: Option<String>,
}

/// What an Authenticate message says about the device.
#[derive(Debug, Clone, Default)]
pub struct AuthenticateFacts {
    pub udid: String,
    pub topic: String,
    pub inventory: InventoryUpdate,
}

/// The device and enrolment an identity certificate belongs to.
#[derive(Debug, Clone)]
pub struct IdentityBinding {
    pub device_id: String,
    pub udid: Option<String>,
    pub enrollment_id: String,
    /// False once the enrolment ended (checked out, or replaced by a re-enrolment).
    pub active: bool,
}

/// Who an identity is bound to, and the push triple a TokenUpdate compares against; see
/// [`Store::apple_token_binding`].
#[derive(Debug, Clone)]
pub struct TokenBinding {
    pub binding: IdentityBinding,
    state: TokenState,
}

/// Who an identity is bound to, and what an Idle poll from it would find; see
/// [`Store::apple_poll_state`].
#[derive(Debug, Clone)]
pub struct PollState {
    pub binding: IdentityBinding,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// A command is queued, sent and unanswered, or waiting after NotNow.
    pub pending: bool,
}

/// The active APNs push certificate.
#[derive(Debug, Clone)]
pub struct PushCertificate {
    pub topic: String,
    pub sha256: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: DateTime<Utc>,
}

/// A device's answer on the connect endpoint, reduced to what storage needs.
#[derive(Debug, Clone)]
pub struct Report {
    /// `None` for Idle.
    pub answered: Option<(String, DeviceVerdict)>,
    /// The raw body, kept as the command's result.
    pub raw: String,
    pub error: Option<String>,
    pub inventory: Option<InventoryUpdate>,
    pub profiles: Option<Vec<InstalledProfile>>,
}

/// The command to hand the device next.
#[derive(Debug, Clone)]
pub struct NextCommand {
    pub id: String,
    pub request_type: String,
    pub payload: String,
}

/// A device first seen at Authenticate, in the identity's school.
pub(crate) fn new_apple_device(
    facts: &AuthenticateFacts,
    school_id: Option<String>,
    now: DateTime<Utc>,
) -> device::ActiveModel {
    let mut active = device::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        platform: Set(Platform::Apple.as_str().to_owned()),
        serial_number: Set(None),
        udid: Set(Some(facts.udid.clone())),
        asset_tag: Set(None),
        model: Set(None),
        model_name: Set(None),
        product_name: Set(None),
        os_version: Set(None),
        build_version: Set(None),
        device_name: Set(None),
        capacity_gb: Set(None),
        available_gb: Set(None),
        battery_level: Set(None),
        school_id: Set(school_id),
        assigned_person_id: Set(None),
        enrollment_state: Set(EnrollmentState::Registered.as_str().to_owned()),
        enrolled_at: Set(None),
        last_seen_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        wifi_mac: Set(None),
        supervised: Set(None),
    };
    apply_inventory(&mut active, &facts.inventory);
    active
}

/// The enrolment an Authenticate opens for an identity.
pub(crate) fn new_apple_enrollment(
    device_id: &str,
    facts: &AuthenticateFacts,
    identity_sha256: &str,
    identity_serial: &str,
    identity_not_after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> enrollment::ActiveModel {
    enrollment::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        device_id: Set(device_id.to_owned()),
        platform: Set(Platform::Apple.as_str().to_owned()),
        identity_sha256: Set(Some(identity_sha256.to_owned())),
        identity_serial: Set(Some(identity_serial.to_owned())),
        identity_not_after: Set(Some(identity_not_after)),
        push_token: Set(None),
        push_magic: Set(None),
        push_topic: Set(Some(facts.topic.clone())),
        unlock_token: Set(None),
        token_invalid_at: Set(None),
        bootstrap_token: Set(None),
        started_at: Set(now),
        ended_at: Set(None),
    }
}

pub(crate) fn authenticate_audit(
    facts: &AuthenticateFacts,
    device_id: &str,
    identity_sha256: &str,
) -> AuditEntry {
    AuditEntry::new(
        format!("device:{}", facts.udid),
        "device.authenticate",
        format!("device:{device_id}"),
    )
    .with_details(serde_json::json!({ "identity": identity_sha256 }))
}

fn apply_inventory(active: &mut device::ActiveModel, inv: &InventoryUpdate) {
    macro_rules! set_if {
        ($($field:ident),*) => {$(
            if let Some(v) = inv.$field.clone() {
                active.$field = Set(Some(v));
            }
        )*};
    }
    set_if!(
        serial_number,
        model,
        model_name,
        product_name,
        os_version,
        build_version,
        device_name,
        capacity_gb,
        available_gb,
        battery_level,
        wifi_mac,
        supervised
    );
}

async fn binding_by_identity(
    conn: &impl ConnectionTrait,
    sha256: &str,
) -> Result<Option<IdentityBinding>, CoreError> {
    // One round trip: this runs on every request a device makes.
    #[derive(sea_orm::FromQueryResult)]
    struct Row {
        enrollment_id: String,
        ended_at: Option<DateTime<Utc>>,
        device_id: String,
        udid: Option<String>,
    }
    let backend = conn.get_database_backend();
    let sql = format!(
        "SELECT e.id AS enrollment_id, e.ended_at, d.id AS device_id, d.udid \
         FROM enrollments e JOIN devices d ON d.id = e.device_id \
         WHERE e.identity_sha256 = {}",
        placeholder(backend, 1)
    );
    let row = <Row as sea_orm::FromQueryResult>::find_by_statement(
        sea_orm::Statement::from_sql_and_values(backend, sql, [sha256.into()]),
    )
    .one(conn)
    .await
    .map_err(CoreError::storage)?;
    Ok(row.map(|r| IdentityBinding {
        device_id: r.device_id,
        udid: r.udid,
        enrollment_id: r.enrollment_id,
        active: r.ended_at.is_none(),
    }))
}

impl Store {
    /// A school by Flotte id or by its code (the directory's OU name).
    pub async fn find_school(&self, key: &str) -> Result<school::Model, CoreError> {
        school::Entity::find()
            .filter(
                Condition::any()
                    .add(school::Column::Id.eq(key))
                    .add(school::Column::Code.eq(key)),
            )
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("school {key}")))
    }

    /// Record a certificate we issued (identity, client or device certificate).
    pub async fn record_issued_certificate(
        &self,
        record: &IssuedRecord,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        certificate::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            serial_hex: Set(record.serial_hex.clone()),
            sha256: Set(record.sha256.clone()),
            kind: Set(record.kind.clone()),
            subject: Set(record.subject.clone()),
            person_id: Set(record.person_id.clone()),
            device_id: Set(record.device_id.clone()),
            not_before: Set(record.not_before),
            not_after: Set(record.not_after),
            revoked_at: Set(None),
            created_at: Set(now),
            school_id: Set(record.school_id.clone()),
        }
        .insert(&txn)
        .await
        .map_err(db_err("certificate"))?;
        let mut entry = actor.clone();
        entry.target = format!("certificate:{}", record.serial_hex);
        entry.details = serde_json::json!({ "kind": record.kind, "school": record.school_id });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await
    }

    /// A one-time enrolment link for `school_id`; only the token's hash is kept.
    pub async fn create_enrollment_link(
        &self,
        school_id: &str,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let txn = self.write().await?;
        let id = uuid::Uuid::new_v4().to_string();
        enrollment_link::ActiveModel {
            id: Set(id.clone()),
            token_hash: Set(token_hash.to_owned()),
            school_id: Set(school_id.to_owned()),
            created_by: Set(actor.actor.clone()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err("enrolment link"))?;
        let mut entry = actor.clone();
        entry.target = format!("enrollment_link:{id}");
        entry.details = serde_json::json!({ "school": school_id, "expires_at": expires_at });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(id)
    }

    /// Use a link: returns its school, or says why it cannot be used. The
    /// update is conditional, so two downloads at once cannot both succeed.
    pub async fn consume_enrollment_link(
        &self,
        token_hash: &str,
        source: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String, CoreError> {
        let txn = self.write().await?;
        let link = enrollment_link::Entity::find()
            .filter(enrollment_link::Column::TokenHash.eq(token_hash))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound("enrolment link".into()))?;
        if link.used_at.is_some() {
            return Err(CoreError::Conflict(
                "this enrolment link has already been used".into(),
            ));
        }
        if link.expires_at <= now {
            return Err(CoreError::Conflict(
                "this enrolment link has expired".into(),
            ));
        }
        let updated = enrollment_link::Entity::update_many()
            .col_expr(
                enrollment_link::Column::UsedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(enrollment_link::Column::Id.eq(&link.id))
            .filter(enrollment_link::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        if updated.rows_affected != 1 {
            return Err(CoreError::Conflict(
                "this enrolment link has already been used".into(),
            ));
        }
        audit::record(
            &txn,
            &AuditEntry::new(
                "anonymous",
                "enrollment_link.use",
                format!("enrollment_link:{}", link.id),
            )
            .from_source(source),
            now,
        )
        .await?;
        commit(txn).await?;
        Ok(link.school_id)
    }

    /// Store a new push certificate and make it the active one. Refused if its
    /// topic differs from the one enrolled devices use, unless `force`: every
    /// device would stop answering pushes.
    #[allow(clippy::too_many_arguments)]
    pub async fn store_push_certificate(
        &self,
        topic: &str,
        sha256: &str,
        cert_pem: &str,
        key_pem: &str,
        not_after: DateTime<Utc>,
        force: bool,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let key_sealed = self.sealer()?.seal(key_pem.as_bytes())?;
        let txn = self.write().await?;
        let other_topic = enrollment::Entity::find()
            .filter(enrollment::Column::EndedAt.is_null())
            .filter(enrollment::Column::PushTopic.is_not_null())
            .filter(enrollment::Column::PushTopic.ne(topic))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        if let Some(e) = other_topic
            && !force
        {
            return Err(CoreError::Conflict(format!(
                "enrolled devices use topic {}, this certificate has {topic}: they would stop \
                 answering pushes (renew the certificate with the same Apple ID, or pass force=true)",
                e.push_topic.unwrap_or_default()
            )));
        }
        push_certificate::Entity::update_many()
            .col_expr(
                push_certificate::Column::Active,
                sea_orm::sea_query::Expr::value(false),
            )
            .filter(push_certificate::Column::Active.eq(true))
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        let existing = push_certificate::Entity::find()
            .filter(push_certificate::Column::Sha256.eq(sha256))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        match existing {
            Some(row) => {
                let mut active = row.into_active_model();
                active.active = Set(true);
                active.key_sealed = Set(key_sealed);
                active.update(&txn).await.map_err(CoreError::storage)?;
            }
            None => {
                push_certificate::ActiveModel {
                    id: Set(uuid::Uuid::new_v4().to_string()),
                    topic: Set(topic.to_owned()),
                    sha256: Set(sha256.to_owned()),
                    cert_pem: Set(cert_pem.to_owned()),
                    key_sealed: Set(key_sealed),
                    not_after: Set(not_after),
                    uploaded_by: Set(actor.actor.clone()),
                    created_at: Set(now),
                    active: Set(true),
                }
                .insert(&txn)
                .await
                .map_err(CoreError::storage)?;
            }
        }
        let mut entry = actor.clone();
        entry.target = format!("push_certificate:{sha256}");
        entry.details =
            serde_json::json!({ "topic": topic, "not_after": not_after, "forced": force });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await
    }

    pub async fn active_push_certificate(&self) -> Result<Option<PushCertificate>, CoreError> {
        let Some(row) = push_certificate::Entity::find()
            .filter(push_certificate::Column::Active.eq(true))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        let key = self.sealer()?.open(&row.key_sealed)?;
        Ok(Some(PushCertificate {
            topic: row.topic,
            sha256: row.sha256,
            cert_pem: row.cert_pem,
            key_pem: String::from_utf8(key)
                .map_err(|_| CoreError::Invalid("stored push key is not PEM".into()))?,
            not_after: row.not_after,
        }))
    }

    /// Which device and enrolment an identity certificate is bound to.
    pub async fn apple_identity_binding(
        &self,
        sha256: &str,
    ) -> Result<Option<IdentityBinding>, CoreError> {
        binding_by_identity(&self.db, sha256).await
    }

    /// Authenticate: bind the identity to the device (found by UDID, else by
    /// serial number in the register, else created), put it in the identity's
    /// school, and open an enrolment. A re-enrolment with a new identity ends the
    /// old enrolment but keeps the device, its history and its loans.
    ///
    /// The common case, a device Flotte has never seen with an identity never used, is
    /// written together with other such check-ins (see [`crate::checkin_batch`]).
    pub async fn apple_authenticate(
        &self,
        facts: &AuthenticateFacts,
        identity_sha256: &str,
        identity_not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Device, CoreError> {
        match self
            .first_contact(facts, identity_sha256, identity_not_after, now)
            .await?
        {
            Some(first) => self.write_first_contact(first).await,
            None => {
                self.authenticate_alone(facts, identity_sha256, identity_not_after, now)
                    .await
            }
        }
    }

    /// Authenticate in a transaction of its own, for every case.
    pub(crate) async fn authenticate_alone(
        &self,
        facts: &AuthenticateFacts,
        identity_sha256: &str,
        identity_not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Device, CoreError> {
        let txn = self.write().await?;
        let cert = certificate::Entity::find()
            .filter(certificate::Column::Sha256.eq(identity_sha256))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .filter(|c| c.kind == APPLE_IDENTITY)
            .ok_or_else(|| {
                CoreError::Forbidden(
                    "the identity is not an enrolment identity issued by Flotte".into(),
                )
            })?;
        if cert.revoked_at.is_some() {
            return Err(CoreError::Forbidden("the identity has been revoked".into()));
        }

        // Both ways of finding the device in one query; the UDID wins over the serial number.
        let mut which = Condition::any().add(device::Column::Udid.eq(&facts.udid));
        if let Some(serial) = &facts.inventory.serial_number {
            which = which.add(
                Condition::all()
                    .add(device::Column::SerialNumber.eq(serial))
                    .add(device::Column::Platform.eq(Platform::Apple.as_str())),
            );
        }
        let mut found = device::Entity::find()
            .filter(which)
            .all(&txn)
            .await
            .map_err(CoreError::storage)?;
        let by_udid = found
            .iter()
            .position(|d| d.udid.as_deref() == Some(facts.udid.as_str()))
            .map(|i| found.swap_remove(i));
        if let Some(bound) = &cert.device_id
            && by_udid.as_ref().is_none_or(|d| &d.id != bound)
        {
            return Err(CoreError::Conflict(format!(
                "the identity is bound to another device than UDID {}",
                facts.udid
            )));
        }
        let existing = by_udid.or_else(|| found.pop());
        let is_new = existing.is_none();
        let device = match existing {
            Some(existing) => {
                let id = existing.id.clone();
                let mut active = existing.into_active_model();
                active.udid = Set(Some(facts.udid.clone()));
                apply_inventory(&mut active, &facts.inventory);
                if cert.school_id.is_some() {
                    active.school_id = Set(cert.school_id.clone());
                }
                active.last_seen_at = Set(Some(now));
                active.updated_at = Set(now);
                // update_many writes the changed columns and, unlike ActiveModel::update on
                // SQLite, does not read the row back: we already know it.
                device::Entity::update_many()
                    .set(active.clone())
                    .filter(device::Column::Id.eq(id))
                    .exec(&txn)
                    .await
                    .map_err(db_err("device"))?;
                active.try_into_model().map_err(CoreError::storage)?
            }
            None => {
                let active = new_apple_device(facts, cert.school_id.clone(), now);
                device::Entity::insert(active.clone())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(db_err("device"))?;
                active.try_into_model().map_err(CoreError::storage)?
            }
        };

        if !is_new {
            // End every other open enrolment of this device: the new identity replaces them.
            // (A device created just now has none.)
            enrollment::Entity::update_many()
                .col_expr(
                    enrollment::Column::EndedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(enrollment::Column::DeviceId.eq(&device.id))
                .filter(enrollment::Column::EndedAt.is_null())
                .filter(
                    Condition::any()
                        .add(enrollment::Column::IdentitySha256.is_null())
                        .add(enrollment::Column::IdentitySha256.ne(identity_sha256)),
                )
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        // Enrolments are only made here, after binding the certificate to its device; a
        // certificate bound to no device (never, or its device was deleted, which deletes the
        // enrolments with it) has none to reopen. The unique key on identity_sha256 would
        // refuse a second one.
        let same_identity = match &cert.device_id {
            Some(_) => enrollment::Entity::find()
                .filter(enrollment::Column::IdentitySha256.eq(identity_sha256))
                .one(&txn)
                .await
                .map_err(CoreError::storage)?,
            None => None,
        };
        match same_identity {
            Some(e) => {
                enrollment::Entity::update_many()
                    .col_expr(
                        enrollment::Column::EndedAt,
                        sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .col_expr(
                        enrollment::Column::PushTopic,
                        sea_orm::sea_query::Expr::value(facts.topic.clone()),
                    )
                    .filter(enrollment::Column::Id.eq(e.id))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
            }
            None => {
                enrollment::Entity::insert(new_apple_enrollment(
                    &device.id,
                    facts,
                    identity_sha256,
                    &cert.serial_hex,
                    identity_not_after,
                    now,
                ))
                .exec_without_returning(&txn)
                .await
                .map_err(db_err("enrolment"))?;
            }
        }
        if cert.device_id.as_deref() != Some(device.id.as_str()) {
            certificate::Entity::update_many()
                .col_expr(
                    certificate::Column::DeviceId,
                    sea_orm::sea_query::Expr::value(device.id.clone()),
                )
                .filter(certificate::Column::Id.eq(&cert.id))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }

        if !is_new {
            // Commands handed to the old enrolment were never answered: offer them again.
            command::Entity::update_many()
                .col_expr(
                    command::Column::Status,
                    sea_orm::sea_query::Expr::value(CommandStatus::Queued.as_str()),
                )
                .filter(command::Column::DeviceId.eq(&device.id))
                .filter(command::Column::Status.eq(CommandStatus::Sent.as_str()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        audit::record(
            &txn,
            &authenticate_audit(facts, &device.id, identity_sha256),
            now,
        )
        .await?;
        commit(txn).await?;
        to_device(device)
    }

    /// The binding of an identity with what a TokenUpdate compares against, in one query.
    pub async fn apple_token_binding(
        &self,
        sha256: &str,
    ) -> Result<Option<TokenBinding>, CoreError> {
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            enrollment_id: String,
            ended_at: Option<DateTime<Utc>>,
            device_id: String,
            udid: Option<String>,
            push_token: Option<String>,
            push_magic: Option<String>,
            push_topic: Option<String>,
            token_invalid_at: Option<DateTime<Utc>>,
            enrollment_state: String,
            last_seen_at: Option<DateTime<Utc>>,
        }
        let backend = self.db.get_database_backend();
        let sql = format!(
            "SELECT e.id AS enrollment_id, e.ended_at, d.id AS device_id, d.udid, \
             e.push_token, e.push_magic, e.push_topic, e.token_invalid_at, \
             d.enrollment_state, d.last_seen_at \
             FROM enrollments e JOIN devices d ON d.id = e.device_id \
             WHERE e.identity_sha256 = {}",
            placeholder(backend, 1)
        );
        let row = <Row as sea_orm::FromQueryResult>::find_by_statement(
            sea_orm::Statement::from_sql_and_values(backend, sql, [sha256.into()]),
        )
        .one(&self.db)
        .await
        .map_err(CoreError::storage)?;
        Ok(row.map(|r| TokenBinding {
            binding: IdentityBinding {
                device_id: r.device_id,
                udid: r.udid,
                enrollment_id: r.enrollment_id,
                active: r.ended_at.is_none(),
            },
            state: TokenState {
                push_token: r.push_token,
                push_magic: r.push_magic,
                push_topic: r.push_topic,
                token_invalid_at: r.token_invalid_at,
                enrollment_state: r.enrollment_state,
                last_seen_at: r.last_seen_at,
            },
        }))
    }

    /// TokenUpdate: store the push triple (UnlockToken sealed) and mark the device enrolled.
    /// Devices repeat TokenUpdate with the same values (after a restart, an OS update); that
    /// changes nothing but `last_seen_at`, which is written only when it is stale. `current` is
    /// what [`Self::apple_token_binding`] read; the enrolment is checked again as it is written.
    pub async fn apple_token_update(
        &self,
        current: &TokenBinding,
        token_hex: &str,
        push_magic: &str,
        topic: &str,
        unlock_token: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let binding = &current.binding;
        let t = &current.state;
        if !binding.active {
            return Err(ended_enrollment());
        }
        let unchanged = unlock_token.is_none()
            && t.push_token.as_deref() == Some(token_hex)
            && t.push_magic.as_deref() == Some(push_magic)
            && t.push_topic.as_deref() == Some(topic)
            && t.token_invalid_at.is_none()
            && t.enrollment_state == EnrollmentState::Enrolled.as_str();
        if unchanged {
            if seen_recently(t.last_seen_at, now) {
                return Ok(());
            }
            let txn = self.write().await?;
            touch_last_seen(&txn, &binding.device_id, now).await?;
            return commit(txn).await;
        }
        let unlock_sealed = match unlock_token {
            Some(t) => Some(self.sealer()?.seal(t)?),
            None => None,
        };
        self.write_token(crate::checkin_batch::TokenWrite {
            enrollment_id: binding.enrollment_id.clone(),
            device_id: binding.device_id.clone(),
            udid: binding.udid.clone().unwrap_or_default(),
            token_hex: token_hex.to_owned(),
            push_magic: push_magic.to_owned(),
            topic: topic.to_owned(),
            unlock_sealed,
            first: t.push_token.is_none(),
            now,
        })
        .await
    }

    /// CheckOut: the profile was removed; end the enrolment and stop pushing.
    pub async fn apple_checkout(
        &self,
        binding: &IdentityBinding,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        enrollment::Entity::update_many()
            .col_expr(
                enrollment::Column::EndedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(enrollment::Column::Id.eq(&binding.enrollment_id))
            .filter(enrollment::Column::EndedAt.is_null())
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        set_state(&txn, &binding.device_id, EnrollmentState::Unenrolled, now).await?;
        audit::record(
            &txn,
            &AuditEntry::new(
                format!("device:{}", binding.udid.clone().unwrap_or_default()),
                "device.checkout",
                format!("device:{}", binding.device_id),
            ),
            now,
        )
        .await?;
        commit(txn).await
    }

    /// The device's sealed UnlockToken, opened (for ClearPasscode).
    pub async fn apple_unlock_token(&self, device_id: &str) -> Result<Option<Vec<u8>>, CoreError> {
        let e = enrollment::Entity::find()
            .filter(enrollment::Column::DeviceId.eq(device_id))
            .filter(enrollment::Column::EndedAt.is_null())
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?;
        match e.and_then(|e| e.unlock_token) {
            Some(sealed) => Ok(Some(self.sealer()?.open(&sealed)?)),
            None => Ok(None),
        }
    }

    pub async fn apple_set_bootstrap_token(
        &self,
        binding: &IdentityBinding,
        token: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let sealed = self.sealer()?.seal(token)?;
        let txn = self.write().await?;
        let e = enrollment::Entity::find_by_id(&binding.enrollment_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound("enrolment".into()))?;
        let mut active = e.into_active_model();
        active.bootstrap_token = Set(Some(sealed));
        active.update(&txn).await.map_err(CoreError::storage)?;
        audit::record(
            &txn,
            &AuditEntry::new(
                "device",
                "device.bootstrap_token",
                format!("device:{}", binding.device_id),
            ),
            now,
        )
        .await?;
        commit(txn).await
    }

    pub async fn apple_bootstrap_token(
        &self,
        binding: &IdentityBinding,
    ) -> Result<Option<Vec<u8>>, CoreError> {
        let e = enrollment::Entity::find_by_id(&binding.enrollment_id)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?;
        match e.and_then(|e| e.bootstrap_token) {
            Some(sealed) => Ok(Some(self.sealer()?.open(&sealed)?)),
            None => Ok(None),
        }
    }

    /// What the connect endpoint needs before it answers: who the identity is bound to, and
    /// whether an Idle poll could change anything. One query, because every poll of every
    /// device asks it.
    pub async fn apple_poll_state(&self, sha256: &str) -> Result<Option<PollState>, CoreError> {
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            enrollment_id: String,
            ended_at: Option<DateTime<Utc>>,
            device_id: String,
            udid: Option<String>,
            last_seen_at: Option<DateTime<Utc>>,
            pending: bool,
        }
        let backend = self.db.get_database_backend();
        let sql = format!(
            "SELECT e.id AS enrollment_id, e.ended_at, d.id AS device_id, d.udid, \
             d.last_seen_at, EXISTS (SELECT 1 FROM commands c WHERE c.device_id = d.id \
             AND c.status IN ({})) AS pending \
             FROM enrollments e JOIN devices d ON d.id = e.device_id \
             WHERE e.identity_sha256 = {}",
            pending_states(),
            placeholder(backend, 1)
        );
        let row = <Row as sea_orm::FromQueryResult>::find_by_statement(
            sea_orm::Statement::from_sql_and_values(backend, sql, [sha256.into()]),
        )
        .one(&self.db)
        .await
        .map_err(CoreError::storage)?;
        Ok(row.map(|r| PollState {
            binding: IdentityBinding {
                device_id: r.device_id,
                udid: r.udid,
                enrollment_id: r.enrollment_id,
                active: r.ended_at.is_none(),
            },
            last_seen_at: r.last_seen_at,
            pending: r.pending,
        }))
    }

    /// One turn of the command loop: record the device's answer (refusing an
    /// answer to a command never sent to this device), update the inventory,
    /// and hand out the next command, all in one transaction.
    /// A NotNow answer schedules a wake-up at `not_now_wake_at`: Apple's device
    /// only retries by itself if NotNow was the last thing it said, which later
    /// commands in the same session may have changed.
    /// `poll` is what [`apple_poll_state`](Self::apple_poll_state) just read for the device:
    /// an Idle poll with nothing pending from a device seen within the last minute changes
    /// nothing and is answered without touching the database again; otherwise `last_seen_at`
    /// is written only when stale or when the report carries inventory.
    pub async fn apple_report(
        &self,
        poll: &PollState,
        report: &Report,
        not_now_wake_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<NextCommand>, CoreError> {
        if is_plain_idle(report) && !poll.pending && seen_recently(poll.last_seen_at, now) {
            return Ok(None);
        }
        self.report_in_txn(
            &poll.binding.device_id,
            report,
            poll.last_seen_at,
            not_now_wake_at,
            now,
        )
        .await
    }

    /// `last_seen`: the device's `last_seen_at` when the caller read it.
    async fn report_in_txn(
        &self,
        device_id: &str,
        report: &Report,
        last_seen: Option<DateTime<Utc>>,
        not_now_wake_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<NextCommand>, CoreError> {
        let txn = self.write().await?;
        let mut idle = true;
        if let Some((command_id, verdict)) = &report.answered {
            idle = false;
            let row = command::Entity::find_by_id(command_id)
                .filter(command::Column::DeviceId.eq(device_id))
                .one(&txn)
                .await
                .map_err(CoreError::storage)?
                .ok_or_else(|| {
                    CoreError::Invalid(format!(
                        "command {command_id} was never sent to this device"
                    ))
                })?;
            let status: CommandStatus = row.status.parse()?;
            let next_status = status.after_verdict(*verdict).ok_or_else(|| {
                CoreError::Invalid(format!(
                    "command {command_id} is {status}: it was not sent to this device or is already answered"
                ))
            })?;
            let mut update = command::Entity::update_many()
                .col_expr(
                    command::Column::Status,
                    sea_orm::sea_query::Expr::value(next_status.as_str()),
                )
                .col_expr(
                    command::Column::UpdatedAt,
                    sea_orm::sea_query::Expr::value(now),
                );
            if next_status.is_final() {
                update = update
                    .col_expr(
                        command::Column::FinishedAt,
                        sea_orm::sea_query::Expr::value(now),
                    )
                    .col_expr(
                        command::Column::Result,
                        sea_orm::sea_query::Expr::value(report.raw.clone()),
                    )
                    .col_expr(
                        command::Column::Error,
                        sea_orm::sea_query::Expr::value(report.error.clone()),
                    );
            }
            update
                .filter(command::Column::Id.eq(command_id))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            if next_status == CommandStatus::NotNow {
                crate::jobs::enqueue(
                    &txn,
                    &flotte_core::jobs::WakeDevice {
                        device_id: device_id.to_owned(),
                        window: not_now_wake_at.timestamp(),
                    },
                    not_now_wake_at,
                )
                .await?;
            }
        }
        if let Some(profiles) = &report.profiles {
            replace_installed_profiles(&txn, device_id, profiles, now).await?;
        }
        let stale = !seen_recently(last_seen, now);
        if let Some(inv) = &report.inventory {
            let mut dev = <device::ActiveModel as ActiveModelTrait>::default();
            dev.last_seen_at = Set(Some(now));
            dev.updated_at = Set(now);
            apply_inventory(&mut dev, inv);
            let updated = device::Entity::update_many()
                .set(dev)
                .filter(device::Column::Id.eq(device_id))
                .exec(&txn)
                .await
                .map_err(db_err("device"))?;
            if updated.rows_affected != 1 {
                return Err(CoreError::NotFound(format!("device {device_id}")));
            }
        } else if stale {
            touch_last_seen(&txn, device_id, now).await?;
        }

        let mut offerable = vec![CommandStatus::Queued.as_str(), CommandStatus::Sent.as_str()];
        if idle {
            offerable.push(CommandStatus::NotNow.as_str());
        }
        let mut next = command::Entity::find()
            .select_only()
            .columns([
                command::Column::Id,
                command::Column::RequestType,
                command::Column::Payload,
            ])
            .filter(command::Column::DeviceId.eq(device_id))
            .filter(command::Column::Status.is_in(offerable))
            .order_by_asc(command::Column::CreatedAt)
            .order_by_asc(command::Column::Id);
        if let Some((answered, _)) = &report.answered {
            next = next.filter(command::Column::Id.ne(answered.clone()));
        }
        let next = next
            .into_tuple::<(String, String, String)>()
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        let out = match next {
            Some((id, request_type, payload)) => {
                command::Entity::update_many()
                    .col_expr(
                        command::Column::Status,
                        sea_orm::sea_query::Expr::value(CommandStatus::Sent.as_str()),
                    )
                    .col_expr(
                        command::Column::SentAt,
                        sea_orm::sea_query::Expr::value(now),
                    )
                    .col_expr(
                        command::Column::UpdatedAt,
                        sea_orm::sea_query::Expr::value(now),
                    )
                    .filter(command::Column::Id.eq(&id))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?;
                Some(NextCommand {
                    id,
                    request_type,
                    payload,
                })
            }
            None => None,
        };
        commit(txn).await?;
        Ok(out)
    }

    /// What the device last reported as installed.
    pub async fn installed_profiles(
        &self,
        device_id: &str,
    ) -> Result<Vec<InstalledProfile>, CoreError> {
        let rows = installed_profile::Entity::find()
            .filter(installed_profile::Column::DeviceId.eq(device_id))
            .order_by_asc(installed_profile::Column::Identifier)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(rows
            .into_iter()
            .map(|r| InstalledProfile {
                identifier: r.identifier,
                payload_uuid: r.payload_uuid,
                display_name: r.display_name,
                version: r.version,
            })
            .collect())
    }
}

pub(crate) fn placeholder(backend: sea_orm::DbBackend, n: usize) -> String {
    if backend == sea_orm::DbBackend::Sqlite {
        "?".to_owned()
    } else {
        format!("${n}")
    }
}

/// The statuses in which a command still waits for the device, as an SQL list.
fn pending_states() -> String {
    [
        CommandStatus::Queued,
        CommandStatus::Sent,
        CommandStatus::NotNow,
    ]
    .map(|s| format!("'{}'", s.as_str()))
    .join(", ")
}

pub(crate) fn ended_enrollment() -> CoreError {
    CoreError::Conflict("the enrolment this identity belongs to has ended".into())
}

fn seen_recently(last_seen_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_seen_at.is_some_and(|t| now - t < chrono::Duration::seconds(LAST_SEEN_GRANULARITY_SECS))
}

/// Idle and nothing else: no answer to record, no inventory, no profile list.
fn is_plain_idle(report: &Report) -> bool {
    report.answered.is_none() && report.inventory.is_none() && report.profiles.is_none()
}

async fn touch_last_seen(
    txn: &impl ConnectionTrait,
    device_id: &str,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    device::Entity::update_many()
        .col_expr(
            device::Column::LastSeenAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            device::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(device::Column::Id.eq(device_id))
        .exec(txn)
        .await
        .map_err(CoreError::storage)?;
    Ok(())
}

/// What a TokenUpdate compares against, from the enrolment and its device.
#[derive(Debug, Clone)]
struct TokenState {
    push_token: Option<String>,
    push_magic: Option<String>,
    push_topic: Option<String>,
    token_invalid_at: Option<DateTime<Utc>>,
    enrollment_state: String,
    last_seen_at: Option<DateTime<Utc>>,
}

async fn set_state(
    txn: &DatabaseTransaction,
    device_id: &str,
    state: EnrollmentState,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    device::Entity::update_many()
        .col_expr(
            device::Column::EnrollmentState,
            sea_orm::sea_query::Expr::value(state.as_str()),
        )
        .col_expr(
            device::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(device::Column::Id.eq(device_id))
        .exec(txn)
        .await
        .map_err(CoreError::storage)?;
    Ok(())
}

async fn replace_installed_profiles(
    txn: &DatabaseTransaction,
    device_id: &str,
    profiles: &[InstalledProfile],
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    installed_profile::Entity::delete_many()
        .filter(installed_profile::Column::DeviceId.eq(device_id))
        .exec(txn)
        .await
        .map_err(CoreError::storage)?;
    if profiles.is_empty() {
        return Ok(());
    }
    let rows = profiles.iter().map(|p| installed_profile::ActiveModel {
        device_id: Set(device_id.to_owned()),
        identifier: Set(p.identifier.clone()),
        payload_uuid: Set(p.payload_uuid.clone()),
        display_name: Set(p.display_name.clone()),
        version: Set(p.version),
        reported_at: Set(now),
    });
    installed_profile::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                installed_profile::Column::DeviceId,
                installed_profile::Column::Identifier,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(CoreError::storage)?;
    Ok(())
}

/// A school as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct School {
    pub id: String,
    pub code: String,
    pub name: String,
    pub external_id: Option<String>,
}

impl From<school::Model> for School {
    fn from(m: school::Model) -> Self {
        Self {
            id: m.id,
            code: m.code,
            name: m.name,
            external_id: m.external_id,
        }
    }
}

impl Store {
    /// Create a school by hand (a trial without a directory).
    pub async fn create_school(
        &self,
        code: &str,
        name: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<School, CoreError> {
        let txn = self.write().await?;
        let row = school::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            external_id: Set(None),
            code: Set(code.to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_err(&format!("school {code}")))?;
        let mut entry = actor.clone();
        entry.target = format!("school:{}", row.id);
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(row.into())
    }

    /// The schools in `scope`, by code.
    pub async fn list_schools(
        &self,
        scope: &flotte_core::auth::SchoolScope,
    ) -> Result<Vec<School>, CoreError> {
        let mut q = school::Entity::find().order_by_asc(school::Column::Code);
        if let flotte_core::auth::SchoolScope::Schools(ids) = scope {
            q = q.filter(school::Column::Id.is_in(ids.clone()));
        }
        Ok(q.all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url)
            .await
            .unwrap()
            .with_sealing_key(&[7; 32]);
        store.migrate().await.unwrap();
        (dir, store)
    }

    async fn audit_rows(store: &Store) -> usize {
        store.recent_audit(1000).await.unwrap().len()
    }

    async fn last_seen(store: &Store, device_id: &str) -> Option<DateTime<Utc>> {
        device::Entity::find_by_id(device_id)
            .one(&store.db)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at
    }

    fn idle() -> Report {
        Report {
            answered: None,
            raw: String::new(),
            error: None,
            inventory: None,
            profiles: None,
        }
    }

    /// The writes this module skips are only skipped when nothing would change.
    /// An identity of our CA for enrolment, recorded as issued.
    async fn issued_identity(store: &Store, n: u32, school: &str, t0: DateTime<Utc>) -> String {
        let sha = format!("{n:064x}");
        store
            .record_issued_certificate(
                &IssuedRecord {
                    kind: APPLE_IDENTITY.into(),
                    serial_hex: format!("{n:x}"),
                    sha256: sha.clone(),
                    subject: format!("ipad {n}"),
                    not_before: t0,
                    not_after: t0 + chrono::Duration::days(30),
                    school_id: Some(school.to_owned()),
                    person_id: None,
                    device_id: None,
                },
                &AuditEntry::new("test", "setup", ""),
                t0,
            )
            .await
            .unwrap();
        sha
    }

    /// A TokenUpdate read before its enrolment ended (the device re-enrolled meanwhile) is
    /// refused, whether it lands in a batch alone or with the TokenUpdates of other devices,
    /// which are all written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_for_an_ended_enrolment_is_refused_and_its_batch_neighbours_written() {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        let actor = AuditEntry::new("test", "setup", "");
        let school = store
            .create_school("S1", "Schule", &actor, t0)
            .await
            .unwrap();
        let facts = |n: u32| AuthenticateFacts {
            udid: format!("UDID-{n}"),
            topic: "com.apple.mgmt.test".into(),
            inventory: InventoryUpdate::default(),
        };
        let mut identities = Vec::new();
        for n in 1..=20 {
            let sha = issued_identity(&store, n, &school.id, t0).await;
            store
                .apple_authenticate(&facts(n), &sha, t0 + chrono::Duration::days(30), t0)
                .await
                .unwrap();
            identities.push(sha);
        }
        let stale = store
            .apple_token_binding(&identities[0])
            .await
            .unwrap()
            .unwrap();
        let renewed = issued_identity(&store, 99, &school.id, t0).await;
        store
            .apple_authenticate(&facts(1), &renewed, t0 + chrono::Duration::days(30), t0)
            .await
            .unwrap();

        let mut tasks = Vec::new();
        for (i, sha) in identities.iter().enumerate() {
            let store = store.clone();
            let current = if i == 0 {
                stale.clone()
            } else {
                store.apple_token_binding(sha).await.unwrap().unwrap()
            };
            tasks.push(tokio::spawn(async move {
                let token = format!("{i:04x}");
                store
                    .apple_token_update(&current, &token, "magic", "com.apple.mgmt.test", None, t0)
                    .await
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            match (i, task.await.unwrap()) {
                (0, Err(CoreError::Conflict(why))) => assert!(why.contains("ended"), "{why}"),
                (0, other) => panic!("the stale token was not refused: {other:?}"),
                (_, result) => result.unwrap(),
            }
        }
        for (i, sha) in identities.iter().enumerate().skip(1) {
            let now = store.apple_token_binding(sha).await.unwrap().unwrap();
            assert_eq!(now.state.push_token, Some(format!("{i:04x}")));
        }
        let renewed = store.apple_token_binding(&renewed).await.unwrap().unwrap();
        assert_eq!(
            renewed.state.push_token, None,
            "the new enrolment is untouched"
        );
    }

    #[tokio::test]
    async fn repeated_token_updates_and_idle_polls_write_only_what_changed() {
        let (_dir, store) = store().await;
        let t0 = Utc::now();
        let actor = AuditEntry::new("test", "setup", "");
        let school = store
            .create_school("S1", "Schule", &actor, t0)
            .await
            .unwrap();
        store
            .record_issued_certificate(
                &IssuedRecord {
                    kind: APPLE_IDENTITY.into(),
                    serial_hex: "01".into(),
                    sha256: "ab".repeat(32),
                    subject: "ipad".into(),
                    not_before: t0,
                    not_after: t0 + chrono::Duration::days(30),
                    school_id: Some(school.id.clone()),
                    person_id: None,
                    device_id: None,
                },
                &actor,
                t0,
            )
            .await
            .unwrap();
        let facts = AuthenticateFacts {
            udid: "UDID-1".into(),
            topic: "com.apple.mgmt.test".into(),
            inventory: InventoryUpdate {
                serial_number: Some("SER1".into()),
                ..InventoryUpdate::default()
            },
        };
        let identity = "ab".repeat(32);
        let device = store
            .apple_authenticate(&facts, &identity, t0 + chrono::Duration::days(30), t0)
            .await
            .unwrap();
        assert_eq!(device.udid.as_deref(), Some("UDID-1"));
        assert_eq!(device.serial_number.as_deref(), Some("SER1"));
        assert_eq!(device.school_id.as_deref(), Some(school.id.as_str()));
        let poll = store.apple_poll_state(&identity).await.unwrap().unwrap();
        assert!(poll.binding.active);
        assert!(!poll.pending);
        let binding = poll.binding;

        // Each TokenUpdate reads the binding afresh, as the check-in handler does.
        let update = |token: &'static str, at| {
            let store = store.clone();
            let identity = identity.clone();
            async move {
                let current = store.apple_token_binding(&identity).await.unwrap().unwrap();
                store
                    .apple_token_update(&current, token, "magic", "com.apple.mgmt.test", None, at)
                    .await
                    .unwrap()
            }
        };
        update("aa01", t0).await;
        let rows = audit_rows(&store).await;
        // The same token a few seconds later: nothing to write, not even last_seen.
        update("aa01", t0 + chrono::Duration::seconds(5)).await;
        assert_eq!(audit_rows(&store).await, rows);
        assert_eq!(last_seen(&store, &binding.device_id).await, Some(t0));
        // Minutes later: only last_seen.
        let later = t0 + chrono::Duration::minutes(5);
        update("aa01", later).await;
        assert_eq!(audit_rows(&store).await, rows);
        assert_eq!(last_seen(&store, &binding.device_id).await, Some(later));
        // A new token is a change, with its audit row.
        update("bb02", later).await;
        assert_eq!(audit_rows(&store).await, rows + 1);
        let e = enrollment::Entity::find_by_id(&binding.enrollment_id)
            .one(&store.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.push_token.as_deref(), Some("bb02"));

        // Idle polls: nothing written while the device was seen within the minute.
        let wake = later + chrono::Duration::minutes(1);
        let poll = store.apple_poll_state(&identity).await.unwrap().unwrap();
        let soon = later + chrono::Duration::seconds(30);
        assert!(
            store
                .apple_report(&poll, &idle(), wake, soon)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(last_seen(&store, &binding.device_id).await, Some(later));
        let stale = later + chrono::Duration::minutes(2);
        assert!(
            store
                .apple_report(&poll, &idle(), wake, stale)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(last_seen(&store, &binding.device_id).await, Some(stale));

        // A queued command makes the poll pending and is handed out.
        let cmd = store
            .queue_command(
                "UDID-1",
                crate::NewCommand {
                    request_type: "SecurityInfo".into(),
                    payload: serde_json::json!({ "request_type": "SecurityInfo" }),
                },
                &flotte_core::auth::SchoolScope::All,
                &actor,
                3600,
                stale,
            )
            .await
            .unwrap();
        let poll = store.apple_poll_state(&identity).await.unwrap().unwrap();
        assert!(poll.pending);
        let next = store
            .apple_report(&poll, &idle(), wake, stale)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.id, cmd.id);

        // CheckOut ends the binding for the next poll.
        store.apple_checkout(&poll.binding, stale).await.unwrap();
        let poll = store.apple_poll_state(&identity).await.unwrap().unwrap();
        assert!(!poll.binding.active);
    }
}
