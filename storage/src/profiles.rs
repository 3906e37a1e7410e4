//! Profile templates and their versions, assignments (desired state), device groups, what a
//! rendering needs to know about each device, what each device carries of each profile, and
//! the EAP-TLS client certificates profiles embed, with the CRL that revokes them.
//!
//! Templates are stored as the JSON the API accepted; checking them is the caller's
//! (`flotte_profiles::template::ProfileTemplate::validate`), before they get here.

use crate::db::{commit, db_err, is_sqlite};
use crate::devices::{scoped, to_device};
use crate::entity::{
    assignment, class, command, device, device_group, device_group_member, installed_profile,
    profile_certificate, profile_crl, profile_device_state, profile_template, profile_version,
    school,
};
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::assignment::{Assignment, AssignmentScope};
use flotte_core::audit::AuditEntry;
use flotte_core::auth::SchoolScope;
use flotte_core::command::CommandStatus;
use flotte_core::device::{Device, InstalledProfile, Platform};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use std::collections::{BTreeMap, BTreeSet};

/// The certificate kind of a person's EAP-TLS certificate (one per person and device).
pub const EAP_PERSON: &str = "eap_person";
/// The certificate kind of a device's EAP-TLS certificate.
pub const EAP_DEVICE: &str = "eap_device";

/// A template's head: its identifier and current version.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProfileRecord {
    pub id: String,
    pub identifier: String,
    pub name: String,
    /// `apple`, `windows` or `both`.
    pub platforms: String,
    /// The newest version.
    pub version: i32,
    /// The newest version's template.
    pub template: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One saved version of a template.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProfileVersionRecord {
    pub version: i32,
    pub template: serde_json::Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A template to save, already validated by the caller.
#[derive(Debug, Clone)]
pub struct NewProfileVersion {
    pub identifier: String,
    pub name: String,
    /// `apple`, `windows` or `both`.
    pub platforms: String,
    /// The template as JSON.
    pub template: serde_json::Value,
}

/// An assignment as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AssignmentRecord {
    pub id: String,
    pub profile_id: String,
    pub identifier: String,
    pub version: i32,
    pub scope: AssignmentScope,
    pub school_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A device group as listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceGroupRecord {
    pub id: String,
    pub name: String,
    pub school_id: Option<String>,
    pub members: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The person a device is lent to, as a rendering needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct LoanHolder {
    pub person_id: String,
    /// The directory's `entryUUID`.
    pub external_id: String,
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    pub mail: Option<String>,
    /// `active`, `disabled` or `departed`.
    pub state: String,
    /// The person's class at the device's school, if any.
    pub class_name: Option<String>,
}

impl LoanHolder {
    /// Only active people get certificates and personalised profiles.
    pub fn is_active(&self) -> bool {
        self.state.eq_ignore_ascii_case("active")
    }
}

/// What Flotte knows about one profile on one device.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileStateRecord {
    pub identifier: String,
    pub expected_version: Option<i32>,
    pub expected_checksum: Option<String>,
    pub installed_version: Option<i32>,
    pub installed_checksum: Option<String>,
    pub installed_at: Option<DateTime<Utc>>,
    /// Windows: the commands undoing the installed version (JSON array of SyncML commands).
    pub removal: Option<String>,
    pub pending_command_id: Option<String>,
    /// `install` or `remove`.
    pub pending_action: Option<String>,
    pub pending_version: Option<i32>,
    pub pending_checksum: Option<String>,
    pub pending_removal: Option<String>,
    /// The pending command's status, read with the record.
    pub pending_status: Option<CommandStatus>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The profiles an Apple device listed in its newest `ProfileList` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedProfiles {
    pub reported_at: DateTime<Utc>,
    pub profiles: Vec<InstalledProfile>,
}

/// Everything the planner and the renderer need about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfileFacts {
    pub device: Device,
    /// `(name, code)` of the device's school.
    pub school: Option<(String, String)>,
    pub person: Option<LoanHolder>,
    /// Classes of the person the device is lent to.
    pub class_ids: BTreeSet<String>,
    pub group_ids: BTreeSet<String>,
    pub reported: Option<ReportedProfiles>,
    pub states: Vec<ProfileStateRecord>,
}

/// A current EAP-TLS certificate with its key, ready to be packed into a profile.
#[derive(Clone, PartialEq)]
pub struct EapCertificate {
    pub id: String,
    pub kind: String,
    pub serial_hex: String,
    pub sha256: String,
    /// The subject as issued: `flotte_core::certificates::CertificateSubject` as JSON.
    pub subject: serde_json::Value,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_after: DateTime<Utc>,
}

// The key unlocks a pupil's network identity: logs get the serial only.
impl std::fmt::Debug for EapCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EapCertificate")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A freshly issued EAP-TLS certificate to record as the current one.
#[derive(Clone)]
pub struct NewEapCertificate {
    /// [`EAP_PERSON`] or [`EAP_DEVICE`].
    pub kind: String,
    pub person_id: Option<String>,
    pub device_id: Option<String>,
    pub school_id: Option<String>,
    pub serial_hex: String,
    pub sha256: String,
    /// `CertificateSubject` as JSON.
    pub subject: serde_json::Value,
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for NewEapCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEapCertificate")
            .field("kind", &self.kind)
            .field("serial_hex", &self.serial_hex)
            .finish_non_exhaustive()
    }
}

/// A certificate as the API lists it (never with its key).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CertificateRecord {
    pub id: String,
    pub kind: String,
    pub serial_hex: String,
    pub sha256: String,
    pub subject: String,
    pub person_id: Option<String>,
    pub device_id: Option<String>,
    pub school_id: Option<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub current: bool,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<profile_certificate::Model> for CertificateRecord {
    fn from(m: profile_certificate::Model) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            serial_hex: m.serial_hex,
            sha256: m.sha256,
            subject: m.subject,
            person_id: m.person_id,
            device_id: m.device_id,
            school_id: m.school_id,
            not_before: m.not_before,
            not_after: m.not_after,
            current: m.is_current,
            revoked_at: m.revoked_at,
            revocation_reason: m.revocation_reason,
            created_at: m.created_at,
        }
    }
}

/// Who a certificate is requested for, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateHolder {
    pub device: Device,
    /// `(name, code)` of the device's school.
    pub school: Option<(String, String)>,
    /// For a person's certificate: the person, who must hold an open loan of the device.
    pub person: Option<LoanHolder>,
}

/// The newest published CRL.
#[derive(Debug, Clone, PartialEq)]
pub struct CrlRecord {
    pub number: i64,
    pub der: Vec<u8>,
    pub revoked_count: i32,
    pub issued_at: DateTime<Utc>,
    pub next_update: DateTime<Utc>,
}

/// A revoked, not yet expired certificate, for the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial_hex: String,
    pub revoked_at: DateTime<Utc>,
}

/// What a certificate check did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RevocationReport {
    pub loan_ended: u64,
    pub departed: u64,
    pub unenrolled: u64,
    /// Devices whose profiles must be brought up to date.
    pub devices: Vec<String>,
}

fn to_profile(m: profile_template::Model) -> Result<ProfileRecord, CoreError> {
    Ok(ProfileRecord {
        template: serde_json::from_str(&m.body).map_err(|e| {
            CoreError::Invalid(format!("stored template {} is unreadable: {e}", m.id))
        })?,
        id: m.id,
        identifier: m.identifier,
        name: m.name,
        platforms: m.platform,
        version: m.version,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn to_state(m: profile_device_state::Model, status: Option<CommandStatus>) -> ProfileStateRecord {
    ProfileStateRecord {
        identifier: m.identifier,
        expected_version: m.expected_version,
        expected_checksum: m.expected_checksum,
        installed_version: m.installed_version,
        installed_checksum: m.installed_checksum,
        installed_at: m.installed_at,
        removal: m.removal,
        pending_command_id: m.pending_command_id,
        pending_action: m.pending_action,
        pending_version: m.pending_version,
        pending_checksum: m.pending_checksum,
        pending_removal: m.pending_removal,
        pending_status: status,
        last_error: m.last_error,
        updated_at: m.updated_at,
    }
}

pub(crate) async fn find_profile_row(
    conn: &impl ConnectionTrait,
    key: &str,
) -> Result<profile_template::Model, CoreError> {
    profile_template::Entity::find()
        .filter(
            Condition::any()
                .add(profile_template::Column::Id.eq(key))
                .add(profile_template::Column::Identifier.eq(key)),
        )
        .one(conn)
        .await
        .map_err(CoreError::storage)?
        .ok_or_else(|| CoreError::NotFound(format!("profile {key}")))
}

/// Rows of a raw query, by column.
fn text(row: &sea_orm::QueryResult, column: &str) -> Result<String, CoreError> {
    row.try_get::<String>("", column)
        .map_err(CoreError::storage)
}

fn optional_text(row: &sea_orm::QueryResult, column: &str) -> Result<Option<String>, CoreError> {
    row.try_get::<Option<String>>("", column)
        .map_err(CoreError::storage)
}

/// `?` or `$n` placeholders for `count` values starting at `first`.
pub(crate) fn placeholders(conn: &impl ConnectionTrait, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| {
            if is_sqlite(conn) {
                "?".to_owned()
            } else {
                format!("${n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The people lent the given devices (open loans), by device id. The `loans` table has no
/// entity in storage yet, hence plain SQL.
async fn loan_holders(
    conn: &impl ConnectionTrait,
    device_ids: &[String],
) -> Result<BTreeMap<String, LoanHolder>, CoreError> {
    let mut out = BTreeMap::new();
    for chunk in device_ids.chunks(500) {
        let sql = format!(
            "SELECT l.device_id AS device_id, p.id AS person_id, p.external_id AS external_id, \
             p.username AS username, p.given_name AS given_name, p.family_name AS family_name, \
             p.mail AS mail, p.state AS state \
             FROM loans l JOIN people p ON p.id = l.person_id \
             WHERE l.returned_at IS NULL AND l.device_id IN ({})",
            placeholders(conn, 1, chunk.len())
        );
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                conn.get_database_backend(),
                sql,
                chunk.iter().map(|id| id.clone().into()),
            ))
            .await
            .map_err(CoreError::storage)?;
        for row in rows {
            out.insert(
                text(&row, "device_id")?,
                LoanHolder {
                    person_id: text(&row, "person_id")?,
                    external_id: text(&row, "external_id")?,
                    username: text(&row, "username")?,
                    given_name: text(&row, "given_name")?,
                    family_name: text(&row, "family_name")?,
                    mail: optional_text(&row, "mail")?,
                    state: text(&row, "state")?,
                    class_name: None,
                },
            );
        }
    }
    Ok(out)
}

/// Classes of the given people: person id → [(class id, school id, name, kind)].
async fn classes_of(
    conn: &impl ConnectionTrait,
    person_ids: &[String],
) -> Result<BTreeMap<String, Vec<(String, String, String, String)>>, CoreError> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for chunk in person_ids.chunks(500) {
        let sql = format!(
            "SELECT cm.person_id AS person_id, c.id AS class_id, c.school_id AS school_id, \
             c.name AS name, c.kind AS kind \
             FROM class_members cm JOIN classes c ON c.id = cm.class_id \
             WHERE cm.person_id IN ({}) ORDER BY c.name",
            placeholders(conn, 1, chunk.len())
        );
        let rows = conn
            .query_all_raw(Statement::from_sql_and_values(
                conn.get_database_backend(),
                sql,
                chunk.iter().map(|id| id.clone().into()),
            ))
            .await
            .map_err(CoreError::storage)?;
        for row in rows {
            out.entry(text(&row, "person_id")?).or_default().push((
                text(&row, "class_id")?,
                text(&row, "school_id")?,
                text(&row, "name")?,
                text(&row, "kind")?,
            ));
        }
    }
    Ok(out)
}

/// Profile states of the given devices with their pending commands' status.
pub(crate) async fn states_of(
    conn: &impl ConnectionTrait,
    device_ids: &[String],
) -> Result<BTreeMap<String, Vec<ProfileStateRecord>>, CoreError> {
    let mut out: BTreeMap<String, Vec<ProfileStateRecord>> = BTreeMap::new();
    for chunk in device_ids.chunks(500) {
        let rows = profile_device_state::Entity::find()
            .filter(profile_device_state::Column::DeviceId.is_in(chunk.to_vec()))
            .order_by_asc(profile_device_state::Column::Identifier)
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        let pending: Vec<String> = rows
            .iter()
            .filter_map(|r| r.pending_command_id.clone())
            .collect();
        let statuses = command_statuses(conn, &pending).await?;
        for row in rows {
            let status = row
                .pending_command_id
                .as_ref()
                .and_then(|id| statuses.get(id).copied());
            out.entry(row.device_id.clone())
                .or_default()
                .push(to_state(row, status));
        }
    }
    Ok(out)
}

pub(crate) async fn command_statuses(
    conn: &impl ConnectionTrait,
    ids: &[String],
) -> Result<BTreeMap<String, CommandStatus>, CoreError> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String)> = command::Entity::find()
            .select_only()
            .column(command::Column::Id)
            .column(command::Column::Status)
            .filter(command::Column::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(conn)
            .await
            .map_err(CoreError::storage)?;
        for (id, status) in rows {
            out.insert(id, status.parse()?);
        }
    }
    Ok(out)
}

fn open_key(store: &Store, sealed: Option<&str>) -> Result<String, CoreError> {
    let sealed =
        sealed.ok_or_else(|| CoreError::Invalid("the certificate's key was not kept".into()))?;
    String::from_utf8(store.sealer()?.open(sealed)?)
        .map_err(|_| CoreError::Invalid("stored certificate key is not PEM".into()))
}

impl Store {
    /// Save the first version of a template. The identifier must be new.
    pub async fn create_profile(
        &self,
        new: &NewProfileVersion,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<ProfileRecord, CoreError> {
        let txn = self.write().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let body = new.template.to_string();
        let row = profile_template::ActiveModel {
            id: Set(id.clone()),
            identifier: Set(new.identifier.clone()),
            name: Set(new.name.clone()),
            platform: Set(new.platforms.clone()),
            version: Set(1),
            body: Set(body.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_err(&format!(
            "a profile with identifier {}",
            new.identifier
        )))?;
        profile_version::ActiveModel {
            profile_id: Set(id.clone()),
            version: Set(1),
            body: Set(body),
            created_by: Set(actor.actor.clone()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_err("profile version"))?;
        let mut entry = actor.clone();
        entry.target = format!("profile:{id}");
        entry.details = serde_json::json!({ "identifier": new.identifier, "version": 1 });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        to_profile(row)
    }

    /// Save a new version of a template. The identifier never changes: it is what devices
    /// know the profile by.
    pub async fn update_profile(
        &self,
        key: &str,
        new: &NewProfileVersion,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<ProfileRecord, CoreError> {
        let txn = self.write().await?;
        let head = find_profile_row(&txn, key).await?;
        if head.identifier != new.identifier {
            return Err(CoreError::Invalid(format!(
                "identifier: a profile keeps its identifier {:?} across versions (devices know it \
                 by it); create a new profile instead",
                head.identifier
            )));
        }
        let version = head.version + 1;
        let body = new.template.to_string();
        profile_version::ActiveModel {
            profile_id: Set(head.id.clone()),
            version: Set(version),
            body: Set(body.clone()),
            created_by: Set(actor.actor.clone()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_err(&format!("version {version} of profile {key}")))?;
        let id = head.id.clone();
        let mut active = head.into_active_model();
        active.name = Set(new.name.clone());
        active.platform = Set(new.platforms.clone());
        active.version = Set(version);
        active.body = Set(body);
        active.updated_at = Set(now);
        let row = active.update(&txn).await.map_err(CoreError::storage)?;
        let mut entry = actor.clone();
        entry.target = format!("profile:{id}");
        entry.details = serde_json::json!({ "identifier": new.identifier, "version": version });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        to_profile(row)
    }

    /// Every template, by identifier.
    pub async fn list_profiles(&self) -> Result<Vec<ProfileRecord>, CoreError> {
        profile_template::Entity::find()
            .order_by_asc(profile_template::Column::Identifier)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(to_profile)
            .collect()
    }

    /// A template by id or identifier.
    pub async fn find_profile(&self, key: &str) -> Result<ProfileRecord, CoreError> {
        to_profile(find_profile_row(&self.db, key).await?)
    }

    /// Every version of a template, oldest first.
    pub async fn profile_versions(
        &self,
        key: &str,
    ) -> Result<Vec<ProfileVersionRecord>, CoreError> {
        let head = find_profile_row(&self.db, key).await?;
        profile_version::Entity::find()
            .filter(profile_version::Column::ProfileId.eq(head.id))
            .order_by_asc(profile_version::Column::Version)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|v| {
                Ok(ProfileVersionRecord {
                    version: v.version,
                    template: serde_json::from_str(&v.body).map_err(|e| {
                        CoreError::Invalid(format!("stored template version is unreadable: {e}"))
                    })?,
                    created_by: v.created_by,
                    created_at: v.created_at,
                })
            })
            .collect()
    }

    /// One version of a template (its head and that version's template).
    pub async fn profile_version(
        &self,
        key: &str,
        version: i32,
    ) -> Result<(ProfileRecord, serde_json::Value), CoreError> {
        let head = find_profile_row(&self.db, key).await?;
        let row = profile_version::Entity::find_by_id((head.id.clone(), version))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("version {version} of profile {key}")))?;
        let template = serde_json::from_str(&row.body).map_err(|e| {
            CoreError::Invalid(format!("stored template version is unreadable: {e}"))
        })?;
        Ok((to_profile(head)?, template))
    }

    /// Templates by `(identifier, version)`, for renderings: the template JSON of each.
    pub async fn profile_templates(
        &self,
        wanted: &BTreeSet<(String, i32)>,
    ) -> Result<BTreeMap<(String, i32), serde_json::Value>, CoreError> {
        let identifiers: BTreeSet<&String> = wanted.iter().map(|(i, _)| i).collect();
        if identifiers.is_empty() {
            return Ok(BTreeMap::new());
        }
        let heads = profile_template::Entity::find()
            .filter(profile_template::Column::Identifier.is_in(identifiers.into_iter().cloned()))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let mut out = BTreeMap::new();
        for head in heads {
            let versions: Vec<i32> = wanted
                .iter()
                .filter(|(i, _)| *i == head.identifier)
                .map(|(_, v)| *v)
                .collect();
            let rows = profile_version::Entity::find()
                .filter(profile_version::Column::ProfileId.eq(head.id.clone()))
                .filter(profile_version::Column::Version.is_in(versions))
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?;
            for row in rows {
                let template = serde_json::from_str(&row.body).map_err(|e| {
                    CoreError::Invalid(format!("stored template version is unreadable: {e}"))
                })?;
                out.insert((head.identifier.clone(), row.version), template);
            }
        }
        Ok(out)
    }

    /// Assignments, optionally of one profile, within `scope` (fleet-wide assignments are
    /// technicians' only).
    pub async fn list_assignments(
        &self,
        profile_key: Option<&str>,
        scope: &SchoolScope,
    ) -> Result<Vec<AssignmentRecord>, CoreError> {
        let mut query = assignment::Entity::find().order_by_asc(assignment::Column::CreatedAt);
        let heads: BTreeMap<String, String> = match profile_key {
            Some(key) => {
                let head = find_profile_row(&self.db, key).await?;
                query = query.filter(assignment::Column::ProfileId.eq(head.id.clone()));
                BTreeMap::from([(head.id, head.identifier)])
            }
            None => profile_template::Entity::find()
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?
                .into_iter()
                .map(|h| (h.id, h.identifier))
                .collect(),
        };
        if let SchoolScope::Schools(ids) = scope {
            query = query.filter(assignment::Column::SchoolId.is_in(ids.clone()));
        }
        query
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|a| {
                Ok(AssignmentRecord {
                    identifier: heads.get(&a.profile_id).cloned().unwrap_or_default(),
                    scope: AssignmentScope::from_parts(&a.scope_kind, &a.scope_id)?,
                    id: a.id,
                    profile_id: a.profile_id,
                    version: a.version,
                    school_id: a.school_id,
                    created_by: a.created_by,
                    created_at: a.created_at,
                    updated_at: a.updated_at,
                })
            })
            .collect()
    }

    /// Every assignment as the planner takes them: with the platforms each template renders
    /// for (`apple`, `windows` or `both` on the template's head).
    pub async fn desired_state(&self) -> Result<Vec<Assignment>, CoreError> {
        let heads: BTreeMap<String, (String, String)> = profile_template::Entity::find()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|h| (h.id, (h.identifier, h.platform)))
            .collect();
        let rows = assignment::Entity::find()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        rows.into_iter()
            .filter_map(|a| {
                let (identifier, platforms) = heads.get(&a.profile_id)?;
                Some(
                    AssignmentScope::from_parts(&a.scope_kind, &a.scope_id).map(|scope| {
                        Assignment {
                            profile_identifier: identifier.clone(),
                            profile_version: u32::try_from(a.version).unwrap_or(0),
                            scope,
                            platforms: platforms_of(platforms),
                        }
                    }),
                )
            })
            .collect()
    }

    /// Create a device group with its members (device ids, UDIDs or serial numbers, all
    /// within `scope` and, for a school's group, of that school).
    pub async fn create_device_group(
        &self,
        name: &str,
        school_key: Option<&str>,
        device_keys: &[String],
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<DeviceGroupRecord, CoreError> {
        let txn = self.write().await?;
        let school_id = match school_key {
            Some(key) => Some(scoped_school(&txn, key, scope).await?.id),
            None if matches!(scope, SchoolScope::All) => None,
            None => {
                return Err(CoreError::Invalid(
                    "school staff create groups of their own school: give the school".into(),
                ));
            }
        };
        let mut members = BTreeSet::new();
        for key in device_keys {
            let d = scoped(device::Entity::find(), scope)
                .filter(
                    Condition::any()
                        .add(device::Column::Id.eq(key.as_str()))
                        .add(device::Column::Udid.eq(key.as_str()))
                        .add(device::Column::SerialNumber.eq(key.as_str())),
                )
                .one(&txn)
                .await
                .map_err(CoreError::storage)?
                .ok_or_else(|| CoreError::NotFound(format!("device {key}")))?;
            if school_id.is_some() && d.school_id != school_id {
                return Err(CoreError::Invalid(format!(
                    "device {key} belongs to another school than the group"
                )));
            }
            members.insert(d.id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        device_group::ActiveModel {
            id: Set(id.clone()),
            name: Set(name.to_owned()),
            school_id: Set(school_id.clone()),
            created_by: Set(actor.actor.clone()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(db_err(&format!("a device group named {name}")))?;
        if !members.is_empty() {
            device_group_member::Entity::insert_many(members.iter().map(|device_id| {
                device_group_member::ActiveModel {
                    group_id: Set(id.clone()),
                    device_id: Set(device_id.clone()),
                }
            }))
            .exec_without_returning(&txn)
            .await
            .map_err(CoreError::storage)?;
        }
        let mut entry = actor.clone();
        entry.target = format!("device_group:{id}");
        entry.details = serde_json::json!({ "name": name, "members": members.len() });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(DeviceGroupRecord {
            id,
            name: name.to_owned(),
            school_id,
            members: members.into_iter().collect(),
            created_at: now,
        })
    }

    /// Device groups within `scope`, with their members.
    pub async fn list_device_groups(
        &self,
        scope: &SchoolScope,
    ) -> Result<Vec<DeviceGroupRecord>, CoreError> {
        let mut query = device_group::Entity::find().order_by_asc(device_group::Column::Name);
        if let SchoolScope::Schools(ids) = scope {
            query = query.filter(device_group::Column::SchoolId.is_in(ids.clone()));
        }
        let groups = query.all(&self.db).await.map_err(CoreError::storage)?;
        let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in device_group_member::Entity::find()
            .filter(device_group_member::Column::GroupId.is_in(ids))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
        {
            members.entry(m.group_id).or_default().push(m.device_id);
        }
        Ok(groups
            .into_iter()
            .map(|g| DeviceGroupRecord {
                members: members.remove(&g.id).unwrap_or_default(),
                id: g.id,
                name: g.name,
                school_id: g.school_id,
                created_at: g.created_at,
            })
            .collect())
    }

    /// Everything the planner and renderer need about these devices (unknown ids are left
    /// out).
    pub async fn device_profile_facts(
        &self,
        device_ids: &[String],
    ) -> Result<Vec<DeviceProfileFacts>, CoreError> {
        let conn = &self.db;
        let mut devices = Vec::with_capacity(device_ids.len());
        for chunk in device_ids.chunks(500) {
            devices.extend(
                device::Entity::find()
                    .filter(device::Column::Id.is_in(chunk.to_vec()))
                    .order_by_asc(device::Column::Id)
                    .all(conn)
                    .await
                    .map_err(CoreError::storage)?,
            );
        }
        let school_ids: BTreeSet<String> =
            devices.iter().filter_map(|d| d.school_id.clone()).collect();
        let schools: BTreeMap<String, (String, String)> = school::Entity::find()
            .filter(school::Column::Id.is_in(school_ids))
            .all(conn)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(|s| (s.id, (s.name, s.code)))
            .collect();
        let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
        let mut holders = loan_holders(conn, &ids).await?;
        let person_ids: Vec<String> = holders.values().map(|h| h.person_id.clone()).collect();
        let classes = classes_of(conn, &person_ids).await?;
        let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut reported: BTreeMap<String, ReportedProfiles> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            for m in device_group_member::Entity::find()
                .filter(device_group_member::Column::DeviceId.is_in(chunk.to_vec()))
                .all(conn)
                .await
                .map_err(CoreError::storage)?
            {
                groups.entry(m.device_id).or_default().insert(m.group_id);
            }
            for p in installed_profile::Entity::find()
                .filter(installed_profile::Column::DeviceId.is_in(chunk.to_vec()))
                .order_by_asc(installed_profile::Column::Identifier)
                .all(conn)
                .await
                .map_err(CoreError::storage)?
            {
                let entry =
                    reported
                        .entry(p.device_id.clone())
                        .or_insert_with(|| ReportedProfiles {
                            reported_at: p.reported_at,
                            profiles: Vec::new(),
                        });
                entry.reported_at = entry.reported_at.max(p.reported_at);
                entry.profiles.push(InstalledProfile {
                    identifier: p.identifier,
                    payload_uuid: p.payload_uuid,
                    display_name: p.display_name,
                    version: p.version,
                });
            }
        }
        let mut states = states_of(conn, &ids).await?;
        devices
            .into_iter()
            .map(|d| {
                let mut person = holders.remove(&d.id);
                let mut class_ids = BTreeSet::new();
                if let Some(holder) = person.as_mut() {
                    for (class_id, class_school, name, kind) in
                        classes.get(&holder.person_id).into_iter().flatten()
                    {
                        class_ids.insert(class_id.clone());
                        if holder.class_name.is_none()
                            && kind == "class"
                            && d.school_id.as_deref() == Some(class_school)
                        {
                            holder.class_name = Some(name.clone());
                        }
                    }
                }
                Ok(DeviceProfileFacts {
                    school: d.school_id.as_ref().and_then(|s| schools.get(s).cloned()),
                    group_ids: groups.remove(&d.id).unwrap_or_default(),
                    reported: reported.remove(&d.id),
                    states: states.remove(&d.id).unwrap_or_default(),
                    person,
                    class_ids,
                    device: to_device(d)?,
                })
            })
            .collect()
    }

    /// What Flotte knows about the profiles of one device, by identifier.
    pub async fn device_profile_states(
        &self,
        device_key: &str,
        scope: &SchoolScope,
    ) -> Result<Vec<ProfileStateRecord>, CoreError> {
        let device = self.find_device(device_key, scope).await?;
        Ok(states_of(&self.db, std::slice::from_ref(&device.id))
            .await?
            .remove(&device.id)
            .unwrap_or_default())
    }

    /// Fold finished commands into the profile states of these devices (all devices when
    /// `None`): an acknowledged install becomes the installed version, an acknowledged
    /// removal drops the record, a refused or withdrawn command leaves the record as it was
    /// (with the device's error). Returns how many records changed.
    pub async fn settle_profile_states(
        &self,
        device_ids: Option<&[String]>,
        now: DateTime<Utc>,
    ) -> Result<u64, CoreError> {
        let mut query = profile_device_state::Entity::find()
            .filter(profile_device_state::Column::PendingCommandId.is_not_null());
        if let Some(ids) = device_ids {
            if ids.is_empty() {
                return Ok(0);
            }
            query = query.filter(profile_device_state::Column::DeviceId.is_in(ids.to_vec()));
        }
        let rows = query.all(&self.db).await.map_err(CoreError::storage)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let pending: Vec<String> = rows
            .iter()
            .filter_map(|r| r.pending_command_id.clone())
            .collect();
        let mut finished: BTreeMap<String, (CommandStatus, Option<String>)> = BTreeMap::new();
        for chunk in pending.chunks(500) {
            let found: Vec<(String, String, Option<String>)> = command::Entity::find()
                .select_only()
                .column(command::Column::Id)
                .column(command::Column::Status)
                .column(command::Column::Error)
                .filter(command::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(CoreError::storage)?;
            for (id, status, error) in found {
                finished.insert(id, (status.parse()?, error));
            }
        }
        // Grouped by what happened, so a whole fleet's acknowledgements settle in a few
        // statements; `pending_command_id IN (…)` keeps a record that moved on untouched.
        let mut installed = Vec::new();
        let mut removed = Vec::new();
        let mut withdrawn = Vec::new();
        let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in rows {
            let Some(command_id) = row.pending_command_id.clone() else {
                continue;
            };
            // A command pruned before it was settled is as good as withdrawn.
            let (status, error) = finished
                .get(&command_id)
                .cloned()
                .unwrap_or((CommandStatus::Cancelled, None));
            match status {
                s if s.is_pending() => {}
                CommandStatus::Acknowledged if row.pending_action.as_deref() == Some("remove") => {
                    removed.push(command_id)
                }
                CommandStatus::Acknowledged => installed.push(command_id),
                CommandStatus::Cancelled => withdrawn.push(command_id),
                other => refused
                    .entry(error.unwrap_or_else(|| format!("the device answered {other}")))
                    .or_default()
                    .push(command_id),
            }
        }
        let clear = |update: sea_orm::UpdateMany<profile_device_state::Entity>| {
            update
                .col_expr(
                    profile_device_state::Column::PendingCommandId,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    profile_device_state::Column::PendingAction,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    profile_device_state::Column::PendingVersion,
                    Expr::value(Option::<i32>::None),
                )
                .col_expr(
                    profile_device_state::Column::PendingChecksum,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(
                    profile_device_state::Column::PendingRemoval,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(profile_device_state::Column::UpdatedAt, Expr::value(now))
        };
        let txn = self.write().await?;
        let mut changed = 0;
        for chunk in installed.chunks(500) {
            // The right-hand sides read the row as it was, so the pending version moves
            // into the installed columns before they are cleared.
            let update = profile_device_state::Entity::update_many()
                .col_expr(
                    profile_device_state::Column::InstalledVersion,
                    Expr::col(profile_device_state::Column::PendingVersion),
                )
                .col_expr(
                    profile_device_state::Column::InstalledChecksum,
                    Expr::col(profile_device_state::Column::PendingChecksum),
                )
                .col_expr(
                    profile_device_state::Column::Removal,
                    Expr::col(profile_device_state::Column::PendingRemoval),
                )
                .col_expr(
                    profile_device_state::Column::InstalledAt,
                    Expr::value(Some(now)),
                )
                .col_expr(
                    profile_device_state::Column::LastError,
                    Expr::value(Option::<String>::None),
                );
            changed += clear(update)
                .filter(profile_device_state::Column::PendingCommandId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?
                .rows_affected;
        }
        for chunk in removed.chunks(500) {
            changed += profile_device_state::Entity::delete_many()
                .filter(profile_device_state::Column::PendingCommandId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?
                .rows_affected;
        }
        for chunk in withdrawn.chunks(500) {
            changed += clear(profile_device_state::Entity::update_many())
                .filter(profile_device_state::Column::PendingCommandId.is_in(chunk.to_vec()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?
                .rows_affected;
        }
        for (error, ids) in &refused {
            for chunk in ids.chunks(500) {
                changed += clear(profile_device_state::Entity::update_many())
                    .col_expr(
                        profile_device_state::Column::LastError,
                        Expr::value(Some(error.clone())),
                    )
                    .filter(profile_device_state::Column::PendingCommandId.is_in(chunk.to_vec()))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?
                    .rows_affected;
            }
        }
        commit(txn).await?;
        Ok(changed)
    }

    /// The device (and person) a certificate is requested for, checked: the device within
    /// `scope`; for a person's certificate, the person must hold an open loan of the device
    /// and be active. A departed or disabled person gets no certificate.
    pub async fn certificate_holder(
        &self,
        device_key: &str,
        person_key: Option<&str>,
        scope: &SchoolScope,
    ) -> Result<CertificateHolder, CoreError> {
        let device = self.find_device(device_key, scope).await?;
        let mut facts = self
            .device_profile_facts(std::slice::from_ref(&device.id))
            .await?;
        let facts = facts
            .pop()
            .ok_or_else(|| CoreError::NotFound(format!("device {device_key}")))?;
        let person = match person_key {
            None => None,
            Some(key) => {
                let holder = facts
                    .person
                    .clone()
                    .filter(|p| p.person_id == key || p.username == key || p.external_id == key)
                    .ok_or_else(|| {
                        CoreError::Conflict(format!(
                            "{key} holds no open loan of device {device_key}: a pupil's \
                             certificate is only issued for a device lent to them"
                        ))
                    })?;
                if !holder.is_active() {
                    return Err(CoreError::Conflict(format!(
                        "{} is {} in the directory: no certificate is issued for them",
                        holder.username, holder.state
                    )));
                }
                Some(holder)
            }
        };
        Ok(CertificateHolder {
            device: facts.device,
            school: facts.school,
            person,
        })
    }

    /// The current EAP-TLS certificate of `kind` for the person and device, with its key.
    pub async fn current_eap_certificate(
        &self,
        kind: &str,
        person_id: Option<&str>,
        device_id: &str,
    ) -> Result<Option<EapCertificate>, CoreError> {
        let mut query = profile_certificate::Entity::find()
            .filter(profile_certificate::Column::Kind.eq(kind))
            .filter(profile_certificate::Column::IsCurrent.eq(true))
            .filter(profile_certificate::Column::DeviceId.eq(device_id));
        if let Some(person) = person_id {
            query = query.filter(profile_certificate::Column::PersonId.eq(person));
        }
        let Some(row) = query.one(&self.db).await.map_err(CoreError::storage)? else {
            return Ok(None);
        };
        if row.revoked_at.is_some() {
            return Ok(None);
        }
        Ok(Some(EapCertificate {
            key_pem: open_key(self, row.key_sealed.as_deref())?,
            cert_pem: row
                .cert_pem
                .clone()
                .ok_or_else(|| CoreError::Invalid("the certificate itself was not kept".into()))?,
            subject: serde_json::from_str(&row.subject).unwrap_or(serde_json::Value::Null),
            id: row.id,
            kind: row.kind,
            serial_hex: row.serial_hex,
            sha256: row.sha256,
            not_after: row.not_after,
        }))
    }

    /// Record a freshly issued EAP-TLS certificate as the current one, replacing
    /// `replaces` (the certificate the caller saw as current, if any). When another worker
    /// recorded a different one meanwhile, that one stays current, ours is recorded as
    /// revoked (so it can never be used) and the winner is returned. A person who is no
    /// longer active gets nothing.
    pub async fn record_eap_certificate(
        &self,
        new: &NewEapCertificate,
        replaces: Option<&str>,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<EapCertificate, CoreError> {
        let key_sealed = self.sealer()?.seal(new.key_pem.as_bytes())?;
        let device_id = new
            .device_id
            .clone()
            .ok_or_else(|| CoreError::Invalid("an EAP-TLS certificate names its device".into()))?;
        let txn = self.write().await?;
        if let Some(person) = &new.person_id {
            let holders = loan_holders(&txn, std::slice::from_ref(&device_id)).await?;
            let holder = holders.get(&device_id).filter(|h| &h.person_id == person);
            match holder {
                Some(h) if h.is_active() => {}
                Some(h) => {
                    return Err(CoreError::Conflict(format!(
                        "{} is {} in the directory: no certificate is issued for them",
                        h.username, h.state
                    )));
                }
                None => {
                    return Err(CoreError::Conflict(
                        "the loan this certificate was issued for has ended".into(),
                    ));
                }
            }
        }
        let mut current = profile_certificate::Entity::find()
            .filter(profile_certificate::Column::Kind.eq(new.kind.as_str()))
            .filter(profile_certificate::Column::IsCurrent.eq(true))
            .filter(profile_certificate::Column::DeviceId.eq(device_id.as_str()));
        if let Some(person) = &new.person_id {
            current = current.filter(profile_certificate::Column::PersonId.eq(person.as_str()));
        }
        let current = current.one(&txn).await.map_err(CoreError::storage)?;
        let lost = current
            .as_ref()
            .is_some_and(|c| Some(c.id.as_str()) != replaces);
        if !lost && let Some(old) = &current {
            profile_certificate::Entity::update_many()
                .col_expr(profile_certificate::Column::IsCurrent, Expr::value(false))
                .filter(profile_certificate::Column::Id.eq(old.id.as_str()))
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        profile_certificate::ActiveModel {
            id: Set(id.clone()),
            serial_hex: Set(new.serial_hex.clone()),
            sha256: Set(new.sha256.clone()),
            kind: Set(new.kind.clone()),
            subject: Set(new.subject.to_string()),
            person_id: Set(new.person_id.clone()),
            device_id: Set(Some(device_id.clone())),
            not_before: Set(new.not_before),
            not_after: Set(new.not_after),
            revoked_at: Set(lost.then_some(now)),
            created_at: Set(now),
            school_id: Set(new.school_id.clone()),
            cert_pem: Set(Some(new.cert_pem.clone())),
            key_sealed: Set(Some(key_sealed)),
            is_current: Set(!lost),
            revocation_reason: Set(lost.then(|| "superseded".to_owned())),
        }
        .insert(&txn)
        .await
        .map_err(db_err("certificate"))?;
        let mut entry = actor.clone();
        entry.target = format!("certificate:{}", new.serial_hex);
        entry.details = serde_json::json!({
            "kind": new.kind, "person": new.person_id, "device": device_id,
            "replaces": replaces, "discarded": lost,
        });
        audit::record(&txn, &entry, now).await?;
        let winner = match (&current, lost) {
            (Some(c), true) => c.clone(),
            _ => {
                commit(txn).await?;
                return Ok(EapCertificate {
                    id,
                    kind: new.kind.clone(),
                    serial_hex: new.serial_hex.clone(),
                    sha256: new.sha256.clone(),
                    subject: new.subject.clone(),
                    cert_pem: new.cert_pem.clone(),
                    key_pem: new.key_pem.clone(),
                    not_after: new.not_after,
                });
            }
        };
        commit(txn).await?;
        Ok(EapCertificate {
            key_pem: open_key(self, winner.key_sealed.as_deref())?,
            cert_pem: winner.cert_pem.clone().unwrap_or_default(),
            subject: serde_json::from_str(&winner.subject).unwrap_or(serde_json::Value::Null),
            id: winner.id,
            kind: winner.kind,
            serial_hex: winner.serial_hex,
            sha256: winner.sha256,
            not_after: winner.not_after,
        })
    }

    /// EAP-TLS certificates, newest first, within `scope`; optionally of one person or
    /// device.
    pub async fn list_eap_certificates(
        &self,
        person_id: Option<&str>,
        device_id: Option<&str>,
        scope: &SchoolScope,
        limit: u64,
    ) -> Result<Vec<CertificateRecord>, CoreError> {
        let mut query = profile_certificate::Entity::find()
            .filter(profile_certificate::Column::Kind.is_in([EAP_PERSON, EAP_DEVICE]))
            .order_by_desc(profile_certificate::Column::CreatedAt)
            .limit(limit);
        if let Some(person) = person_id {
            query = query.filter(profile_certificate::Column::PersonId.eq(person));
        }
        if let Some(device) = device_id {
            query = query.filter(profile_certificate::Column::DeviceId.eq(device));
        }
        if let SchoolScope::Schools(ids) = scope {
            query = query.filter(profile_certificate::Column::SchoolId.is_in(ids.clone()));
        }
        Ok(query
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revoke one certificate by id or serial (within `scope`). Revoking a revoked one is
    /// a conflict. Returns the record and the device whose profiles must follow.
    pub async fn revoke_certificate(
        &self,
        key: &str,
        reason: &str,
        scope: &SchoolScope,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<CertificateRecord, CoreError> {
        let txn = self.write().await?;
        let mut query = profile_certificate::Entity::find().filter(
            Condition::any()
                .add(profile_certificate::Column::Id.eq(key))
                .add(profile_certificate::Column::SerialHex.eq(key)),
        );
        if let SchoolScope::Schools(ids) = scope {
            query = query.filter(profile_certificate::Column::SchoolId.is_in(ids.clone()));
        }
        let row = query
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("certificate {key}")))?;
        if row.revoked_at.is_some() {
            return Err(CoreError::Conflict(format!(
                "certificate {key} is already revoked"
            )));
        }
        let mut active = row.into_active_model();
        active.revoked_at = Set(Some(now));
        active.is_current = Set(false);
        active.revocation_reason = Set(Some(reason.to_owned()));
        let row = active.update(&txn).await.map_err(CoreError::storage)?;
        let mut entry = actor.clone();
        entry.target = format!("certificate:{}", row.serial_hex);
        entry.details = serde_json::json!({ "reason": reason, "device": row.device_id });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(row.into())
    }

    /// Revoke the EAP-TLS certificates that must not work any more: a pupil's certificate
    /// whose loan ended, every certificate of a person who departed or was disabled, and a
    /// device's certificate once it is unenrolled. One transaction, one audit row per
    /// revoked certificate.
    pub async fn revoke_stale_certificates(
        &self,
        now: DateTime<Utc>,
    ) -> Result<RevocationReport, CoreError> {
        let conn = &self.db;
        let mut revoke: Vec<(String, String, Option<String>, &'static str)> = Vec::new();
        let person_rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT c.id AS id, c.serial_hex AS serial_hex, c.device_id AS device_id, \
                 p.state AS state, \
                 (SELECT COUNT(*) FROM loans l WHERE l.returned_at IS NULL \
                    AND l.person_id = c.person_id AND l.device_id = c.device_id) AS open_loans \
                 FROM certificates c LEFT JOIN people p ON p.id = c.person_id \
                 WHERE c.kind = 'eap_person' AND c.revoked_at IS NULL",
            ))
            .await
            .map_err(CoreError::storage)?;
        let mut report = RevocationReport::default();
        for row in person_rows {
            let state = optional_text(&row, "state")?.unwrap_or_else(|| "departed".into());
            let open: i64 = row.try_get("", "open_loans").map_err(CoreError::storage)?;
            let reason = if !state.eq_ignore_ascii_case("active") {
                report.departed += 1;
                "departed"
            } else if open == 0 {
                report.loan_ended += 1;
                "loan_ended"
            } else {
                continue;
            };
            revoke.push((
                text(&row, "id")?,
                text(&row, "serial_hex")?,
                optional_text(&row, "device_id")?,
                reason,
            ));
        }
        let device_rows: Vec<(String, String, Option<String>)> =
            profile_certificate::Entity::find()
                .select_only()
                .column(profile_certificate::Column::Id)
                .column(profile_certificate::Column::SerialHex)
                .column(profile_certificate::Column::DeviceId)
                .filter(profile_certificate::Column::Kind.eq(EAP_DEVICE))
                .filter(profile_certificate::Column::RevokedAt.is_null())
                .filter(
                    profile_certificate::Column::DeviceId.in_subquery(
                        sea_orm::sea_query::Query::select()
                            .column(device::Column::Id)
                            .from(device::Entity)
                            .and_where(device::Column::EnrollmentState.eq("unenrolled"))
                            .to_owned(),
                    ),
                )
                .into_tuple()
                .all(conn)
                .await
                .map_err(CoreError::storage)?;
        for (id, serial, device_id) in device_rows {
            report.unenrolled += 1;
            revoke.push((id, serial, device_id, "unenrolled"));
        }
        if revoke.is_empty() {
            return Ok(report);
        }
        let txn = self.write().await?;
        let mut devices = BTreeSet::new();
        for (id, serial, device_id, reason) in &revoke {
            let done = profile_certificate::Entity::update_many()
                .col_expr(
                    profile_certificate::Column::RevokedAt,
                    Expr::value(Some(now)),
                )
                .col_expr(profile_certificate::Column::IsCurrent, Expr::value(false))
                .col_expr(
                    profile_certificate::Column::RevocationReason,
                    Expr::value(Some(reason.to_string())),
                )
                .filter(profile_certificate::Column::Id.eq(id.as_str()))
                .filter(profile_certificate::Column::RevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(CoreError::storage)?;
            if done.rows_affected == 0 {
                continue;
            }
            if let Some(device) = device_id {
                devices.insert(device.clone());
            }
            audit::record(
                &txn,
                &AuditEntry::new(
                    "system",
                    "certificate.revoke",
                    format!("certificate:{serial}"),
                )
                .with_details(serde_json::json!({ "reason": reason, "device": device_id })),
                now,
            )
            .await?;
        }
        commit(txn).await?;
        report.devices = devices.into_iter().collect();
        Ok(report)
    }

    /// Devices whose current EAP-TLS certificate expires within `renew_before_days`.
    pub async fn devices_with_certificates_due(
        &self,
        now: DateTime<Utc>,
        renew_before_days: u32,
    ) -> Result<Vec<String>, CoreError> {
        let horizon = now + chrono::Duration::days(i64::from(renew_before_days));
        let rows: Vec<Option<String>> = profile_certificate::Entity::find()
            .select_only()
            .column(profile_certificate::Column::DeviceId)
            .filter(profile_certificate::Column::Kind.is_in([EAP_PERSON, EAP_DEVICE]))
            .filter(profile_certificate::Column::IsCurrent.eq(true))
            .filter(profile_certificate::Column::RevokedAt.is_null())
            .filter(profile_certificate::Column::NotAfter.lte(horizon))
            .distinct()
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(rows.into_iter().flatten().collect())
    }

    /// Every revoked certificate that has not expired yet: the CRL's entries.
    pub async fn revoked_certificates(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<RevokedEntry>, CoreError> {
        let rows: Vec<(String, Option<DateTime<Utc>>)> = profile_certificate::Entity::find()
            .select_only()
            .column(profile_certificate::Column::SerialHex)
            .column(profile_certificate::Column::RevokedAt)
            .filter(profile_certificate::Column::RevokedAt.is_not_null())
            .filter(profile_certificate::Column::NotAfter.gt(now))
            .order_by_asc(profile_certificate::Column::SerialHex)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(rows
            .into_iter()
            .filter_map(|(serial_hex, at)| {
                at.map(|revoked_at| RevokedEntry {
                    serial_hex,
                    revoked_at,
                })
            })
            .collect())
    }

    /// The newest revocation time, to tell whether the published CRL is behind.
    pub async fn latest_revocation(&self) -> Result<Option<DateTime<Utc>>, CoreError> {
        let latest: Option<Option<DateTime<Utc>>> = profile_certificate::Entity::find()
            .select_only()
            .column(profile_certificate::Column::RevokedAt)
            .filter(profile_certificate::Column::RevokedAt.is_not_null())
            .order_by_desc(profile_certificate::Column::RevokedAt)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(latest.flatten())
    }

    /// The newest published CRL.
    pub async fn current_crl(&self) -> Result<Option<CrlRecord>, CoreError> {
        use base64::Engine as _;
        let Some(row) = profile_crl::Entity::find_by_id(CRL_ROW)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        Ok(Some(CrlRecord {
            der: base64::engine::general_purpose::STANDARD
                .decode(&row.der)
                .map_err(|e| CoreError::Invalid(format!("stored CRL is unreadable: {e}")))?,
            number: row.number,
            revoked_count: row.revoked_count,
            issued_at: row.issued_at,
            next_update: row.next_update,
        }))
    }

    /// Publish `crl` if the stored one still has `previous` as its number (none stored
    /// when `None`). When another server or worker published first, the stored one wins
    /// and `Ok(false)` says so: the CRL number only ever grows.
    pub async fn publish_crl(
        &self,
        previous: Option<i64>,
        crl: &CrlRecord,
    ) -> Result<bool, CoreError> {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD.encode(&crl.der);
        let txn = self.write().await?;
        let done = match previous {
            None => profile_crl::Entity::insert(profile_crl::ActiveModel {
                id: Set(CRL_ROW.to_owned()),
                number: Set(crl.number),
                der: Set(der),
                revoked_count: Set(crl.revoked_count),
                issued_at: Set(crl.issued_at),
                next_update: Set(crl.next_update),
            })
            .on_conflict(
                OnConflict::column(profile_crl::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(CoreError::storage)?,
            Some(number) => {
                profile_crl::Entity::update_many()
                    .col_expr(profile_crl::Column::Number, Expr::value(crl.number))
                    .col_expr(profile_crl::Column::Der, Expr::value(der))
                    .col_expr(
                        profile_crl::Column::RevokedCount,
                        Expr::value(crl.revoked_count),
                    )
                    .col_expr(profile_crl::Column::IssuedAt, Expr::value(crl.issued_at))
                    .col_expr(
                        profile_crl::Column::NextUpdate,
                        Expr::value(crl.next_update),
                    )
                    .filter(profile_crl::Column::Id.eq(CRL_ROW))
                    .filter(profile_crl::Column::Number.eq(number))
                    .exec(&txn)
                    .await
                    .map_err(CoreError::storage)?
                    .rows_affected
            }
        };
        if done == 1 {
            audit::record(
                &txn,
                &AuditEntry::new("system", "crl.publish", format!("crl:{}", crl.number))
                    .with_details(serde_json::json!({ "revoked": crl.revoked_count })),
                crl.issued_at,
            )
            .await?;
        }
        commit(txn).await?;
        Ok(done == 1)
    }
}

/// The id of the CRL row.
const CRL_ROW: &str = "issuing";

/// `apple`, `windows` or `both` as platforms.
pub fn platforms_of(text: &str) -> Vec<Platform> {
    match text {
        "apple" => vec![Platform::Apple],
        "windows" => vec![Platform::Windows],
        "both" => vec![Platform::Apple, Platform::Windows],
        _ => Vec::new(),
    }
}

/// A school by id or code, within `scope` ("not found" outside it).
pub(crate) async fn scoped_school(
    conn: &impl ConnectionTrait,
    key: &str,
    scope: &SchoolScope,
) -> Result<school::Model, CoreError> {
    let mut query = school::Entity::find().filter(
        Condition::any()
            .add(school::Column::Id.eq(key))
            .add(school::Column::Code.eq(key)),
    );
    if let SchoolScope::Schools(ids) = scope {
        query = query.filter(school::Column::Id.is_in(ids.clone()));
    }
    query
        .one(conn)
        .await
        .map_err(CoreError::storage)?
        .ok_or_else(|| CoreError::NotFound(format!("school {key}")))
}

/// A class by id or external id, whose school is within `scope`.
pub(crate) async fn scoped_class(
    conn: &impl ConnectionTrait,
    key: &str,
    scope: &SchoolScope,
) -> Result<class::Model, CoreError> {
    let mut query = class::Entity::find().filter(
        Condition::any()
            .add(class::Column::Id.eq(key))
            .add(class::Column::ExternalId.eq(key)),
    );
    if let SchoolScope::Schools(ids) = scope {
        query = query.filter(class::Column::SchoolId.is_in(ids.clone()));
    }
    query
        .one(conn)
        .await
        .map_err(CoreError::storage)?
        .ok_or_else(|| CoreError::NotFound(format!("class {key}")))
}

/// A device group by id or name, whose school is within `scope` (groups without a school
/// are technicians' only).
pub(crate) async fn scoped_group(
    conn: &impl ConnectionTrait,
    key: &str,
    scope: &SchoolScope,
) -> Result<device_group::Model, CoreError> {
    let mut query = device_group::Entity::find().filter(
        Condition::any()
            .add(device_group::Column::Id.eq(key))
            .add(device_group::Column::Name.eq(key)),
    );
    if let SchoolScope::Schools(ids) = scope {
        query = query.filter(device_group::Column::SchoolId.is_in(ids.clone()));
    }
    query
        .one(conn)
        .await
        .map_err(CoreError::storage)?
        .ok_or_else(|| CoreError::NotFound(format!("device group {key}")))
}
