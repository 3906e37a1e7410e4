//! Golden files for every payload, command and CSP block, and a check of every rendered Apple
//! key against Apple's published key lists (`testdata/apple-keys`).
//!
//! `UPDATE_GOLDEN=1 cargo test -p flotte-profiles --test golden` rewrites the golden files;
//! review the diff before committing it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{apple_profiles, check_golden, golden_dir};
use flotte_profiles::apple::{
    Command, DEFAULT_DEVICE_INFORMATION_QUERIES, SettingValue, SettingsItem,
};
use flotte_profiles::windows::{
    self, CmdId, ComputerNameNode, InventoryNode, KeyLocation, OneXAuthMode, PfxCertificate, Scope,
    SequentialCmdIds, SyncMlCommand, Thumbprint, WindowsRestrictions, WlanProfile, WlanSecurity,
    render_commands,
};
use plist::{Dictionary, Value};

const COMMAND_UUID: &str = "0F6E1B9C-3A52-4D7E-9C1B-2A4F6D8E0B13";

fn commands() -> Vec<(&'static str, Command)> {
    let mut generic = std::collections::BTreeMap::new();
    generic.insert(
        "TimeZone".to_owned(),
        SettingValue::String("Europe/Berlin".to_owned()),
    );
    vec![
        ("device-information", Command::device_information()),
        ("security-info", Command::SecurityInfo),
        (
            "profile-list",
            Command::ProfileList {
                managed_only: Some(true),
            },
        ),
        (
            "install-profile",
            Command::InstallProfile {
                payload: common::lock_screen_profile().to_mobileconfig().unwrap(),
            },
        ),
        (
            "remove-profile",
            Command::RemoveProfile {
                identifier: "de.musterstadt.wifi.gaeste".to_owned(),
            },
        ),
        (
            "installed-application-list",
            Command::InstalledApplicationList {
                identifiers: vec!["com.apple.Keynote".to_owned()],
                managed_apps_only: Some(false),
            },
        ),
        (
            "device-lock",
            Command::DeviceLock {
                message: Some("Bitte im Sekretariat abgeben".to_owned()),
                phone_number: Some("+49 123 456789".to_owned()),
                pin: None,
            },
        ),
        (
            "erase-device",
            Command::EraseDevice {
                pin: None,
                preserve_data_plan: Some(false),
                disallow_proximity_setup: Some(true),
            },
        ),
        (
            "clear-passcode",
            Command::ClearPasscode {
                unlock_token: b"DATA\x00\x00\x04\xe4unlock".to_vec(),
            },
        ),
        ("restart-device", Command::RestartDevice),
        ("device-configured", Command::DeviceConfigured),
        (
            "settings-device-name",
            Command::set_device_name("Klasse-5a-07"),
        ),
        (
            "settings-generic",
            Command::Settings {
                settings: vec![
                    SettingsItem::DeviceName {
                        device_name: "Klasse-5a-08".to_owned(),
                    },
                    SettingsItem::Generic {
                        item: "TimeZone".to_owned(),
                        values: generic,
                    },
                ],
            },
        ),
    ]
}

fn id(text: &str) -> CmdId {
    CmdId::new(text).unwrap()
}

fn radius_thumbprint() -> Thumbprint {
    Thumbprint::of_der(&common::radius_ca_der())
}

fn windows_cases() -> Vec<(&'static str, Vec<SyncMlCommand>)> {
    let tls = WlanProfile {
        ssid: "Schulnetz".to_owned(),
        hidden: false,
        auto_connect: true,
        security: WlanSecurity::Wpa2EnterpriseTls {
            server_names: vec!["radius.schule.example".to_owned()],
            trusted_root_cas: vec![radius_thumbprint()],
            auth_mode: OneXAuthMode::Machine,
        },
    };
    let peap = WlanProfile {
        ssid: "Lehrkräfte".to_owned(),
        hidden: true,
        auto_connect: true,
        security: WlanSecurity::Wpa2EnterprisePeap {
            server_names: vec![
                "radius.schule.example".to_owned(),
                "radius2.schule.example".to_owned(),
            ],
            trusted_root_cas: vec![radius_thumbprint()],
            auth_mode: OneXAuthMode::User,
        },
    };
    let psk = WlanProfile {
        ssid: "Gäste & <Besucher>".to_owned(),
        hidden: false,
        auto_connect: false,
        security: WlanSecurity::Wpa2Personal {
            passphrase: "Sommer&Sonne<2025>".to_owned(),
        },
    };
    let pfx = PfxCertificate {
        unique_id: "device-identity".to_owned(),
        pfx: common::pkcs12_bytes(),
        password: "ein&mal<ig>".to_owned(),
        key_location: KeyLocation::TpmIfPresent,
        key_exportable: None,
        container_name: None,
    };
    let restrictions = WindowsRestrictions {
        allow_camera: Some(true),
        allow_manual_mdm_unenrollment: Some(false),
        allow_cortana: Some(false),
        allow_windows_consumer_features: Some(false),
        allow_microsoft_account_connection: Some(false),
        allow_adding_non_microsoft_accounts_manually: Some(false),
        require_private_store_only: Some(true),
        block_non_admin_user_install: Some(true),
        removable_disk_deny_write_access: Some(false),
        is_education_environment: Some(true),
    };
    let mut ids = SequentialCmdIds::new("restrictions-", 1).unwrap();
    let mut pfx_ids = SequentialCmdIds::new("pfx-", 1).unwrap();
    let mut lock_ids = SequentialCmdIds::new("notice-", 1).unwrap();
    vec![
        (
            "wifi-eap-tls",
            vec![windows::wifi_profile(id("wifi-1"), Scope::Device, &tls).unwrap()],
        ),
        (
            "wifi-peap",
            vec![windows::wifi_profile(id("wifi-2"), Scope::User, &peap).unwrap()],
        ),
        (
            "wifi-psk",
            vec![windows::wifi_profile(id("wifi-3"), Scope::Device, &psk).unwrap()],
        ),
        (
            "wifi-delete",
            vec![windows::wifi_profile_delete(id("wifi-4"), Scope::Device, &psk.ssid).unwrap()],
        ),
        (
            "root-ca",
            vec![windows::root_ca_certificate(id("root-1"), &common::radius_ca_der()).unwrap()],
        ),
        (
            "root-ca-delete",
            vec![windows::root_ca_certificate_delete(id("root-2"), &radius_thumbprint()).unwrap()],
        ),
        (
            "pfx-install",
            vec![windows::pfx_certificate_install(&mut pfx_ids, Scope::Device, &pfx).unwrap()],
        ),
        (
            "pfx-delete",
            vec![
                windows::pfx_certificate_delete(id("pfx-9"), Scope::Device, "device-identity")
                    .unwrap(),
            ],
        ),
        (
            "restrictions",
            windows::restrictions(&mut ids, &restrictions).unwrap(),
        ),
        (
            "lock-screen-message",
            windows::lock_screen_message(
                &mut lock_ids,
                Some("Schul-Laptop"),
                "Eigentum der Schule. Gefunden? Bitte im Sekretariat abgeben & melden.",
            )
            .unwrap(),
        ),
        (
            "computer-name-devdetail",
            vec![
                windows::computer_name(
                    id("name-1"),
                    "SCHULE-%SERIAL%",
                    ComputerNameNode::DevDetailDnsComputerName,
                )
                .unwrap(),
            ],
        ),
        (
            "computer-name-accounts",
            vec![
                windows::computer_name(
                    id("name-2"),
                    "LAP-5A-07",
                    ComputerNameNode::AccountsDomainComputerName,
                )
                .unwrap(),
            ],
        ),
        (
            "get-inventory",
            vec![
                windows::get_nodes(id("inventory-1"), &InventoryNode::default_inventory()).unwrap(),
            ],
        ),
        ("reboot", vec![windows::reboot_now(id("reboot-1")).unwrap()]),
        (
            "remote-lock",
            vec![windows::remote_lock(id("lock-1")).unwrap()],
        ),
        (
            "remote-wipe",
            vec![windows::remote_wipe(id("wipe-1")).unwrap()],
        ),
    ]
}

/// Every golden file a case produces, by path relative to `testdata/golden`.
fn all_golden_outputs() -> Vec<(String, Vec<u8>)> {
    let mut outputs = Vec::new();
    for (name, profile) in apple_profiles() {
        let bytes = profile
            .to_mobileconfig()
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        outputs.push((format!("apple/profiles/{name}.mobileconfig"), bytes));
    }
    for (name, command) in commands() {
        outputs.push((
            format!("apple/commands/{name}.plist"),
            command.to_plist(COMMAND_UUID),
        ));
    }
    for (name, commands) in windows_cases() {
        let mut xml = render_commands(&commands);
        xml.push('\n');
        outputs.push((format!("windows/{name}.xml"), xml.into_bytes()));
    }
    outputs.extend(common::template_golden_outputs());
    outputs
}

#[test]
fn every_payload_command_and_csp_block_matches_its_golden_file() {
    let failures: Vec<String> = all_golden_outputs()
        .iter()
        .filter_map(|(name, bytes)| check_golden(name, bytes).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn no_golden_file_is_left_without_a_case() {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let relative = path.strip_prefix(base).unwrap();
                out.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut on_disk = BTreeSet::new();
    walk(&golden_dir(), &golden_dir(), &mut on_disk);
    let produced: BTreeSet<String> = all_golden_outputs()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let stale: Vec<_> = on_disk.difference(&produced).collect();
    assert!(stale.is_empty(), "golden files without a case: {stale:?}");
    assert_eq!(on_disk.len(), produced.len());
}

// ---------------------------------------------------------------------------------------------
// Apple's key lists

/// One line of a key list: the schema type and, when the schema has a range list, the
/// allowed values.
struct KeySpec {
    kind: String,
    allowed: Option<Vec<String>>,
}

fn key_list(file: &str) -> Option<Vec<(String, KeySpec)>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/apple-keys")
        .join(format!("{file}.txt"));
    let text = std::fs::read_to_string(path).ok()?;
    let specs = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (kind, rest) = line.split_once(' ').expect("<type> <key>");
            let (key, allowed) = match rest.split_once(" = ") {
                Some((key, values)) => (
                    key,
                    Some(values.split(" | ").map(str::to_owned).collect::<Vec<_>>()),
                ),
                None => (rest, None),
            };
            (
                key.to_owned(),
                KeySpec {
                    kind: kind.to_owned(),
                    allowed,
                },
            )
        })
        .collect();
    Some(specs)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Dictionary(_) => "dictionary",
        Value::Boolean(_) => "boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "date",
        Value::Real(_) => "real",
        Value::Integer(_) => "integer",
        Value::String(_) => "string",
        _ => "other",
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Integer(integer) => Some(integer.to_string()),
        Value::Real(real) => Some(format!("{real:?}")),
        _ => None,
    }
}

/// Checks every key of `dict` against the listed specs (the union of `files`); nested
/// dictionaries are checked against `<payload type>.<key>` when such a list exists.
fn check_keys(
    context: &str,
    payload_type: &str,
    dict: &Dictionary,
    files: &[&str],
    problems: &mut Vec<String>,
) {
    let mut specs = Vec::new();
    for file in files {
        match key_list(file) {
            Some(list) => specs.extend(list),
            None => {
                problems.push(format!("{context}: no key list {file}.txt"));
                return;
            }
        }
    }
    for (key, value) in dict {
        let Some((_, spec)) = specs.iter().find(|(name, _)| name == key) else {
            problems.push(format!(
                "{context}: {key} is not a published key of {files:?}"
            ));
            continue;
        };
        if type_name(value) != spec.kind {
            problems.push(format!(
                "{context}: {key} is {} but Apple declares {}",
                type_name(value),
                spec.kind
            ));
        }
        if let Some(allowed) = &spec.allowed {
            let values: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for item in values {
                match scalar_text(item) {
                    Some(text) if allowed.contains(&text) => {}
                    other => problems.push(format!(
                        "{context}: {key} = {other:?} is not one of {allowed:?}"
                    )),
                }
            }
        }
        if let Value::Dictionary(nested) = value {
            let nested_file = format!("{payload_type}.{key}");
            if key_list(&nested_file).is_some() {
                check_keys(
                    &format!("{context}.{key}"),
                    payload_type,
                    nested,
                    &[nested_file.as_str()],
                    problems,
                );
            } else {
                problems.push(format!(
                    "{context}: nested {key} has no key list {nested_file}.txt"
                ));
            }
        }
    }
}

#[test]
fn every_rendered_apple_key_is_one_apple_publishes() {
    let mut problems = Vec::new();
    let mut seen_types = BTreeSet::new();
    for (name, profile) in apple_profiles() {
        let top = profile.to_dictionary().unwrap();
        check_keys(
            name,
            "Configuration",
            &top,
            &["Configuration"],
            &mut problems,
        );
        let Some(Value::Array(content)) = top.get("PayloadContent") else {
            panic!("{name}: no PayloadContent array");
        };
        for payload in content {
            let payload = payload.as_dictionary().unwrap();
            let payload_type = payload.get("PayloadType").unwrap().as_string().unwrap();
            seen_types.insert(payload_type.to_owned());
            check_keys(
                &format!("{name}/{payload_type}"),
                payload_type,
                payload,
                &["CommonPayloadKeys", payload_type],
                &mut problems,
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        seen_types,
        [
            "com.apple.applicationaccess",
            "com.apple.mail.managed",
            "com.apple.mdm",
            "com.apple.security.pkcs12",
            "com.apple.security.root",
            "com.apple.security.scep",
            "com.apple.shareddeviceconfiguration",
            "com.apple.webClip.managed",
            "com.apple.wifi.managed",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect(),
        "every payload type is covered by a case"
    );
}

#[test]
fn a_rendered_template_uses_only_keys_apple_publishes() {
    let rendered = common::schulnetz_template()
        .render(&common::template_context(
            flotte_core::device::Platform::Apple,
        ))
        .unwrap();
    let top: plist::Dictionary = plist::from_bytes(rendered.apple_mobileconfig().unwrap()).unwrap();
    let mut problems = Vec::new();
    check_keys(
        "template",
        "Configuration",
        &top,
        &["Configuration"],
        &mut problems,
    );
    let Some(Value::Array(content)) = top.get("PayloadContent") else {
        panic!("template: no PayloadContent array");
    };
    assert!(!content.is_empty());
    for payload in content {
        let payload = payload.as_dictionary().unwrap();
        let payload_type = payload.get("PayloadType").unwrap().as_string().unwrap();
        check_keys(
            &format!("template/{payload_type}"),
            payload_type,
            payload,
            &["CommonPayloadKeys", payload_type],
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_restriction_key_is_a_published_boolean() {
    let published = key_list("com.apple.applicationaccess").unwrap();
    for key in flotte_profiles::apple::Restrictions::BOOLEAN_KEYS {
        let spec = published
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, spec)| spec)
            .unwrap_or_else(|| panic!("{key} is not in Apple's restrictions list"));
        assert_eq!(spec.kind, "boolean", "{key}");
    }
}

#[test]
fn every_rendered_command_key_is_one_apple_publishes() {
    let mut problems = Vec::new();
    for (name, command) in commands() {
        let mut dict = command.to_command_dictionary();
        assert_eq!(
            dict.remove("RequestType")
                .and_then(|value| value.into_string())
                .as_deref(),
            Some(command.request_type()),
        );
        if dict.is_empty() {
            continue;
        }
        check_keys(
            name,
            command.request_type(),
            &dict,
            &[&format!("commands/{}", command.request_type())],
            &mut problems,
        );
    }
    let queries = key_list("commands/DeviceInformation.Queries").unwrap();
    for query in DEFAULT_DEVICE_INFORMATION_QUERIES {
        if !queries.iter().any(|(name, _)| name == query) {
            problems.push(format!("DeviceInformation query {query} is not published"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
