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
    DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
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
    let placeholder = if backend == sea_orm::DbBackend::Sqlite {
        "?"
    } else {
        "$1"
    };
    let sql = format!(
        "SELECT e.id AS enrollment_id, e.ended_at, d.id AS device_id, d.udid \
         FROM enrollments e JOIN devices d ON d.id = e.device_id \
         WHERE e.identity_sha256 = {placeholder}"
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
    pub async fn apple_authenticate(
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

        let by_udid = device::Entity::find()
            .filter(device::Column::Udid.eq(&facts.udid))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        if let Some(bound) = &cert.device_id
            && by_udid.as_ref().is_none_or(|d| &d.id != bound)
        {
            return Err(CoreError::Conflict(format!(
                "the identity is bound to another device than UDID {}",
                facts.udid
            )));
        }
        let by_serial = match (&by_udid, &facts.inventory.serial_number) {
            (None, Some(serial)) => device::Entity::find()
                .filter(device::Column::SerialNumber.eq(serial))
                .filter(device::Column::Platform.eq(Platform::Apple.as_str()))
                .one(&txn)
                .await
                .map_err(CoreError::storage)?,
            _ => None,
        };
        let device = match by_udid.or(by_serial) {
            Some(existing) => {
                let mut active = existing.into_active_model();
                active.udid = Set(Some(facts.udid.clone()));
                apply_inventory(&mut active, &facts.inventory);
                if cert.school_id.is_some() {
                    active.school_id = Set(cert.school_id.clone());
                }
                active.last_seen_at = Set(Some(now));
                active.updated_at = Set(now);
                active.update(&txn).await.map_err(db_err("device"))?
            }
            None => {
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
                    school_id: Set(cert.school_id.clone()),
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
                active.insert(&txn).await.map_err(db_err("device"))?
            }
        };

        // End every other open enrolment of this device: the new identity replaces them.
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
        let same_identity = enrollment::Entity::find()
            .filter(enrollment::Column::IdentitySha256.eq(identity_sha256))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        match same_identity {
            Some(e) => {
                let mut active = e.into_active_model();
                active.ended_at = Set(None);
                active.push_topic = Set(Some(facts.topic.clone()));
                active.update(&txn).await.map_err(CoreError::storage)?;
            }
            None => {
                enrollment::ActiveModel {
                    id: Set(uuid::Uuid::new_v4().to_string()),
                    device_id: Set(device.id.clone()),
                    platform: Set(Platform::Apple.as_str().to_owned()),
                    identity_sha256: Set(Some(identity_sha256.to_owned())),
                    identity_serial: Set(Some(cert.serial_hex.clone())),
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
                .insert(&txn)
                .await
                .map_err(db_err("enrolment"))?;
            }
        }
        let mut cert_active = cert.into_active_model();
        cert_active.device_id = Set(Some(device.id.clone()));
        cert_active.update(&txn).await.map_err(CoreError::storage)?;

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
        audit::record(
            &txn,
            &AuditEntry::new(
                format!("device:{}", facts.udid),
                "device.authenticate",
                format!("device:{}", device.id),
            )
            .with_details(serde_json::json!({ "identity": identity_sha256 })),
            now,
        )
        .await?;
        commit(txn).await?;
        to_device(device)
    }

    /// TokenUpdate: store the push triple (UnlockToken sealed) and mark the device enrolled.
    pub async fn apple_token_update(
        &self,
        binding: &IdentityBinding,
        token_hex: &str,
        push_magic: &str,
        topic: &str,
        unlock_token: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let unlock_sealed = match unlock_token {
            Some(t) => Some(self.sealer()?.seal(t)?),
            None => None,
        };
        let txn = self.write().await?;
        let e = enrollment::Entity::find_by_id(&binding.enrollment_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .filter(|e| e.ended_at.is_none())
            .ok_or_else(|| {
                CoreError::Conflict("the enrolment this identity belongs to has ended".into())
            })?;
        let first = e.push_token.is_none();
        let mut active = e.into_active_model();
        active.push_token = Set(Some(token_hex.to_owned()));
        active.push_magic = Set(Some(push_magic.to_owned()));
        active.push_topic = Set(Some(topic.to_owned()));
        if unlock_sealed.is_some() {
            active.unlock_token = Set(unlock_sealed);
        }
        active.token_invalid_at = Set(None);
        active.update(&txn).await.map_err(CoreError::storage)?;
        let d = device::Entity::find_by_id(&binding.device_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {}", binding.device_id)))?;
        let mut dev = d.into_active_model();
        dev.enrollment_state = Set(EnrollmentState::Enrolled.as_str().to_owned());
        if first {
            dev.enrolled_at = Set(Some(now));
        }
        dev.last_seen_at = Set(Some(now));
        dev.updated_at = Set(now);
        dev.update(&txn).await.map_err(CoreError::storage)?;
        audit::record(
            &txn,
            &AuditEntry::new(
                format!("device:{}", binding.udid.clone().unwrap_or_default()),
                "device.token_update",
                format!("device:{}", binding.device_id),
            )
            .with_details(serde_json::json!({ "first": first })),
            now,
        )
        .await?;
        commit(txn).await
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

    /// One turn of the command loop: record the device's answer (refusing an
    /// answer to a command never sent to this device), update the inventory,
    /// and hand out the next command, all in one transaction.
    /// A NotNow answer schedules a wake-up at `not_now_wake_at`: Apple's device
    /// only retries by itself if NotNow was the last thing it said, which later
    /// commands in the same session may have changed.
    pub async fn apple_report(
        &self,
        device_id: &str,
        report: &Report,
        not_now_wake_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<NextCommand>, CoreError> {
        if report.answered.is_none()
            && report.inventory.is_none()
            && report.profiles.is_none()
            && self.idle_needs_no_write(device_id, now).await?
        {
            return Ok(None);
        }
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
            let mut active = row.into_active_model();
            active.status = Set(next_status.as_str().to_owned());
            active.updated_at = Set(now);
            if next_status.is_final() {
                active.finished_at = Set(Some(now));
                active.result = Set(Some(report.raw.clone()));
                active.error = Set(report.error.clone());
            }
            active.update(&txn).await.map_err(CoreError::storage)?;
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
        let d = device::Entity::find_by_id(device_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {device_id}")))?;
        let mut dev = d.into_active_model();
        if let Some(inv) = &report.inventory {
            apply_inventory(&mut dev, inv);
        }
        dev.last_seen_at = Set(Some(now));
        dev.updated_at = Set(now);
        dev.update(&txn).await.map_err(db_err("device"))?;

        let mut offerable = vec![CommandStatus::Queued.as_str(), CommandStatus::Sent.as_str()];
        if idle {
            offerable.push(CommandStatus::NotNow.as_str());
        }
        let mut next = command::Entity::find()
            .filter(command::Column::DeviceId.eq(device_id))
            .filter(command::Column::Status.is_in(offerable))
            .order_by_asc(command::Column::CreatedAt)
            .order_by_asc(command::Column::Id);
        if let Some((answered, _)) = &report.answered {
            next = next.filter(command::Column::Id.ne(answered.clone()));
        }
        let next = next.one(&txn).await.map_err(CoreError::storage)?;
        let out = match next {
            Some(row) => {
                let out = NextCommand {
                    id: row.id.clone(),
                    request_type: row.request_type.clone(),
                    payload: row.payload.clone(),
                };
                let mut active = row.into_active_model();
                active.status = Set(CommandStatus::Sent.as_str().to_owned());
                active.sent_at = Set(Some(now));
                active.updated_at = Set(now);
                active.update(&txn).await.map_err(CoreError::storage)?;
                Some(out)
            }
            None => None,
        };
        commit(txn).await?;
        Ok(out)
    }

    /// An Idle poll with nothing queued, from a device seen within the last
    /// minute, changes nothing: answer it from two reads instead of taking the
    /// write lock. Most polls of a quiet fleet are exactly this.
    async fn idle_needs_no_write(
        &self,
        device_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            last_seen_at: Option<DateTime<Utc>>,
            pending: i64,
        }
        let backend = self.db.get_database_backend();
        let placeholder = if backend == sea_orm::DbBackend::Sqlite {
            "?"
        } else {
            "$1"
        };
        let pending_states = [
            CommandStatus::Queued,
            CommandStatus::Sent,
            CommandStatus::NotNow,
        ]
        .map(|s| format!("'{}'", s.as_str()))
        .join(", ");
        let sql = format!(
            "SELECT d.last_seen_at, \
             (SELECT COUNT(*) FROM commands c WHERE c.device_id = d.id \
              AND c.status IN ({pending_states})) AS pending \
             FROM devices d WHERE d.id = {placeholder}"
        );
        let row = <Row as sea_orm::FromQueryResult>::find_by_statement(
            sea_orm::Statement::from_sql_and_values(backend, sql, [device_id.into()]),
        )
        .one(&self.db)
        .await
        .map_err(CoreError::storage)?;
        Ok(row.is_some_and(|r| {
            r.pending == 0
                && r.last_seen_at.is_some_and(|t| {
                    now - t < chrono::Duration::seconds(LAST_SEEN_GRANULARITY_SECS)
                })
        }))
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
