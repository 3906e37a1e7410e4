//! Bringing devices to their desired profile state: for each device, which profiles the
//! assignments expect (`flotte_core::assignment::expected_versions`), their rendering for
//! this device (with the person's or the device's certificate where the template embeds
//! one), the comparison with what the device reported and what Flotte recorded
//! (`plan_device`), and the commands that close the gap. Used by the push fan-out and by
//! reconciliations of single devices.

use super::certificates::{IdentityError, current_identity, packed};
use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::assignment::{
    Assignment, DeviceFacts, ExpectedProfile, ProfileOwnership, ReportedProfile, ReportedVersion,
    expected_versions, plan_device,
};
use flotte_core::device::Platform;
use flotte_core::jobs::ReconcileDevice;
use flotte_profiles::apple::{Command as AppleCommand, ProfileNamespace};
use flotte_profiles::template::{
    DeviceVars, IdentityKind, PersonVars, ProfileTemplate, RenderContext, RenderedOutput,
    SchoolVars, Variable,
};
use flotte_profiles::windows::{CommandBody, SyncMlCommand};
use flotte_storage::{
    ChangeKind, DeviceChanges, DeviceProfileFacts, NewCommand, ProfileChange, ProfileStateRecord,
    Seen,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The identifier of the MDM enrolment profile: carries Flotte's prefix, but removing it
/// would unenrol the device.
const ENROLLMENT_IDENTIFIER: &str = "de.flotte.mdm.enrollment";

/// Which profiles a plan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Focus {
    /// One profile (an install or removal push).
    One(String),
    /// Every profile (a sync push, a reconciliation).
    All,
}

/// A rendering, as queued: the same for every device whose variables and identities are
/// the same, so it is rendered and signed once per batch.
struct Prepared {
    checksum: String,
    commands: Vec<NewCommand>,
    /// Windows: the commands that undo this version (JSON).
    removal: Option<String>,
}

/// Why a rendering failed: the device cannot have the profile (a value or certificate it
/// lacks), or the infrastructure failed (retry).
enum RenderFailure {
    Device(String),
    Retry(CoreError),
}

impl From<IdentityError> for RenderFailure {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotIssuable(reason) => Self::Device(reason),
            IdentityError::Storage(e) => Self::Retry(e),
        }
    }
}

/// Plans devices against the assignments, caching templates and renderings.
pub(crate) struct Planner<'a> {
    deps: &'a WorkerDeps,
    assignments: Vec<Assignment>,
    templates: BTreeMap<(String, i32), Option<Arc<ProfileTemplate>>>,
    rendered: HashMap<String, Arc<Prepared>>,
    ownership: ProfileOwnership,
    namespace: ProfileNamespace,
    root_der: Vec<u8>,
    /// Renderings built (not taken from the cache) and signatures made, for the logs and the
    /// benchmark.
    pub(crate) renders: u64,
}

impl<'a> Planner<'a> {
    pub(crate) async fn new(deps: &'a WorkerDeps) -> Result<Self, CoreError> {
        let ownership = ProfileOwnership::new(deps.settings.profiles.identifier_prefix.clone())?
            .protect(ENROLLMENT_IDENTIFIER);
        Ok(Self {
            assignments: deps.store.desired_state().await?,
            templates: BTreeMap::new(),
            rendered: HashMap::new(),
            ownership,
            namespace: ProfileNamespace::from_dns_name(&deps.settings.public_url()),
            root_der: deps.profiles.ca.root_der(),
            renders: 0,
            deps,
        })
    }

    async fn template(
        &mut self,
        identifier: &str,
        version: i32,
    ) -> Result<Option<Arc<ProfileTemplate>>, CoreError> {
        let key = (identifier.to_owned(), version);
        if let Some(found) = self.templates.get(&key) {
            return Ok(found.clone());
        }
        let loaded = self
            .deps
            .store
            .profile_templates(&BTreeSet::from([key.clone()]))
            .await?
            .remove(&key)
            .map(|json| {
                serde_json::from_value::<ProfileTemplate>(json).map_err(|e| {
                    CoreError::Invalid(format!(
                        "stored template {identifier} v{version} is unreadable: {e}"
                    ))
                })
            })
            .transpose()?
            .map(Arc::new);
        self.templates.insert(key, loaded.clone());
        Ok(loaded)
    }

    /// Plans one device. Errors are infrastructure failures (the job retries); anything
    /// about the device itself becomes a failed change.
    pub(crate) async fn plan(
        &mut self,
        facts: &DeviceProfileFacts,
        focus: &Focus,
        ask_profile_list: bool,
        now: DateTime<Utc>,
    ) -> Result<DeviceChanges, CoreError> {
        let device = &facts.device;
        let core_facts = DeviceFacts {
            device_id: device.id.clone(),
            platform: device.platform,
            school_id: device.school_id.clone(),
            class_ids: facts.class_ids.clone(),
            group_ids: facts.group_ids.clone(),
        };
        let in_focus = |identifier: &str| match focus {
            Focus::One(one) => one == identifier,
            Focus::All => true,
        };
        let mut expected = Vec::new();
        let mut prepared: BTreeMap<String, (i32, Arc<Prepared>)> = BTreeMap::new();
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        for (identifier, version) in expected_versions(&core_facts, &self.assignments) {
            if !in_focus(&identifier) {
                continue;
            }
            let version = i32::try_from(version).unwrap_or(i32::MAX);
            let Some(template) = self.template(&identifier, version).await? else {
                continue;
            };
            // A personalised profile has nothing to say on a device nobody borrowed: it is
            // not expected there (and is removed when the loan ends).
            if template.needs_person() && !facts.person.as_ref().is_some_and(|p| p.is_active()) {
                continue;
            }
            match self.render(&template, version, facts, now).await {
                Ok(rendering) => {
                    expected.push(ExpectedProfile {
                        identifier: identifier.clone(),
                        checksum: rendering.checksum.clone(),
                    });
                    prepared.insert(identifier, (version, rendering));
                }
                Err(RenderFailure::Device(reason)) => {
                    failed.insert(identifier, reason);
                }
                Err(RenderFailure::Retry(e)) => return Err(e),
            }
        }

        let states: BTreeMap<&str, &ProfileStateRecord> = facts
            .states
            .iter()
            .map(|s| (s.identifier.as_str(), s))
            .collect();
        let records: Vec<ExpectedProfile> = facts
            .states
            .iter()
            .filter(|s| in_focus(&s.identifier))
            .filter_map(|s| {
                s.installed_checksum
                    .as_ref()
                    .map(|checksum| ExpectedProfile {
                        identifier: s.identifier.clone(),
                        checksum: checksum.clone(),
                    })
            })
            .collect();
        let reported = self.reported(facts, &records, &in_focus);
        let plan = plan_device(&expected, &reported, &records, &self.ownership);

        let seen = |identifier: &str| {
            states.get(identifier).map_or(Seen::default(), |s| Seen {
                exists: true,
                pending_command_id: s.pending_command_id.clone(),
            })
        };
        let pending_open = |state: &ProfileStateRecord| {
            state.pending_command_id.is_some()
                && state
                    .pending_status
                    .is_none_or(|status| status.is_pending())
        };
        let mut changes = Vec::new();
        for identifier in &plan.install {
            let (version, rendering) = &prepared[identifier];
            let state = states.get(identifier.as_str());
            let on_its_way = state.is_some_and(|s| {
                pending_open(s)
                    && s.pending_action.as_deref() == Some("install")
                    && s.pending_checksum.as_deref() == Some(rendering.checksum.as_str())
            });
            let kind = if on_its_way {
                ChangeKind::Keep {
                    expected_version: Some(*version),
                    expected_checksum: Some(rendering.checksum.clone()),
                    withdraw: false,
                }
            } else {
                let mut commands = Vec::new();
                // Windows updates in place by removing the old version's nodes first (its
                // `Add`s would answer 418 otherwise).
                if device.platform == Platform::Windows
                    && let Some(removal) = state.and_then(|s| s.removal.as_deref())
                {
                    match windows_removal(removal) {
                        Ok(mut undo) => commands.append(&mut undo),
                        Err(reason) => {
                            changes.push(fail(identifier, seen(identifier), reason));
                            continue;
                        }
                    }
                }
                commands.extend(rendering.commands.iter().cloned());
                ChangeKind::Install {
                    version: *version,
                    checksum: rendering.checksum.clone(),
                    commands,
                    removal: rendering.removal.clone(),
                }
            };
            changes.push(ProfileChange {
                identifier: identifier.clone(),
                seen: seen(identifier),
                kind,
            });
        }
        for identifier in &plan.unchanged {
            let (version, rendering) = &prepared[identifier];
            let withdraw = states.get(identifier.as_str()).is_some_and(|s| {
                pending_open(s)
                    && !(s.pending_action.as_deref() == Some("install")
                        && s.pending_checksum.as_deref() == Some(rendering.checksum.as_str()))
            });
            changes.push(ProfileChange {
                identifier: identifier.clone(),
                seen: seen(identifier),
                kind: ChangeKind::Keep {
                    expected_version: Some(*version),
                    expected_checksum: Some(rendering.checksum.clone()),
                    withdraw,
                },
            });
        }
        for identifier in &plan.remove {
            let state = states.get(identifier.as_str());
            let removing = state
                .is_some_and(|s| pending_open(s) && s.pending_action.as_deref() == Some("remove"));
            let kind = if removing {
                ChangeKind::Keep {
                    expected_version: None,
                    expected_checksum: None,
                    withdraw: false,
                }
            } else {
                match removal_commands(device.platform, identifier, state.copied()) {
                    Ok(commands) => ChangeKind::Remove { commands },
                    Err(reason) => ChangeKind::Fail { error: reason },
                }
            };
            changes.push(ProfileChange {
                identifier: identifier.clone(),
                seen: seen(identifier),
                kind,
            });
        }
        for identifier in &plan.blocked {
            changes.push(fail(
                identifier,
                seen(identifier),
                "a profile with this identifier that Flotte did not install is on the device; \
                 remove it there first"
                    .into(),
            ));
        }
        for identifier in &plan.forget {
            if states
                .get(identifier.as_str())
                .is_some_and(|s| !pending_open(s))
            {
                changes.push(ProfileChange {
                    identifier: identifier.clone(),
                    seen: seen(identifier),
                    kind: ChangeKind::Forget,
                });
            }
        }
        for (identifier, reason) in failed {
            changes.push(fail(&identifier, seen(&identifier), reason));
        }
        let mut trailing = Vec::new();
        if ask_profile_list && device.platform == Platform::Apple {
            trailing.push(apple_command(&AppleCommand::ProfileList {
                managed_only: Some(true),
            }));
        }
        Ok(DeviceChanges {
            device_id: device.id.clone(),
            changes,
            trailing,
        })
    }

    /// What the device has: its `ProfileList` when that is newer than anything Flotte
    /// recorded since, else Flotte's own records of acknowledged installs.
    fn reported(
        &self,
        facts: &DeviceProfileFacts,
        records: &[ExpectedProfile],
        in_focus: &dyn Fn(&str) -> bool,
    ) -> Vec<ReportedProfile> {
        let latest_record = facts
            .states
            .iter()
            .map(|s| s.installed_at.unwrap_or(s.updated_at))
            .max();
        if let Some(list) = &facts.reported
            && facts.device.platform == Platform::Apple
            && latest_record.is_none_or(|at| list.reported_at > at)
        {
            return list
                .profiles
                .iter()
                .filter(|p| in_focus(&p.identifier))
                .map(|p| ReportedProfile {
                    identifier: p.identifier.clone(),
                    version: p
                        .payload_uuid
                        .as_deref()
                        .and_then(|u| uuid::Uuid::parse_str(u).ok())
                        .map(ReportedVersion::PayloadUuid),
                    // Flotte asks with ManagedOnly, and nothing else can install a profile
                    // under its prefix through this MDM.
                    managed_by_us: true,
                })
                .collect();
        }
        records
            .iter()
            .map(|r| ReportedProfile {
                identifier: r.identifier.clone(),
                version: Some(ReportedVersion::Checksum(r.checksum.clone())),
                managed_by_us: true,
            })
            .collect()
    }

    async fn render(
        &mut self,
        template: &ProfileTemplate,
        version: i32,
        facts: &DeviceProfileFacts,
        now: DateTime<Utc>,
    ) -> Result<Arc<Prepared>, RenderFailure> {
        let device = &facts.device;
        if !template.renders_for(device.platform) {
            return Err(RenderFailure::Device(format!(
                "the template does not render for {}",
                device.platform
            )));
        }
        let mut person_identity = None;
        let mut device_identity = None;
        let mut identity_key = Vec::new();
        for kind in template.required_identities() {
            let certificate = current_identity(self.deps, kind, facts, now).await?;
            identity_key.push(certificate.sha256.clone());
            let packed = packed(self.deps, &certificate)?;
            match kind {
                IdentityKind::PerPerson => person_identity = Some(packed),
                IdentityKind::PerDevice => device_identity = Some(packed),
            }
        }
        let person = facts.person.as_ref().filter(|p| p.is_active());
        let ctx = RenderContext {
            platform: device.platform,
            namespace: self.namespace,
            person: person.map(|p| PersonVars {
                username: p.username.clone(),
                mail: p.mail.clone(),
                given_name: p.given_name.clone(),
                family_name: p.family_name.clone(),
                external_id: uuid::Uuid::parse_str(&p.external_id).unwrap_or_default(),
                class: p.class_name.clone(),
            }),
            device: DeviceVars {
                serial_number: device.serial_number.clone(),
                udid: device.udid.clone(),
                name: device.device_name.clone(),
                asset_tag: device.asset_tag.clone(),
                model: device.product_name.clone().or_else(|| device.model.clone()),
            },
            school: facts.school.as_ref().map(|(name, code)| SchoolVars {
                name: name.clone(),
                code: code.clone(),
            }),
            root_ca_der: self.root_der.clone(),
            person_identity,
            device_identity,
        };
        // Everything the output depends on: equal keys render the same bytes (bar the
        // PKCS#12 salt), so one rendering and one signature serve all such devices.
        let values: Vec<String> = template
            .template_variables_used()
            .into_iter()
            .map(|v: Variable| format!("{}={:?}", v.name(), ctx.value(v)))
            .collect();
        let key = format!(
            "{}\u{0}{version}\u{0}{}\u{0}{}\u{0}{}",
            template.identifier,
            device.platform,
            values.join("\u{0}"),
            identity_key.join(",")
        );
        if let Some(hit) = self.rendered.get(&key) {
            return Ok(hit.clone());
        }
        let rendered = template
            .render(&ctx)
            .map_err(|e| RenderFailure::Device(format!("cannot render: {e}")))?;
        self.renders += 1;
        let checksum = rendered.checksum.clone();
        let prepared = match rendered.output {
            RenderedOutput::Apple {
                mobileconfig,
                commands: extra,
                ..
            } => {
                let kit = self.deps.profiles.clone();
                let signed = tokio::task::spawn_blocking(move || kit.sign(&mobileconfig))
                    .await
                    .map_err(|e| {
                        RenderFailure::Retry(CoreError::Invalid(format!("signing stopped: {e}")))
                    })?
                    .map_err(|e| RenderFailure::Device(format!("signing failed: {e}")))?;
                let mut commands = vec![apple_command(&AppleCommand::InstallProfile {
                    payload: signed,
                })];
                commands.extend(extra.iter().map(apple_command));
                Prepared {
                    checksum,
                    commands,
                    removal: None,
                }
            }
            RenderedOutput::Windows {
                commands, removal, ..
            } => Prepared {
                checksum,
                commands: windows_commands(&commands).map_err(RenderFailure::Device)?,
                removal: Some(
                    serde_json::to_string(&removal)
                        .map_err(|e| RenderFailure::Device(format!("removal commands: {e}")))?,
                ),
            },
        };
        let prepared = Arc::new(prepared);
        // Renderings with a client identity are one per device: caching them would only
        // hold PKCS#12 files in memory for nothing.
        if identity_key.is_empty() {
            self.rendered.insert(key, prepared.clone());
        }
        Ok(prepared)
    }
}

fn fail(identifier: &str, seen: Seen, error: String) -> ProfileChange {
    ProfileChange {
        identifier: identifier.to_owned(),
        seen,
        kind: ChangeKind::Fail { error },
    }
}

fn apple_command(command: &AppleCommand) -> NewCommand {
    NewCommand {
        request_type: command.request_type().to_owned(),
        // Commands are plain data; serialising them cannot fail.
        payload: serde_json::to_value(command).unwrap_or(serde_json::Value::Null),
    }
}

/// The commands that remove a profile: Apple by identifier, Windows by the recorded removal
/// commands of the installed version.
fn removal_commands(
    platform: Platform,
    identifier: &str,
    state: Option<&ProfileStateRecord>,
) -> Result<Vec<NewCommand>, String> {
    match platform {
        Platform::Apple => Ok(vec![apple_command(&AppleCommand::RemoveProfile {
            identifier: identifier.to_owned(),
        })]),
        Platform::Windows => {
            let removal = state.and_then(|s| s.removal.as_deref()).ok_or_else(|| {
                "Flotte has no record of how this version was installed, so it cannot remove it"
                    .to_owned()
            })?;
            windows_removal(removal)
        }
    }
}

fn windows_removal(json: &str) -> Result<Vec<NewCommand>, String> {
    let commands: Vec<SyncMlCommand> = serde_json::from_str(json)
        .map_err(|e| format!("the recorded removal commands are unreadable: {e}"))?;
    windows_commands(&commands)
}

/// SyncML commands as rows of the shared queue (request types `Windows:Add`, …, in the
/// payload format `flotte_windows::commands` reads). An `Atomic` is queued as its commands
/// in order: the queue has no atomic request type.
fn windows_commands(commands: &[SyncMlCommand]) -> Result<Vec<NewCommand>, String> {
    let mut out = Vec::new();
    for command in commands {
        let (request_type, parameters) = match command.body() {
            CommandBody::Atomic(inner) => {
                out.extend(windows_commands(inner)?);
                continue;
            }
            CommandBody::Add(items) => ("Windows:Add", raw_items(items)),
            CommandBody::Replace(items) => ("Windows:Replace", raw_items(items)),
            CommandBody::Exec(items) => ("Windows:Exec", raw_items(items)),
            CommandBody::Delete(items) => ("Windows:Delete", uris(items)),
            CommandBody::Get(items) => ("Windows:Get", uris(items)),
        };
        let payload = flotte_windows::commands::validate_command(request_type, &parameters)
            .map_err(|e| e.to_string())?;
        out.push(NewCommand {
            request_type: request_type.to_owned(),
            payload,
        });
    }
    Ok(out)
}

fn raw_items(items: &[flotte_profiles::windows::Item]) -> serde_json::Value {
    serde_json::json!({
        "items": items
            .iter()
            .map(|item| {
                let mut raw = serde_json::Map::new();
                raw.insert("uri".into(), item.target.clone().into());
                if let Some(format) = item.format {
                    raw.insert("format".into(), format.as_str().into());
                }
                if let Some(mime_type) = &item.mime_type {
                    raw.insert("type".into(), mime_type.clone().into());
                }
                if let Some(data) = &item.data {
                    raw.insert("data".into(), data.clone().into());
                }
                serde_json::Value::Object(raw)
            })
            .collect::<Vec<_>>()
    })
}

fn uris(items: &[flotte_profiles::windows::Item]) -> serde_json::Value {
    serde_json::json!({ "uris": items.iter().map(|i| i.target.clone()).collect::<Vec<_>>() })
}

/// Bring one device to its desired state (every profile).
pub(crate) async fn reconcile_device(
    job: ReconcileDevice,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let now = deps.clock.now();
    let ids = [job.device_id.clone()];
    deps.store.settle_profile_states(Some(&ids), now).await?;
    let Some(facts) = deps.store.device_profile_facts(&ids).await?.pop() else {
        return Ok(());
    };
    let mut planner = Planner::new(&deps).await?;
    let changes = planner.plan(&facts, &Focus::All, false, now).await?;
    let outcome = deps
        .store
        .apply_profile_changes(
            &changes,
            "system",
            i64::try_from(deps.settings.apns.coalesce_secs)?,
            now,
        )
        .await?;
    tracing::info!(device = %job.device_id, ?outcome, "device reconciled");
    Ok(())
}
