//! The school directory as Flotte sees it, and the planner that turns a fresh
//! read of it into a sync plan.
//!
//! The city's UCS@school directory is the source of truth for schools, people
//! and groups; Flotte keeps its own projection, keyed on the directory's
//! `entryUUID`. Adapters produce a [`DirectorySnapshot`] (a full read) or
//! [`DirectoryChanges`] (an incremental read), storage describes what Flotte
//! already holds as a [`KnownDirectory`], and [`plan_sync`] says what to apply,
//! or refuses with a [`SyncAbort`] when applying would be unsafe.
//!
//! Data minimisation is structural: the model has no fields for birth dates,
//! addresses, guardians or passwords, so no adapter can hand them on.
//!
//! People are never deleted by a sync. Someone who disappears from the
//! directory is marked *departed* and kept, because open device loans and the
//! audit trail still refer to them; deleting them is a retention job's business.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A school: one `ucsschoolOrganizationalUnit` in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirSchool {
    /// The OU's `entryUUID`.
    pub external_id: Uuid,
    /// The OU name (`ou`, the "Schulkürzel", e.g. `gym1`).
    pub code: String,
    /// `displayName` of the OU; the code when the directory has none.
    pub display_name: String,
}

/// What a person does at one school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// UCS@school `student`.
    Pupil,
    Teacher,
    Staff,
    SchoolAdmin,
    /// A temporary exam-mode account (`exam_user`). Never synced: adapters drop
    /// these, and the planner drops them again in case one slips through.
    ExamUser,
}

impl Role {
    /// Maps the role part of a `ucsschoolRole` value (`student`, `teacher`, …).
    /// Roles of non-person objects and third-party roles give `None`.
    pub fn from_ucsschool(role: &str) -> Option<Role> {
        match role {
            "student" => Some(Role::Pupil),
            "teacher" => Some(Role::Teacher),
            "staff" => Some(Role::Staff),
            "school_admin" => Some(Role::SchoolAdmin),
            "exam_user" => Some(Role::ExamUser),
            _ => None,
        }
    }
}

/// One role at one school. A teacher at two schools has two of these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SchoolRole {
    pub school_code: String,
    pub role: Role,
}

/// A `ucsschoolRole` value split into its parts (`role:context_type:context`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UcsschoolRole {
    pub role: String,
    pub context_type: String,
    /// The context with UCS@school's `&&&` escape turned back into `:`.
    pub context: String,
}

impl UcsschoolRole {
    /// Parses leniently: empty segments are ignored (the Kelvin docs show
    /// `school_class::school:X`) and unknown roles and context types are kept,
    /// because third parties may add their own. `None` only when fewer than
    /// three parts are present.
    pub fn parse(value: &str) -> Option<UcsschoolRole> {
        let mut parts = value.split(':').filter(|p| !p.trim().is_empty());
        let role = parts.next()?.trim().to_owned();
        let context_type = parts.next()?.trim().to_owned();
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            return None;
        }
        let context = rest.join(":").trim().replace("&&&", ":");
        Some(UcsschoolRole {
            role,
            context_type,
            context,
        })
    }

    /// The person role this value grants, if it is one. Person roles live in
    /// the `school` context, except exam users, whose context is the exam.
    pub fn person_role(&self) -> Option<SchoolRole> {
        let role = Role::from_ucsschool(&self.role)?;
        let context_ok = match role {
            Role::ExamUser => true,
            _ => self.context_type == "school",
        };
        context_ok.then(|| SchoolRole {
            school_code: self.context.clone(),
            role,
        })
    }
}

/// A school class as a person's attribute: school and class name (without the
/// `<school>-` prefix the directory puts in front of group names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClassRef {
    pub school_code: String,
    pub name: String,
}

/// A person as read from the directory. Only what device management and loans
/// need; see the module docs on data minimisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPerson {
    /// The user entry's `entryUUID`; it survives renames and school changes.
    pub external_id: Uuid,
    /// `uid`; it can be renamed.
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    pub mail: Option<String>,
    /// One entry per school and role, sorted.
    pub memberships: Vec<SchoolRole>,
    /// The school classes the person belongs to (pupils and teachers), sorted.
    pub classes: Vec<ClassRef>,
    /// Disabled by any mechanism the directory has (the adapter decides which).
    pub disabled: bool,
    /// DNs of the groups the person is known to be in. Only full reads fill it
    /// (`memberOf`, the class and workgroup groups read, the technician group);
    /// the planner does not look at it.
    pub group_dns: Vec<String>,
}

impl DirPerson {
    /// Exam-mode accounts are copies of pupils and must never become people.
    pub fn is_exam_account(&self) -> bool {
        self.memberships.iter().any(|m| m.role == Role::ExamUser)
    }
}

/// Whether a group is a school class or a workgroup ("Arbeitsgemeinschaft").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    Class,
    Workgroup,
}

/// A school class or workgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGroup {
    /// The group entry's `entryUUID`; it survives a rename.
    pub external_id: Uuid,
    pub school_code: String,
    /// The name without the `<school>-` prefix (`5a`, not `gym1-5a`).
    pub name: String,
    pub kind: GroupKind,
    /// Members' `external_id`s, sorted. Members the adapter could not resolve
    /// to a person are left out (and reported as a problem).
    pub member_external_ids: Vec<Uuid>,
}

/// A full read of the directory.
///
/// `complete` is the adapter's promise that every school, person and group in
/// scope was either read or listed in `held_back`. The planner refuses to act
/// on an incomplete snapshot, because an entry missing for a technical reason
/// would look exactly like a person who left.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DirectorySnapshot {
    pub schools: Vec<DirSchool>,
    pub people: Vec<DirPerson>,
    pub classes: Vec<DirGroup>,
    pub workgroups: Vec<DirGroup>,
    pub complete: bool,
    /// Human-readable notes on entries that were skipped or only partly
    /// understood. They count as errors in the [`SyncReport`].
    pub problems: Vec<String>,
    /// Entries that exist (their `entryUUID` was read) but could not be mapped.
    /// The planner leaves these people and groups exactly as Flotte has them:
    /// neither changed nor departed. One broken entry thus does not block the
    /// sync of 33,000 others, and is not mistaken for someone leaving.
    pub held_back: Vec<Uuid>,
}

/// What storage says a person looks like in Flotte today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonState {
    Active,
    Disabled,
    /// No longer in the directory; kept for loans and audit.
    Departed,
}

/// A person as Flotte stores them, with the facts the planner needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPerson {
    pub external_id: Uuid,
    pub username: String,
    pub given_name: String,
    pub family_name: String,
    pub mail: Option<String>,
    pub memberships: Vec<SchoolRole>,
    pub classes: Vec<ClassRef>,
    pub state: PersonState,
    /// The person has at least one device loan that is not returned.
    pub has_open_loan: bool,
}

/// What Flotte already stores from earlier syncs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KnownDirectory {
    pub schools: Vec<DirSchool>,
    pub people: Vec<KnownPerson>,
    /// Classes and workgroups, with their members.
    pub groups: Vec<DirGroup>,
}

/// Safety limits for applying a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPolicy {
    /// Refuse when more than this share (0.0–1.0) of the known active people
    /// would be marked departed. A half-read directory must not "remove" a
    /// third of the city's pupils.
    pub max_missing_share: f64,
    /// School codes that may legitimately come back without anybody in them
    /// (a school being closed). Every other previously populated school that
    /// comes back empty stops the sync.
    pub allow_emptied_schools: Vec<String>,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            max_missing_share: 0.10,
            allow_emptied_schools: Vec::new(),
        }
    }
}

/// A person field that changed, with the detail an operator needs to see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "field")]
pub enum PersonField {
    Username {
        from: String,
        to: String,
    },
    /// Given or family name.
    Name,
    Mail,
    /// A school change shows up here: the old school's role removed, the new
    /// one added, same person.
    SchoolRoles {
        added: Vec<SchoolRole>,
        removed: Vec<SchoolRole>,
    },
    Classes {
        added: Vec<ClassRef>,
        removed: Vec<ClassRef>,
    },
}

/// A known person whose directory attributes changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonChange {
    /// The new state to store.
    pub person: DirPerson,
    pub fields: Vec<PersonField>,
}

/// Why a loan needs a human's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoanAlertReason {
    /// The borrower was disabled in this sync (often a leaver during the
    /// directory's deletion grace period).
    Disabled,
    /// The borrower disappeared from the directory in this sync.
    Departed,
}

/// A person with an open loan whose state just changed for the worse. Raised
/// once, on the transition, not on every later sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanAlert {
    pub external_id: Uuid,
    pub username: String,
    pub reason: LoanAlertReason,
}

/// A class or workgroup that kept its `entryUUID` but changed name or school.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRename {
    pub external_id: Uuid,
    pub kind: GroupKind,
    pub from: ClassRef,
    pub to: ClassRef,
}

/// Members who joined or left an existing group. New groups carry their full
/// member list in [`SyncPlan::groups_added`] instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    pub group_external_id: Uuid,
    pub kind: GroupKind,
    pub added: Vec<Uuid>,
    pub removed: Vec<Uuid>,
}

/// Everything a sync would change, sorted by external id. Nothing in it
/// deletes a person.
///
/// State transitions: `people_disabled` ends up Disabled, `people_reenabled`
/// goes from Disabled to Active, `people_returned` was Departed and is back
/// (Active, or Disabled when also listed in `people_disabled`), and
/// `people_departed` becomes Departed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SyncPlan {
    pub schools_added: Vec<DirSchool>,
    /// New state of schools whose code or display name changed.
    pub schools_updated: Vec<DirSchool>,
    /// Known schools the directory no longer has. Kept, like people.
    pub schools_missing: Vec<Uuid>,
    pub people_added: Vec<DirPerson>,
    pub people_changed: Vec<PersonChange>,
    pub people_disabled: Vec<Uuid>,
    pub people_reenabled: Vec<Uuid>,
    pub people_returned: Vec<Uuid>,
    pub people_departed: Vec<Uuid>,
    pub loan_alerts: Vec<LoanAlert>,
    pub groups_added: Vec<DirGroup>,
    pub groups_renamed: Vec<GroupRename>,
    pub groups_removed: Vec<Uuid>,
    pub memberships: Vec<MembershipChange>,
    pub people_unchanged: usize,
    /// Exam accounts found in the snapshot and ignored.
    pub skipped_exam_accounts: usize,
    /// Ids the adapter could not map; left untouched (see [`DirectorySnapshot::held_back`]).
    pub held_back: Vec<Uuid>,
    /// The snapshot's problems, carried along for the report and the log.
    pub problems: Vec<String>,
}

impl SyncPlan {
    /// True when applying the plan would change nothing.
    pub fn is_empty(&self) -> bool {
        self.schools_added.is_empty()
            && self.schools_updated.is_empty()
            && self.people_added.is_empty()
            && self.people_changed.is_empty()
            && self.people_disabled.is_empty()
            && self.people_reenabled.is_empty()
            && self.people_returned.is_empty()
            && self.people_departed.is_empty()
            && self.groups_added.is_empty()
            && self.groups_renamed.is_empty()
            && self.groups_removed.is_empty()
            && self.memberships.is_empty()
    }

    /// The counts for the operator and the metrics.
    pub fn report(&self) -> SyncReport {
        SyncReport::from(self)
    }
}

/// Counts of a sync, for logs, metrics and the admin UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncReport {
    pub added: usize,
    pub changed: usize,
    pub disabled: usize,
    pub reenabled: usize,
    pub returned: usize,
    pub departed: usize,
    pub loan_alerts: usize,
    /// Entries the adapter skipped or only partly understood.
    pub errors: usize,
}

impl From<&SyncPlan> for SyncReport {
    fn from(plan: &SyncPlan) -> Self {
        SyncReport {
            added: plan.people_added.len(),
            changed: plan.people_changed.len(),
            disabled: plan.people_disabled.len(),
            reenabled: plan.people_reenabled.len(),
            returned: plan.people_returned.len(),
            departed: plan.people_departed.len(),
            loan_alerts: plan.loan_alerts.len(),
            errors: plan.problems.len(),
        }
    }
}

/// A school that had people in Flotte and has none in the directory read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptiedSchool {
    pub code: String,
    /// How many non-departed people Flotte has at that school.
    pub known_people: usize,
}

/// Why a sync was refused. Nothing was applied; the message says why, in
/// words an operator can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SyncAbort {
    #[error("directory read was incomplete{}: not applied", describe_problems(.problems))]
    Incomplete { problems: Vec<String> },
    #[error(
        "read returned {} of {} known active people ({} % missing, threshold {} %): not applied",
        thousands(*.found), thousands(*.known_active), percent(*.missing, *.known_active), format_share(*.threshold)
    )]
    TooManyMissing {
        found: usize,
        known_active: usize,
        missing: usize,
        threshold: f64,
    },
    #[error(
        "{} previously populated school(s) came back empty ({}): not applied; \
         if a school really closed, list it in allow_emptied_schools",
        .schools.len(), describe_emptied(.schools)
    )]
    SchoolsEmptied { schools: Vec<EmptiedSchool> },
    #[error("the directory returned {what} {external_id} more than once: not applied")]
    DuplicateExternalId {
        what: &'static str,
        external_id: Uuid,
    },
}

fn describe_problems(problems: &[String]) -> String {
    match problems.first() {
        None => String::new(),
        Some(first) if problems.len() == 1 => format!(" (1 problem: {first})"),
        Some(first) => format!(" ({} problems, first: {first})", problems.len()),
    }
}

fn describe_emptied(schools: &[EmptiedSchool]) -> String {
    schools
        .iter()
        .map(|s| format!("{} had {}", s.code, thousands(s.known_people)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `30000` → `30,000`: abort messages are read by people, not parsers.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "0".to_owned();
    }
    format_share(part as f64 / whole as f64)
}

/// Whole percentages print without decimals (`40`), others with one (`12.5`).
fn format_share(share: f64) -> String {
    let pct = share * 100.0;
    if (pct - pct.round()).abs() < 0.05 {
        format!("{}", pct.round())
    } else {
        format!("{pct:.1}")
    }
}

/// Sets every person's `classes` from the class groups' member lists, so that
/// a person's classes and the classes' members can never disagree.
pub fn assign_classes(people: &mut [DirPerson], classes: &[DirGroup]) {
    let mut by_person: BTreeMap<Uuid, BTreeSet<ClassRef>> = BTreeMap::new();
    for class in classes.iter().filter(|g| g.kind == GroupKind::Class) {
        for member in &class.member_external_ids {
            by_person.entry(*member).or_default().insert(ClassRef {
                school_code: class.school_code.clone(),
                name: class.name.clone(),
            });
        }
    }
    for person in people {
        person.classes = by_person
            .remove(&person.external_id)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
    }
}

/// Which entries an incremental read says are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deletions {
    /// The source cannot see deletions (`modifyTimestamp` polling); a periodic
    /// full read must catch them.
    Unknown,
    /// Exactly these ids were deleted (RFC 4533 delete phase).
    Listed(BTreeSet<Uuid>),
    /// Everything in scope except these ids (plus the changed entries) was
    /// deleted (RFC 4533 present phase, or an initial load).
    AllExcept(BTreeSet<Uuid>),
}

/// An incremental read: the entries added or modified since the last cookie,
/// and what is known about deletions.
///
/// People's `classes` are not read incrementally; they are derived from the
/// class groups when the changes are merged (see [`KnownDirectory::with_changes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryChanges {
    pub schools: Vec<DirSchool>,
    pub people: Vec<DirPerson>,
    pub classes: Vec<DirGroup>,
    pub workgroups: Vec<DirGroup>,
    pub deletions: Deletions,
    /// As in [`DirectorySnapshot::complete`].
    pub complete: bool,
    pub problems: Vec<String>,
    pub held_back: Vec<Uuid>,
}

impl KnownPerson {
    fn as_dir_person(&self) -> DirPerson {
        DirPerson {
            external_id: self.external_id,
            username: self.username.clone(),
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            mail: self.mail.clone(),
            memberships: self.memberships.clone(),
            classes: self.classes.clone(),
            disabled: self.state == PersonState::Disabled,
            group_dns: Vec::new(),
        }
    }
}

impl KnownPerson {
    /// The record Flotte stores for a person read from the directory.
    pub fn from_dir(person: &DirPerson, has_open_loan: bool) -> KnownPerson {
        KnownPerson {
            external_id: person.external_id,
            username: person.username.clone(),
            given_name: person.given_name.clone(),
            family_name: person.family_name.clone(),
            mail: person.mail.clone(),
            memberships: person.memberships.clone(),
            classes: person.classes.clone(),
            state: if person.disabled {
                PersonState::Disabled
            } else {
                PersonState::Active
            },
            has_open_loan,
        }
    }
}

impl KnownDirectory {
    /// What Flotte knows after applying `snapshot` to an empty store, with
    /// no loans: for seeding a store and for tests. Exam accounts and
    /// held-back entries are left out, as [`plan_sync`] would.
    pub fn from_snapshot(snapshot: &DirectorySnapshot) -> KnownDirectory {
        KnownDirectory {
            schools: snapshot.schools.clone(),
            people: snapshot
                .people
                .iter()
                .filter(|p| !p.is_exam_account() && !snapshot.held_back.contains(&p.external_id))
                .map(|p| KnownPerson::from_dir(p, false))
                .collect(),
            groups: snapshot
                .classes
                .iter()
                .chain(&snapshot.workgroups)
                .cloned()
                .collect(),
        }
    }

    /// The snapshot the directory would give now, built from what Flotte
    /// knows plus an incremental read. Feeding it to [`plan_sync`] gives
    /// incremental syncs exactly the same rules and safety checks as full ones.
    pub fn with_changes(&self, changes: &DirectoryChanges) -> DirectorySnapshot {
        let held_back: BTreeSet<Uuid> = changes.held_back.iter().copied().collect();
        let mut changed_ids: BTreeSet<Uuid> = BTreeSet::new();
        changed_ids.extend(changes.schools.iter().map(|s| s.external_id));
        changed_ids.extend(changes.people.iter().map(|p| p.external_id));
        changed_ids.extend(changes.classes.iter().map(|g| g.external_id));
        changed_ids.extend(changes.workgroups.iter().map(|g| g.external_id));
        let deleted = |id: &Uuid| -> bool {
            if held_back.contains(id) || changed_ids.contains(id) {
                return false;
            }
            match &changes.deletions {
                Deletions::Unknown => false,
                Deletions::Listed(ids) => ids.contains(id),
                Deletions::AllExcept(present) => !present.contains(id),
            }
        };

        let mut schools: BTreeMap<Uuid, DirSchool> = self
            .schools
            .iter()
            .filter(|s| !deleted(&s.external_id))
            .map(|s| (s.external_id, s.clone()))
            .collect();
        for school in &changes.schools {
            schools.insert(school.external_id, school.clone());
        }

        let mut groups: BTreeMap<Uuid, DirGroup> = self
            .groups
            .iter()
            .filter(|g| !deleted(&g.external_id))
            .map(|g| (g.external_id, g.clone()))
            .collect();
        for group in changes.classes.iter().chain(&changes.workgroups) {
            if !held_back.contains(&group.external_id) {
                groups.insert(group.external_id, group.clone());
            }
        }

        let mut people: BTreeMap<Uuid, DirPerson> = self
            .people
            .iter()
            .filter(|p| p.state != PersonState::Departed && !deleted(&p.external_id))
            .map(|p| (p.external_id, p.as_dir_person()))
            .collect();
        for person in &changes.people {
            if !held_back.contains(&person.external_id) {
                people.insert(person.external_id, person.clone());
            }
        }
        // Held-back people stay as Flotte has them, which is what leaving them
        // out of `people` and listing them in `held_back` means to the planner.
        for id in &held_back {
            people.remove(id);
        }

        let (classes, workgroups): (Vec<DirGroup>, Vec<DirGroup>) = groups
            .into_values()
            .partition(|g| g.kind == GroupKind::Class);
        let mut people: Vec<DirPerson> = people.into_values().collect();
        assign_classes(&mut people, &classes);

        DirectorySnapshot {
            schools: schools.into_values().collect(),
            people,
            classes,
            workgroups,
            complete: changes.complete,
            problems: changes.problems.clone(),
            held_back: changes.held_back.clone(),
        }
    }
}

/// Why a directory read failed. Nothing from a failed read may be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadFailure {
    /// What went wrong, for the run report (never contains a password).
    pub message: String,
    /// The change cookie cannot be used any more: read everything instead.
    pub cookie_unusable: bool,
}

impl ReadFailure {
    pub fn new(message: impl Into<String>) -> Self {
        ReadFailure {
            message: message.into(),
            cookie_unusable: false,
        }
    }
}

/// An incremental read and the cookie to store once it has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRead {
    pub changes: DirectoryChanges,
    /// Opaque to Flotte; handed back on the next incremental read.
    pub cookie: String,
}

/// Where a sync reads the directory from (the LDAP adapter implements it).
/// The worker sees only this port, so it never talks LDAP itself.
#[async_trait::async_trait]
pub trait DirectorySource: Send + Sync {
    /// Reads every school, person and group.
    async fn read_full(&self) -> Result<DirectorySnapshot, ReadFailure>;
    /// Reads what changed since `cookie`; without one, everything.
    async fn read_changes(&self, cookie: Option<&str>) -> Result<ChangeRead, ReadFailure>;
}

/// Compares what Flotte knows with a directory snapshot and lists what to
/// change, or refuses.
///
/// Refuses when the snapshot is incomplete, when more than
/// `policy.max_missing_share` of the known active people would depart, when a
/// previously populated school comes back empty, or when an id appears twice.
/// People are matched on `external_id` only, so a renamed or moved person is a
/// change, never a departure plus an arrival.
pub fn plan_sync(
    known: &KnownDirectory,
    snapshot: &DirectorySnapshot,
    policy: &SyncPolicy,
) -> Result<SyncPlan, SyncAbort> {
    if !snapshot.complete {
        return Err(SyncAbort::Incomplete {
            problems: snapshot.problems.clone(),
        });
    }
    let held_back: BTreeSet<Uuid> = snapshot.held_back.iter().copied().collect();

    let mut plan = SyncPlan {
        held_back: held_back.iter().copied().collect(),
        problems: snapshot.problems.clone(),
        ..SyncPlan::default()
    };

    let mut incoming: BTreeMap<Uuid, &DirPerson> = BTreeMap::new();
    for person in &snapshot.people {
        if person.is_exam_account() {
            plan.skipped_exam_accounts += 1;
            continue;
        }
        if held_back.contains(&person.external_id) {
            continue;
        }
        if incoming.insert(person.external_id, person).is_some() {
            return Err(SyncAbort::DuplicateExternalId {
                what: "person",
                external_id: person.external_id,
            });
        }
    }
    let known_people: BTreeMap<Uuid, &KnownPerson> =
        known.people.iter().map(|p| (p.external_id, p)).collect();
    let is_present = |id: &Uuid| -> bool { incoming.contains_key(id) || held_back.contains(id) };

    check_missing_share(known, &is_present, policy)?;
    check_emptied_schools(known, snapshot, &incoming, &held_back, policy)?;

    plan_schools(known, snapshot, &mut plan)?;

    for (id, person) in &incoming {
        let Some(before) = known_people.get(id) else {
            plan.people_added.push((*person).clone());
            continue;
        };
        let fields = diff_person(before, person);
        let mut state_changed = true;
        match (&before.state, person.disabled) {
            (PersonState::Departed, disabled) => {
                plan.people_returned.push(*id);
                if disabled {
                    plan.people_disabled.push(*id);
                }
            }
            (PersonState::Active, true) => {
                plan.people_disabled.push(*id);
                if before.has_open_loan {
                    plan.loan_alerts.push(LoanAlert {
                        external_id: *id,
                        username: person.username.clone(),
                        reason: LoanAlertReason::Disabled,
                    });
                }
            }
            (PersonState::Disabled, false) => plan.people_reenabled.push(*id),
            _ => state_changed = false,
        }
        if !fields.is_empty() {
            plan.people_changed.push(PersonChange {
                person: (*person).clone(),
                fields,
            });
        } else if !state_changed {
            plan.people_unchanged += 1;
        }
    }

    for (id, before) in &known_people {
        if before.state == PersonState::Departed || is_present(id) {
            continue;
        }
        plan.people_departed.push(*id);
        if before.has_open_loan {
            plan.loan_alerts.push(LoanAlert {
                external_id: *id,
                username: before.username.clone(),
                reason: LoanAlertReason::Departed,
            });
        }
    }

    plan_groups(known, snapshot, &held_back, &mut plan)?;
    Ok(plan)
}

fn check_missing_share(
    known: &KnownDirectory,
    is_present: &dyn Fn(&Uuid) -> bool,
    policy: &SyncPolicy,
) -> Result<(), SyncAbort> {
    let active: Vec<&KnownPerson> = known
        .people
        .iter()
        .filter(|p| p.state == PersonState::Active)
        .collect();
    if active.is_empty() {
        return Ok(());
    }
    let missing = active
        .iter()
        .filter(|p| !is_present(&p.external_id))
        .count();
    let share = missing as f64 / active.len() as f64;
    if share > policy.max_missing_share {
        return Err(SyncAbort::TooManyMissing {
            found: active.len() - missing,
            known_active: active.len(),
            missing,
            threshold: policy.max_missing_share,
        });
    }
    Ok(())
}

/// Counts people per school and refuses when a school Flotte knows with
/// people comes back with none. Schools are compared by their OU's
/// `entryUUID` where known, so renaming a school's OU does not look like the
/// school emptying.
fn check_emptied_schools(
    known: &KnownDirectory,
    snapshot: &DirectorySnapshot,
    incoming: &BTreeMap<Uuid, &DirPerson>,
    held_back: &BTreeSet<Uuid>,
    policy: &SyncPolicy,
) -> Result<(), SyncAbort> {
    fn key(code: &str, schools: &[DirSchool]) -> String {
        schools
            .iter()
            .find(|s| s.code.eq_ignore_ascii_case(code))
            .map(|s| s.external_id.to_string())
            .unwrap_or_else(|| format!("code:{}", code.to_lowercase()))
    }
    fn schools_of(memberships: &[SchoolRole]) -> BTreeSet<&str> {
        memberships
            .iter()
            .filter(|m| m.role != Role::ExamUser)
            .map(|m| m.school_code.as_str())
            .collect()
    }

    let mut before: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for person in known
        .people
        .iter()
        .filter(|p| p.state != PersonState::Departed)
    {
        for code in schools_of(&person.memberships) {
            before
                .entry(key(code, &known.schools))
                .or_insert_with(|| (code.to_owned(), 0))
                .1 += 1;
        }
    }
    let mut after: BTreeMap<String, usize> = BTreeMap::new();
    for person in incoming.values() {
        for code in schools_of(&person.memberships) {
            *after.entry(key(code, &snapshot.schools)).or_default() += 1;
        }
    }
    for person in known
        .people
        .iter()
        .filter(|p| held_back.contains(&p.external_id))
    {
        for code in schools_of(&person.memberships) {
            *after.entry(key(code, &known.schools)).or_default() += 1;
        }
    }

    let emptied: Vec<EmptiedSchool> = before
        .into_iter()
        .filter(|(k, _)| after.get(k).copied().unwrap_or(0) == 0)
        .filter(|(_, (code, _))| {
            !policy
                .allow_emptied_schools
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(code))
        })
        .map(|(_, (code, known_people))| EmptiedSchool { code, known_people })
        .collect();
    if emptied.is_empty() {
        Ok(())
    } else {
        Err(SyncAbort::SchoolsEmptied { schools: emptied })
    }
}

fn plan_schools(
    known: &KnownDirectory,
    snapshot: &DirectorySnapshot,
    plan: &mut SyncPlan,
) -> Result<(), SyncAbort> {
    let before: BTreeMap<Uuid, &DirSchool> =
        known.schools.iter().map(|s| (s.external_id, s)).collect();
    let mut after: BTreeMap<Uuid, &DirSchool> = BTreeMap::new();
    for school in &snapshot.schools {
        if after.insert(school.external_id, school).is_some() {
            return Err(SyncAbort::DuplicateExternalId {
                what: "school",
                external_id: school.external_id,
            });
        }
    }
    for (id, school) in &after {
        match before.get(id) {
            None => plan.schools_added.push((*school).clone()),
            Some(old) if old != school => plan.schools_updated.push((*school).clone()),
            Some(_) => {}
        }
    }
    plan.schools_missing = before
        .keys()
        .filter(|id| !after.contains_key(id))
        .copied()
        .collect();
    Ok(())
}

fn plan_groups(
    known: &KnownDirectory,
    snapshot: &DirectorySnapshot,
    held_back: &BTreeSet<Uuid>,
    plan: &mut SyncPlan,
) -> Result<(), SyncAbort> {
    let before: BTreeMap<Uuid, &DirGroup> =
        known.groups.iter().map(|g| (g.external_id, g)).collect();
    let mut after: BTreeMap<Uuid, &DirGroup> = BTreeMap::new();
    for group in snapshot.classes.iter().chain(&snapshot.workgroups) {
        if held_back.contains(&group.external_id) {
            continue;
        }
        if after.insert(group.external_id, group).is_some() {
            return Err(SyncAbort::DuplicateExternalId {
                what: "group",
                external_id: group.external_id,
            });
        }
    }
    for (id, group) in &after {
        let Some(old) = before.get(id) else {
            plan.groups_added.push((*group).clone());
            continue;
        };
        if old.name != group.name || old.school_code != group.school_code {
            plan.groups_renamed.push(GroupRename {
                external_id: *id,
                kind: group.kind,
                from: ClassRef {
                    school_code: old.school_code.clone(),
                    name: old.name.clone(),
                },
                to: ClassRef {
                    school_code: group.school_code.clone(),
                    name: group.name.clone(),
                },
            });
        }
        let (added, removed) = set_diff(&old.member_external_ids, &group.member_external_ids);
        if !added.is_empty() || !removed.is_empty() {
            plan.memberships.push(MembershipChange {
                group_external_id: *id,
                kind: group.kind,
                added,
                removed,
            });
        }
    }
    plan.groups_removed = before
        .keys()
        .filter(|id| !after.contains_key(id) && !held_back.contains(id))
        .copied()
        .collect();
    Ok(())
}

fn diff_person(before: &KnownPerson, after: &DirPerson) -> Vec<PersonField> {
    let mut fields = Vec::new();
    if before.username != after.username {
        fields.push(PersonField::Username {
            from: before.username.clone(),
            to: after.username.clone(),
        });
    }
    if before.given_name != after.given_name || before.family_name != after.family_name {
        fields.push(PersonField::Name);
    }
    if before.mail != after.mail {
        fields.push(PersonField::Mail);
    }
    let (added, removed) = set_diff(&before.memberships, &after.memberships);
    if !added.is_empty() || !removed.is_empty() {
        fields.push(PersonField::SchoolRoles { added, removed });
    }
    let (added, removed) = set_diff(&before.classes, &after.classes);
    if !added.is_empty() || !removed.is_empty() {
        fields.push(PersonField::Classes { added, removed });
    }
    fields
}

/// (in `after` but not `before`, in `before` but not `after`), sorted; order
/// and duplicates in the inputs do not count as changes.
fn set_diff<T: Ord + Clone>(before: &[T], after: &[T]) -> (Vec<T>, Vec<T>) {
    let before: BTreeSet<&T> = before.iter().collect();
    let after: BTreeSet<&T> = after.iter().collect();
    (
        after.difference(&before).map(|t| (*t).clone()).collect(),
        before.difference(&after).map(|t| (*t).clone()).collect(),
    )
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Pupil => "pupil",
            Role::Teacher => "teacher",
            Role::Staff => "staff",
            Role::SchoolAdmin => "school admin",
            Role::ExamUser => "exam user",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn school(n: u128, code: &str) -> DirSchool {
        DirSchool {
            external_id: id(n),
            code: code.to_owned(),
            display_name: format!("Schule {code}"),
        }
    }

    fn role(school_code: &str, role: Role) -> SchoolRole {
        SchoolRole {
            school_code: school_code.to_owned(),
            role,
        }
    }

    fn class_ref(school_code: &str, name: &str) -> ClassRef {
        ClassRef {
            school_code: school_code.to_owned(),
            name: name.to_owned(),
        }
    }

    fn person(n: u128, username: &str, memberships: Vec<SchoolRole>) -> DirPerson {
        DirPerson {
            external_id: id(n),
            username: username.to_owned(),
            given_name: "Finn".to_owned(),
            family_name: "Becker".to_owned(),
            mail: Some(format!("{username}@schule.example")),
            memberships,
            classes: Vec::new(),
            disabled: false,
            group_dns: Vec::new(),
        }
    }

    fn pupil(n: u128, username: &str, school_code: &str) -> DirPerson {
        person(n, username, vec![role(school_code, Role::Pupil)])
    }

    fn known_as(p: &DirPerson, state: PersonState) -> KnownPerson {
        KnownPerson {
            external_id: p.external_id,
            username: p.username.clone(),
            given_name: p.given_name.clone(),
            family_name: p.family_name.clone(),
            mail: p.mail.clone(),
            memberships: p.memberships.clone(),
            classes: p.classes.clone(),
            state,
            has_open_loan: false,
        }
    }

    fn class(n: u128, school_code: &str, name: &str, members: &[u128]) -> DirGroup {
        DirGroup {
            external_id: id(n),
            school_code: school_code.to_owned(),
            name: name.to_owned(),
            kind: GroupKind::Class,
            member_external_ids: members.iter().map(|m| id(*m)).collect(),
        }
    }

    fn snapshot(schools: Vec<DirSchool>, people: Vec<DirPerson>) -> DirectorySnapshot {
        DirectorySnapshot {
            schools,
            people,
            complete: true,
            ..DirectorySnapshot::default()
        }
    }

    /// Two schools, ten active pupils at `gym1` (ids 100..110) and one at `gs2`
    /// (id 200): the baseline most tests change one thing in.
    fn baseline() -> (KnownDirectory, DirectorySnapshot) {
        let schools = vec![school(1, "gym1"), school(2, "gs2")];
        let mut people: Vec<DirPerson> = (100..110)
            .map(|n| pupil(n, &format!("p{n}"), "gym1"))
            .collect();
        people.push(pupil(200, "p200", "gs2"));
        let known = KnownDirectory {
            schools: schools.clone(),
            people: people
                .iter()
                .map(|p| known_as(p, PersonState::Active))
                .collect(),
            groups: Vec::new(),
        };
        (known, snapshot(schools, people))
    }

    fn plan(known: &KnownDirectory, snap: &DirectorySnapshot) -> SyncPlan {
        plan_sync(known, snap, &SyncPolicy::default()).expect("plan")
    }

    #[test]
    fn an_unchanged_directory_plans_nothing() {
        let (known, snap) = baseline();
        let plan = plan(&known, &snap);
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(plan.people_unchanged, 11);
    }

    #[test]
    fn everything_is_added_to_an_empty_flotte() {
        let (_, mut snap) = baseline();
        snap.classes = vec![class(50, "gym1", "5a", &[100, 101])];
        let plan = plan(&KnownDirectory::default(), &snap);
        assert_eq!(plan.schools_added.len(), 2);
        assert_eq!(plan.people_added.len(), 11);
        assert_eq!(plan.groups_added.len(), 1);
        assert!(
            plan.memberships.is_empty(),
            "new groups carry their members"
        );
        assert_eq!(plan.report().added, 11);
    }

    #[test]
    fn a_pupil_who_moves_school_keeps_their_identity() {
        let (known, mut snap) = baseline();
        snap.people[0].memberships = vec![role("gs2", Role::Pupil)];
        let plan = plan(&known, &snap);
        assert!(plan.people_added.is_empty());
        assert!(plan.people_departed.is_empty());
        assert_eq!(plan.people_changed.len(), 1);
        let change = &plan.people_changed[0];
        assert_eq!(change.person.external_id, id(100));
        assert_eq!(
            change.fields,
            vec![PersonField::SchoolRoles {
                added: vec![role("gs2", Role::Pupil)],
                removed: vec![role("gym1", Role::Pupil)],
            }]
        );
    }

    #[test]
    fn a_renamed_user_is_a_change_not_a_departure() {
        let (known, mut snap) = baseline();
        snap.people[1].username = "p101-neu".to_owned();
        snap.people[1].family_name = "Yılmaz".to_owned();
        let plan = plan(&known, &snap);
        assert!(plan.people_departed.is_empty() && plan.people_added.is_empty());
        assert_eq!(
            plan.people_changed[0].fields,
            vec![
                PersonField::Username {
                    from: "p101".to_owned(),
                    to: "p101-neu".to_owned()
                },
                PersonField::Name,
            ]
        );
    }

    #[test]
    fn a_changed_mail_address_is_reported_as_mail() {
        let (known, mut snap) = baseline();
        snap.people[2].mail = None;
        let plan = plan(&known, &snap);
        assert_eq!(plan.people_changed[0].fields, vec![PersonField::Mail]);
    }

    #[test]
    fn a_class_rename_keeps_the_group_and_updates_its_members_classes() {
        let (mut known, mut snap) = baseline();
        known.groups = vec![class(50, "gym1", "5a", &[100, 101])];
        for p in known.people.iter_mut().filter(|p| p.external_id <= id(101)) {
            p.classes = vec![class_ref("gym1", "5a")];
        }
        snap.classes = vec![class(50, "gym1", "6a", &[100, 101])];
        assign_classes(&mut snap.people, &snap.classes);

        let plan = plan(&known, &snap);
        assert!(plan.groups_added.is_empty() && plan.groups_removed.is_empty());
        assert_eq!(
            plan.groups_renamed,
            vec![GroupRename {
                external_id: id(50),
                kind: GroupKind::Class,
                from: class_ref("gym1", "5a"),
                to: class_ref("gym1", "6a"),
            }]
        );
        assert!(plan.memberships.is_empty(), "same members, same group");
        assert_eq!(plan.people_changed.len(), 2);
        assert_eq!(
            plan.people_changed[0].fields,
            vec![PersonField::Classes {
                added: vec![class_ref("gym1", "6a")],
                removed: vec![class_ref("gym1", "5a")],
            }]
        );
    }

    #[test]
    fn class_membership_changes_and_removed_classes_are_listed() {
        let (mut known, mut snap) = baseline();
        known.groups = vec![
            class(50, "gym1", "5a", &[100, 101]),
            class(51, "gym1", "5b", &[102]),
        ];
        snap.classes = vec![class(50, "gym1", "5a", &[101, 103])];
        let plan = plan(&known, &snap);
        assert_eq!(
            plan.memberships,
            vec![MembershipChange {
                group_external_id: id(50),
                kind: GroupKind::Class,
                added: vec![id(103)],
                removed: vec![id(100)],
            }]
        );
        assert_eq!(plan.groups_removed, vec![id(51)]);
    }

    #[test]
    fn disabling_and_reenabling_are_state_changes() {
        let (mut known, mut snap) = baseline();
        // Whichever directory mechanism disabled the account (shadowExpire,
        // sambaAcctFlags, krb5KDCFlags), the adapter hands over `disabled`.
        snap.people[0].disabled = true;
        known.people[1].state = PersonState::Disabled;
        let plan = plan(&known, &snap);
        assert_eq!(plan.people_disabled, vec![id(100)]);
        assert_eq!(plan.people_reenabled, vec![id(101)]);
        assert!(plan.people_changed.is_empty(), "no attribute changed");
        assert!(plan.loan_alerts.is_empty(), "no loans in this test");
        let report = plan.report();
        assert_eq!((report.disabled, report.reenabled), (1, 1));
    }

    #[test]
    fn a_disabled_borrower_raises_a_loan_alert_once() {
        let (mut known, mut snap) = baseline();
        known.people[0].has_open_loan = true;
        snap.people[0].disabled = true;
        let first = plan(&known, &snap);
        assert_eq!(
            first.loan_alerts,
            vec![LoanAlert {
                external_id: id(100),
                username: "p100".to_owned(),
                reason: LoanAlertReason::Disabled,
            }]
        );
        known.people[0].state = PersonState::Disabled;
        let second = plan(&known, &snap);
        assert!(
            second.loan_alerts.is_empty(),
            "already disabled, already alerted"
        );
    }

    #[test]
    fn departed_people_are_kept_and_borrowers_flagged() {
        let (mut known, mut snap) = baseline();
        known.people[3].has_open_loan = true;
        snap.people.retain(|p| p.external_id != id(103));
        let plan = plan(&known, &snap);
        assert_eq!(plan.people_departed, vec![id(103)]);
        assert_eq!(
            plan.loan_alerts,
            vec![LoanAlert {
                external_id: id(103),
                username: "p103".to_owned(),
                reason: LoanAlertReason::Departed,
            }]
        );
        assert_eq!(plan.report().departed, 1);
        // The plan has no way to delete: the departed person stays in Flotte.
        assert!(!plan.is_empty());
    }

    #[test]
    fn a_departed_person_is_not_departed_again_and_can_return() {
        let (mut known, mut snap) = baseline();
        known.people[4].state = PersonState::Departed;
        let back = plan(&known, &snap);
        assert_eq!(back.people_returned, vec![id(104)]);
        assert!(back.people_disabled.is_empty());

        snap.people.retain(|p| p.external_id != id(104));
        let still_gone = plan(&known, &snap);
        assert!(still_gone.is_empty(), "{still_gone:?}");
    }

    #[test]
    fn a_returning_disabled_person_is_both_returned_and_disabled() {
        let (mut known, mut snap) = baseline();
        known.people[4].state = PersonState::Departed;
        snap.people[4].disabled = true;
        let plan = plan(&known, &snap);
        assert_eq!(plan.people_returned, vec![id(104)]);
        assert_eq!(plan.people_disabled, vec![id(104)]);
    }

    #[test]
    fn too_many_missing_people_abort_with_a_readable_reason() {
        let mut known = KnownDirectory {
            schools: vec![school(1, "gym1")],
            ..KnownDirectory::default()
        };
        let people: Vec<DirPerson> = (0..30_000)
            .map(|n| pupil(1_000 + n, &format!("u{n}"), "gym1"))
            .collect();
        known.people = people
            .iter()
            .map(|p| known_as(p, PersonState::Active))
            .collect();
        let snap = snapshot(known.schools.clone(), people[..12_000].to_vec());

        let err = plan_sync(&known, &snap, &SyncPolicy::default()).unwrap_err();
        assert!(matches!(
            err,
            SyncAbort::TooManyMissing {
                missing: 18_000,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "read returned 12,000 of 30,000 known active people \
             (60 % missing, threshold 10 %): not applied"
        );
    }

    #[test]
    fn the_threshold_is_exclusive_and_counts_only_active_people() {
        let (mut known, mut snap) = baseline();
        // 1 of 10 active gym1+gs2 people missing is 10 %: allowed. A disabled
        // person leaving (the normal purge after a grace period) never counts.
        known.people[9].state = PersonState::Disabled;
        snap.people
            .retain(|p| p.external_id != id(108) && p.external_id != id(109));
        let plan = plan(&known, &snap);
        assert_eq!(plan.people_departed, vec![id(108), id(109)]);

        snap.people.retain(|p| p.external_id != id(107));
        let err = plan_sync(&known, &snap, &SyncPolicy::default()).unwrap_err();
        assert!(err.to_string().contains("20 % missing"), "{err}");
    }

    #[test]
    fn an_incomplete_snapshot_is_never_applied() {
        let (known, mut snap) = baseline();
        snap.complete = false;
        snap.problems = vec!["entry uid=x,… has no entryUUID".to_owned()];
        let err = plan_sync(&known, &snap, &SyncPolicy::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "directory read was incomplete (1 problem: entry uid=x,… has no entryUUID): not applied"
        );
    }

    #[test]
    fn a_school_that_comes_back_empty_stops_the_sync_unless_allowed() {
        let (known, mut snap) = baseline();
        snap.people.retain(|p| p.external_id != id(200));
        let err = plan_sync(&known, &snap, &SyncPolicy::default()).unwrap_err();
        assert_eq!(
            err,
            SyncAbort::SchoolsEmptied {
                schools: vec![EmptiedSchool {
                    code: "gs2".to_owned(),
                    known_people: 1
                }]
            }
        );
        assert!(err.to_string().contains("gs2 had 1"), "{err}");

        let policy = SyncPolicy {
            allow_emptied_schools: vec!["GS2".to_owned()],
            ..SyncPolicy::default()
        };
        let plan = plan_sync(&known, &snap, &policy).expect("closing gs2 was allowed");
        assert_eq!(plan.people_departed, vec![id(200)]);
    }

    #[test]
    fn renaming_a_schools_ou_does_not_look_like_it_emptied() {
        let (known, mut snap) = baseline();
        snap.schools[1].code = "gs2-neu".to_owned();
        snap.people[10].memberships = vec![role("gs2-neu", Role::Pupil)];
        let plan = plan(&known, &snap);
        assert_eq!(plan.schools_updated, vec![snap.schools[1].clone()]);
    }

    #[test]
    fn a_person_at_several_schools_gets_each_role() {
        let (known, mut snap) = baseline();
        let teacher = person(
            300,
            "l.lehmann",
            vec![
                role("gym1", Role::Teacher),
                role("gs2", Role::Teacher),
                role("gs2", Role::Staff),
            ],
        );
        snap.people.push(teacher.clone());
        let first = plan(&known, &snap);
        assert_eq!(first.people_added, vec![teacher.clone()]);
        assert_eq!(first.people_added[0].memberships.len(), 3);

        let mut known = known;
        known.people.push(known_as(&teacher, PersonState::Active));
        snap.people.last_mut().expect("teacher").memberships =
            vec![role("gym1", Role::Teacher), role("gs2", Role::Teacher)];
        let second = plan(&known, &snap);
        assert_eq!(
            second.people_changed[0].fields,
            vec![PersonField::SchoolRoles {
                added: vec![],
                removed: vec![role("gs2", Role::Staff)],
            }]
        );
    }

    #[test]
    fn exam_accounts_are_skipped_even_if_an_adapter_lets_one_through() {
        let (known, mut snap) = baseline();
        snap.people.push(person(
            400,
            "exam-p100",
            vec![
                role("gym1", Role::Pupil),
                role("Klassenarbeit-gym1", Role::ExamUser),
            ],
        ));
        let plan = plan(&known, &snap);
        assert!(plan.people_added.is_empty());
        assert_eq!(plan.skipped_exam_accounts, 1);
    }

    #[test]
    fn held_back_people_are_neither_changed_nor_departed() {
        let (known, mut snap) = baseline();
        snap.people.retain(|p| p.external_id != id(105));
        snap.held_back = vec![id(105)];
        snap.problems = vec!["uid=p105: two uid values".to_owned()];
        let plan = plan(&known, &snap);
        assert!(plan.people_departed.is_empty());
        assert_eq!(plan.held_back, vec![id(105)]);
        assert_eq!(plan.report().errors, 1);
    }

    #[test]
    fn a_duplicate_external_id_aborts() {
        let (known, mut snap) = baseline();
        let copy = snap.people[0].clone();
        snap.people.push(copy);
        let err = plan_sync(&known, &snap, &SyncPolicy::default()).unwrap_err();
        assert!(matches!(
            err,
            SyncAbort::DuplicateExternalId { what: "person", .. }
        ));
    }

    #[test]
    fn ucsschool_role_values_parse_leniently() {
        let parsed = UcsschoolRole::parse("student:school:gym1").expect("parse");
        assert_eq!(parsed.person_role(), Some(role("gym1", Role::Pupil)));
        assert_eq!(
            UcsschoolRole::parse("school_admin:school:GS2").and_then(|r| r.person_role()),
            Some(role("GS2", Role::SchoolAdmin))
        );
        let class = UcsschoolRole::parse("school_class::school:DEMOSCHOOL").expect("parse");
        assert_eq!(
            (class.role.as_str(), class.context.as_str()),
            ("school_class", "DEMOSCHOOL")
        );
        assert_eq!(class.person_role(), None);
        let escaped = UcsschoolRole::parse("myrole:mycontext:a&&&b").expect("parse");
        assert_eq!(escaped.context, "a:b");
        assert_eq!(
            UcsschoolRole::parse("exam_user:exam:Mathe-gym1").and_then(|r| r.person_role()),
            Some(role("Mathe-gym1", Role::ExamUser))
        );
        // A teacher role outside the school context is not a school membership.
        assert_eq!(
            UcsschoolRole::parse("teacher:exam:x").and_then(|r| r.person_role()),
            None
        );
        assert_eq!(UcsschoolRole::parse("student:school"), None);
    }

    #[test]
    fn assign_classes_derives_classes_from_class_groups_only() {
        let mut people = vec![pupil(100, "a", "gym1"), pupil(101, "b", "gym1")];
        let mut workgroup = class(60, "gym1", "musik", &[100]);
        workgroup.kind = GroupKind::Workgroup;
        let groups = vec![class(50, "gym1", "5a", &[100]), workgroup];
        assign_classes(&mut people, &groups);
        assert_eq!(people[0].classes, vec![class_ref("gym1", "5a")]);
        assert!(people[1].classes.is_empty());
    }

    fn changes() -> DirectoryChanges {
        DirectoryChanges {
            schools: Vec::new(),
            people: Vec::new(),
            classes: Vec::new(),
            workgroups: Vec::new(),
            deletions: Deletions::Unknown,
            complete: true,
            problems: Vec::new(),
            held_back: Vec::new(),
        }
    }

    #[test]
    fn merged_changes_plan_like_a_full_read() {
        let (mut known, _) = baseline();
        known.groups = vec![class(50, "gym1", "5a", &[100, 101])];
        for p in known.people.iter_mut().filter(|p| p.external_id <= id(101)) {
            p.classes = vec![class_ref("gym1", "5a")];
        }
        let mut moved = pupil(101, "p101", "gs2");
        moved.classes = Vec::new(); // incremental reads do not know classes
        let mut delta = changes();
        delta.people = vec![moved];
        delta.classes = vec![class(50, "gym1", "5a", &[100])];
        delta.deletions = Deletions::Listed([id(102)].into_iter().collect());

        let merged = known.with_changes(&delta);
        assert_eq!(merged.people.len(), 10);
        let plan = plan(&known, &merged);
        assert_eq!(plan.people_departed, vec![id(102)]);
        assert_eq!(plan.people_changed.len(), 1);
        assert_eq!(
            plan.people_changed[0].fields,
            vec![
                PersonField::SchoolRoles {
                    added: vec![role("gs2", Role::Pupil)],
                    removed: vec![role("gym1", Role::Pupil)],
                },
                PersonField::Classes {
                    added: vec![],
                    removed: vec![class_ref("gym1", "5a")],
                },
            ]
        );
        assert_eq!(plan.memberships[0].removed, vec![id(101)]);
    }

    #[test]
    fn a_present_set_deletes_everything_not_in_it() {
        let (known, _) = baseline();
        let mut delta = changes();
        let mut present: BTreeSet<Uuid> = known.people.iter().map(|p| p.external_id).collect();
        present.extend([id(1), id(2)]);
        present.remove(&id(106));
        delta.deletions = Deletions::AllExcept(present);
        let plan = plan(&known, &known.with_changes(&delta));
        assert_eq!(plan.people_departed, vec![id(106)]);
        assert!(plan.schools_missing.is_empty());
    }

    #[test]
    fn unknown_deletions_depart_nobody() {
        let (mut known, _) = baseline();
        known.people[0].state = PersonState::Disabled;
        let merged = known.with_changes(&changes());
        assert!(merged.people[0].disabled, "known state carries over");
        let plan = plan(&known, &merged);
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn thousands_separators_and_shares_format_for_humans() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(format_share(0.4), "40");
        assert_eq!(format_share(0.125), "12.5");
    }
}
