//! The Windows protocol's storage: technicians' enrolment secrets, enrolment of a laptop
//! (device, enrolment, management credentials and first commands in one transaction), and
//! one management message at a time (session state, command outcomes, inventory, the next
//! commands) in one transaction.

use crate::db::{commit, db_err};
use crate::entity::{
    certificate, command, device, enrollment, windows_command_delivery, windows_device,
    windows_enrollment_secret,
};
use crate::{Store, audit, hash_token};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::command::{CommandStatus, DeviceVerdict};
use flotte_core::device::{EnrollmentState, Platform};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

/// A technician-issued enrolment secret, as listed (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowsEnrollmentSecret {
    pub id: String,
    pub label: String,
    pub school_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<windows_enrollment_secret::Model> for WindowsEnrollmentSecret {
    fn from(m: windows_enrollment_secret::Model) -> Self {
        Self {
            id: m.id,
            label: m.label,
            school_id: m.school_id,
            expires_at: m.expires_at,
            max_uses: m.max_uses,
            uses: m.uses,
            created_by: m.created_by,
            created_at: m.created_at,
            revoked_at: m.revoked_at,
        }
    }
}

impl WindowsEnrollmentSecret {
    /// Whether a laptop may still enrol with it at `now`.
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|at| now < at)
            && self.max_uses.is_none_or(|max| self.uses < max)
    }
}

/// A secret to create.
#[derive(Debug, Clone)]
pub struct NewWindowsEnrollmentSecret {
    pub label: String,
    /// Laptops enrolled with it are put into this school.
    pub school_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i32>,
}

/// Who let a laptop enrol.
#[derive(Debug, Clone)]
pub enum WindowsEnrolledBy {
    /// A technician's enrolment secret (provisioning packages); by the secret's SHA-256.
    Secret { secret_hash: String },
    /// A staff member's directory password.
    Staff { username: String },
}

/// The per-device management credentials provisioned at enrolment.
#[derive(Clone)]
pub struct WindowsCredentials {
    pub digest_username: String,
    pub digest_secret: String,
    /// The base64 nonce the device's first digest uses.
    pub nonce: String,
    pub server_secret: String,
    pub server_nonce: String,
}

impl std::fmt::Debug for WindowsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowsCredentials")
            .field("digest_username", &self.digest_username)
            .finish_non_exhaustive()
    }
}

/// A laptop's enrolment, everything decided before the transaction.
#[derive(Debug, Clone)]
pub struct WindowsEnrollment {
    /// The DeviceID Windows uses as SyncML `Source`.
    pub windows_device_id: String,
    pub hw_dev_id: Option<String>,
    /// `Full` or `Device`.
    pub enrollment_type: String,
    pub device_name: Option<String>,
    pub os_version: Option<String>,
    pub enrolled_by: WindowsEnrolledBy,
    pub credentials: WindowsCredentials,
    /// The identity certificate issued from the device's CSR.
    pub identity: WindowsIdentity,
    /// The id a new device row gets; a laptop enrolling again keeps its old id.
    pub new_device_id: String,
    /// Commands queued with the enrolment (the first inventory).
    pub initial_commands: Vec<(String, serde_json::Value)>,
    /// Where the request came from, for the audit log.
    pub source: Option<String>,
}

/// The certificate a laptop authenticates with, as recorded.
#[derive(Debug, Clone)]
pub struct WindowsIdentity {
    pub sha256: String,
    pub serial_hex: String,
    pub subject: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

/// The `certificates` kind of a Windows laptop's identity.
pub const WINDOWS_IDENTITY: &str = "windows_identity";

/// The outcome of an enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledWindowsDevice {
    pub device_id: String,
    pub school_id: Option<String>,
    /// The laptop had been enrolled before (same DeviceID or same hardware).
    pub reenrolled: bool,
}

/// A Windows device's management state, as the management endpoint needs it.
#[derive(Clone)]
pub struct WindowsDeviceRecord {
    pub device_id: String,
    pub windows_device_id: String,
    pub digest_username: String,
    pub digest_secret: String,
    pub nonce: String,
    pub previous_nonce: Option<String>,
    pub session_id: Option<String>,
    pub last_msg_id: i64,
    pub session_seen_at: Option<DateTime<Utc>>,
    /// SHA-256 of the active enrolment's identity certificate.
    pub identity_sha256: Option<String>,
    /// False once the user removed the enrolment.
    pub active: bool,
}

impl std::fmt::Debug for WindowsDeviceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowsDeviceRecord")
            .field("device_id", &self.device_id)
            .field("windows_device_id", &self.windows_device_id)
            .field("session_id", &self.session_id)
            .field("last_msg_id", &self.last_msg_id)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// The session state one message moves from and to.
#[derive(Debug, Clone)]
pub struct WindowsSessionStep {
    /// What the state was when the message was admitted; the update only applies if it still
    /// is, so two copies of one message cannot both be taken.
    pub expected_session_id: Option<String>,
    pub expected_last_msg_id: i64,
    pub expected_nonce: String,
    pub session_id: String,
    pub msg_id: i64,
    /// When the message authenticated with a digest: the nonce to use next time, and
    /// whether the device used the previous (grace) nonce.
    pub next_nonce: Option<NonceRotation>,
    pub login_status: Option<String>,
}

/// A nonce hand-over.
#[derive(Debug, Clone)]
pub struct NonceRotation {
    pub next: String,
    pub used_previous: bool,
}

/// What the device said about one of our commands.
#[derive(Debug, Clone)]
pub struct WindowsCommandOutcome {
    /// The queued command.
    pub command_id: String,
    /// The message we sent it in (`MsgRef`).
    pub msg_ref: i64,
    /// `None` when only `Results` came (the `Status` follows later).
    pub verdict: Option<DeviceVerdict>,
    pub error: Option<String>,
    /// `Results` (SyncML) for a `Get`.
    pub result: Option<String>,
}

/// Inventory fields; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowsInventory {
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub serial_number: Option<String>,
    pub device_name: Option<String>,
    pub capacity_gb: Option<f64>,
    pub available_gb: Option<f64>,
    pub battery_level: Option<f64>,
}

/// One admitted management message, reduced to what storage needs.
#[derive(Debug, Clone, Default)]
pub struct WindowsReport {
    pub outcomes: Vec<WindowsCommandOutcome>,
    pub inventory: WindowsInventory,
    /// Alert 1226: the user removed the enrolment.
    pub unenrolled: bool,
}

/// A command about to be handed to the device.
#[derive(Debug, Clone)]
pub struct WindowsOutgoing {
    pub id: String,
    pub request_type: String,
    pub payload: serde_json::Value,
}

/// What a management message led to.
#[derive(Debug, Clone)]
pub struct WindowsMessageOutcome<T> {
    /// The rendered commands to send, oldest first.
    pub commands: Vec<T>,
    /// Whether the device is unenrolled now.
    pub unenrolled: bool,
}

fn apply_inventory(active: &mut device::ActiveModel, inv: &WindowsInventory) {
    macro_rules! set_if {
        ($($field:ident),*) => {$(
            if let Some(v) = inv.$field.clone() {
                active.$field = Set(Some(v));
            }
        )*};
    }
    set_if!(
        model,
        model_name,
        product_name,
        os_version,
        build_version,
        device_name,
        capacity_gb,
        available_gb,
        battery_level
    );
}

async fn insert_command(
    txn: &DatabaseTransaction,
    device_id: &str,
    request_type: &str,
    payload: &serde_json::Value,
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<String, CoreError> {
    let id = uuid::Uuid::new_v4().to_string().to_uppercase();
    command::ActiveModel {
        id: Set(id.clone()),
        device_id: Set(device_id.to_owned()),
        request_type: Set(request_type.to_owned()),
        payload: Set(payload.to_string()),
        status: Set(CommandStatus::Queued.as_str().to_owned()),
        created_by: Set(created_by.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(txn)
    .await
    .map_err(db_err("command"))?;
    Ok(id)
}

async fn end_active_enrollments(
    txn: &DatabaseTransaction,
    device_id: &str,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    enrollment::Entity::update_many()
        .col_expr(enrollment::Column::EndedAt, Expr::value(now))
        .filter(enrollment::Column::DeviceId.eq(device_id))
        .filter(enrollment::Column::EndedAt.is_null())
        .exec(txn)
        .await
        .map_err(CoreError::storage)?;
    Ok(())
}

/// Identities of an enrolment that ended are revoked, so that a CRL names them.
async fn revoke_identities(
    txn: &DatabaseTransaction,
    device_id: &str,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    certificate::Entity::update_many()
        .col_expr(certificate::Column::RevokedAt, Expr::value(now))
        .filter(certificate::Column::DeviceId.eq(device_id))
        .filter(certificate::Column::Kind.eq(WINDOWS_IDENTITY))
        .filter(certificate::Column::RevokedAt.is_null())
        .exec(txn)
        .await
        .map_err(CoreError::storage)?;
    Ok(())
}

/// The device row a re-enrolling laptop keeps: same DeviceID, else same hardware, else a
/// register entry (platform windows) naming this DeviceID as its UDID.
async fn existing_device(
    txn: &DatabaseTransaction,
    e: &WindowsEnrollment,
) -> Result<Option<device::Model>, CoreError> {
    let mut condition =
        Condition::any().add(windows_device::Column::WindowsDeviceId.eq(&e.windows_device_id));
    if let Some(hw) = &e.hw_dev_id {
        condition = condition.add(windows_device::Column::HwDevId.eq(hw));
    }
    let known = windows_device::Entity::find()
        .filter(condition)
        .order_by_desc(windows_device::Column::UpdatedAt)
        .one(txn)
        .await
        .map_err(CoreError::storage)?;
    let query = device::Entity::find();
    let query = match known.map(|w| w.device_id) {
        Some(id) => query.filter(device::Column::Id.eq(id)),
        None => query
            .filter(device::Column::Udid.eq(&e.windows_device_id))
            .filter(device::Column::Platform.eq(Platform::Windows.as_str())),
    };
    query.one(txn).await.map_err(CoreError::storage)
}

impl Store {
    /// Create an enrolment secret; only its SHA-256 is stored.
    pub async fn create_windows_enrollment_secret(
        &self,
        new: NewWindowsEnrollmentSecret,
        secret: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<WindowsEnrollmentSecret, CoreError> {
        let txn = self.write().await?;
        let row = windows_enrollment_secret::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            label: Set(new.label),
            secret_hash: Set(hash_token(secret)),
            school_id: Set(new.school_id),
            expires_at: Set(new.expires_at),
            max_uses: Set(new.max_uses),
            uses: Set(0),
            created_by: Set(actor.actor.clone()),
            created_at: Set(now),
            revoked_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err("an enrolment secret for this school"))?;
        let mut entry = actor.clone();
        entry.target = format!("windows_enrollment_secret:{}", row.id);
        entry.details = serde_json::json!({
            "label": row.label, "school_id": row.school_id,
            "expires_at": row.expires_at, "max_uses": row.max_uses,
        });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(row.into())
    }

    pub async fn list_windows_enrollment_secrets(
        &self,
    ) -> Result<Vec<WindowsEnrollmentSecret>, CoreError> {
        Ok(windows_enrollment_secret::Entity::find()
            .order_by_desc(windows_enrollment_secret::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revoke a secret: laptops enrolled with it stay enrolled, no new ones can use it.
    pub async fn revoke_windows_enrollment_secret(
        &self,
        id: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<WindowsEnrollmentSecret, CoreError> {
        let txn = self.write().await?;
        let row = windows_enrollment_secret::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("enrolment secret {id}")))?;
        if row.revoked_at.is_some() {
            return Err(CoreError::Conflict(format!(
                "enrolment secret {id} is already revoked"
            )));
        }
        let mut active = row.into_active_model();
        active.revoked_at = Set(Some(now));
        let row = active.update(&txn).await.map_err(CoreError::storage)?;
        let mut entry = actor.clone();
        entry.target = format!("windows_enrollment_secret:{id}");
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(row.into())
    }

    /// The secret with this value, if it may still be used at `now`.
    pub async fn usable_windows_enrollment_secret(
        &self,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WindowsEnrollmentSecret>, CoreError> {
        let row = windows_enrollment_secret::Entity::find()
            .filter(windows_enrollment_secret::Column::SecretHash.eq(hash_token(secret)))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(row
            .map(WindowsEnrollmentSecret::from)
            .filter(|s| s.usable_at(now)))
    }

    /// Enrol a laptop: the secret's use, the device (new, or the one this laptop had), its
    /// enrolment with the issued identity, its management credentials, its first commands
    /// and the audit row commit together.
    pub async fn enroll_windows_device(
        &self,
        e: WindowsEnrollment,
        now: DateTime<Utc>,
    ) -> Result<EnrolledWindowsDevice, CoreError> {
        let txn = self.write().await?;
        let (school_id, via) = match &e.enrolled_by {
            WindowsEnrolledBy::Secret { secret_hash } => {
                let secret = windows_enrollment_secret::Entity::find()
                    .filter(windows_enrollment_secret::Column::SecretHash.eq(secret_hash))
                    .one(&txn)
                    .await
                    .map_err(CoreError::storage)?
                    .ok_or_else(|| CoreError::Forbidden("unknown enrolment secret".into()))?;
                // Counting and checking in one statement: two laptops racing for the last
                // use of a secret cannot both get it.
                let counted = windows_enrollment_secret::Entity::update_many()
                    .col_expr(
                        windows_enrollment_secret::Column::Uses,
                        Expr::col(windows_enrollment_secret::Column::Uses).add(1),
                    )
                    .filter(windows_enrollment_secret::Column::Id.eq(&secret.id))
                    .filter(windows_enrollment_secret::Column::RevokedAt.is_null())
                    .filter(
                        Condition::any()
                            .add(windows_enrollment_secret::Column::ExpiresAt.is_null())
                            .add(windows_enrollment_secret::Column::ExpiresAt.gt(now)),
                    )
                    .filter(
                        Condition::any()
                            .add(windows_enrollment_secret::Column::MaxUses.is_null())
                            .add(
                                Expr::col(windows_enrollment_secret::Column::Uses)
                                    .lt(Expr::col(windows_enrollment_secret::Column::MaxUses)),
                            ),
                    )
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?
                    .rows_affected;
                if counted == 0 {
                    return Err(CoreError::Forbidden(
                        "the enrolment secret is revoked, expired or used up".into(),
                    ));
                }
                (secret.school_id, format!("secret:{}", secret.id))
            }
            WindowsEnrolledBy::Staff { username } => (None, format!("staff:{username}")),
        };

        let existing = existing_device(&txn, &e).await?;
        let reenrolled = existing.is_some();
        let device = match existing {
            Some(d) => {
                end_active_enrollments(&txn, &d.id, now).await?;
                let mut active = d.into_active_model();
                active.udid = Set(Some(e.windows_device_id.clone()));
                if e.device_name.is_some() {
                    active.device_name = Set(e.device_name.clone());
                }
                if e.os_version.is_some() {
                    active.os_version = Set(e.os_version.clone());
                }
                if let Some(school) = &school_id {
                    active.school_id = Set(Some(school.clone()));
                }
                active.enrollment_state = Set(EnrollmentState::Enrolled.as_str().to_owned());
                active.enrolled_at = Set(Some(now));
                active.last_seen_at = Set(Some(now));
                active.updated_at = Set(now);
                active.update(&txn).await.map_err(db_err("device"))?
            }
            None => device::ActiveModel {
                id: Set(e.new_device_id.clone()),
                platform: Set(Platform::Windows.as_str().to_owned()),
                udid: Set(Some(e.windows_device_id.clone())),
                device_name: Set(e.device_name.clone()),
                os_version: Set(e.os_version.clone()),
                school_id: Set(school_id.clone()),
                enrollment_state: Set(EnrollmentState::Enrolled.as_str().to_owned()),
                enrolled_at: Set(Some(now)),
                last_seen_at: Set(Some(now)),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map_err(db_err("a device with this DeviceID"))?,
        };

        enrollment::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            device_id: Set(device.id.clone()),
            platform: Set(Platform::Windows.as_str().to_owned()),
            identity_sha256: Set(Some(e.identity.sha256.clone())),
            identity_serial: Set(Some(e.identity.serial_hex.clone())),
            identity_not_after: Set(Some(e.identity.not_after)),
            started_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(db_err("an enrolment with this identity"))?;

        revoke_identities(&txn, &device.id, now).await?;
        certificate::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            serial_hex: Set(e.identity.serial_hex.clone()),
            sha256: Set(e.identity.sha256.clone()),
            kind: Set(WINDOWS_IDENTITY.to_owned()),
            subject: Set(e.identity.subject.clone()),
            device_id: Set(Some(device.id.clone())),
            school_id: Set(device.school_id.clone()),
            not_before: Set(e.identity.not_before),
            not_after: Set(e.identity.not_after),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(db_err("a certificate with this serial"))?;

        // A new enrolment starts a new numbering of sessions and deliveries.
        windows_command_delivery::Entity::delete_many()
            .filter(windows_command_delivery::Column::DeviceId.eq(&device.id))
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        let c = &e.credentials;
        let row = windows_device::ActiveModel {
            device_id: Set(device.id.clone()),
            windows_device_id: Set(e.windows_device_id.clone()),
            hw_dev_id: Set(e.hw_dev_id.clone()),
            enrollment_type: Set(e.enrollment_type.clone()),
            digest_username: Set(c.digest_username.clone()),
            digest_secret: Set(c.digest_secret.clone()),
            nonce: Set(c.nonce.clone()),
            previous_nonce: Set(None),
            server_secret: Set(c.server_secret.clone()),
            server_nonce: Set(c.server_nonce.clone()),
            session_id: Set(None),
            last_msg_id: Set(0),
            session_seen_at: Set(None),
            login_status: Set(None),
            enrolled_via: Set(via.clone()),
            unenrolled_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        windows_device::Entity::insert(row)
            .on_conflict(
                OnConflict::column(windows_device::Column::DeviceId)
                    .update_columns([
                        windows_device::Column::WindowsDeviceId,
                        windows_device::Column::HwDevId,
                        windows_device::Column::EnrollmentType,
                        windows_device::Column::DigestUsername,
                        windows_device::Column::DigestSecret,
                        windows_device::Column::Nonce,
                        windows_device::Column::PreviousNonce,
                        windows_device::Column::ServerSecret,
                        windows_device::Column::ServerNonce,
                        windows_device::Column::SessionId,
                        windows_device::Column::LastMsgId,
                        windows_device::Column::SessionSeenAt,
                        windows_device::Column::LoginStatus,
                        windows_device::Column::EnrolledVia,
                        windows_device::Column::UnenrolledAt,
                        windows_device::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await
            .map_err(db_err("a Windows device with this DeviceID"))?;

        let mut queued = Vec::new();
        for (request_type, payload) in &e.initial_commands {
            queued.push(
                insert_command(&txn, &device.id, request_type, payload, "system", now).await?,
            );
        }
        audit::record(
            &txn,
            &AuditEntry::new(
                format!("device:{}", e.windows_device_id),
                "windows.enroll",
                format!("device:{}", device.id),
            )
            .from_source(e.source.clone())
            .with_details(serde_json::json!({
                "via": via,
                "hw_dev_id": e.hw_dev_id,
                "enrollment_type": e.enrollment_type,
                "reenrolled": reenrolled,
                "identity_sha256": e.identity.sha256,
                "commands": queued,
            })),
            now,
        )
        .await?;
        commit(txn).await?;
        Ok(EnrolledWindowsDevice {
            device_id: device.id,
            school_id: device.school_id,
            reenrolled,
        })
    }

    /// A Windows device by the DeviceID it sends as SyncML `Source`.
    pub async fn windows_device(
        &self,
        windows_device_id: &str,
    ) -> Result<Option<WindowsDeviceRecord>, CoreError> {
        let Some(w) = windows_device::Entity::find()
            .filter(windows_device::Column::WindowsDeviceId.eq(windows_device_id))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        let identity = enrollment::Entity::find()
            .filter(enrollment::Column::DeviceId.eq(&w.device_id))
            .filter(enrollment::Column::EndedAt.is_null())
            .order_by_desc(enrollment::Column::StartedAt)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(Some(WindowsDeviceRecord {
            active: w.unenrolled_at.is_none() && identity.is_some(),
            identity_sha256: identity.and_then(|e| e.identity_sha256),
            device_id: w.device_id,
            windows_device_id: w.windows_device_id,
            digest_username: w.digest_username,
            digest_secret: w.digest_secret,
            nonce: w.nonce,
            previous_nonce: w.previous_nonce,
            session_id: w.session_id,
            last_msg_id: w.last_msg_id,
            session_seen_at: w.session_seen_at,
        }))
    }

    /// One admitted management message: move the session on (only if nobody else did in the
    /// meantime), record the device's answers (refusing an answer for a command that was not
    /// sent in this session and message), update the inventory, handle an unenrolment, and
    /// hand out up to `max_commands` pending commands not yet sent in this session, each
    /// passed through `render`. A command `render` refuses is finished as a format error so
    /// that it cannot block the queue.
    pub async fn record_windows_message<T>(
        &self,
        device_id: &str,
        step: &WindowsSessionStep,
        report: &WindowsReport,
        max_commands: u64,
        mut render: impl FnMut(&WindowsOutgoing) -> Result<T, String>,
        now: DateTime<Utc>,
    ) -> Result<WindowsMessageOutcome<T>, CoreError> {
        let txn = self.write().await?;
        let expected_session = match &step.expected_session_id {
            Some(id) => windows_device::Column::SessionId.eq(id.clone()),
            None => windows_device::Column::SessionId.is_null(),
        };
        let mut update = windows_device::Entity::update_many()
            .col_expr(
                windows_device::Column::SessionId,
                Expr::value(step.session_id.clone()),
            )
            .col_expr(windows_device::Column::LastMsgId, Expr::value(step.msg_id))
            .col_expr(windows_device::Column::SessionSeenAt, Expr::value(now))
            .col_expr(windows_device::Column::UpdatedAt, Expr::value(now));
        if let Some(rotation) = &step.next_nonce {
            update = update.col_expr(
                windows_device::Column::Nonce,
                Expr::value(rotation.next.clone()),
            );
            if !rotation.used_previous {
                update = update.col_expr(
                    windows_device::Column::PreviousNonce,
                    Expr::value(step.expected_nonce.clone()),
                );
            }
        }
        if let Some(status) = &step.login_status {
            update = update.col_expr(
                windows_device::Column::LoginStatus,
                Expr::value(status.clone()),
            );
        }
        let moved = update
            .filter(windows_device::Column::DeviceId.eq(device_id))
            .filter(windows_device::Column::UnenrolledAt.is_null())
            .filter(expected_session)
            .filter(windows_device::Column::LastMsgId.eq(step.expected_last_msg_id))
            .filter(windows_device::Column::Nonce.eq(step.expected_nonce.clone()))
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?
            .rows_affected;
        if moved == 0 {
            return Err(CoreError::Conflict(
                "the session moved on while this message was processed".into(),
            ));
        }

        let mut finished = Vec::new();
        for outcome in &report.outcomes {
            let delivered = windows_command_delivery::Entity::find_by_id(&outcome.command_id)
                .filter(windows_command_delivery::Column::DeviceId.eq(device_id))
                .filter(windows_command_delivery::Column::SessionId.eq(step.session_id.clone()))
                .filter(windows_command_delivery::Column::MsgId.eq(outcome.msg_ref))
                .one(&txn)
                .await
                .map_err(CoreError::storage)?;
            if delivered.is_none() {
                return Err(CoreError::Invalid(format!(
                    "a status for command {} that was not sent in message {} of this session",
                    outcome.command_id, outcome.msg_ref
                )));
            }
            let row = command::Entity::find_by_id(&outcome.command_id)
                .filter(command::Column::DeviceId.eq(device_id))
                .one(&txn)
                .await
                .map_err(CoreError::storage)?
                .ok_or_else(|| {
                    CoreError::Invalid(format!("command {} does not exist", outcome.command_id))
                })?;
            let status: CommandStatus = row.status.parse()?;
            let next = match outcome.verdict {
                Some(verdict) => match status.after_verdict(verdict) {
                    Some(next) => Some(next),
                    // Cancelled (or already answered) meanwhile: the device's late answer
                    // changes nothing.
                    None => continue,
                },
                None => None,
            };
            let mut active = row.into_active_model();
            if let Some(result) = &outcome.result {
                active.result = Set(Some(result.clone()));
            }
            if let Some(next) = next {
                active.status = Set(next.as_str().to_owned());
                active.error = Set(outcome.error.clone());
                if next.is_final() {
                    active.finished_at = Set(Some(now));
                }
                finished.push(serde_json::json!({
                    "command": outcome.command_id, "status": next.as_str(),
                }));
            }
            active.updated_at = Set(now);
            active.update(&txn).await.map_err(CoreError::storage)?;
        }

        let d = device::Entity::find_by_id(device_id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("device {device_id}")))?;
        let serial_taken = match &report.inventory.serial_number {
            Some(serial) if d.serial_number.as_deref() != Some(serial) => device::Entity::find()
                .filter(device::Column::SerialNumber.eq(serial))
                .filter(device::Column::Id.ne(device_id))
                .one(&txn)
                .await
                .map_err(CoreError::storage)?
                .map(|other| other.id),
            _ => None,
        };
        let mut dev = d.into_active_model();
        apply_inventory(&mut dev, &report.inventory);
        match (&report.inventory.serial_number, serial_taken) {
            (Some(serial), Some(other)) => tracing::warn!(
                device = device_id, other_device = %other, %serial,
                "serial number already belongs to another device in the register; not recorded"
            ),
            (Some(serial), None) => dev.serial_number = Set(Some(serial.clone())),
            (None, _) => {}
        }
        dev.last_seen_at = Set(Some(now));
        dev.updated_at = Set(now);
        if report.unenrolled {
            dev.enrollment_state = Set(EnrollmentState::Unenrolled.as_str().to_owned());
        }
        dev.update(&txn).await.map_err(db_err("device"))?;

        let mut commands = Vec::new();
        if report.unenrolled {
            end_active_enrollments(&txn, device_id, now).await?;
            revoke_identities(&txn, device_id, now).await?;
            windows_device::Entity::update_many()
                .col_expr(windows_device::Column::UnenrolledAt, Expr::value(now))
                .filter(windows_device::Column::DeviceId.eq(device_id))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        } else {
            let sent_in_session = Query::select()
                .column(windows_command_delivery::Column::CommandId)
                .from(windows_command_delivery::Entity)
                .and_where(windows_command_delivery::Column::DeviceId.eq(device_id))
                .and_where(windows_command_delivery::Column::SessionId.eq(step.session_id.clone()))
                .to_owned();
            let pending = command::Entity::find()
                .filter(command::Column::DeviceId.eq(device_id))
                .filter(
                    command::Column::Status
                        .is_in([CommandStatus::Queued.as_str(), CommandStatus::Sent.as_str()]),
                )
                .filter(command::Column::Id.not_in_subquery(sent_in_session))
                .order_by_asc(command::Column::CreatedAt)
                .order_by_asc(command::Column::Id)
                .limit(max_commands)
                .all(&txn)
                .await
                .map_err(CoreError::storage)?;
            for row in pending {
                let outgoing = WindowsOutgoing {
                    id: row.id.clone(),
                    request_type: row.request_type.clone(),
                    payload: serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null),
                };
                let rendered = render(&outgoing);
                let mut active = row.into_active_model();
                active.updated_at = Set(now);
                match rendered {
                    Ok(command) => {
                        active.status = Set(CommandStatus::Sent.as_str().to_owned());
                        active.sent_at = Set(Some(now));
                        active.update(&txn).await.map_err(CoreError::storage)?;
                        deliver(&txn, &outgoing.id, device_id, step, now).await?;
                        commands.push(command);
                    }
                    Err(reason) => {
                        tracing::error!(command = %outgoing.id, %reason, "queued Windows command cannot be rendered");
                        active.status = Set(CommandStatus::FormatError.as_str().to_owned());
                        active.error = Set(Some(reason));
                        active.finished_at = Set(Some(now));
                        active.update(&txn).await.map_err(CoreError::storage)?;
                    }
                }
            }
        }

        if !finished.is_empty() || report.unenrolled {
            let action = if report.unenrolled {
                "windows.unenroll"
            } else {
                "windows.report"
            };
            audit::record(
                &txn,
                &AuditEntry::new(
                    format!("device:{device_id}"),
                    action,
                    format!("device:{device_id}"),
                )
                .with_details(serde_json::json!({
                    "session": step.session_id, "message": step.msg_id, "commands": finished,
                })),
                now,
            )
            .await?;
        }
        commit(txn).await?;
        Ok(WindowsMessageOutcome {
            commands,
            unenrolled: report.unenrolled,
        })
    }
}

async fn deliver(
    conn: &impl ConnectionTrait,
    command_id: &str,
    device_id: &str,
    step: &WindowsSessionStep,
    now: DateTime<Utc>,
) -> Result<(), CoreError> {
    windows_command_delivery::Entity::insert(windows_command_delivery::ActiveModel {
        command_id: Set(command_id.to_owned()),
        device_id: Set(device_id.to_owned()),
        session_id: Set(step.session_id.clone()),
        msg_id: Set(step.msg_id),
        delivered_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(windows_command_delivery::Column::CommandId)
            .update_columns([
                windows_command_delivery::Column::SessionId,
                windows_command_delivery::Column::MsgId,
                windows_command_delivery::Column::DeliveredAt,
            ])
            .to_owned(),
    )
    .exec(conn)
    .await
    .map_err(CoreError::storage)?;
    Ok(())
}
