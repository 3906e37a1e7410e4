//! Lending devices to pupils: who may borrow what, until when, what a device is called
//! while lent, when a borrower needs attention, and how a supplier's delivery list is
//! read. Pure rules: storage gathers the facts (within the caller's schools, in the
//! loan's transaction) and asks these functions; nothing here does I/O or reads a clock.

use crate::CoreError;
use crate::device::{Platform, text_enum};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A device's condition, at hand-out and at return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    New,
    Good,
    /// Scratches and other signs of use that do not impair it.
    Worn,
    /// Damaged (a cracked display, a bent case) but working.
    Damaged,
    /// Does not work.
    Defective,
}

text_enum!(Condition {
    New => "new",
    Good => "good",
    Worn => "worn",
    Damaged => "damaged",
    Defective => "defective",
});

impl Condition {
    /// Every condition, best first (the order of the form's choices).
    pub const ALL: [Condition; 5] = [
        Condition::New,
        Condition::Good,
        Condition::Worn,
        Condition::Damaged,
        Condition::Defective,
    ];

    /// Whether a return in this condition counts as damage (and keeps the loan longer).
    pub fn is_damage(self) -> bool {
        matches!(self, Condition::Damaged | Condition::Defective)
    }
}

/// Why a loan's borrower needs a school's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BorrowerAlert {
    /// The pupil is no longer in the directory.
    Departed,
    /// The pupil's account is disabled.
    Disabled,
    /// The pupil is no longer a pupil of the school that lent the device.
    LeftSchool,
}

text_enum!(BorrowerAlert {
    Departed => "departed",
    Disabled => "disabled",
    LeftSchool => "left_school",
});

/// A broken loan rule, in words staff can act on. The web UI words each variant in its
/// own language; the API uses these (English) texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoanRuleError {
    #[error("device {device} not found")]
    DeviceNotFound { device: String },
    #[error("pupil {person} not found")]
    PupilNotFound { person: String },
    #[error("loan {loan} not found")]
    LoanNotFound { loan: String },
    #[error("device {device} belongs to no school; a technician must assign it to one first")]
    DeviceWithoutSchool { device: String },
    #[error("device {device} is already lent (open loan {loan}); return it first")]
    AlreadyLent { device: String, loan: String },
    #[error("device {device} was lent by someone else at the same moment")]
    LentMeanwhile { device: String },
    #[error("{person} cannot borrow a device: the account is {state}")]
    BorrowerInactive { person: String, state: String },
    #[error("{person} is not a pupil of the school device {device} belongs to")]
    NotAPupilOfSchool { person: String, device: String },
    #[error("the due date {due} is in the past")]
    DueDateInPast { due: NaiveDate },
    #[error("the due date {due} is more than {max_days} days away")]
    DueDateTooFar { due: NaiveDate, max_days: u32 },
    #[error("unknown accessory {name:?}; known: {known}")]
    UnknownAccessory { name: String, known: String },
    #[error("loan {loan} was already returned on {returned_on}")]
    AlreadyReturned {
        loan: String,
        returned_on: NaiveDate,
    },
    #[error("loan {loan} was returned by someone else at the same moment")]
    ReturnedMeanwhile { loan: String },
    #[error("device {device} is listed twice")]
    DeviceTwice { device: String },
    #[error("pupil {person} is listed twice")]
    PupilTwice { person: String },
    #[error("nothing to lend: no device is paired with a pupil")]
    NothingToLend,
    /// One pair of a bulk lending failed (and so did the whole lending).
    #[error("{device} → {person}: {error}")]
    InPair {
        device: String,
        person: String,
        error: Box<LoanRuleError>,
    },
}

impl LoanRuleError {
    /// Whether the rule is about the state of things (409) rather than the input (400).
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::AlreadyLent { .. }
            | Self::LentMeanwhile { .. }
            | Self::BorrowerInactive { .. }
            | Self::AlreadyReturned { .. }
            | Self::ReturnedMeanwhile { .. } => true,
            Self::InPair { error, .. } => error.is_conflict(),
            _ => false,
        }
    }

    /// What was not found (outside the caller's schools counts as not found), if that is
    /// the failure.
    pub fn not_found(&self) -> Option<String> {
        match self {
            Self::DeviceNotFound { device } => Some(format!("device {device}")),
            Self::PupilNotFound { person } => Some(format!("pupil {person}")),
            Self::LoanNotFound { loan } => Some(format!("loan {loan}")),
            Self::InPair { error, .. } => error.not_found(),
            _ => None,
        }
    }
}

impl From<LoanRuleError> for CoreError {
    fn from(e: LoanRuleError) -> Self {
        if let Some(what) = e.not_found() {
            CoreError::NotFound(what)
        } else if e.is_conflict() {
            CoreError::Conflict(e.to_string())
        } else {
            CoreError::Invalid(e.to_string())
        }
    }
}

/// A loan use case that failed: a broken rule (worded for staff), or the infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum LoanError {
    #[error(transparent)]
    Rule(#[from] LoanRuleError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<LoanError> for CoreError {
    fn from(e: LoanError) -> Self {
        match e {
            LoanError::Rule(rule) => rule.into(),
            LoanError::Core(core) => core,
        }
    }
}

/// The device side of a lending decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    /// How the device is named in messages (asset tag, else serial, else id).
    pub label: String,
    pub school_id: Option<String>,
    /// The id of the device's open loan, if it has one.
    pub open_loan: Option<String>,
}

/// The pupil side of a lending decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorrowerFacts {
    /// How the pupil is named in messages (user name).
    pub label: String,
    /// `active`, `disabled` or `departed`.
    pub state: String,
    /// Schools where the person is a pupil.
    pub pupil_at: Vec<String>,
}

/// What the settings allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoanPolicy {
    /// The accessories a loan may list.
    pub accessories: Vec<String>,
    pub max_loan_days: u32,
}

/// Check that `borrower` may borrow `device` until `due` with `accessories`; `today` is
/// the lending day. Returns the accessories as they are to be stored (known names, in
/// the policy's order, each once). The school of the loan is the device's school.
pub fn check_lend(
    device: &DeviceFacts,
    borrower: &BorrowerFacts,
    due: NaiveDate,
    accessories: &[String],
    policy: &LoanPolicy,
    today: NaiveDate,
) -> Result<Vec<String>, LoanRuleError> {
    let school = device
        .school_id
        .as_deref()
        .ok_or_else(|| LoanRuleError::DeviceWithoutSchool {
            device: device.label.clone(),
        })?;
    if let Some(loan) = &device.open_loan {
        return Err(LoanRuleError::AlreadyLent {
            device: device.label.clone(),
            loan: loan.clone(),
        });
    }
    if !borrower.state.eq_ignore_ascii_case("active") {
        return Err(LoanRuleError::BorrowerInactive {
            person: borrower.label.clone(),
            state: borrower.state.clone(),
        });
    }
    if !borrower.pupil_at.iter().any(|s| s == school) {
        return Err(LoanRuleError::NotAPupilOfSchool {
            person: borrower.label.clone(),
            device: device.label.clone(),
        });
    }
    check_due_date(due, policy, today)?;
    normalise_accessories(accessories, &policy.accessories)
}

/// A due date must not lie before `today`, nor further than the policy allows.
pub fn check_due_date(
    due: NaiveDate,
    policy: &LoanPolicy,
    today: NaiveDate,
) -> Result<(), LoanRuleError> {
    if due < today {
        return Err(LoanRuleError::DueDateInPast { due });
    }
    if due > today + Duration::days(i64::from(policy.max_loan_days)) {
        return Err(LoanRuleError::DueDateTooFar {
            due,
            max_days: policy.max_loan_days,
        });
    }
    Ok(())
}

/// The given accessories as known names in the configured order; an unknown one is refused
/// (a typo in the API would otherwise end up in a contract).
pub fn normalise_accessories(
    given: &[String],
    known: &[String],
) -> Result<Vec<String>, LoanRuleError> {
    let mut wanted = BTreeSet::new();
    for name in given.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(name)) else {
            return Err(LoanRuleError::UnknownAccessory {
                name: name.to_owned(),
                known: known.join(", "),
            });
        };
        wanted.insert(k.clone());
    }
    Ok(known
        .iter()
        .filter(|k| wanted.contains(*k))
        .cloned()
        .collect())
}

/// A loan can be returned once.
pub fn check_return(loan: &str, returned_at: Option<DateTime<Utc>>) -> Result<(), LoanRuleError> {
    match returned_at {
        Some(at) => Err(LoanRuleError::AlreadyReturned {
            loan: loan.to_owned(),
            returned_on: at.date_naive(),
        }),
        None => Ok(()),
    }
}

/// A bulk lending's pairs (device, pupil): each device and each pupil at most once.
pub fn check_pairs(pairs: &[(String, String)]) -> Result<(), LoanRuleError> {
    if pairs.is_empty() {
        return Err(LoanRuleError::NothingToLend);
    }
    let mut devices = BTreeSet::new();
    let mut people = BTreeSet::new();
    for (device, person) in pairs {
        if !devices.insert(device) {
            return Err(LoanRuleError::DeviceTwice {
                device: device.clone(),
            });
        }
        if !people.insert(person) {
            return Err(LoanRuleError::PupilTwice {
                person: person.clone(),
            });
        }
    }
    Ok(())
}

/// Due dates are days. A loan is stored as due at the start (00:00 UTC) of its due day
/// and is overdue from the next day on.
pub fn due_at(due: NaiveDate) -> DateTime<Utc> {
    due.and_time(NaiveTime::MIN).and_utc()
}

/// The start of `now`'s day: loans due before it are overdue.
pub fn overdue_before(now: DateTime<Utc>) -> DateTime<Utc> {
    due_at(now.date_naive())
}

/// Whether an open loan due at `due` is overdue at `now`.
pub fn is_overdue(due: Option<DateTime<Utc>>, returned: bool, now: DateTime<Utc>) -> bool {
    !returned && due.is_some_and(|d| d < overdue_before(now))
}

/// Returned loans whose return lies before this are anonymised.
pub fn retention_cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - Duration::days(i64::from(days))
}

/// Whether an open loan's borrower needs attention: gone from the directory, disabled,
/// or no longer a pupil of the lending school.
pub fn borrower_alert(state: &str, still_pupil_at_school: bool) -> Option<BorrowerAlert> {
    match state {
        s if s.eq_ignore_ascii_case("departed") => Some(BorrowerAlert::Departed),
        s if s.eq_ignore_ascii_case("disabled") => Some(BorrowerAlert::Disabled),
        _ if !still_pupil_at_school => Some(BorrowerAlert::LeftSchool),
        _ => None,
    }
}

/// What a device's name may be made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameFacts {
    pub given_name: String,
    pub family_name: String,
    pub class_name: Option<String>,
    pub asset_tag: Option<String>,
    pub serial: Option<String>,
    pub school_code: Option<String>,
}

/// The device name from `template` (placeholders `{given_name}`, `{family_name}`,
/// `{family_initial}`, `{class}`, `{asset_tag}`, `{serial}`, `{school}`). Missing values
/// leave no double spaces or empty brackets behind; the result is at most 63 characters.
pub fn device_name(template: &str, facts: &NameFacts) -> String {
    let initial = facts
        .family_name
        .chars()
        .next()
        .map(|c| c.to_uppercase().collect::<String>())
        .unwrap_or_default();
    let mut name = template.to_owned();
    for (key, value) in [
        ("{given_name}", facts.given_name.as_str()),
        ("{family_name}", facts.family_name.as_str()),
        ("{family_initial}", initial.as_str()),
        ("{class}", facts.class_name.as_deref().unwrap_or("")),
        ("{asset_tag}", facts.asset_tag.as_deref().unwrap_or("")),
        ("{serial}", facts.serial.as_deref().unwrap_or("")),
        ("{school}", facts.school_code.as_deref().unwrap_or("")),
    ] {
        name = name.replace(key, value.trim());
    }
    let name = name.replace("()", "").replace("[]", "");
    let mut name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    // "Anna ." when there was no family name.
    name = name.replace(" .", "").trim_matches(['-', ' ']).to_owned();
    name.chars().take(63).collect()
}

/// A Windows computer name from a device name: letters, digits and hyphens only (umlauts
/// spelled out), at most 15 characters (the NetBIOS limit), not only digits.
pub fn windows_computer_name(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let spelled: &str = match c {
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'Ä' => "Ae",
            'Ö' => "Oe",
            'Ü' => "Ue",
            'ß' => "ss",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => "-",
        };
        out.push_str(spelled);
    }
    let mut collapsed = String::new();
    for c in out.chars() {
        if c == '-' && (collapsed.ends_with('-') || collapsed.is_empty()) {
            continue;
        }
        collapsed.push(c);
    }
    let short: String = collapsed.chars().take(15).collect();
    let short = short.trim_end_matches('-').to_owned();
    if short.is_empty() || short.chars().all(|c| c.is_ascii_digit()) {
        let fallback = windows_safe(fallback);
        if fallback.is_empty() {
            "FLOTTE".into()
        } else {
            fallback
        }
    } else {
        short
    }
}

fn windows_safe(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(15)
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The supplier's delivery list.

/// One device of a delivery list, as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRow {
    /// The line in the file (1 is the header).
    pub line: usize,
    pub serial_number: String,
    pub model: Option<String>,
    pub platform: Platform,
    pub asset_tag: Option<String>,
    /// School code or id, as written.
    pub school: String,
    pub funding_programme: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub warranty_end: Option<NaiveDate>,
}

/// Something wrong with one line of a delivery list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RowError {
    /// The line in the file (1 is the header; 0: the file as a whole).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// The columns of a delivery list, by their accepted headers (case, spaces, hyphens and
/// underscores ignored).
const COLUMNS: [(&str, &[&str]); 8] = [
    (
        "serial_number",
        &["serialnumber", "serial", "seriennummer", "seriennr", "sn"],
    ),
    ("model", &["model", "modell", "modelname", "bezeichnung"]),
    (
        "platform",
        &["platform", "plattform", "os", "betriebssystem"],
    ),
    (
        "asset_tag",
        &[
            "assettag",
            "asset",
            "inventarnummer",
            "inventarnr",
            "inventar",
        ],
    ),
    ("school", &["school", "schule", "schulnummer", "schulcode"]),
    (
        "funding_programme",
        &[
            "fundingprogramme",
            "fundingprogram",
            "funding",
            "förderprogramm",
            "foerderprogramm",
            "programm",
        ],
    ),
    (
        "purchase_date",
        &[
            "purchasedate",
            "kaufdatum",
            "lieferdatum",
            "beschaffungsdatum",
            "purchased",
        ],
    ),
    (
        "warranty_end",
        &[
            "warrantyend",
            "warranty",
            "garantieende",
            "garantiebis",
            "gewährleistungbis",
            "gewaehrleistungbis",
        ],
    ),
];

fn normalise_header(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | '/'))
        .collect()
}

/// A platform as suppliers write it.
pub fn parse_platform(text: &str) -> Option<Platform> {
    match text.trim().to_lowercase().as_str() {
        "apple" | "ios" | "ipados" | "ipad" | "ipad os" => Some(Platform::Apple),
        "windows" | "win" | "windows 10" | "windows 11" | "win10" | "win11" => {
            Some(Platform::Windows)
        }
        _ => None,
    }
}

/// A date as `2026-08-31` or `31.08.2026`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(t, "%d.%m.%Y"))
        .ok()
}

/// Read a delivery list (UTF-8 CSV; `,` `;` or tab). Every bad line is reported, each
/// with what is wrong; rows are returned only when there is no error at all, so that a
/// list is taken whole or not at all.
pub fn parse_delivery_list(bytes: &[u8]) -> Result<Vec<DeliveryRow>, Vec<RowError>> {
    let whole = |message: String| vec![RowError { line: 0, message }];
    let text = std::str::from_utf8(bytes)
        .map_err(|e| whole(format!("the file is not UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header_line = text
        .lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| whole("the file is empty".into()))?;
    let delimiter = crate::csv::sniff_delimiter(header_line);
    let records = crate::csv::records(text, delimiter)
        .map_err(|e| whole(format!("line {}: {}", e.line, e.reason)))?;
    let mut records = records.into_iter();
    let (_, header) = records
        .next()
        .ok_or_else(|| whole("the file is empty".into()))?;
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, h) in header.iter().enumerate() {
        let h = normalise_header(h);
        if let Some((name, _)) = COLUMNS
            .iter()
            .find(|(_, aliases)| aliases.contains(&h.as_str()))
        {
            index.entry(name).or_insert(i);
        }
    }
    let missing: Vec<&str> = ["serial_number", "platform", "school"]
        .into_iter()
        .filter(|c| !index.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(whole(format!(
            "missing column(s): {} (the header must name serial_number, model, platform, \
             asset_tag, school, funding_programme, purchase_date, warranty_end)",
            missing.join(", ")
        )));
    }

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut serials: BTreeMap<String, usize> = BTreeMap::new();
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for (line, record) in records {
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |name: &str| -> Option<String> {
            index
                .get(name)
                .and_then(|i| record.get(*i))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let serial = cell("serial_number").map(|s| s.to_uppercase());
        match &serial {
            None => problems.push("no serial number".to_owned()),
            Some(s) => {
                if let Some(first) = serials.insert(s.clone(), line) {
                    problems.push(format!("serial number {s} also on line {first}"));
                }
            }
        }
        let platform = match cell("platform") {
            None => {
                problems.push("no platform (apple or windows)".into());
                None
            }
            Some(p) => {
                let parsed = parse_platform(&p);
                if parsed.is_none() {
                    problems.push(format!("unknown platform {p:?} (apple or windows)"));
                }
                parsed
            }
        };
        let asset_tag = cell("asset_tag");
        if let Some(tag) = &asset_tag
            && let Some(first) = tags.insert(tag.to_lowercase(), line)
        {
            problems.push(format!("asset tag {tag} also on line {first}"));
        }
        let school = cell("school");
        if school.is_none() {
            problems.push("no school".into());
        }
        let mut date = |name: &str, label: &str| -> Option<NaiveDate> {
            let text = cell(name)?;
            let parsed = parse_date(&text);
            if parsed.is_none() {
                problems.push(format!(
                    "{label} {text:?} is not a date (2026-08-31 or 31.08.2026)"
                ));
            }
            parsed
        };
        let purchase_date = date("purchase_date", "purchase date");
        let warranty_end = date("warranty_end", "warranty end");
        if let (Some(p), Some(w)) = (purchase_date, warranty_end)
            && w < p
        {
            problems.push(format!("warranty end {w} is before the purchase date {p}"));
        }
        match (serial, platform, school, problems.is_empty()) {
            (Some(serial_number), Some(platform), Some(school), true) => rows.push(DeliveryRow {
                line,
                serial_number,
                model: cell("model"),
                platform,
                asset_tag,
                school,
                funding_programme: cell("funding_programme"),
                purchase_date,
                warranty_end,
            }),
            _ => errors.push(RowError {
                line,
                message: problems.join("; "),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if rows.is_empty() {
        return Err(whole("the file lists no devices".into()));
    }
    Ok(rows)
}

/// A register entry as the import planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredDevice {
    pub id: String,
    pub platform: Platform,
    pub serial_number: String,
    pub model: Option<String>,
    pub asset_tag: Option<String>,
    pub school_id: Option<String>,
    pub funding_programme: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub warranty_end: Option<NaiveDate>,
}

/// What importing one row does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ImportAction {
    Create,
    Update,
    Unchanged,
}

/// One row's planned change: the target state and, for updates, the fields that change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportChange {
    pub line: usize,
    pub action: ImportAction,
    /// The register entry it updates.
    pub device_id: Option<String>,
    pub serial_number: String,
    pub platform: Platform,
    pub model: Option<String>,
    pub asset_tag: Option<String>,
    pub school_id: String,
    pub funding_programme: Option<String>,
    pub purchase_date: Option<NaiveDate>,
    pub warranty_end: Option<NaiveDate>,
    /// Names of the fields an update changes.
    pub changed: Vec<String>,
}

/// Decide what a delivery list changes in the register. `existing` holds the devices
/// whose serial numbers the list names; `asset_tags` every asset tag in the register
/// with its device id; `schools` school code and id → id. Empty cells leave a field as
/// it is. Errors name every bad line; then nothing may be applied.
pub fn plan_import(
    rows: &[DeliveryRow],
    existing: &BTreeMap<String, RegisteredDevice>,
    asset_tags: &BTreeMap<String, String>,
    schools: &BTreeMap<String, String>,
) -> Result<Vec<ImportChange>, Vec<RowError>> {
    // Tags that devices of the list give up (a corrected list may swap two tags).
    let freed: BTreeSet<String> = rows
        .iter()
        .filter_map(|row| {
            let current = existing.get(&row.serial_number)?.asset_tag.as_ref()?;
            let new = row.asset_tag.as_ref()?;
            (!new.eq_ignore_ascii_case(current)).then(|| current.to_lowercase())
        })
        .collect();
    let mut changes = Vec::new();
    let mut errors = Vec::new();
    for row in rows {
        let mut problems = Vec::new();
        let school_id = schools
            .get(&row.school)
            .or_else(|| schools.get(&row.school.to_lowercase()))
            .cloned();
        if school_id.is_none() {
            problems.push(format!("unknown school {:?}", row.school));
        }
        let current = existing.get(&row.serial_number);
        if let Some(tag) = &row.asset_tag
            && let Some(owner) = asset_tags.get(&tag.to_lowercase())
            && current.is_none_or(|d| &d.id != owner)
            && !freed.contains(&tag.to_lowercase())
        {
            problems.push(format!("asset tag {tag} belongs to another device"));
        }
        if let Some(d) = current
            && d.platform != row.platform
        {
            problems.push(format!(
                "serial number {} is registered as {}, the list says {}",
                row.serial_number, d.platform, row.platform
            ));
        }
        let Some(school_id) = school_id.filter(|_| problems.is_empty()) else {
            errors.push(RowError {
                line: row.line,
                message: problems.join("; "),
            });
            continue;
        };
        let mut change = ImportChange {
            line: row.line,
            action: ImportAction::Create,
            device_id: None,
            serial_number: row.serial_number.clone(),
            platform: row.platform,
            model: row.model.clone(),
            asset_tag: row.asset_tag.clone(),
            school_id,
            funding_programme: row.funding_programme.clone(),
            purchase_date: row.purchase_date,
            warranty_end: row.warranty_end,
            changed: Vec::new(),
        };
        if let Some(d) = current {
            change.device_id = Some(d.id.clone());
            // Empty cells keep what the register has.
            change.model = change.model.or_else(|| d.model.clone());
            change.asset_tag = change.asset_tag.or_else(|| d.asset_tag.clone());
            change.funding_programme = change
                .funding_programme
                .or_else(|| d.funding_programme.clone());
            change.purchase_date = change.purchase_date.or(d.purchase_date);
            change.warranty_end = change.warranty_end.or(d.warranty_end);
            let mut changed = Vec::new();
            if change.model != d.model {
                changed.push("model");
            }
            if change.asset_tag != d.asset_tag {
                changed.push("asset_tag");
            }
            if Some(&change.school_id) != d.school_id.as_ref() {
                changed.push("school");
            }
            if change.funding_programme != d.funding_programme {
                changed.push("funding_programme");
            }
            if change.purchase_date != d.purchase_date {
                changed.push("purchase_date");
            }
            if change.warranty_end != d.warranty_end {
                changed.push("warranty_end");
            }
            change.action = if changed.is_empty() {
                ImportAction::Unchanged
            } else {
                ImportAction::Update
            };
            change.changed = changed.into_iter().map(str::to_owned).collect();
        }
        changes.push(change);
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn policy() -> LoanPolicy {
        LoanPolicy {
            accessories: vec!["Ladegerät".into(), "Hülle".into(), "Stift".into()],
            max_loan_days: 365,
        }
    }

    fn device() -> DeviceFacts {
        DeviceFacts {
            label: "GYM1-0001".into(),
            school_id: Some("s1".into()),
            open_loan: None,
        }
    }

    fn pupil() -> BorrowerFacts {
        BorrowerFacts {
            label: "anna.m".into(),
            state: "active".into(),
            pupil_at: vec!["s1".into()],
        }
    }

    #[test]
    fn an_active_pupil_of_the_devices_school_may_borrow_until_a_future_day() {
        let today = day("2026-11-27");
        let accessories = check_lend(
            &device(),
            &pupil(),
            day("2027-02-01"),
            &["stift".into(), "Ladegerät".into(), "Stift".into()],
            &policy(),
            today,
        )
        .unwrap();
        assert_eq!(
            accessories,
            vec!["Ladegerät".to_owned(), "Stift".to_owned()]
        );
        // Due today is allowed: a loan for the day.
        assert!(check_lend(&device(), &pupil(), today, &[], &policy(), today).is_ok());
    }

    #[test]
    fn each_broken_rule_is_named() {
        let today = day("2026-11-27");
        let due = day("2027-01-10");
        let lent = DeviceFacts {
            open_loan: Some("L1".into()),
            ..device()
        };
        let err = check_lend(&lent, &pupil(), due, &[], &policy(), today).unwrap_err();
        assert!(err.is_conflict());
        assert!(err.to_string().contains("open loan L1"), "{err}");

        let departed = BorrowerFacts {
            state: "departed".into(),
            ..pupil()
        };
        let err = check_lend(&device(), &departed, due, &[], &policy(), today).unwrap_err();
        assert!(err.to_string().contains("departed"), "{err}");

        let elsewhere = BorrowerFacts {
            pupil_at: vec!["s2".into()],
            ..pupil()
        };
        assert!(matches!(
            check_lend(&device(), &elsewhere, due, &[], &policy(), today),
            Err(LoanRuleError::NotAPupilOfSchool { .. })
        ));
        assert!(matches!(
            check_lend(
                &device(),
                &pupil(),
                day("2026-11-26"),
                &[],
                &policy(),
                today
            ),
            Err(LoanRuleError::DueDateInPast { .. })
        ));
        assert!(matches!(
            check_lend(
                &device(),
                &pupil(),
                day("2062-01-01"),
                &[],
                &policy(),
                today
            ),
            Err(LoanRuleError::DueDateTooFar { .. })
        ));
        let err =
            check_lend(&device(), &pupil(), due, &["Maus".into()], &policy(), today).unwrap_err();
        assert!(
            err.to_string().contains("Maus") && err.to_string().contains("Hülle"),
            "{err}"
        );
        let unassigned = DeviceFacts {
            school_id: None,
            ..device()
        };
        assert!(matches!(
            check_lend(&unassigned, &pupil(), due, &[], &policy(), today),
            Err(LoanRuleError::DeviceWithoutSchool { .. })
        ));
        // Into the core's vocabulary: a lent device is a conflict, a past date bad input.
        assert!(matches!(
            CoreError::from(LoanRuleError::DueDateInPast { due }),
            CoreError::Invalid(_)
        ));
    }

    #[test]
    fn a_loan_is_returned_once_and_overdue_from_the_day_after_its_due_day() {
        let now: DateTime<Utc> = "2026-11-27T10:00:00Z".parse().unwrap();
        assert!(check_return("L1", None).is_ok());
        let err = check_return("L1", Some(now)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "loan L1 was already returned on 2026-11-27"
        );
        assert!(!is_overdue(Some(due_at(day("2026-11-27"))), false, now));
        assert!(is_overdue(Some(due_at(day("2026-11-26"))), false, now));
        assert!(!is_overdue(Some(due_at(day("2026-11-26"))), true, now));
        assert!(!is_overdue(None, false, now));
        assert_eq!(retention_cutoff(now, 183).date_naive(), day("2026-05-28"));
    }

    #[test]
    fn bulk_pairs_name_each_device_and_pupil_once() {
        let pair = |d: &str, p: &str| (d.to_owned(), p.to_owned());
        assert!(check_pairs(&[pair("d1", "p1"), pair("d2", "p2")]).is_ok());
        assert_eq!(
            check_pairs(&[pair("d1", "p1"), pair("d1", "p2")]),
            Err(LoanRuleError::DeviceTwice {
                device: "d1".into()
            })
        );
        assert_eq!(
            check_pairs(&[pair("d1", "p1"), pair("d2", "p1")]),
            Err(LoanRuleError::PupilTwice {
                person: "p1".into()
            })
        );
        assert_eq!(check_pairs(&[]), Err(LoanRuleError::NothingToLend));
    }

    #[test]
    fn borrowers_who_left_are_flagged_by_reason() {
        assert_eq!(
            borrower_alert("departed", true),
            Some(BorrowerAlert::Departed)
        );
        assert_eq!(
            borrower_alert("disabled", true),
            Some(BorrowerAlert::Disabled)
        );
        assert_eq!(
            borrower_alert("active", false),
            Some(BorrowerAlert::LeftSchool)
        );
        assert_eq!(borrower_alert("active", true), None);
    }

    #[test]
    fn device_names_fill_the_template_and_windows_names_fit_netbios() {
        let facts = NameFacts {
            given_name: "Jürgen".into(),
            family_name: "özdemir".into(),
            class_name: Some("7b".into()),
            asset_tag: Some("GYM1-0042".into()),
            ..NameFacts::default()
        };
        let name = device_name("{given_name} {family_initial}. {class}", &facts);
        assert_eq!(name, "Jürgen Ö. 7b");
        let no_class = NameFacts {
            class_name: None,
            ..facts.clone()
        };
        assert_eq!(
            device_name("{given_name} {family_initial}. ({class})", &no_class),
            "Jürgen Ö."
        );
        assert_eq!(windows_computer_name(&name, "GYM1-0042"), "Juergen-Oe-7b");
        assert_eq!(
            windows_computer_name("Maximilian-Alexander Schmidt", "x"),
            "Maximilian-Alex"
        );
        assert_eq!(windows_computer_name("12345", "GYM1-0042"), "GYM1-0042");
        assert_eq!(windows_computer_name("!!!", ""), "FLOTTE");
    }

    const LIST: &str = "Seriennummer;Modell;Plattform;Inventarnummer;Schule;Förderprogramm;Kaufdatum;Garantie bis\n\
        f9fxk1;iPad 10;iPadOS;GYM1-0001;gym1;DigitalPakt;2026-08-01;31.07.2029\n\
        PF3ABC;ThinkPad L13;Windows;;gs2;;;\n";

    #[test]
    fn a_delivery_list_is_read_with_german_headers_and_dates() {
        let rows = parse_delivery_list(LIST.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].serial_number, "F9FXK1", "serials are upper case");
        assert_eq!(rows[0].platform, Platform::Apple);
        assert_eq!(rows[0].warranty_end, Some(day("2029-07-31")));
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].asset_tag, None);
        assert_eq!(rows[1].platform, Platform::Windows);
    }

    #[test]
    fn every_bad_line_of_a_delivery_list_is_named() {
        let list = "serial_number,model,platform,asset_tag,school,funding_programme,purchase_date,warranty_end\n\
            A1,iPad,apple,T1,gym1,,2026-13-01,\n\
            A2,iPad,android,T2,gym1,,,\n\
            A1,iPad,apple,t1,gym1,,,\n\
            A4,iPad,apple,T4,,,2026-08-01,2025-01-01\n\
            A5,iPad,apple,T5,gym1,,,\n";
        let errors = parse_delivery_list(list.as_bytes()).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert!(errors[0].message.contains("2026-13-01"), "{}", errors[0]);
        assert!(errors[1].message.contains("android"));
        assert!(
            errors[2]
                .message
                .contains("serial number A1 also on line 2")
        );
        assert!(errors[2].message.contains("asset tag t1 also on line 2"));
        assert!(errors[3].message.contains("no school"));
        assert!(errors[3].message.contains("warranty end"));

        let missing = parse_delivery_list(b"serial,model\nA1,iPad\n").unwrap_err();
        assert_eq!(missing[0].line, 0);
        assert!(
            missing[0].message.contains("platform, school"),
            "{}",
            missing[0]
        );
        assert!(parse_delivery_list(b"").is_err());
        assert!(parse_delivery_list(b"serial,platform,school\n\"A1,apple,gym1\n").is_err());
    }

    #[test]
    fn an_import_plan_creates_updates_and_leaves_alone_and_refuses_clashes() {
        let rows = parse_delivery_list(LIST.as_bytes()).unwrap();
        let schools: BTreeMap<String, String> =
            [("gym1", "s1"), ("gs2", "s2"), ("s1", "s1"), ("s2", "s2")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let plan = plan_import(&rows, &BTreeMap::new(), &BTreeMap::new(), &schools).unwrap();
        assert!(plan.iter().all(|c| c.action == ImportAction::Create));
        assert_eq!(plan[1].school_id, "s2");

        let registered = RegisteredDevice {
            id: "d1".into(),
            platform: Platform::Apple,
            serial_number: "F9FXK1".into(),
            model: Some("iPad 10".into()),
            asset_tag: None,
            school_id: Some("s1".into()),
            funding_programme: Some("DigitalPakt".into()),
            purchase_date: Some(day("2026-08-01")),
            warranty_end: Some(day("2029-07-31")),
        };
        let existing: BTreeMap<String, RegisteredDevice> =
            [("F9FXK1".to_owned(), registered.clone())].into();
        let plan = plan_import(&rows, &existing, &BTreeMap::new(), &schools).unwrap();
        assert_eq!(plan[0].action, ImportAction::Update);
        assert_eq!(plan[0].changed, vec!["asset_tag".to_owned()]);
        assert_eq!(plan[0].device_id.as_deref(), Some("d1"));

        let tagged = RegisteredDevice {
            asset_tag: Some("GYM1-0001".into()),
            ..registered
        };
        let existing: BTreeMap<String, RegisteredDevice> = [("F9FXK1".to_owned(), tagged)].into();
        let tags: BTreeMap<String, String> = [("gym1-0001".to_owned(), "d1".to_owned())].into();
        let plan = plan_import(&rows, &existing, &tags, &schools).unwrap();
        assert_eq!(plan[0].action, ImportAction::Unchanged);

        let taken: BTreeMap<String, String> = [("gym1-0001".to_owned(), "d9".to_owned())].into();
        let mut unknown = schools.clone();
        unknown.remove("gs2");
        let errors = plan_import(&rows, &BTreeMap::new(), &taken, &unknown).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("belongs to another device"));
        assert!(errors[1].message.contains("unknown school \"gs2\""));
    }
}
