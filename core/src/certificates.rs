//! What goes into the client certificates Flotte issues for EAP-TLS, and when they are
//! renewed.
//!
//! The school's RADIUS server maps a certificate to a directory account. It needs one stable
//! key and one readable name, and nothing else:
//!
//! | field | person | device | why |
//! |---|---|---|---|
//! | subject CN | username (`uid`) | serial number (device id if unknown) | readable in RADIUS logs |
//! | subject O | the school board | the school board | which CA tenant issued it |
//! | subject OU | school code | school code | per-school VLAN or policy rules |
//! | SAN rfc822Name | mail, if the directory has one | — | mapping by mail |
//! | SAN otherName UPN | `username@realm`, else mail | — | mapping by UPN (Samba/AD style) |
//! | SAN URI | `urn:uuid:<entryUUID>` | `urn:uuid:<Flotte device id>` | survives renames |
//!
//! Data minimisation: given and family name, class, birth date and the like never go in. With
//! TLS 1.2, EAP-TLS sends the client certificate unencrypted over the air, so anything in it is
//! readable by anyone near the access point; the input types below have no fields for such
//! data, so no caller can put it there. The mail address is only included because RADIUS
//! setups map on it; where the directory has a UPN realm, the UPN alone suffices and the
//! caller may leave `mail` out.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// X.520 upper bound for `commonName`, `organizationName` and `organizationalUnitName`.
pub const MAX_NAME_CHARS: usize = 64;

/// Whose certificate it is. The issuer must mark the difference in the certificate (for
/// example a separate certificate policy per kind), so that a RADIUS policy can tell a pupil's
/// certificate from a device's even if a username equals a serial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A person's certificate (per-pupil or per-teacher).
    Person,
    /// A device's certificate.
    Device,
}

/// The directory identity that goes into a person's certificate, and nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIdentity {
    /// The user entry's `entryUUID`.
    pub external_id: Uuid,
    /// `uid`.
    pub username: String,
    /// `mailPrimaryAddress`, if any.
    pub mail: Option<String>,
    /// The school (OU name) the certificate is for, if the person has one.
    pub school_code: Option<String>,
}

/// The inventory identity that goes into a device's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceIdentity {
    /// Flotte's device id.
    pub device_id: Uuid,
    /// The hardware serial number, once the device has reported it.
    pub serial_number: Option<String>,
    /// The school the device belongs to, if any.
    pub school_code: Option<String>,
}

/// The issuing organisation's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateOrg {
    /// Subject `O`, for example the school board's name.
    pub organisation: String,
    /// The Kerberos/Samba realm for UPNs (`username@realm`), when the RADIUS maps on UPNs.
    pub upn_realm: Option<String>,
}

/// Subject and subject alternative names of a client certificate, for the CA to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSubject {
    /// Person or device.
    pub kind: SubjectKind,
    /// Subject `CN`.
    pub common_name: String,
    /// Subject `O`.
    pub organisation: String,
    /// Subject `OU` (school code).
    pub organisational_unit: Option<String>,
    /// SAN `rfc822Name`.
    pub email: Option<String>,
    /// SAN `otherName` of type Microsoft UPN (1.3.6.1.4.1.311.20.2.3).
    pub upn: Option<String>,
    /// SAN `uniformResourceIdentifier` entries.
    pub uri_sans: Vec<String>,
}

/// A value that cannot go into a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// A required value is empty.
    #[error("certificate {field} must not be empty")]
    Empty {
        /// The subject field.
        field: &'static str,
    },
    /// A value exceeds the X.520 upper bound.
    #[error("certificate {field} is longer than {max} characters")]
    TooLong {
        /// The subject field.
        field: &'static str,
        /// The bound.
        max: usize,
    },
    /// A value contains control characters, which no RADIUS rule could match reliably.
    #[error("certificate {field} contains control characters")]
    ControlCharacter {
        /// The subject field.
        field: &'static str,
    },
}

fn name(field: &'static str, value: &str) -> Result<String, SubjectError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SubjectError::Empty { field });
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(SubjectError::TooLong {
            field,
            max: MAX_NAME_CHARS,
        });
    }
    checked_text(field, value)
}

fn checked_text(field: &'static str, value: &str) -> Result<String, SubjectError> {
    if value.chars().any(char::is_control) {
        return Err(SubjectError::ControlCharacter { field });
    }
    Ok(value.to_owned())
}

/// An optional value: blank counts as absent, because an empty SAN entry maps to nothing.
fn optional(field: &'static str, value: Option<&str>) -> Result<Option<String>, SubjectError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => checked_text(field, value).map(Some),
    }
}

fn optional_name(field: &'static str, value: Option<&str>) -> Result<Option<String>, SubjectError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => name(field, value).map(Some),
    }
}

fn urn(uuid: Uuid) -> String {
    format!("urn:uuid:{}", uuid.hyphenated())
}

/// The subject of a person's EAP-TLS certificate (see the module docs for the fields).
pub fn person_certificate_subject(
    person: &PersonIdentity,
    org: &CertificateOrg,
) -> Result<CertificateSubject, SubjectError> {
    let username = name("common name (username)", &person.username)?;
    let email = optional("e-mail", person.mail.as_deref())?;
    let upn = match optional("UPN realm", org.upn_realm.as_deref())? {
        Some(realm) => Some(format!("{username}@{realm}")),
        None => email.clone(),
    };
    Ok(CertificateSubject {
        kind: SubjectKind::Person,
        common_name: username,
        organisation: name("organisation", &org.organisation)?,
        organisational_unit: optional_name("organisational unit", person.school_code.as_deref())?,
        email,
        upn,
        uri_sans: vec![urn(person.external_id)],
    })
}

/// The subject of a device's EAP-TLS certificate (see the module docs for the fields).
pub fn device_certificate_subject(
    device: &DeviceIdentity,
    org: &CertificateOrg,
) -> Result<CertificateSubject, SubjectError> {
    let common_name = match optional_name(
        "common name (serial number)",
        device.serial_number.as_deref(),
    )? {
        Some(serial) => serial,
        None => device.device_id.hyphenated().to_string(),
    };
    Ok(CertificateSubject {
        kind: SubjectKind::Device,
        common_name,
        organisation: name("organisation", &org.organisation)?,
        organisational_unit: optional_name("organisational unit", device.school_code.as_deref())?,
        email: None,
        upn: None,
        uri_sans: vec![urn(device.device_id)],
    })
}

/// Whether a certificate valid until `not_after` should be renewed at `now`: from
/// `renew_before_days` days before it expires, and of course once it has.
pub fn renewal_due(not_after: DateTime<Utc>, now: DateTime<Utc>, renew_before_days: u32) -> bool {
    match not_after.checked_sub_signed(Duration::days(i64::from(renew_before_days))) {
        Some(renew_from) => now >= renew_from,
        // A window reaching before the start of representable time covers every `now`.
        None => true,
    }
}

/// Why an issued certificate must be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReissueReason {
    /// The directory data changed (a renamed account, a new mail address, another school),
    /// so the RADIUS would map the old certificate wrongly or not at all.
    SubjectChanged,
    /// The certificate is about to expire (see [`renewal_due`]).
    RenewalDue,
}

/// Whether, and why, the certificate issued with `issued` (valid until `not_after`) must be
/// replaced, given the subject the current directory data yields.
pub fn reissue_reason(
    issued: &CertificateSubject,
    wanted: &CertificateSubject,
    not_after: DateTime<Utc>,
    now: DateTime<Utc>,
    renew_before_days: u32,
) -> Option<ReissueReason> {
    if issued != wanted {
        Some(ReissueReason::SubjectChanged)
    } else if renewal_due(not_after, now, renew_before_days) {
        Some(ReissueReason::RenewalDue)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_uuid() -> Uuid {
        Uuid::parse_str("5b0a1f7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b").unwrap()
    }

    fn pupil() -> PersonIdentity {
        PersonIdentity {
            external_id: entry_uuid(),
            username: "max.muster".to_owned(),
            mail: Some("max.muster@gym1.schule.example".to_owned()),
            school_code: Some("gym1".to_owned()),
        }
    }

    fn org(realm: Option<&str>) -> CertificateOrg {
        CertificateOrg {
            organisation: "Schulträger Musterstadt".to_owned(),
            upn_realm: realm.map(str::to_owned),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_pupils_certificate_carries_username_mail_upn_and_entry_uuid() {
        let subject = person_certificate_subject(&pupil(), &org(Some("SCHULE.EXAMPLE"))).unwrap();
        assert_eq!(
            subject,
            CertificateSubject {
                kind: SubjectKind::Person,
                common_name: "max.muster".to_owned(),
                organisation: "Schulträger Musterstadt".to_owned(),
                organisational_unit: Some("gym1".to_owned()),
                email: Some("max.muster@gym1.schule.example".to_owned()),
                upn: Some("max.muster@SCHULE.EXAMPLE".to_owned()),
                uri_sans: vec!["urn:uuid:5b0a1f7e-2c3d-4e5f-8a9b-0c1d2e3f4a5b".to_owned()],
            }
        );
    }

    #[test]
    fn without_a_realm_the_upn_is_the_mail_and_without_either_there_is_none() {
        let subject = person_certificate_subject(&pupil(), &org(None)).unwrap();
        assert_eq!(
            subject.upn.as_deref(),
            Some("max.muster@gym1.schule.example")
        );

        let no_mail = PersonIdentity {
            mail: Some("  ".to_owned()),
            school_code: None,
            ..pupil()
        };
        let subject = person_certificate_subject(&no_mail, &org(None)).unwrap();
        assert_eq!(subject.email, None);
        assert_eq!(subject.upn, None);
        assert_eq!(subject.organisational_unit, None);
        assert_eq!(subject.uri_sans.len(), 1, "the entryUUID is always there");
    }

    #[test]
    fn a_devices_certificate_is_named_by_serial_and_carries_no_personal_data() {
        let device_id = Uuid::parse_str("0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a").unwrap();
        let device = DeviceIdentity {
            device_id,
            serial_number: Some("DMPXK2ABCD12".to_owned()),
            school_code: Some("gs2".to_owned()),
        };
        let subject = device_certificate_subject(&device, &org(Some("SCHULE.EXAMPLE"))).unwrap();
        assert_eq!(subject.kind, SubjectKind::Device);
        assert_eq!(subject.common_name, "DMPXK2ABCD12");
        assert_eq!(subject.organisational_unit.as_deref(), Some("gs2"));
        assert_eq!(subject.email, None);
        assert_eq!(subject.upn, None);
        assert_eq!(
            subject.uri_sans,
            ["urn:uuid:0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"]
        );

        let unreported = DeviceIdentity {
            serial_number: None,
            ..device
        };
        let subject = device_certificate_subject(&unreported, &org(None)).unwrap();
        assert_eq!(subject.common_name, "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a");
    }

    #[test]
    fn values_a_certificate_cannot_carry_are_refused() {
        let empty = PersonIdentity {
            username: " ".to_owned(),
            ..pupil()
        };
        assert_eq!(
            person_certificate_subject(&empty, &org(None)),
            Err(SubjectError::Empty {
                field: "common name (username)"
            })
        );
        let long = PersonIdentity {
            username: "x".repeat(65),
            ..pupil()
        };
        assert!(matches!(
            person_certificate_subject(&long, &org(None)),
            Err(SubjectError::TooLong { max: 64, .. })
        ));
        let control = PersonIdentity {
            mail: Some("a@b\n.example".to_owned()),
            ..pupil()
        };
        assert!(matches!(
            person_certificate_subject(&control, &org(None)),
            Err(SubjectError::ControlCharacter { field: "e-mail" })
        ));
        let no_org = CertificateOrg {
            organisation: String::new(),
            upn_realm: None,
        };
        assert!(matches!(
            person_certificate_subject(&pupil(), &no_org),
            Err(SubjectError::Empty {
                field: "organisation"
            })
        ));
    }

    #[test]
    fn renewal_is_due_inside_the_window_and_after_expiry() {
        let not_after = at("2027-08-01T00:00:00Z");
        assert!(!renewal_due(not_after, at("2027-06-30T23:59:59Z"), 31));
        assert!(renewal_due(not_after, at("2027-07-01T00:00:00Z"), 31));
        assert!(renewal_due(not_after, at("2027-09-01T00:00:00Z"), 31));
        assert!(!renewal_due(not_after, at("2027-07-31T23:59:59Z"), 0));
        assert!(renewal_due(not_after, at("2027-08-01T00:00:00Z"), 0));
        assert!(renewal_due(not_after, at("2000-01-01T00:00:00Z"), u32::MAX));
    }

    #[test]
    fn a_changed_subject_forces_reissue_before_renewal_is_considered() {
        let org = org(None);
        let issued = person_certificate_subject(&pupil(), &org).unwrap();
        let renamed = PersonIdentity {
            username: "max.muster2".to_owned(),
            ..pupil()
        };
        let wanted = person_certificate_subject(&renamed, &org).unwrap();
        let not_after = at("2027-08-01T00:00:00Z");
        let early = at("2027-01-01T00:00:00Z");
        assert_eq!(
            reissue_reason(&issued, &wanted, not_after, early, 30),
            Some(ReissueReason::SubjectChanged)
        );
        assert_eq!(reissue_reason(&issued, &issued, not_after, early, 30), None);
        assert_eq!(
            reissue_reason(&issued, &issued, not_after, at("2027-07-15T00:00:00Z"), 30),
            Some(ReissueReason::RenewalDue)
        );
    }
}
