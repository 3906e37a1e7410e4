//! Profile assignment as desired state, and the plan that brings one device to it.
//!
//! An [`Assignment`] ties a profile (identifier and version) to an [`AssignmentScope`]. For one
//! device, [`expected_versions`] says which profiles it should carry; the caller renders each
//! of them for the device and so learns its [`ExpectedProfile::checksum`]. [`plan_device`] then
//! compares that expected set with what the device reports and with what Flotte's records say
//! it installed, and answers what to install, what to remove and what to leave alone. The
//! planner only plans: queueing the commands, and the queue hygiene of [`supersedes`], are the
//! caller's.
//!
//! # How a device reveals which version it has
//!
//! Apple's `ProfileList` answers each profile's `PayloadIdentifier` and top-level
//! `PayloadUUID`, nothing else that changes with the content. Flotte therefore derives the
//! top-level `PayloadUUID` of every rendered profile from the rendering's checksum
//! ([`profile_version_uuid`]), while the inner payloads keep UUIDs derived from their
//! identifiers. The profile still replaces its previous version on the device (replacement goes
//! by `PayloadIdentifier`, and the payloads inside keep identifier and UUID, which is what makes
//! the device update them in place), and the `ProfileList` entry tells which version is there:
//! [`ReportedVersion::PayloadUuid`]. Windows has no such list: the caller reads the profile's
//! nodes with `Get` and can say only whether they are there ([`ReportedProfile::version`] is
//! `None`), so the planner falls back to Flotte's record of what it installed.
//!
//! # Whose profiles may be removed
//!
//! A device carries profiles Flotte did not install: the MDM enrolment profile itself, profiles
//! a user installed, profiles of a previous MDM. Removing any of them would be at best an
//! error and at worst an unenrolment, so a profile is only ever removed when the device says
//! our MDM installed it *and* its identifier carries Flotte's prefix ([`ProfileOwnership`]) and
//! it is not explicitly protected (the enrolment profile's identifier belongs there).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CoreError;
use crate::command::CommandStatus;
use crate::device::{Platform, text_enum};

/// Whom an assignment reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum AssignmentScope {
    /// Every device.
    All,
    /// Devices of one school (by school id).
    School(String),
    /// Devices lent to pupils of one class, through their open loans (by class id). The
    /// caller resolves loans into [`DeviceFacts::class_ids`].
    Class(String),
    /// Every device of one platform.
    Platform(Platform),
    /// Members of one device group (by group id).
    DeviceGroup(String),
    /// One device (by device id).
    Device(String),
}

impl AssignmentScope {
    /// Whether the scope reaches the device.
    pub fn matches(&self, device: &DeviceFacts) -> bool {
        match self {
            Self::All => true,
            Self::School(id) => device.school_id.as_deref() == Some(id),
            Self::Class(id) => device.class_ids.contains(id),
            Self::Platform(platform) => device.platform == *platform,
            Self::DeviceGroup(id) => device.group_ids.contains(id),
            Self::Device(id) => device.device_id == *id,
        }
    }

    /// How narrowly the scope aims: when two assignments of the same profile reach a device
    /// with different versions, the narrower one wins, so that an exception for one school,
    /// class, group or device overrides a general rollout (and not the other way round).
    pub fn specificity(&self) -> u8 {
        match self {
            Self::All => 0,
            Self::Platform(_) => 1,
            Self::School(_) => 2,
            Self::Class(_) => 3,
            Self::DeviceGroup(_) => 4,
            Self::Device(_) => 5,
        }
    }
}

/// One profile version assigned to one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// The profile's identifier (its `PayloadIdentifier` on Apple devices).
    pub profile_identifier: String,
    /// The template version to render.
    pub profile_version: u32,
    /// Whom it reaches.
    pub scope: AssignmentScope,
    /// The platforms the template renders for. An `All` assignment of an Apple-only template
    /// must not reach a laptop, so the template's platforms travel with the assignment; an
    /// empty list reaches no device.
    pub platforms: Vec<Platform>,
}

/// What the planner needs to know about a device to decide which assignments reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// The device's id.
    pub device_id: String,
    /// Its platform.
    pub platform: Platform,
    /// The school it belongs to, if any.
    pub school_id: Option<String>,
    /// The classes of the pupils it is currently lent to (through open loans).
    pub class_ids: BTreeSet<String>,
    /// The device groups it is a member of.
    pub group_ids: BTreeSet<String>,
}

/// The profile versions a device should carry: identifier → template version.
///
/// When several assignments of the same profile reach the device, the one with the narrowest
/// scope ([`AssignmentScope::specificity`]) wins; between equally narrow scopes the higher
/// version wins, so the answer never depends on the order of `assignments`.
pub fn expected_versions(
    device: &DeviceFacts,
    assignments: &[Assignment],
) -> BTreeMap<String, u32> {
    let mut chosen: BTreeMap<&str, (u8, u32)> = BTreeMap::new();
    for assignment in assignments {
        if !assignment.platforms.contains(&device.platform) || !assignment.scope.matches(device) {
            continue;
        }
        let rank = (assignment.scope.specificity(), assignment.profile_version);
        chosen
            .entry(assignment.profile_identifier.as_str())
            .and_modify(|best| *best = (*best).max(rank))
            .or_insert(rank);
    }
    chosen
        .into_iter()
        .map(|(identifier, (_, version))| (identifier.to_owned(), version))
        .collect()
}

/// The identifiers of the profiles a device should carry (see [`expected_versions`] for the
/// versions).
pub fn expected_profiles(device: &DeviceFacts, assignments: &[Assignment]) -> BTreeSet<String> {
    expected_versions(device, assignments).into_keys().collect()
}

/// A profile the device should carry, as rendered for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedProfile {
    /// The profile's identifier.
    pub identifier: String,
    /// The checksum of the rendering for this device (SHA-256, lower-case hex), as
    /// `flotte-profiles` computes it.
    pub checksum: String,
}

/// Which version of a profile a device says it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ReportedVersion {
    /// The checksum itself, for a report that carries it verbatim.
    Checksum(String),
    /// The top-level `PayloadUUID` from Apple's `ProfileList`; Flotte derives it from the
    /// checksum ([`profile_version_uuid`]).
    PayloadUuid(Uuid),
}

impl ReportedVersion {
    /// Whether the device has exactly the rendering with this checksum.
    pub fn matches(&self, checksum: &str) -> bool {
        match self {
            Self::Checksum(reported) => reported.eq_ignore_ascii_case(checksum),
            Self::PayloadUuid(uuid) => *uuid == profile_version_uuid(checksum),
        }
    }
}

/// A profile the device reports as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedProfile {
    /// The profile's identifier.
    pub identifier: String,
    /// Which version it is, when the report tells (Apple); `None` when the device can only
    /// say that the profile is there (Windows).
    pub version: Option<ReportedVersion>,
    /// Whether the device says our MDM installed it (Apple: the entry is in the `ProfileList`
    /// answer to `ManagedOnly: true`; Windows: the nodes are ones Flotte writes).
    pub managed_by_us: bool,
}

/// The fixed namespace of [`profile_version_uuid`]. Changing it would make every installed
/// Apple profile look outdated, so it never changes.
pub const PROFILE_VERSION_NAMESPACE: Uuid =
    Uuid::from_u128(0x5d3c_9e0a_7b1f_4c2e_9a64_0f8d_2b71_c3e5);

/// The top-level `PayloadUUID` of a profile rendering with this checksum: UUID v5 of the
/// lower-case checksum in [`PROFILE_VERSION_NAMESPACE`].
///
/// The checksum already covers the profile's identifier, so two different profiles never
/// share the UUID, and a rendering that changes in any way the device would notice gets a
/// new one.
pub fn profile_version_uuid(checksum: &str) -> Uuid {
    Uuid::new_v5(
        &PROFILE_VERSION_NAMESPACE,
        checksum.to_ascii_lowercase().as_bytes(),
    )
}

/// Which installed profiles are Flotte's to remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileOwnership {
    prefix: String,
    protected: BTreeSet<String>,
}

impl ProfileOwnership {
    /// The default identifier prefix of Flotte's profiles.
    pub const DEFAULT_PREFIX: &'static str = "de.flotte.";

    /// Profiles whose identifier starts with `prefix` are Flotte's. The prefix must end in
    /// `.`, so that `de.flotte.` does not also claim `de.flottenverband.wifi`.
    pub fn new(prefix: impl Into<String>) -> Result<Self, CoreError> {
        let prefix = prefix.into();
        if prefix.len() < 2 || !prefix.ends_with('.') || prefix.starts_with('.') {
            return Err(CoreError::Invalid(format!(
                "profile identifier prefix {prefix:?} must be non-empty and end with '.'"
            )));
        }
        Ok(Self {
            prefix,
            protected: BTreeSet::new(),
        })
    }

    /// Never removes the profile with this identifier, even though it carries the prefix
    /// (the MDM enrolment profile, for example).
    #[must_use]
    pub fn protect(mut self, identifier: impl Into<String>) -> Self {
        self.protected.insert(identifier.into());
        self
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether a profile with this identifier is Flotte's to remove. Use it also when a
    /// template is saved: a profile outside the prefix could be installed but never removed.
    pub fn owns(&self, identifier: &str) -> bool {
        identifier.len() > self.prefix.len()
            && identifier.starts_with(&self.prefix)
            && !self.protected.contains(identifier)
    }
}

impl Default for ProfileOwnership {
    fn default() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            protected: BTreeSet::new(),
        }
    }
}

/// What to do on one device. Every list is sorted by identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePlan {
    /// Expected profiles that are missing or in another version: send the new rendering.
    pub install: Vec<String>,
    /// Flotte's profiles that are no longer assigned: remove them.
    pub remove: Vec<String>,
    /// Expected profiles the device already has in the expected version.
    pub unchanged: Vec<String>,
    /// Expected profiles the device holds under the same identifier but not from us: a
    /// profile someone else installed is never replaced or removed by Flotte, so these need
    /// an operator.
    pub blocked: Vec<String>,
    /// Records of profiles Flotte installed that the device no longer has and that are not
    /// expected: nothing to send, the caller can drop the records.
    pub forget: Vec<String>,
}

impl DevicePlan {
    /// Whether the device needs no command.
    pub fn is_settled(&self) -> bool {
        self.install.is_empty() && self.remove.is_empty()
    }
}

/// Plans one device.
///
/// * `expected`: the rendered expected profiles ([`expected_versions`], then rendering).
/// * `reported`: the device's latest complete report (Apple `ProfileList`, Windows `Get` of
///   each profile's nodes). A profile missing from it is taken as absent, so plan only with a
///   report that is complete and newer than the last acknowledged install or removal.
/// * `installed_by_us`: Flotte's records of the renderings the device acknowledged; they
///   supply the version when the report cannot ([`ReportedProfile::version`] `None`).
///
/// Rules, per identifier:
/// * expected, not reported → install;
/// * expected, reported but not managed by us → blocked (never replace someone else's
///   profile);
/// * expected, reported with a version → unchanged if it matches the checksum, else install;
/// * expected, reported without a version → unchanged if the record has the same checksum,
///   else install;
/// * reported, not expected → remove, if managed by us and [`ProfileOwnership::owns`] it;
///   otherwise left alone;
/// * recorded, neither expected nor reported → forget.
///
/// Duplicate identifiers within one input are a caller error; the last entry wins.
pub fn plan_device(
    expected: &[ExpectedProfile],
    reported: &[ReportedProfile],
    installed_by_us: &[ExpectedProfile],
    ownership: &ProfileOwnership,
) -> DevicePlan {
    let expected: BTreeMap<&str, &str> = expected
        .iter()
        .map(|profile| (profile.identifier.as_str(), profile.checksum.as_str()))
        .collect();
    let reported: BTreeMap<&str, &ReportedProfile> = reported
        .iter()
        .map(|profile| (profile.identifier.as_str(), profile))
        .collect();
    let records: BTreeMap<&str, &str> = installed_by_us
        .iter()
        .map(|profile| (profile.identifier.as_str(), profile.checksum.as_str()))
        .collect();

    let mut plan = DevicePlan::default();
    for (&identifier, &checksum) in &expected {
        let target = match reported.get(identifier) {
            None => &mut plan.install,
            Some(device) if !device.managed_by_us => &mut plan.blocked,
            Some(device) => {
                let current = match &device.version {
                    Some(version) => version.matches(checksum),
                    None => records
                        .get(identifier)
                        .is_some_and(|recorded| recorded.eq_ignore_ascii_case(checksum)),
                };
                if current {
                    &mut plan.unchanged
                } else {
                    &mut plan.install
                }
            }
        };
        target.push(identifier.to_owned());
    }
    for (&identifier, device) in &reported {
        if !expected.contains_key(identifier) && device.managed_by_us && ownership.owns(identifier)
        {
            plan.remove.push(identifier.to_owned());
        }
    }
    for &identifier in records.keys() {
        if !expected.contains_key(identifier) && !reported.contains_key(identifier) {
            plan.forget.push(identifier.to_owned());
        }
    }
    plan
}

/// A queued install or removal of a profile, for queue hygiene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ProfileCommand {
    /// Installs (or replaces) the rendering with this checksum.
    Install {
        /// The profile's identifier.
        identifier: String,
        /// The checksum of the rendering it carries.
        checksum: String,
    },
    /// Removes the profile; `checksum` names the rendering it was computed from (Windows
    /// removals delete that rendering's nodes, which differ between versions).
    Remove {
        /// The profile's identifier.
        identifier: String,
        /// The checksum of the rendering being removed.
        checksum: String,
    },
}

impl ProfileCommand {
    /// The profile's identifier.
    pub fn identifier(&self) -> &str {
        match self {
            Self::Install { identifier, .. } | Self::Remove { identifier, .. } => identifier,
        }
    }
}

/// Whether queueing `new` makes the earlier, still pending `old` pointless, so the caller can
/// cancel `old` instead of sending both.
///
/// * Only a command the device has not been handed can be withdrawn: `Queued`, or `NotNow`
///   (refused for now, waiting to be offered again). A `Sent` command is on the device.
/// * An install is superseded by a newer install or a removal of the same profile: the
///   device would only end up where the newer command takes it anyway.
/// * A removal is superseded only by the identical removal. An install never supersedes a
///   removal: on Windows an update is "remove the old nodes, then add the new ones", and
///   dropping the removal would leave the old version's nodes behind (a renamed SSID, an old
///   certificate).
pub fn supersedes(old: &ProfileCommand, old_status: CommandStatus, new: &ProfileCommand) -> bool {
    if !matches!(old_status, CommandStatus::Queued | CommandStatus::NotNow)
        || old.identifier() != new.identifier()
    {
        return false;
    }
    match (old, new) {
        (ProfileCommand::Install { .. }, _) => true,
        (ProfileCommand::Remove { .. }, ProfileCommand::Remove { .. }) => old == new,
        (ProfileCommand::Remove { .. }, ProfileCommand::Install { .. }) => false,
    }
}

impl AssignmentScope {
    /// The scope's kind as stored (`all`, `school`, `class`, `platform`, `device_group`,
    /// `device`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::School(_) => "school",
            Self::Class(_) => "class",
            Self::Platform(_) => "platform",
            Self::DeviceGroup(_) => "device_group",
            Self::Device(_) => "device",
        }
    }

    /// The scope's id as stored; empty for `all`.
    pub fn id(&self) -> &str {
        match self {
            Self::All => "",
            Self::School(id) | Self::Class(id) | Self::DeviceGroup(id) | Self::Device(id) => id,
            Self::Platform(platform) => platform.as_str(),
        }
    }

    /// The scope from its stored kind and id.
    pub fn from_parts(kind: &str, id: &str) -> Result<Self, CoreError> {
        let id = id.to_owned();
        Ok(match kind {
            "all" => Self::All,
            "school" => Self::School(id),
            "class" => Self::Class(id),
            "platform" => Self::Platform(id.parse()?),
            "device_group" => Self::DeviceGroup(id),
            "device" => Self::Device(id),
            other => {
                return Err(CoreError::Invalid(format!(
                    "unknown assignment scope {other:?}"
                )));
            }
        })
    }

    /// Whether only technicians may aim at this scope: it reaches devices of every school.
    pub fn is_fleet_wide(&self) -> bool {
        matches!(self, Self::All | Self::Platform(_))
    }
}

/// What a bulk push does to the devices of its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushAction {
    /// Assign the profile version to the scope and install it where it is missing or
    /// outdated.
    Install,
    /// Withdraw the profile's assignment to the scope and remove it from devices no other
    /// assignment still reaches.
    Remove,
    /// Change no assignment: bring every device of the scope to its desired state (all
    /// profiles), and ask Apple devices for a fresh `ProfileList`.
    Sync,
}

text_enum!(PushAction {
    Install => "install",
    Remove => "remove",
    Sync => "sync",
});

/// Where a bulk push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushStatus {
    /// Accepted; no batch has run yet.
    Queued,
    /// Batches are running or devices are still answering.
    Running,
    /// Stopped by a technician: no further batch is planned until it is resumed.
    Paused,
    /// Every device answered, or the push expired.
    Completed,
    /// Cancelled: pending devices were skipped and unsent commands withdrawn.
    Cancelled,
}

text_enum!(PushStatus {
    Queued => "queued",
    Running => "running",
    Paused => "paused",
    Completed => "completed",
    Cancelled => "cancelled",
});

impl PushStatus {
    /// Completed or cancelled: nothing about the push changes any more.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

/// Where one device of a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Not planned yet.
    Pending,
    /// A command waits in the device's queue.
    Queued,
    /// The device fetched the command.
    Sent,
    /// The device answered NotNow and will be offered the command again.
    NotNow,
    /// The device carried out the command.
    Acknowledged,
    /// The device refused the command, or it could not be rendered for this device.
    Failed,
    /// The device already has what the push asks for: nothing was sent.
    Unchanged,
    /// A later push or reconciliation replaced the command before the device fetched it.
    Superseded,
    /// The push was cancelled before the device got the command.
    Cancelled,
    /// The push expired before the device answered.
    Expired,
}

text_enum!(TargetStatus {
    Pending => "pending",
    Queued => "queued",
    Sent => "sent",
    NotNow => "not_now",
    Acknowledged => "acknowledged",
    Failed => "failed",
    Unchanged => "unchanged",
    Superseded => "superseded",
    Cancelled => "cancelled",
    Expired => "expired",
});

impl TargetStatus {
    /// Every status, in the order progress reports list them.
    pub const ALL: [Self; 10] = [
        Self::Pending,
        Self::Queued,
        Self::Sent,
        Self::NotNow,
        Self::Acknowledged,
        Self::Failed,
        Self::Unchanged,
        Self::Superseded,
        Self::Cancelled,
        Self::Expired,
    ];

    /// Whether the device's part of the push is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Self::Pending | Self::Queued | Self::Sent | Self::NotNow
        )
    }

    /// The target's status while its command is in `status`.
    pub fn of_command(status: CommandStatus) -> Self {
        match status {
            CommandStatus::Queued => Self::Queued,
            CommandStatus::Sent => Self::Sent,
            CommandStatus::NotNow => Self::NotNow,
            CommandStatus::Acknowledged => Self::Acknowledged,
            CommandStatus::Error | CommandStatus::FormatError => Self::Failed,
            CommandStatus::Cancelled => Self::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipad() -> DeviceFacts {
        DeviceFacts {
            device_id: "dev-1".to_owned(),
            platform: Platform::Apple,
            school_id: Some("gym1".to_owned()),
            class_ids: BTreeSet::from(["gym1-5a".to_owned()]),
            group_ids: BTreeSet::from(["cart-3".to_owned()]),
        }
    }

    fn assign(identifier: &str, version: u32, scope: AssignmentScope) -> Assignment {
        Assignment {
            profile_identifier: identifier.to_owned(),
            profile_version: version,
            scope,
            platforms: vec![Platform::Apple, Platform::Windows],
        }
    }

    fn expected(identifier: &str, checksum: &str) -> ExpectedProfile {
        ExpectedProfile {
            identifier: identifier.to_owned(),
            checksum: checksum.to_owned(),
        }
    }

    fn reported(identifier: &str, version: Option<ReportedVersion>, ours: bool) -> ReportedProfile {
        ReportedProfile {
            identifier: identifier.to_owned(),
            version,
            managed_by_us: ours,
        }
    }

    fn apple_version(checksum: &str) -> Option<ReportedVersion> {
        Some(ReportedVersion::PayloadUuid(profile_version_uuid(checksum)))
    }

    #[test]
    fn each_scope_reaches_exactly_its_devices() {
        let device = ipad();
        let reaching = [
            AssignmentScope::All,
            AssignmentScope::School("gym1".to_owned()),
            AssignmentScope::Class("gym1-5a".to_owned()),
            AssignmentScope::Platform(Platform::Apple),
            AssignmentScope::DeviceGroup("cart-3".to_owned()),
            AssignmentScope::Device("dev-1".to_owned()),
        ];
        let missing = [
            AssignmentScope::School("gs2".to_owned()),
            AssignmentScope::Class("gym1-5b".to_owned()),
            AssignmentScope::Platform(Platform::Windows),
            AssignmentScope::DeviceGroup("cart-4".to_owned()),
            AssignmentScope::Device("dev-2".to_owned()),
        ];
        for scope in reaching {
            assert!(scope.matches(&device), "{scope:?} should reach the iPad");
        }
        for scope in missing {
            assert!(
                !scope.matches(&device),
                "{scope:?} should not reach the iPad"
            );
        }
        let schoolless = DeviceFacts {
            school_id: None,
            ..ipad()
        };
        assert!(!AssignmentScope::School("gym1".to_owned()).matches(&schoolless));
    }

    #[test]
    fn expected_profiles_collects_matching_assignments_only() {
        let assignments = [
            assign("de.flotte.wifi", 3, AssignmentScope::All),
            assign(
                "de.flotte.lock",
                1,
                AssignmentScope::School("gs2".to_owned()),
            ),
            assign(
                "de.flotte.clip",
                2,
                AssignmentScope::Class("gym1-5a".to_owned()),
            ),
        ];
        assert_eq!(
            expected_profiles(&ipad(), &assignments),
            BTreeSet::from(["de.flotte.clip".to_owned(), "de.flotte.wifi".to_owned()])
        );
    }

    #[test]
    fn an_assignment_skips_devices_of_platforms_the_template_does_not_render_for() {
        let mut apple_only = assign("de.flotte.clip", 1, AssignmentScope::All);
        apple_only.platforms = vec![Platform::Apple];
        let laptop = DeviceFacts {
            platform: Platform::Windows,
            ..ipad()
        };
        assert!(expected_profiles(&laptop, std::slice::from_ref(&apple_only)).is_empty());
        assert_eq!(expected_profiles(&ipad(), &[apple_only]).len(), 1);
    }

    #[test]
    fn the_narrowest_scope_wins_regardless_of_order() {
        let general = assign("de.flotte.wifi", 5, AssignmentScope::All);
        let pinned = assign(
            "de.flotte.wifi",
            2,
            AssignmentScope::School("gym1".to_owned()),
        );
        let device_exception = assign(
            "de.flotte.wifi",
            4,
            AssignmentScope::Device("dev-1".to_owned()),
        );
        let forward = [general.clone(), pinned.clone()];
        let backward = [pinned.clone(), general.clone()];
        for assignments in [&forward[..], &backward[..]] {
            assert_eq!(
                expected_versions(&ipad(), assignments),
                BTreeMap::from([("de.flotte.wifi".to_owned(), 2)])
            );
        }
        assert_eq!(
            expected_versions(&ipad(), &[general, pinned, device_exception])["de.flotte.wifi"],
            4
        );
    }

    #[test]
    fn equally_narrow_scopes_take_the_higher_version() {
        let assignments = [
            assign(
                "de.flotte.wifi",
                7,
                AssignmentScope::Class("gym1-5a".to_owned()),
            ),
            assign(
                "de.flotte.wifi",
                9,
                AssignmentScope::Class("gym1-5a".to_owned()),
            ),
        ];
        assert_eq!(
            expected_versions(&ipad(), &assignments)["de.flotte.wifi"],
            9
        );
    }

    #[test]
    fn missing_profiles_are_installed_and_matching_ones_left_alone() {
        let plan = plan_device(
            &[
                expected("de.flotte.a", "aa11"),
                expected("de.flotte.b", "bb22"),
            ],
            &[reported("de.flotte.a", apple_version("aa11"), true)],
            &[],
            &ProfileOwnership::default(),
        );
        assert_eq!(plan.install, ["de.flotte.b"]);
        assert_eq!(plan.unchanged, ["de.flotte.a"]);
        assert!(plan.remove.is_empty());
        assert!(!plan.is_settled());
    }

    #[test]
    fn a_different_version_on_the_device_is_reinstalled() {
        let plan = plan_device(
            &[expected("de.flotte.a", "new")],
            &[reported("de.flotte.a", apple_version("old"), true)],
            // A stale record claiming the new version must not override what the device says.
            &[expected("de.flotte.a", "new")],
            &ProfileOwnership::default(),
        );
        assert_eq!(plan.install, ["de.flotte.a"]);
        assert!(plan.unchanged.is_empty());
    }

    #[test]
    fn a_verbatim_checksum_matches_regardless_of_case() {
        let plan = plan_device(
            &[expected("de.flotte.a", "ABCDEF")],
            &[reported(
                "de.flotte.a",
                Some(ReportedVersion::Checksum("abcdef".to_owned())),
                true,
            )],
            &[],
            &ProfileOwnership::default(),
        );
        assert_eq!(plan.unchanged, ["de.flotte.a"]);
    }

    #[test]
    fn without_a_reported_version_the_record_decides() {
        let ownership = ProfileOwnership::default();
        let device = [reported("de.flotte.a", None, true)];
        let current = plan_device(
            &[expected("de.flotte.a", "v2")],
            &device,
            &[expected("de.flotte.a", "v2")],
            &ownership,
        );
        assert_eq!(current.unchanged, ["de.flotte.a"]);
        let outdated = plan_device(
            &[expected("de.flotte.a", "v2")],
            &device,
            &[expected("de.flotte.a", "v1")],
            &ownership,
        );
        assert_eq!(outdated.install, ["de.flotte.a"]);
        let unrecorded = plan_device(&[expected("de.flotte.a", "v2")], &device, &[], &ownership);
        assert_eq!(unrecorded.install, ["de.flotte.a"]);
    }

    #[test]
    fn only_our_prefixed_managed_profiles_are_removed() {
        let ownership = ProfileOwnership::new("de.flotte.")
            .unwrap()
            .protect("de.flotte.enrollment");
        let plan = plan_device(
            &[],
            &[
                reported("de.flotte.wifi.old", apple_version("x"), true),
                reported("de.flotte.enrollment", apple_version("y"), true),
                reported("com.vendor.vpn", None, true),
                reported("de.flotte.user-copy", None, false),
                reported("de.flottenverband.wifi", None, true),
            ],
            &[],
            &ownership,
        );
        assert_eq!(plan.remove, ["de.flotte.wifi.old"]);
        assert!(plan.install.is_empty() && plan.blocked.is_empty());
    }

    #[test]
    fn an_expected_identifier_held_by_someone_else_is_blocked_not_replaced() {
        let plan = plan_device(
            &[expected("de.flotte.wifi", "v1")],
            &[reported("de.flotte.wifi", None, false)],
            &[],
            &ProfileOwnership::default(),
        );
        assert_eq!(plan.blocked, ["de.flotte.wifi"]);
        assert!(plan.install.is_empty() && plan.remove.is_empty());
    }

    #[test]
    fn records_of_profiles_gone_from_the_device_are_forgotten() {
        let plan = plan_device(
            &[expected("de.flotte.kept", "k")],
            &[],
            &[
                expected("de.flotte.kept", "k"),
                expected("de.flotte.gone", "g"),
            ],
            &ProfileOwnership::default(),
        );
        assert_eq!(plan.forget, ["de.flotte.gone"]);
        // Recorded but missing from the device while still expected: installed again.
        assert_eq!(plan.install, ["de.flotte.kept"]);
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn ownership_prefix_must_end_with_a_dot() {
        assert!(ProfileOwnership::new("de.flotte").is_err());
        assert!(ProfileOwnership::new("").is_err());
        assert!(ProfileOwnership::new(".").is_err());
        let ownership = ProfileOwnership::new("de.schule.").unwrap();
        assert!(ownership.owns("de.schule.wifi"));
        assert!(!ownership.owns("de.schule."));
        assert!(!ownership.owns("de.schulen.wifi"));
        assert_eq!(ProfileOwnership::default().prefix(), "de.flotte.");
    }

    #[test]
    fn version_uuid_is_stable_and_tracks_the_checksum() {
        let a = profile_version_uuid("AB12");
        assert_eq!(a, profile_version_uuid("ab12"));
        assert_ne!(a, profile_version_uuid("ab13"));
        assert_eq!(a.get_version_num(), 5);
        assert!(ReportedVersion::PayloadUuid(a).matches("ab12"));
        assert!(!ReportedVersion::PayloadUuid(a).matches("ab13"));
    }

    fn install(identifier: &str, checksum: &str) -> ProfileCommand {
        ProfileCommand::Install {
            identifier: identifier.to_owned(),
            checksum: checksum.to_owned(),
        }
    }

    fn remove(identifier: &str, checksum: &str) -> ProfileCommand {
        ProfileCommand::Remove {
            identifier: identifier.to_owned(),
            checksum: checksum.to_owned(),
        }
    }

    #[test]
    fn a_pending_install_is_superseded_by_a_newer_install_or_removal() {
        let old = install("de.flotte.wifi", "v1");
        for status in [CommandStatus::Queued, CommandStatus::NotNow] {
            assert!(supersedes(&old, status, &install("de.flotte.wifi", "v2")));
            assert!(supersedes(&old, status, &remove("de.flotte.wifi", "v0")));
        }
    }

    #[test]
    fn a_command_already_sent_or_finished_is_never_superseded() {
        let old = install("de.flotte.wifi", "v1");
        let new = install("de.flotte.wifi", "v2");
        for status in [
            CommandStatus::Sent,
            CommandStatus::Acknowledged,
            CommandStatus::Error,
            CommandStatus::FormatError,
            CommandStatus::Cancelled,
        ] {
            assert!(!supersedes(&old, status, &new), "{status:?}");
        }
    }

    #[test]
    fn commands_for_other_profiles_never_supersede() {
        assert!(!supersedes(
            &install("de.flotte.wifi", "v1"),
            CommandStatus::Queued,
            &install("de.flotte.mail", "v1"),
        ));
    }

    #[test]
    fn a_removal_survives_a_later_install_and_only_an_identical_removal_replaces_it() {
        let old = remove("de.flotte.wifi", "v1");
        assert!(!supersedes(
            &old,
            CommandStatus::Queued,
            &install("de.flotte.wifi", "v2")
        ));
        assert!(supersedes(
            &old,
            CommandStatus::Queued,
            &remove("de.flotte.wifi", "v1")
        ));
        assert!(!supersedes(
            &old,
            CommandStatus::Queued,
            &remove("de.flotte.wifi", "v2")
        ));
    }

    #[test]
    fn scopes_serialise_with_kind_and_id() {
        let scope = AssignmentScope::Platform(Platform::Windows);
        let json = serde_json::to_value(&scope).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "platform", "id": "windows"})
        );
        let all: AssignmentScope =
            serde_json::from_value(serde_json::json!({"kind": "all"})).unwrap();
        assert_eq!(all, AssignmentScope::All);
    }
    #[test]
    fn scopes_round_trip_through_their_stored_parts() {
        for scope in [
            AssignmentScope::All,
            AssignmentScope::School("s1".to_owned()),
            AssignmentScope::Class("c1".to_owned()),
            AssignmentScope::Platform(Platform::Windows),
            AssignmentScope::DeviceGroup("g1".to_owned()),
            AssignmentScope::Device("d1".to_owned()),
        ] {
            let back = AssignmentScope::from_parts(scope.kind(), scope.id()).unwrap();
            assert_eq!(back, scope);
        }
        assert!(AssignmentScope::from_parts("planet", "x").is_err());
        assert!(AssignmentScope::from_parts("platform", "android").is_err());
        assert!(AssignmentScope::All.is_fleet_wide());
        assert!(!AssignmentScope::School("s1".to_owned()).is_fleet_wide());
    }

    #[test]
    fn target_status_follows_the_command_and_knows_when_it_is_over() {
        assert_eq!(
            TargetStatus::of_command(CommandStatus::FormatError),
            TargetStatus::Failed
        );
        assert_eq!(
            TargetStatus::of_command(CommandStatus::NotNow),
            TargetStatus::NotNow
        );
        let open: Vec<_> = TargetStatus::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .collect();
        assert_eq!(
            open,
            [
                TargetStatus::Pending,
                TargetStatus::Queued,
                TargetStatus::Sent,
                TargetStatus::NotNow
            ]
        );
        assert_eq!(
            "not_now".parse::<TargetStatus>().unwrap(),
            TargetStatus::NotNow
        );
        assert!(PushStatus::Cancelled.is_finished() && !PushStatus::Paused.is_finished());
    }
}
