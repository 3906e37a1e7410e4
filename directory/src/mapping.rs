//! From LDAP entries to Flotte's directory model. No I/O here, so every rule
//! is unit-tested without a server.
//!
//! How entries that cannot be mapped are handled:
//! * no usable `entryUUID` → a problem, and the read is marked incomplete:
//!   without an id the entry cannot be told apart from a person who left, and
//!   the planner refuses incomplete reads;
//! * an `entryUUID` but otherwise unusable (no `uid`, two `uid`s, no school
//!   role, a garbled `shadowExpire`, …) → a problem, and the id is *held
//!   back*: the planner leaves that person as Flotte has them;
//! * exam accounts, default groups and rooms → ignored, not a problem;
//! * oddities that do not stop mapping (a class without the school prefix, a
//!   role at a school that was not read, a member that is no person) → a
//!   problem note only.

use std::collections::{BTreeSet, HashMap};

use flotte_core::directory::{
    DirGroup, DirPerson, DirSchool, DirectorySnapshot, GroupKind, Role, SchoolRole, UcsschoolRole,
    assign_classes,
};
use uuid::Uuid;

use crate::conn::RawEntry;
use crate::settings::DirectoryLayout;

/// UCS@school's role object classes and the role each grants at every school
/// in `ucsschoolSchool` (used only when `ucsschoolRole` says nothing).
const ROLE_CLASSES: [(&str, Role); 4] = [
    ("ucsschoolStudent", Role::Pupil),
    ("ucsschoolTeacher", Role::Teacher),
    ("ucsschoolStaff", Role::Staff),
    ("ucsschoolAdministrator", Role::SchoolAdmin),
];
const EXAM_CLASS: &str = "ucsschoolExam";

/// Heimdal's "invalid" KDC flag: UCS sets it on disabled users (254 vs. 126).
const KRB5_INVALID: i64 = 128;

pub(crate) const SCHOOL_ATTRS: &[&str] = &["entryUUID", "ou", "displayName", "objectClass"];
pub(crate) const GROUP_ATTRS: &[&str] = &[
    "entryUUID",
    "cn",
    "objectClass",
    "uniqueMember",
    "member",
    "memberUid",
];
const PERSON_ATTRS: &[&str] = &[
    "entryUUID",
    "uid",
    "givenName",
    "sn",
    "objectClass",
    "ucsschoolSchool",
    "ucsschoolRole",
    "shadowExpire",
    "sambaAcctFlags",
    "krb5KDCFlags",
    "memberOf",
];

/// Attributes to request for people: fixed ones plus the configured mail
/// attributes. Nothing else: no birthday, no address, no password hashes.
pub(crate) fn person_attrs(layout: &DirectoryLayout) -> Vec<&str> {
    let mut attrs: Vec<&str> = PERSON_ATTRS.to_vec();
    attrs.extend(layout.mail_attributes.iter().map(String::as_str));
    attrs
}

/// School users of any role, minus exam-mode copies.
pub(crate) fn people_filter() -> String {
    let roles: String = ROLE_CLASSES
        .iter()
        .map(|(class, _)| format!("(objectClass={class})"))
        .collect();
    format!("(&(|{roles})(!(objectClass={EXAM_CLASS})))")
}

pub(crate) fn school_filter(layout: &DirectoryLayout) -> String {
    format!(
        "(objectClass={})",
        ldap3::ldap_escape(&layout.school_object_class)
    )
}

pub(crate) fn group_filter(layout: &DirectoryLayout) -> String {
    format!(
        "(objectClass={})",
        ldap3::ldap_escape(&layout.group_object_class)
    )
}

/// Days since 1970-01-01, the unit of `shadowExpire`.
pub(crate) fn days_since_epoch(now: chrono::DateTime<chrono::Utc>) -> i64 {
    now.timestamp().div_euclid(86_400)
}

// ---------------------------------------------------------------------------
// Distinguished names

/// One RDN with the attribute folded to lower case and the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rdn {
    pub attr: String,
    pub value: String,
}

impl Rdn {
    fn matches(&self, other: &Rdn) -> bool {
        self.attr == other.attr && self.value.to_lowercase() == other.value.to_lowercase()
    }
}

/// Splits a DN into RDNs (RFC 4514 escapes understood; multi-valued RDNs are
/// kept as one value, which is enough for the containers we compare).
pub(crate) fn parse_dn(dn: &str) -> Vec<Rdn> {
    let mut rdns = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            rdns.push(parse_rdn(&current));
            current.clear();
        } else {
            current.push(c);
        }
    }
    if !current.trim().is_empty() {
        rdns.push(parse_rdn(&current));
    }
    rdns
}

fn parse_rdn(raw: &str) -> Rdn {
    let mut escaped = false;
    let mut split = None;
    for (i, c) in raw.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' {
            split = Some(i);
            break;
        }
    }
    match split {
        Some(i) => Rdn {
            attr: raw[..i].trim().to_ascii_lowercase(),
            value: unescape_dn_value(raw[i + 1..].trim()),
        },
        None => Rdn {
            attr: String::new(),
            value: unescape_dn_value(raw.trim()),
        },
    }
}

fn unescape_dn_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A comparison key for DNs: case, spacing and escaping differences between
/// how a member value and the entry itself spell a DN do not matter.
pub(crate) fn dn_key(dn: &str) -> String {
    // uniqueMember may carry an optional "#'0101'B" UID suffix.
    let dn = match dn.rfind("#'") {
        Some(i) if dn.ends_with("'B") => &dn[..i],
        _ => dn,
    };
    parse_dn(dn)
        .iter()
        .map(|r| {
            let value = r
                .value
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace(',', "\\,");
            format!("{}={value}", r.attr)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// If `dn`'s parent is `container` directly below a school OU, the OU's name.
fn school_below(dn: &[Rdn], container: &[Rdn]) -> Option<String> {
    let parent = dn.get(1..)?;
    let school = parent.get(container.len())?;
    let same = parent.iter().zip(container).all(|(a, b)| a.matches(b));
    (same && school.attr == "ou").then(|| school.value.clone())
}

/// Class or workgroup, and the school, from where the group sits.
pub(crate) fn classify_group(dn: &str, layout: &DirectoryLayout) -> Option<(GroupKind, String)> {
    let rdns = parse_dn(dn);
    let classes = parse_dn(&layout.classes_container);
    if let Some(school) = school_below(&rdns, &classes) {
        return Some((GroupKind::Class, school));
    }
    let workgroups = parse_dn(&layout.workgroups_container);
    school_below(&rdns, &workgroups).map(|school| (GroupKind::Workgroup, school))
}

pub(crate) fn is_exam_dn(dn: &str, layout: &DirectoryLayout) -> bool {
    school_below(&parse_dn(dn), &parse_dn(&layout.exam_users_container)).is_some()
}

// ---------------------------------------------------------------------------
// Entries

/// What became of one entry.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    Mapped(T),
    /// Not something Flotte syncs (exam account, default group, …).
    Ignored,
    /// Exists, but cannot be mapped: leave it as Flotte has it.
    HeldBack {
        id: Uuid,
        problem: String,
    },
    /// No usable id: the read cannot be complete.
    Unkeyed {
        problem: String,
    },
}

/// Shared context of one read.
pub(crate) struct MapContext<'a> {
    pub layout: &'a DirectoryLayout,
    /// For `shadowExpire`.
    pub today: i64,
    /// Lower-cased school code → the OU's own spelling.
    school_codes: HashMap<String, String>,
}

impl<'a> MapContext<'a> {
    pub fn new(layout: &'a DirectoryLayout, today: i64, schools: &[DirSchool]) -> Self {
        MapContext {
            layout,
            today,
            school_codes: schools
                .iter()
                .map(|s| (s.code.to_lowercase(), s.code.clone()))
                .collect(),
        }
    }

    /// Role values and DNs may spell a code differently from the OU
    /// (`GYM1` vs `gym1`); the OU's spelling wins so that diffs stay quiet.
    fn school_code(&self, code: &str, notes: &mut Vec<String>, whose: &str) -> String {
        match self.school_codes.get(&code.to_lowercase()) {
            Some(canonical) => canonical.clone(),
            None => {
                // One note per school, not one per pupil: an ACL hiding a
                // school OU would otherwise bury everything else.
                let note = format!("school {code:?} is referred to but was not read");
                if !notes.iter().any(|n| n.starts_with(&note)) {
                    notes.push(format!("{note} (first by {whose})"));
                }
                code.to_owned()
            }
        }
    }
}

pub(crate) fn entry_uuid(entry: &RawEntry) -> Result<Uuid, String> {
    match entry.single("entryUUID")? {
        None => Err("has no entryUUID".to_owned()),
        Some(text) => Uuid::parse_str(text.trim())
            .map_err(|_| format!("has an entryUUID that is no UUID: {text:?}")),
    }
}

pub(crate) fn map_school(entry: &RawEntry) -> Outcome<DirSchool> {
    let id = match entry_uuid(entry) {
        Ok(id) => id,
        Err(why) => {
            return Outcome::Unkeyed {
                problem: format!("school {}: {why}", entry.dn),
            };
        }
    };
    // The name is the OU's RDN; `ou` may carry extra values.
    let code = match parse_dn(&entry.dn).first() {
        Some(rdn) if rdn.attr == "ou" && !rdn.value.is_empty() => rdn.value.clone(),
        _ => {
            return Outcome::HeldBack {
                id,
                problem: format!("school {}: the entry is not named ou=<code>", entry.dn),
            };
        }
    };
    let display_name = match entry.single("displayName") {
        Ok(Some(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        Ok(_) => code.clone(),
        Err(why) => {
            return Outcome::HeldBack {
                id,
                problem: format!("school {}: {why}", entry.dn),
            };
        }
    };
    Outcome::Mapped(DirSchool {
        external_id: id,
        code,
        display_name,
    })
}

/// Why an account counts as disabled, or `None`. Any one mechanism is enough:
/// UCS sets all three when disabling, but imports and manual edits may set one.
pub(crate) fn disabled_reason(
    entry: &RawEntry,
    today: i64,
) -> Result<Option<&'static str>, String> {
    if let Some(value) = entry.single("shadowExpire")? {
        let day: i64 = value
            .trim()
            .parse()
            .map_err(|_| format!("shadowExpire {value:?} is not a day number"))?;
        // 1 is UCS's "disabled"; any other positive day is an expiry date,
        // expired from that day on (shadow(5)). 0 and -1 mean no expiry.
        if day == 1 || (day > 0 && today >= day) {
            return Ok(Some("shadowExpire"));
        }
    }
    if let Some(value) = entry.single("sambaAcctFlags")? {
        let letters = value.trim().trim_start_matches('[').trim_end_matches(']');
        if letters.contains('D') {
            return Ok(Some("sambaAcctFlags"));
        }
    }
    if let Some(value) = entry.single("krb5KDCFlags")? {
        let flags: i64 = value
            .trim()
            .parse()
            .map_err(|_| format!("krb5KDCFlags {value:?} is not a number"))?;
        if flags & KRB5_INVALID != 0 {
            return Ok(Some("krb5KDCFlags"));
        }
    }
    Ok(None)
}

/// A mapped person and the keys group members use to point at them.
#[derive(Debug)]
pub(crate) struct PersonRecord {
    pub person: DirPerson,
    pub dn: String,
}

pub(crate) fn map_person(
    entry: &RawEntry,
    ctx: &MapContext<'_>,
    notes: &mut Vec<String>,
) -> Outcome<PersonRecord> {
    let dn = &entry.dn;
    let id = match entry_uuid(entry) {
        Ok(id) => id,
        Err(why) => {
            return Outcome::Unkeyed {
                problem: format!("person {dn}: {why}"),
            };
        }
    };
    let held = |why: String| Outcome::HeldBack {
        id,
        problem: format!("person {dn}: {why}; left unchanged"),
    };
    if entry.has_object_class(EXAM_CLASS) || is_exam_dn(dn, ctx.layout) {
        return Outcome::Ignored;
    }

    let username = match entry.single("uid") {
        Ok(Some(uid)) if !uid.trim().is_empty() => uid.trim().to_owned(),
        Ok(_) => return held("has no uid".to_owned()),
        Err(why) => return held(why),
    };
    let family_name = match entry.single("sn") {
        Ok(Some(sn)) if !sn.trim().is_empty() => sn.trim().to_owned(),
        Ok(_) => return held("has no sn".to_owned()),
        Err(why) => return held(why),
    };
    let given_name = match entry.single("givenName") {
        Ok(given) => given.unwrap_or_default().trim().to_owned(),
        Err(why) => return held(why),
    };
    let mail = ctx
        .layout
        .mail_attributes
        .iter()
        .flat_map(|attr| entry.values(attr))
        .map(|m| m.trim())
        .find(|m| !m.is_empty())
        .map(str::to_owned);

    let mut memberships: BTreeSet<SchoolRole> = BTreeSet::new();
    for value in entry.values("ucsschoolRole") {
        let Some(role) = UcsschoolRole::parse(value).and_then(|r| r.person_role()) else {
            continue;
        };
        if role.role == Role::ExamUser {
            return Outcome::Ignored;
        }
        memberships.insert(SchoolRole {
            school_code: ctx.school_code(&role.school_code, notes, dn),
            role: role.role,
        });
    }
    // Objects from before ucsschoolRole existed: role class × every school.
    if memberships.is_empty() {
        for (class, role) in ROLE_CLASSES {
            if entry.has_object_class(class) {
                for school in entry.values("ucsschoolSchool") {
                    memberships.insert(SchoolRole {
                        school_code: ctx.school_code(school.trim(), notes, dn),
                        role,
                    });
                }
            }
        }
    }
    if memberships.is_empty() {
        return held(
            "has no school role (no ucsschoolRole, no role class with ucsschoolSchool)".to_owned(),
        );
    }

    let disabled = match disabled_reason(entry, ctx.today) {
        Ok(reason) => reason.is_some(),
        Err(why) => return held(why),
    };

    Outcome::Mapped(PersonRecord {
        person: DirPerson {
            external_id: id,
            username,
            given_name,
            family_name,
            mail,
            memberships: memberships.into_iter().collect(),
            classes: Vec::new(),
            disabled,
            group_dns: entry.values("memberOf").to_vec(),
        },
        dn: dn.clone(),
    })
}

/// How a group names a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MemberRef {
    /// A `dn_key`.
    Dn(String),
    /// A `uid`, lower-cased.
    Uid(String),
}

/// A mapped class or workgroup whose members are still references.
#[derive(Debug)]
pub(crate) struct GroupRecord {
    pub dn: String,
    pub external_id: Uuid,
    pub kind: GroupKind,
    pub school_code: String,
    pub name: String,
    pub members: Vec<MemberRef>,
}

pub(crate) fn map_group(
    entry: &RawEntry,
    ctx: &MapContext<'_>,
    notes: &mut Vec<String>,
) -> Outcome<GroupRecord> {
    let dn = &entry.dn;
    let Some((kind, school)) = classify_group(dn, ctx.layout) else {
        return Outcome::Ignored;
    };
    let id = match entry_uuid(entry) {
        Ok(id) => id,
        Err(why) => {
            return Outcome::Unkeyed {
                problem: format!("group {dn}: {why}"),
            };
        }
    };
    let school_code = ctx.school_code(&school, notes, dn);
    let Some(cn) = parse_dn(dn).into_iter().next().map(|rdn| rdn.value) else {
        return Outcome::HeldBack {
            id,
            problem: format!("group {dn}: empty DN"),
        };
    };
    let prefix = ctx
        .layout
        .group_name_prefix
        .replace("{school}", &school_code);
    let name = match cn.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(&prefix) && cn.len() > prefix.len() => {
            cn[prefix.len()..].to_owned()
        }
        _ => {
            notes.push(format!(
                "group {dn}: name lacks the prefix {prefix:?}; kept as {cn:?}"
            ));
            cn
        }
    };
    // Member DNs are authoritative; memberUid only when a group has no DNs.
    let mut members: Vec<MemberRef> = entry
        .values("uniqueMember")
        .iter()
        .chain(entry.values("member"))
        .map(|dn| MemberRef::Dn(dn_key(dn)))
        .collect();
    if members.is_empty() {
        members = entry
            .values("memberUid")
            .iter()
            .map(|uid| MemberRef::Uid(uid.trim().to_lowercase()))
            .collect();
    }
    Outcome::Mapped(GroupRecord {
        dn: dn.clone(),
        external_id: id,
        kind,
        school_code,
        name,
        members,
    })
}

// ---------------------------------------------------------------------------
// Putting a read together

/// Where member references point.
#[derive(Debug, Default)]
pub(crate) struct MemberIndex {
    by_ref: HashMap<MemberRef, Uuid>,
}

impl MemberIndex {
    pub fn insert(&mut self, dn: &str, uid: Option<&str>, id: Uuid) {
        self.by_ref.insert(MemberRef::Dn(dn_key(dn)), id);
        if let Some(uid) = uid {
            self.by_ref
                .insert(MemberRef::Uid(uid.trim().to_lowercase()), id);
        }
    }

    pub fn insert_ref(&mut self, member: MemberRef, id: Uuid) {
        self.by_ref.insert(member, id);
    }

    pub fn get(&self, member: &MemberRef) -> Option<Uuid> {
        self.by_ref.get(member).copied()
    }
}

/// Collects problems, held-back ids and completeness while entries are mapped.
#[derive(Debug)]
pub(crate) struct Collector {
    pub problems: Vec<String>,
    pub held_back: Vec<Uuid>,
    pub complete: bool,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            problems: Vec::new(),
            held_back: Vec::new(),
            complete: true,
        }
    }
}

impl Collector {
    pub fn take<T>(&mut self, outcome: Outcome<T>) -> Option<T> {
        match outcome {
            Outcome::Mapped(t) => Some(t),
            Outcome::Ignored => None,
            Outcome::HeldBack { id, problem } => {
                tracing::warn!(%problem, "directory entry held back");
                self.held_back.push(id);
                self.problems.push(problem);
                None
            }
            Outcome::Unkeyed { problem } => {
                tracing::warn!(%problem, "directory entry without id; read marked incomplete");
                self.complete = false;
                self.problems.push(problem);
                None
            }
        }
    }
}

/// Maps person entries, indexing every person that has an id (held-back ones
/// too, so their group memberships are not reported as dangling).
pub(crate) fn map_people(
    entries: &[RawEntry],
    ctx: &MapContext<'_>,
    collector: &mut Collector,
    index: &mut MemberIndex,
) -> Vec<PersonRecord> {
    let mut people = Vec::new();
    for entry in entries {
        let outcome = map_person(entry, ctx, &mut collector.problems);
        match &outcome {
            Outcome::Mapped(record) => index.insert(
                &record.dn,
                Some(&record.person.username),
                record.person.external_id,
            ),
            Outcome::HeldBack { id, .. } => {
                index.insert(&entry.dn, entry.single("uid").ok().flatten(), *id)
            }
            Outcome::Ignored | Outcome::Unkeyed { .. } => {}
        }
        people.extend(collector.take(outcome));
    }
    people
}

/// Member references of `groups` that `index` cannot resolve.
pub(crate) fn unresolved_members(groups: &[GroupRecord], index: &MemberIndex) -> Vec<MemberRef> {
    let mut missing: Vec<MemberRef> = groups
        .iter()
        .flat_map(|g| &g.members)
        .filter(|m| index.get(m).is_none())
        .cloned()
        .collect();
    missing.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    missing.dedup();
    missing
}

/// Turns group records into groups, noting members that are not people read
/// in this pass (exam accounts excepted: they are in exam groups by design).
pub(crate) fn resolve_groups(
    groups: Vec<GroupRecord>,
    index: &MemberIndex,
    layout: &DirectoryLayout,
    problems: &mut Vec<String>,
) -> Vec<(String, DirGroup)> {
    groups
        .into_iter()
        .map(|record| {
            let mut ids = BTreeSet::new();
            let mut dangling = Vec::new();
            for member in &record.members {
                match index.get(member) {
                    Some(id) => {
                        ids.insert(id);
                    }
                    None => match member {
                        MemberRef::Dn(dn) if is_exam_dn(dn, layout) => {}
                        MemberRef::Dn(dn) => dangling.push(dn.clone()),
                        MemberRef::Uid(uid) => dangling.push(format!("uid {uid}")),
                    },
                }
            }
            if !dangling.is_empty() {
                let sample: Vec<&str> = dangling.iter().take(3).map(String::as_str).collect();
                problems.push(format!(
                    "group {}: {} member(s) are not school users that were read, e.g. {}",
                    record.dn,
                    dangling.len(),
                    sample.join("; ")
                ));
            }
            (
                record.dn,
                DirGroup {
                    external_id: record.external_id,
                    school_code: record.school_code,
                    name: record.name,
                    kind: record.kind,
                    member_external_ids: ids.into_iter().collect(),
                },
            )
        })
        .collect()
}

/// The raw material of a full read.
pub(crate) struct FullRead {
    pub schools: Vec<RawEntry>,
    pub people: Vec<RawEntry>,
    pub groups: Vec<RawEntry>,
    /// The technician group entry, when configured and found.
    pub technician_group: Option<RawEntry>,
    /// Problems found while reading (e.g. a configured group that is missing).
    pub problems: Vec<String>,
}

/// Builds the snapshot of a full read.
pub(crate) fn assemble_snapshot(
    read: FullRead,
    layout: &DirectoryLayout,
    today: i64,
) -> DirectorySnapshot {
    let mut collector = Collector {
        problems: read.problems,
        ..Collector::default()
    };
    let mut schools: Vec<DirSchool> = read
        .schools
        .iter()
        .filter_map(|e| collector.take(map_school(e)))
        .collect();
    schools.sort_by(|a, b| a.code.cmp(&b.code));

    let ctx = MapContext::new(layout, today, &schools);
    let mut index = MemberIndex::default();
    let records = map_people(&read.people, &ctx, &mut collector, &mut index);

    let group_records: Vec<GroupRecord> = read
        .groups
        .iter()
        .filter_map(|e| {
            let outcome = map_group(e, &ctx, &mut collector.problems);
            collector.take(outcome)
        })
        .collect();
    let groups = resolve_groups(group_records, &index, layout, &mut collector.problems);

    let mut group_dns: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (dn, group) in &groups {
        for member in &group.member_external_ids {
            group_dns.entry(*member).or_default().push(dn.clone());
        }
    }
    if let Some(entry) = &read.technician_group {
        for member in entry
            .values("uniqueMember")
            .iter()
            .chain(entry.values("member"))
            .map(|dn| MemberRef::Dn(dn_key(dn)))
            .chain(
                entry
                    .values("memberUid")
                    .iter()
                    .map(|u| MemberRef::Uid(u.trim().to_lowercase())),
            )
        {
            if let Some(id) = index.get(&member) {
                group_dns.entry(id).or_default().push(entry.dn.clone());
            }
        }
    }

    let mut people: Vec<DirPerson> = records
        .into_iter()
        .map(|record| {
            let mut person = record.person;
            if let Some(dns) = group_dns.remove(&person.external_id) {
                person.group_dns.extend(dns);
            }
            let mut seen = BTreeSet::new();
            person.group_dns.retain(|dn| seen.insert(dn_key(dn)));
            person.group_dns.sort();
            person
        })
        .collect();
    people.sort_by_key(|p| p.external_id);

    let (mut classes, mut workgroups): (Vec<DirGroup>, Vec<DirGroup>) = groups
        .into_iter()
        .map(|(_, g)| g)
        .partition(|g| g.kind == GroupKind::Class);
    classes.sort_by_key(|g| g.external_id);
    workgroups.sort_by_key(|g| g.external_id);
    assign_classes(&mut people, &classes);

    collector.held_back.sort();
    DirectorySnapshot {
        schools,
        people,
        classes,
        workgroups,
        complete: collector.complete,
        problems: collector.problems,
        held_back: collector.held_back,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "dc=flotte,dc=test";
    const TODAY: i64 = 20_000; // 2024-10-04

    fn uuid(n: u128) -> String {
        Uuid::from_u128(n).to_string()
    }

    fn pupil(n: u128, uid: &str, school: &str) -> RawEntry {
        RawEntry::new(format!("uid={uid},cn=schueler,cn=users,ou={school},{BASE}"))
            .with("entryUUID", &[&uuid(n)])
            .with("uid", &[uid])
            .with("givenName", &["Anna"])
            .with("sn", &["Müller"])
            .with("objectClass", &["inetOrgPerson", "ucsschoolStudent"])
            .with("ucsschoolSchool", &[school])
            .with("ucsschoolRole", &[&format!("student:school:{school}")])
    }

    fn school(n: u128, code: &str) -> DirSchool {
        DirSchool {
            external_id: Uuid::from_u128(n),
            code: code.to_owned(),
            display_name: code.to_owned(),
        }
    }

    fn map(entry: &RawEntry) -> (Outcome<PersonRecord>, Vec<String>) {
        let layout = DirectoryLayout::default();
        let schools = [school(1, "gym1"), school(2, "gs2")];
        let ctx = MapContext::new(&layout, TODAY, &schools);
        let mut notes = Vec::new();
        let outcome = map_person(entry, &ctx, &mut notes);
        (outcome, notes)
    }

    fn mapped(entry: &RawEntry) -> DirPerson {
        match map(entry).0 {
            Outcome::Mapped(record) => record.person,
            other => panic!("expected a person, got {other:?}"),
        }
    }

    fn held_back(entry: &RawEntry) -> String {
        match map(entry).0 {
            Outcome::HeldBack { problem, .. } => problem,
            other => panic!("expected held back, got {other:?}"),
        }
    }

    #[test]
    fn dns_compare_regardless_of_case_spacing_and_escapes() {
        assert_eq!(
            dn_key("uid=Anna.Mueller, cn=Schueler,cn=users,ou=GYM1,dc=flotte,dc=test"),
            dn_key("uid=anna.mueller,cn=schueler,cn=users,ou=gym1,dc=flotte,dc=test")
        );
        assert_eq!(dn_key("cn=a\\2Cb,dc=x"), dn_key("cn=a\\,b,dc=x"));
        assert_ne!(dn_key("cn=a\\,b,dc=x"), dn_key("cn=a,cn=b,dc=x"));
        assert_eq!(dn_key("uid=a,dc=x#'0101'B"), dn_key("uid=a,dc=x"));
        let rdns = parse_dn("cn=lehrer und mitarbeiter,cn=users,ou=gym1,dc=x");
        assert_eq!(rdns[0].value, "lehrer und mitarbeiter");
        assert_eq!(rdns.len(), 4);
        assert_eq!(parse_dn("cn=M\\C3\\BCller,dc=x")[0].value, "Müller");
    }

    #[test]
    fn groups_are_classified_by_where_they_sit() {
        let layout = DirectoryLayout::default();
        let class = format!("cn=gym1-5a,cn=klassen,cn=schueler,cn=groups,ou=gym1,{BASE}");
        let workgroup = format!("cn=gym1-musik,cn=schueler,cn=groups,ou=gym1,{BASE}");
        let default_group = format!("cn=schueler-gym1,cn=groups,ou=gym1,{BASE}");
        let district = "cn=gym1-5a,cn=klassen,cn=schueler,cn=groups,ou=gym1,ou=gy,dc=x";
        assert_eq!(
            classify_group(&class, &layout),
            Some((GroupKind::Class, "gym1".to_owned()))
        );
        assert_eq!(
            classify_group(&workgroup, &layout),
            Some((GroupKind::Workgroup, "gym1".to_owned()))
        );
        assert_eq!(classify_group(&default_group, &layout), None);
        assert_eq!(
            classify_group(district, &layout),
            Some((GroupKind::Class, "gym1".to_owned()))
        );

        let custom = DirectoryLayout {
            classes_container: "cn=classes,cn=pupils,cn=groups".to_owned(),
            ..DirectoryLayout::default()
        };
        assert_eq!(classify_group(&class, &custom), None);
        assert_eq!(
            classify_group("cn=x-7b,cn=classes,cn=pupils,cn=groups,ou=x,dc=y", &custom),
            Some((GroupKind::Class, "x".to_owned()))
        );
    }

    #[test]
    fn each_disabling_mechanism_is_recognised_on_its_own() {
        let base = RawEntry::new("uid=x,dc=y");
        let check = |e: &RawEntry| disabled_reason(e, TODAY);
        assert_eq!(check(&base), Ok(None));
        assert_eq!(
            check(&base.clone().with("shadowExpire", &["1"])),
            Ok(Some("shadowExpire"))
        );
        assert_eq!(
            check(&base.clone().with("shadowExpire", &["19000"])),
            Ok(Some("shadowExpire"))
        );
        assert_eq!(
            check(&base.clone().with("shadowExpire", &["20000"])),
            Ok(Some("shadowExpire"))
        );
        assert_eq!(
            check(&base.clone().with("shadowExpire", &["20001"])),
            Ok(None)
        );
        assert_eq!(check(&base.clone().with("shadowExpire", &["0"])), Ok(None));
        assert_eq!(check(&base.clone().with("shadowExpire", &["-1"])), Ok(None));
        assert_eq!(
            check(&base.clone().with("sambaAcctFlags", &["[UD         ]"])),
            Ok(Some("sambaAcctFlags"))
        );
        // Locked (failed logins) is not disabled.
        assert_eq!(
            check(&base.clone().with("sambaAcctFlags", &["[UL         ]"])),
            Ok(None)
        );
        assert_eq!(
            check(&base.clone().with("sambaAcctFlags", &["[U          ]"])),
            Ok(None)
        );
        assert_eq!(
            check(&base.clone().with("krb5KDCFlags", &["254"])),
            Ok(Some("krb5KDCFlags"))
        );
        assert_eq!(
            check(&base.clone().with("krb5KDCFlags", &["126"])),
            Ok(None)
        );
        assert!(check(&base.clone().with("shadowExpire", &["soon"])).is_err());
        assert!(check(&base.clone().with("krb5KDCFlags", &["1", "2"])).is_err());
    }

    #[test]
    fn a_pupil_maps_with_role_mail_and_disabled_flag() {
        let entry = pupil(10, "anna.mueller", "GYM1")
            .with("mailPrimaryAddress", &["anna@schule.example"])
            .with("mail", &["anna.privat@example.org"])
            .with("shadowExpire", &["1"]);
        let person = mapped(&entry);
        assert_eq!(person.username, "anna.mueller");
        assert_eq!(person.family_name, "Müller");
        assert_eq!(person.mail.as_deref(), Some("anna@schule.example"));
        assert!(person.disabled);
        // The OU's spelling wins over the role value's.
        assert_eq!(
            person.memberships,
            vec![SchoolRole {
                school_code: "gym1".to_owned(),
                role: Role::Pupil
            }]
        );
    }

    #[test]
    fn mail_falls_back_to_the_next_attribute() {
        let entry = pupil(10, "a", "gym1").with("mail", &["a@example.org"]);
        assert_eq!(mapped(&entry).mail.as_deref(), Some("a@example.org"));
        assert_eq!(mapped(&pupil(10, "a", "gym1")).mail, None);
    }

    #[test]
    fn a_teacher_at_two_schools_gets_both_roles() {
        let entry = RawEntry::new(format!(
            "uid=l,cn=lehrer und mitarbeiter,cn=users,ou=gym1,{BASE}"
        ))
        .with("entryUUID", &[&uuid(11)])
        .with("uid", &["l"])
        .with("sn", &["Lehmann"])
        .with("objectClass", &["ucsschoolTeacher", "ucsschoolStaff"])
        .with("ucsschoolSchool", &["gym1", "gs2"])
        .with(
            "ucsschoolRole",
            &[
                "teacher:school:gym1",
                "staff:school:gym1",
                "teacher:school:gs2",
                "school_class:school:gym1",
            ],
        );
        let roles: Vec<(String, Role)> = mapped(&entry)
            .memberships
            .into_iter()
            .map(|m| (m.school_code, m.role))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("gs2".to_owned(), Role::Teacher),
                ("gym1".to_owned(), Role::Teacher),
                ("gym1".to_owned(), Role::Staff),
            ]
        );
    }

    #[test]
    fn objects_without_ucsschool_role_fall_back_to_role_classes() {
        let entry = RawEntry::new(format!("uid=o,cn=schueler,cn=users,ou=gym1,{BASE}"))
            .with("entryUUID", &[&uuid(12)])
            .with("uid", &["o"])
            .with("sn", &["Old"])
            .with("objectClass", &["ucsschoolStudent"])
            .with("ucsschoolSchool", &["gym1", "gs2"]);
        assert_eq!(mapped(&entry).memberships.len(), 2);
    }

    #[test]
    fn exam_accounts_are_ignored_by_class_role_or_container() {
        let by_class = pupil(13, "exam-a", "gym1").with("objectClass", &["ucsschoolExam"]);
        let by_role =
            pupil(13, "exam-a", "gym1").with("ucsschoolRole", &["exam_user:exam:mathe-gym1"]);
        let mut by_dn = pupil(13, "exam-a", "gym1");
        by_dn.dn = format!("uid=exam-a,cn=examusers,ou=gym1,{BASE}");
        for entry in [by_class, by_role, by_dn] {
            assert!(matches!(map(&entry).0, Outcome::Ignored), "{entry:?}");
        }
    }

    #[test]
    fn unusable_people_are_held_back_with_a_reason() {
        let two_uids = pupil(14, "a", "gym1").with("uid", &["b"]);
        assert!(held_back(&two_uids).contains("uid has 2 values"));
        let no_uid = pupil(14, "a", "gym1").without("uid");
        assert!(held_back(&no_uid).contains("has no uid"));
        let no_role = RawEntry::new("uid=x,cn=users,dc=y")
            .with("entryUUID", &[&uuid(15)])
            .with("uid", &["x"])
            .with("sn", &["X"])
            .with("objectClass", &["ucsschoolTeacher"]);
        assert!(held_back(&no_role).contains("no school role"));
        let garbled = pupil(16, "a", "gym1").with("krb5KDCFlags", &["lots"]);
        assert!(held_back(&garbled).contains("krb5KDCFlags"));
    }

    #[test]
    fn a_person_without_entry_uuid_is_unkeyed() {
        let entry = pupil(17, "a", "gym1").without("entryUUID");
        assert!(matches!(map(&entry).0, Outcome::Unkeyed { .. }));
        let garbled = pupil(17, "a", "gym1")
            .without("entryUUID")
            .with("entryUUID", &["not-a-uuid"]);
        assert!(matches!(map(&garbled).0, Outcome::Unkeyed { .. }));
    }

    #[test]
    fn roles_at_unread_schools_are_kept_and_noted_once() {
        let layout = DirectoryLayout::default();
        let ctx = MapContext::new(&layout, TODAY, &[]);
        let mut notes = Vec::new();
        for n in 0..3 {
            let outcome = map_person(&pupil(18 + n, &format!("p{n}"), "rs9"), &ctx, &mut notes);
            assert!(matches!(outcome, Outcome::Mapped(_)));
        }
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("rs9"));
    }

    fn group(n: u128, dn: &str) -> RawEntry {
        RawEntry::new(dn)
            .with("entryUUID", &[&uuid(n)])
            .with("objectClass", &["posixGroup", "univentionGroup"])
    }

    #[test]
    fn full_read_assembles_classes_workgroups_and_group_dns() {
        let layout = DirectoryLayout::default();
        let anna = pupil(10, "anna", "gym1");
        let ben = pupil(11, "ben", "gym1");
        let class_dn = format!("cn=gym1-5a,cn=klassen,cn=schueler,cn=groups,ou=gym1,{BASE}");
        let tech_dn = format!("cn=technik,cn=groups,{BASE}");
        let read = FullRead {
            schools: vec![
                RawEntry::new(format!("ou=gym1,{BASE}"))
                    .with("entryUUID", &[&uuid(1)])
                    .with("displayName", &["Gymnasium Mitte"]),
            ],
            people: vec![anna.clone(), ben.clone()],
            groups: vec![
                group(50, &class_dn).with("uniqueMember", &[&anna.dn.to_uppercase()]),
                // memberUid only: still resolved.
                group(
                    51,
                    &format!("cn=gym1-musik,cn=schueler,cn=groups,ou=gym1,{BASE}"),
                )
                .with("memberUid", &["ben"]),
                // A default group: not a class, not a workgroup.
                group(52, &format!("cn=schueler-gym1,cn=groups,ou=gym1,{BASE}"))
                    .with("uniqueMember", &[&anna.dn]),
                // A member that is nobody we read.
                group(
                    53,
                    &format!("cn=gym1-5b,cn=klassen,cn=schueler,cn=groups,ou=gym1,{BASE}"),
                )
                .with(
                    "uniqueMember",
                    &[&format!("uid=ghost,cn=schueler,cn=users,ou=gym1,{BASE}")],
                ),
            ],
            technician_group: Some(RawEntry::new(&tech_dn).with("uniqueMember", &[&ben.dn])),
            problems: Vec::new(),
        };
        let snapshot = assemble_snapshot(read, &layout, TODAY);
        assert!(snapshot.complete);
        assert_eq!(snapshot.schools[0].display_name, "Gymnasium Mitte");
        assert_eq!(snapshot.classes.len(), 2);
        assert_eq!(snapshot.workgroups.len(), 1);
        assert_eq!(snapshot.workgroups[0].name, "musik");
        assert_eq!(
            snapshot.workgroups[0].member_external_ids,
            vec![Uuid::from_u128(11)]
        );
        assert_eq!(snapshot.problems.len(), 1, "{:?}", snapshot.problems);
        assert!(snapshot.problems[0].contains("ghost"));

        let anna = &snapshot.people[0];
        assert_eq!(anna.classes[0].name, "5a");
        assert_eq!(anna.group_dns, vec![class_dn]);
        let ben = &snapshot.people[1];
        assert!(ben.classes.is_empty());
        assert!(ben.group_dns.contains(&tech_dn), "{:?}", ben.group_dns);
    }

    #[test]
    fn a_missing_entry_uuid_makes_the_read_incomplete() {
        let broken = pupil(10, "anna", "gym1").without("entryUUID");
        let read = FullRead {
            schools: Vec::new(),
            people: vec![broken, pupil(11, "ben", "gym1").with("uid", &["b2"])],
            groups: Vec::new(),
            technician_group: None,
            problems: Vec::new(),
        };
        let snapshot = assemble_snapshot(read, &DirectoryLayout::default(), TODAY);
        assert!(!snapshot.complete);
        assert_eq!(snapshot.held_back, vec![Uuid::from_u128(11)]);
        assert!(snapshot.people.is_empty());
        // Two problems for the two entries, plus notes on the unread school.
        assert!(snapshot.problems.iter().any(|p| p.contains("no entryUUID")));
        assert!(
            snapshot
                .problems
                .iter()
                .any(|p| p.contains("uid has 2 values"))
        );
    }

    #[test]
    fn class_names_lose_their_school_prefix() {
        let layout = DirectoryLayout::default();
        let schools = [school(1, "gym1")];
        let ctx = MapContext::new(&layout, TODAY, &schools);
        let mut notes = Vec::new();
        let dn = format!("cn=GYM1-5a,cn=klassen,cn=schueler,cn=groups,ou=gym1,{BASE}");
        let Outcome::Mapped(record) = map_group(&group(1, &dn), &ctx, &mut notes) else {
            panic!("not mapped");
        };
        assert_eq!(record.name, "5a");
        assert!(notes.is_empty());

        let odd = format!("cn=5a,cn=klassen,cn=schueler,cn=groups,ou=gym1,{BASE}");
        let Outcome::Mapped(record) = map_group(&group(2, &odd), &ctx, &mut notes) else {
            panic!("not mapped");
        };
        assert_eq!(record.name, "5a");
        assert_eq!(notes.len(), 1);
    }
}
