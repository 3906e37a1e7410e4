//! What the worker does with loans: name a lent device after its pupil, and the daily
//! check (flag loans whose borrower left, tell schools about newly overdue loans, by
//! mail when `[mail]` is configured, and anonymise returned loans past retention).

use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use flotte_config::{MailSecurity, MailSettings};
use flotte_core::device::Platform;
use flotte_core::jobs::{MaintainLoans, PersonaliseLoanDevice};
use flotte_core::loans::{device_name, windows_computer_name};
use flotte_storage::{FlaggedLoan, LoanRecord, NewCommand};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::collections::BTreeMap;
use std::time::Duration;

/// The node that renames a Windows computer (takes effect after the next restart).
const WINDOWS_NAME_NODE: &str = "./DevDetail/Ext/Microsoft/DNSComputerName";

fn coalesce(deps: &WorkerDeps) -> i64 {
    i64::try_from(deps.settings.apns.coalesce_secs).unwrap_or(30)
}

/// The commands that give a device its pupil's name.
pub(crate) fn naming_commands(
    platform: Platform,
    name: &str,
    fallback: &str,
) -> Result<Vec<NewCommand>, BoxDynError> {
    Ok(match platform {
        Platform::Apple => {
            let command = flotte_profiles::apple::Command::set_device_name(name);
            vec![NewCommand {
                request_type: command.request_type().to_owned(),
                payload: serde_json::to_value(&command)?,
            }]
        }
        Platform::Windows => {
            let computer = windows_computer_name(name, fallback);
            let request_type = "Windows:Replace";
            let payload = flotte_windows::commands::validate_command(
                request_type,
                &serde_json::json!({
                    "items": [{ "uri": WINDOWS_NAME_NODE, "format": "chr", "data": computer }]
                }),
            )?;
            vec![NewCommand {
                request_type: request_type.to_owned(),
                payload,
            }]
        }
    })
}

/// Queue the lent device's name (once per loan; nothing when it was returned meanwhile).
/// Personal profiles follow from the `ReconcileDevice` job written with the loan.
pub(crate) async fn personalise_loan_device(
    job: PersonaliseLoanDevice,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let Some(facts) = deps.store.loan_to_personalise(&job.loan_id).await? else {
        return Ok(());
    };
    let name = device_name(&deps.settings.loans.device_name_template, &facts.names);
    let fallback = facts
        .names
        .asset_tag
        .clone()
        .or_else(|| facts.names.serial.clone())
        .unwrap_or_default();
    let name = if name.is_empty() {
        fallback.clone()
    } else {
        name
    };
    let commands = naming_commands(facts.platform, &name, &fallback)?;
    let queued = deps
        .store
        .record_personalisation(
            &facts.loan_id,
            &name,
            &commands,
            coalesce(&deps),
            deps.clock.now(),
        )
        .await?;
    tracing::info!(loan = %facts.loan_id, device = %facts.device_id, queued, "lent device personalised");
    Ok(())
}

/// One school's mail: newly overdue loans and borrowers who left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchoolNotice {
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// The mail text for one school (German: it goes to school offices).
pub(crate) fn render_notice(
    school_name: &str,
    overdue: &[LoanRecord],
    flagged: &[&LoanRecord],
    link: &str,
) -> SchoolNotice {
    let mut body = format!("Guten Tag,\n\nFlotte meldet für {school_name}:\n");
    let line = |l: &LoanRecord| -> String {
        format!(
            "- {}, {}{}: Gerät {}{}, Rückgabe bis {}\n",
            l.person.family_name,
            l.person.given_name,
            l.class_name
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            l.device.label(),
            l.device
                .serial_number
                .as_deref()
                .filter(|s| Some(*s) != l.device.asset_tag.as_deref())
                .map(|s| format!(" / SN {s}"))
                .unwrap_or_default(),
            l.due_date
                .map(|d| d.format("%d.%m.%Y").to_string())
                .unwrap_or_else(|| "–".into()),
        )
    };
    if !overdue.is_empty() {
        body.push_str(&format!(
            "\nNeu überfällige Leihgeräte ({}):\n",
            overdue.len()
        ));
        for l in overdue {
            body.push_str(&line(l));
        }
    }
    if !flagged.is_empty() {
        body.push_str(&format!(
            "\nLeihgeräte bei Schüler:innen, die die Schule verlassen haben oder gesperrt sind ({}):\n",
            flagged.len()
        ));
        for l in flagged {
            body.push_str(&line(l));
        }
    }
    body.push_str(&format!(
        "\nDie aktuelle Liste: {link}\n\nDiese Nachricht wurde automatisch erstellt.\n"
    ));
    let mut parts = Vec::new();
    if !overdue.is_empty() {
        parts.push(format!("{} überfällig", overdue.len()));
    }
    if !flagged.is_empty() {
        parts.push(format!("{} mit Handlungsbedarf", flagged.len()));
    }
    SchoolNotice {
        subject: format!("Leihgeräte {school_name}: {}", parts.join(", ")),
        body,
    }
}

fn transport(mail: &MailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, BoxDynError> {
    let host = mail
        .host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or("mail.host is not set")?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(mail.port)
        .timeout(Some(Duration::from_secs(mail.timeout_secs.max(1))));
    if mail.security != MailSecurity::None {
        let mut tls = TlsParameters::builder(host.to_owned());
        if let Some(path) = &mail.ca_path {
            tls = tls.add_root_certificate(Certificate::from_pem(&std::fs::read(path)?)?);
        }
        let params = tls.build_rustls()?;
        builder = builder.tls(match mail.security {
            MailSecurity::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let (Some(user), Some(password)) = (&mail.username, &mail.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

async fn send(
    mail: &MailSettings,
    recipients: &[String],
    notice: &SchoolNotice,
) -> Result<(), BoxDynError> {
    let mut message = Message::builder()
        .from(mail.from.parse()?)
        .subject(notice.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in recipients {
        message = message.to(to.parse()?);
    }
    transport(mail)?
        .send(message.body(notice.body.clone())?)
        .await?;
    Ok(())
}

/// The daily loan check. Schools are told once per overdue loan: a loan is marked only
/// after its school's mail went out (or when no mail is configured), so a failed send
/// is tried again with the job's retry.
pub(crate) async fn maintain_loans(
    job: MaintainLoans,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let now = deps.clock.now();
    let settings = &deps.settings;
    let flagged = deps.store.flag_borrowers(now).await?;
    let overdue = deps.store.overdue_unnotified(now).await?;
    let flagged_records: Vec<LoanRecord> = if flagged.is_empty() {
        Vec::new()
    } else {
        let mut out = Vec::new();
        for FlaggedLoan { loan_id, .. } in &flagged {
            if let Ok(l) = deps
                .store
                .find_loan(loan_id, &flotte_core::auth::SchoolScope::All, now)
                .await
            {
                out.push(l);
            }
        }
        out
    };
    let mut schools: BTreeMap<String, (Vec<LoanRecord>, Vec<&LoanRecord>)> = BTreeMap::new();
    for l in overdue {
        schools.entry(l.school.id.clone()).or_default().0.push(l);
    }
    for l in &flagged_records {
        schools.entry(l.school.id.clone()).or_default().1.push(l);
    }
    for (school_id, (overdue, flagged)) in &schools {
        let Some(first) = overdue.first().or(flagged.first().copied()) else {
            continue;
        };
        let mut recipients = settings.mail.overdue_to.clone();
        if settings.mail.notify_school_admins {
            recipients.extend(deps.store.school_admin_mails(school_id).await?);
        }
        recipients.sort();
        recipients.dedup();
        let mut mailed = 0;
        if settings.mail.is_configured() && !recipients.is_empty() {
            let link = format!(
                "{}/loans?status=overdue&school={}",
                settings.public_url(),
                first.school.code
            );
            let notice = render_notice(&first.school.name, overdue, flagged, &link);
            send(&settings.mail, &recipients, &notice).await?;
            mailed = recipients.len();
        }
        if !overdue.is_empty() {
            let ids: Vec<String> = overdue.iter().map(|l| l.id.clone()).collect();
            deps.store
                .mark_overdue_notified(school_id, &ids, mailed, now)
                .await?;
        }
    }
    let anonymised = deps
        .store
        .anonymise_returned_loans(
            now,
            settings.loans.retention_days,
            settings.loans.retention_days_damaged,
        )
        .await?;
    tracing::info!(
        requested_by = %job.requested_by,
        flagged = flagged.len(),
        schools_told = schools.len(),
        anonymised,
        "loans checked"
    );
    Ok(())
}

/// Enqueue the loan check once per period; several workers may run this loop, the
/// idempotency key keeps it to one job per period.
pub(crate) async fn schedule(deps: WorkerDeps) {
    let every = deps.settings.loans.check_every_secs.max(1);
    loop {
        let now = deps.clock.now();
        let job = MaintainLoans {
            requested_by: format!(
                "schedule:{}",
                now.timestamp() / i64::try_from(every).unwrap_or(i64::MAX)
            ),
        };
        if let Err(e) = deps.store.enqueue_job(&job, now).await {
            tracing::warn!(error.cause_chain = ?e, "could not schedule the loan check");
        }
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotte_storage::{LoanDevice, LoanPerson, LoanSchool, LoanStatus};

    fn loan(family: &str, tag: &str) -> LoanRecord {
        LoanRecord {
            id: format!("L-{tag}"),
            status: LoanStatus::Overdue,
            device: LoanDevice {
                id: "d".into(),
                platform: Platform::Apple,
                asset_tag: Some(tag.into()),
                serial_number: Some("F9FXK1".into()),
                model: Some("iPad".into()),
                model_name: None,
            },
            person: LoanPerson {
                id: "p".into(),
                username: "u".into(),
                given_name: "Anna".into(),
                family_name: family.into(),
                state: "active".into(),
            },
            school: LoanSchool {
                id: "s".into(),
                code: "gym1".into(),
                name: "Gymnasium am Dom".into(),
            },
            class_name: Some("7b".into()),
            lent_by: "lena".into(),
            lent_at: chrono::Utc::now(),
            due_date: Some("2026-11-20".parse().unwrap()),
            accessories: vec![],
            condition_out: None,
            returned_at: None,
            returned_to: None,
            condition_in: None,
            accessories_in: None,
            damage: None,
            notes: None,
            alert: None,
            alert_at: None,
            overdue_notified_at: None,
            personalised_at: None,
            erase_command_id: None,
        }
    }

    #[test]
    fn a_school_notice_lists_overdue_loans_and_borrowers_who_left() {
        let overdue = vec![loan("Muster", "GYM1-0001")];
        let gone = loan("Weg", "GYM1-0002");
        let notice = render_notice("Gymnasium am Dom", &overdue, &[&gone], "https://x/loans");
        assert_eq!(
            notice.subject,
            "Leihgeräte Gymnasium am Dom: 1 überfällig, 1 mit Handlungsbedarf"
        );
        assert!(
            notice.body.contains(
                "- Muster, Anna (7b): Gerät GYM1-0001 / SN F9FXK1, Rückgabe bis 20.11.2026"
            ),
            "{}",
            notice.body
        );
        assert!(notice.body.contains("Weg, Anna"));
        assert!(notice.body.contains("https://x/loans"));
    }

    #[test]
    fn devices_are_named_by_platform() {
        let apple = naming_commands(Platform::Apple, "Anna M. 7b", "GYM1-0001").unwrap();
        assert_eq!(apple[0].request_type, "Settings");
        assert_eq!(apple[0].payload["settings"][0]["device_name"], "Anna M. 7b");
        let windows = naming_commands(Platform::Windows, "Anna M. 7b", "GYM1-0001").unwrap();
        assert_eq!(windows[0].request_type, "Windows:Replace");
        assert_eq!(windows[0].payload["items"][0]["data"], "Anna-M-7b");
    }
}
