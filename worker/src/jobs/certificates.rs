//! EAP-TLS client certificates: issuing one when a profile needs it (and again when it is
//! due for renewal or its directory data changed), revoking those whose loan ended or
//! whose person departed, and publishing the CRL.

use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::certificates::{
    CertificateOrg, CertificateSubject, DeviceIdentity, PersonIdentity, SubjectError,
    device_certificate_subject, person_certificate_subject, reissue_reason,
};
use flotte_core::jobs::{MaintainCertificates, ReconcileDevice};
use flotte_pki::{CertificateAuthority, ClientCertificateRequest, PkiError, RevokedCertificate};
use flotte_profiles::template::{IdentityKind, IssuedIdentity};
use flotte_storage::{
    CrlRecord, DeviceProfileFacts, EAP_DEVICE, EAP_PERSON, EapCertificate, NewEapCertificate, Store,
};
use std::sync::Arc;

/// What profile work needs besides the database: the CA that issues client certificates and
/// the identity that signs profiles.
pub struct ProfileKit {
    pub ca: Arc<CertificateAuthority>,
    pub signer_cert_pem: String,
    pub signer_key_pem: String,
    /// The signer's chain (issuing CA, root), sent along with each signature.
    pub signer_chain_pem: Vec<String>,
}

impl ProfileKit {
    /// Signs a `.mobileconfig` (CMS, attached), so that iPads show it as verified.
    pub fn sign(&self, content: &[u8]) -> Result<Vec<u8>, PkiError> {
        flotte_pki::sign_attached(
            content,
            &self.signer_cert_pem,
            &self.signer_key_pem,
            &self.signer_chain_pem,
        )
    }
}

/// Why no certificate could be had for a rendering.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityError {
    /// The device is not lent to an active person, or its data cannot go into a
    /// certificate: the profile cannot be rendered for this device.
    #[error("{0}")]
    NotIssuable(String),
    /// Infrastructure failed: retry.
    #[error(transparent)]
    Storage(CoreError),
}

impl From<CoreError> for IdentityError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Storage(_) => Self::Storage(e),
            other => Self::NotIssuable(other.to_string()),
        }
    }
}

impl From<SubjectError> for IdentityError {
    fn from(e: SubjectError) -> Self {
        Self::NotIssuable(e.to_string())
    }
}

/// The subject the directory data asks for, and whose it is.
fn wanted_subject(
    deps: &WorkerDeps,
    kind: IdentityKind,
    facts: &DeviceProfileFacts,
) -> Result<(CertificateSubject, Option<String>), IdentityError> {
    let org = CertificateOrg {
        organisation: deps.settings.organisation.clone(),
        upn_realm: deps.settings.profiles.upn_realm.clone(),
    };
    let school_code = facts.school.as_ref().map(|(_, code)| code.clone());
    match kind {
        IdentityKind::PerPerson => {
            let person = facts
                .person
                .as_ref()
                .filter(|p| p.is_active())
                .ok_or_else(|| {
                    IdentityError::NotIssuable(
                        "the device is not lent to an active person, so there is no pupil \
                         certificate to embed"
                            .into(),
                    )
                })?;
            let external_id = uuid::Uuid::parse_str(&person.external_id).map_err(|_| {
                IdentityError::NotIssuable(format!(
                    "{}'s directory id {:?} is not an entryUUID",
                    person.username, person.external_id
                ))
            })?;
            let subject = person_certificate_subject(
                &PersonIdentity {
                    external_id,
                    username: person.username.clone(),
                    mail: person.mail.clone(),
                    school_code,
                },
                &org,
            )?;
            Ok((subject, Some(person.person_id.clone())))
        }
        IdentityKind::PerDevice => {
            let device_id = uuid::Uuid::parse_str(&facts.device.id).map_err(|_| {
                IdentityError::NotIssuable(format!("device id {} is not a UUID", facts.device.id))
            })?;
            let subject = device_certificate_subject(
                &DeviceIdentity {
                    device_id,
                    serial_number: facts.device.serial_number.clone(),
                    school_code,
                },
                &org,
            )?;
            Ok((subject, None))
        }
    }
}

fn kind_str(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::PerPerson => EAP_PERSON,
        IdentityKind::PerDevice => EAP_DEVICE,
    }
}

/// The current certificate of `kind` for the device (and its person), issuing a new one
/// when there is none, it is due for renewal, or the directory data in it changed.
pub(crate) async fn current_identity(
    deps: &WorkerDeps,
    kind: IdentityKind,
    facts: &DeviceProfileFacts,
    now: DateTime<Utc>,
) -> Result<EapCertificate, IdentityError> {
    let (wanted, person_id) = wanted_subject(deps, kind, facts)?;
    let current = deps
        .store
        .current_eap_certificate(kind_str(kind), person_id.as_deref(), &facts.device.id)
        .await?;
    if let Some(current) = &current {
        let issued: Option<CertificateSubject> =
            serde_json::from_value(current.subject.clone()).ok();
        let reason = match &issued {
            Some(issued) => reissue_reason(
                issued,
                &wanted,
                current.not_after,
                now,
                deps.settings.profiles.renew_before_days,
            ),
            None => Some(flotte_core::certificates::ReissueReason::SubjectChanged),
        };
        if reason.is_none() {
            return Ok(current.clone());
        }
    }
    let request = ClientCertificateRequest {
        common_name: wanted.common_name.clone(),
        organisation: Some(wanted.organisation.clone()),
        organisational_unit: wanted.organisational_unit.clone(),
        email: wanted.email.clone(),
        uri_sans: wanted.uri_sans.clone(),
        upn: wanted.upn.clone(),
        user_id: None,
        validity_days: deps.settings.profiles.certificate_validity_days,
    };
    let ca = deps.profiles.ca.clone();
    let issued = tokio::task::spawn_blocking(move || ca.issue_client_certificate(&request, now))
        .await
        .map_err(|e| IdentityError::Storage(CoreError::Invalid(format!("issuing stopped: {e}"))))?
        .map_err(|e| IdentityError::NotIssuable(format!("the CA refused: {e}")))?;
    let key_pem = issued
        .key_pem
        .clone()
        .ok_or_else(|| IdentityError::NotIssuable("the CA returned no key".into()))?;
    let record = NewEapCertificate {
        kind: kind_str(kind).to_owned(),
        person_id,
        device_id: Some(facts.device.id.clone()),
        school_id: facts.device.school_id.clone(),
        serial_hex: issued.serial_hex.clone(),
        sha256: issued.sha256_hex.clone(),
        subject: serde_json::to_value(&wanted)
            .map_err(|e| IdentityError::NotIssuable(e.to_string()))?,
        cert_pem: issued.cert_pem.clone(),
        key_pem,
        not_before: issued.not_before,
        not_after: issued.not_after,
    };
    let actor = AuditEntry::new("system", "certificate.issue", "");
    Ok(deps
        .store
        .record_eap_certificate(
            &record,
            current.as_ref().map(|c| c.id.as_str()),
            &actor,
            now,
        )
        .await?)
}

/// Packs a certificate and its key for a profile, with a fresh password.
pub(crate) fn packed(
    deps: &WorkerDeps,
    certificate: &EapCertificate,
) -> Result<IssuedIdentity, IdentityError> {
    use rand::RngCore as _;
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let pkcs12 = flotte_pki::pkcs12(
        &certificate.cert_pem,
        &certificate.key_pem,
        &[deps.profiles.ca.issuing_pem()],
        "Flotte EAP-TLS",
        &password,
    )
    .map_err(|e| IdentityError::NotIssuable(format!("PKCS#12: {e}")))?;
    let certificate_der = flotte_pki::pem_to_der(&certificate.cert_pem)
        .map_err(|e| IdentityError::NotIssuable(format!("stored certificate: {e}")))?;
    Ok(IssuedIdentity {
        certificate_der,
        pkcs12,
        password,
    })
}

/// Publish a new CRL when a certificate was revoked since the last one, or the last one is
/// past half its validity. Returns the number published, if any.
pub async fn refresh_crl(
    store: &Store,
    ca: &CertificateAuthority,
    validity_days: u32,
    now: DateTime<Utc>,
) -> Result<Option<i64>, CoreError> {
    let validity_days = validity_days.max(1);
    for _ in 0..3 {
        let stored = store.current_crl().await?;
        let latest = store.latest_revocation().await?;
        let half = Duration::days(i64::from(validity_days)) / 2;
        let fresh = stored.as_ref().is_some_and(|crl| {
            latest.is_none_or(|at| at <= crl.issued_at) && now < crl.issued_at + half
        });
        if fresh {
            return Ok(None);
        }
        let revoked = store.revoked_certificates(now).await?;
        let entries: Vec<RevokedCertificate> = revoked
            .iter()
            .map(|r| RevokedCertificate {
                serial_hex: r.serial_hex.clone(),
                revoked_at: r.revoked_at,
            })
            .collect();
        let number = stored.as_ref().map_or(1, |crl| crl.number + 1);
        let der = ca
            .issue_crl(
                &entries,
                u64::try_from(number).unwrap_or(1),
                now,
                validity_days,
            )
            .map_err(|e| CoreError::Invalid(format!("CRL: {e}")))?;
        let record = CrlRecord {
            number,
            der,
            revoked_count: i32::try_from(entries.len()).unwrap_or(i32::MAX),
            issued_at: now,
            next_update: now + Duration::days(i64::from(validity_days)),
        };
        if store
            .publish_crl(stored.map(|crl| crl.number), &record)
            .await?
        {
            return Ok(Some(number));
        }
        // Another worker or server published first: look again.
    }
    Ok(None)
}

/// Revoke what must not work any more, reconcile the devices concerned (their profiles lose
/// the revoked identity or get a renewed one), and refresh the CRL.
pub(crate) async fn maintain_certificates(
    job: MaintainCertificates,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let now = deps.clock.now();
    let settings = &deps.settings.profiles;
    let revoked = deps.store.revoke_stale_certificates(now).await?;
    let due = deps
        .store
        .devices_with_certificates_due(now, settings.renew_before_days)
        .await?;
    let window = now.timestamp() / i64::try_from(settings.certificate_check_every_secs.max(1))?;
    for device_id in revoked.devices.iter().chain(&due) {
        deps.store
            .enqueue_job(
                &ReconcileDevice {
                    device_id: device_id.clone(),
                    window,
                },
                now,
            )
            .await?;
    }
    let crl = refresh_crl(
        &deps.store,
        &deps.profiles.ca,
        settings.crl_validity_days,
        now,
    )
    .await?;
    tracing::info!(
        requested_by = %job.requested_by,
        revoked = revoked.loan_ended + revoked.departed + revoked.unenrolled,
        renewals = due.len(),
        crl = ?crl,
        "certificates checked"
    );
    Ok(())
}

/// Enqueue the certificate check once per period. Several workers may run this loop: the
/// idempotency key (one per period) keeps it to one job per period.
pub(crate) async fn schedule(deps: WorkerDeps) {
    let every = deps.settings.profiles.certificate_check_every_secs.max(1);
    loop {
        let now = deps.clock.now();
        let job = MaintainCertificates {
            requested_by: format!(
                "schedule:{}",
                now.timestamp() / i64::try_from(every).unwrap_or(i64::MAX)
            ),
        };
        if let Err(e) = deps.store.enqueue_job(&job, now).await {
            tracing::warn!(error.cause_chain = ?e, "could not schedule the certificate check");
        }
        tokio::time::sleep(std::time::Duration::from_secs(every)).await;
    }
}
