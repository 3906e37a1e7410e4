//! Resolving variables and building the platform output, twice (see the module docs on the
//! checksum).

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flotte_core::assignment::profile_version_uuid;
use flotte_core::device::Platform;
use plist::{Dictionary, Value};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::context::{IdentityKind, IssuedIdentity, RenderContext};
use super::spec::{
    CaSource, LockScreenSpec, MailAuth, MailProtocol, MailServerSpec, MailSpec, PayloadSpec,
    TrustSpec, WebClipSpec, WifiEncryption, WifiSecuritySpec, WifiSpec,
};
use super::text::{Segment, Text, has_control_character};
use super::{ProfileTemplate, TemplateError, payload_path, text_error};
use crate::apple::{
    self, Command, LockScreenMessage, MailAccount, MailAccountType, MailAuthentication, MailServer,
    PayloadEntry, Pkcs12Identity, Profile, RootCertificate, ServerTrust, WebClip, Wifi,
    WifiSecurity, format_uuid, xml_plist_bytes,
};
use crate::windows::{
    self, CmdIdSource, ComputerNameNode, CspError, KeyLocation, OneXAuthMode, PfxCertificate,
    Scope, SequentialCmdIds, SyncMlCommand, Thumbprint, WlanProfile, WlanSecurity,
};

/// A template rendered for one device.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedProfile {
    /// The template's identifier (Apple `PayloadIdentifier`).
    pub identifier: String,
    /// SHA-256 (lower-case hex) over the deterministic parts of the rendering; equal
    /// checksums mean the device would receive the same thing.
    pub checksum: String,
    /// What to send.
    pub output: RenderedOutput,
}

/// The platform-specific result.
#[derive(Clone, PartialEq)]
pub enum RenderedOutput {
    /// For an Apple device.
    Apple {
        /// The unsigned `.mobileconfig`, for `InstallProfile` (sign it first).
        mobileconfig: Vec<u8>,
        /// Its top-level `PayloadUUID`, derived from the checksum: what `ProfileList` will
        /// report once the device has this version.
        payload_uuid: Uuid,
        /// Commands to send after the profile (a device name).
        commands: Vec<Command>,
    },
    /// For a Windows device. `CmdID`s are placeholders: renumber with
    /// [`SyncMlCommand::renumbered`] before sending.
    Windows {
        /// Installs this version. Wi-Fi profiles, client and root certificates are created
        /// with `Add`, which answers 418 (already exists) where the node is there: to update,
        /// send the previous version's `removal` first. Root CAs are never removed (see
        /// `removal`), so a 418 for a root CA means it is already trusted and counts as
        /// success.
        commands: Vec<SyncMlCommand>,
        /// Undoes this version, in reverse install order: keep it with the installed record.
        /// Root CAs are left in place, because Windows' store is not reference-counted and
        /// the same CA may serve the MDM enrolment or another profile; a renamed computer
        /// keeps its name. Deleted policies return to their defaults.
        removal: Vec<SyncMlCommand>,
        /// Nodes that exist exactly while this version is installed (Wi-Fi profile, client
        /// certificate), for `Get`; empty when the template has none.
        probe_uris: Vec<String>,
    },
}

// A rendering carries PKCS#12 files and their passwords; logs get the shape only.
impl fmt::Debug for RenderedOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Apple {
                mobileconfig,
                payload_uuid,
                commands,
            } => f
                .debug_struct("Apple")
                .field(
                    "mobileconfig",
                    &format_args!("{} bytes", mobileconfig.len()),
                )
                .field("payload_uuid", payload_uuid)
                .field(
                    "commands",
                    &commands
                        .iter()
                        .map(Command::request_type)
                        .collect::<Vec<_>>(),
                )
                .finish(),
            Self::Windows {
                commands,
                removal,
                probe_uris,
            } => f
                .debug_struct("Windows")
                .field("commands", &format_args!("{} commands", commands.len()))
                .field("removal", &format_args!("{} commands", removal.len()))
                .field("probe_uris", probe_uris)
                .finish(),
        }
    }
}

impl RenderedProfile {
    /// The unsigned `.mobileconfig`, for an Apple rendering.
    pub fn apple_mobileconfig(&self) -> Option<&[u8]> {
        match &self.output {
            RenderedOutput::Apple { mobileconfig, .. } => Some(mobileconfig),
            RenderedOutput::Windows { .. } => None,
        }
    }

    /// The install commands, for a Windows rendering.
    pub fn windows_commands(&self) -> Option<&[SyncMlCommand]> {
        match &self.output {
            RenderedOutput::Windows { commands, .. } => Some(commands),
            RenderedOutput::Apple { .. } => None,
        }
    }

    /// The install commands as the XML placed inside `<SyncBody>`, for a Windows rendering.
    pub fn windows_xml(&self) -> Option<String> {
        self.windows_commands().map(windows::render_commands)
    }
}

/// Renders a template whose structure [`ProfileTemplate::check`] accepted.
pub(crate) fn render_checked(
    template: &ProfileTemplate,
    ctx: &RenderContext,
) -> Result<RenderedProfile, TemplateError> {
    if !template.renders_for(ctx.platform) {
        return Err(TemplateError::NotForPlatform(ctx.platform));
    }
    let resolved = template.map_texts(&mut |path, text| resolve(path, text, ctx))?;
    let real = Materials::gather(&resolved, ctx, false)?;
    let stand_in = Materials::gather(&resolved, ctx, true)?;

    let mut hasher = Sha256::new();
    hash_part(&mut hasher, b"flotte-profile-checksum/1");
    hash_part(&mut hasher, ctx.platform.as_str().as_bytes());
    let output = match ctx.platform {
        Platform::Apple => {
            let (stable, _) = build_apple(&resolved, &stand_in, ctx)?;
            hash_part(&mut hasher, &xml_plist_bytes(&Value::Dictionary(stable)));
            let (mut profile, commands) = build_apple(&resolved, &real, ctx)?;
            for command in &commands {
                let dictionary = Value::Dictionary(command.to_command_dictionary());
                hash_part(&mut hasher, &xml_plist_bytes(&dictionary));
            }
            let checksum = hex(&hasher.finalize());
            let payload_uuid = profile_version_uuid(&checksum);
            profile.insert("PayloadUUID".into(), format_uuid(payload_uuid).into());
            return Ok(RenderedProfile {
                identifier: template.identifier.clone(),
                checksum,
                output: RenderedOutput::Apple {
                    mobileconfig: xml_plist_bytes(&Value::Dictionary(profile)),
                    payload_uuid,
                    commands,
                },
            });
        }
        Platform::Windows => {
            let stable = build_windows(&resolved, &stand_in)?;
            hash_part(
                &mut hasher,
                windows::render_commands(&stable.commands).as_bytes(),
            );
            build_windows(&resolved, &real)?
        }
    };
    Ok(RenderedProfile {
        identifier: template.identifier.clone(),
        checksum: hex(&hasher.finalize()),
        output: RenderedOutput::Windows {
            commands: output.commands,
            removal: output.removal,
            probe_uris: output.probe_uris,
        },
    })
}

/// Length-prefixed, so that no two different sequences of parts hash alike.
fn hash_part(hasher: &mut Sha256, part: &[u8]) {
    hasher.update((part.len() as u64).to_be_bytes());
    hasher.update(part);
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            // Writing into a String cannot fail.
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn resolve(path: &str, text: &Text, ctx: &RenderContext) -> Result<Text, TemplateError> {
    let mut out = String::new();
    for segment in text.parse().map_err(|error| text_error(path, error))? {
        match segment {
            Segment::Literal(literal) => out.push_str(literal),
            Segment::Variable(variable) => {
                let value = ctx
                    .value(variable)
                    .ok_or_else(|| TemplateError::MissingValue {
                        variable,
                        path: path.to_owned(),
                    })?;
                if has_control_character(&value) {
                    return Err(TemplateError::UnencodableValue {
                        variable,
                        path: path.to_owned(),
                    });
                }
                out.push_str(&value);
            }
        }
    }
    Ok(Text::new(out))
}

/// Decodes one PEM certificate.
pub(crate) fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem
        .find(BEGIN)
        .ok_or("no -----BEGIN CERTIFICATE----- line")?
        + BEGIN.len();
    let end = pem[start..]
        .find(END)
        .ok_or("no -----END CERTIFICATE----- line")?
        + start;
    if pem[end + END.len()..].contains("-----BEGIN") {
        return Err("give one certificate per root-ca payload".to_owned());
    }
    let base64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(base64.as_bytes())
        .map_err(|error| format!("the certificate is not valid base64: {error}"))?;
    // Every DER certificate is a SEQUENCE; anything else is not a certificate at all.
    if der.first() != Some(&0x30) {
        return Err("the PEM block does not hold a DER certificate".to_owned());
    }
    Ok(der)
}

/// The certificates a rendering embeds, by payload key.
///
/// `gather` fills an entry for every `root-ca` and `client-identity` payload, and `check`
/// made sure every reference names such a payload, so the builders index these maps.
struct Materials {
    roots: HashMap<String, Vec<u8>>,
    identities: HashMap<String, (IdentityKind, IssuedIdentity)>,
}

impl Materials {
    /// With `stand_in`, every identity is replaced by a fixed value naming its certificate,
    /// which is what the checksum is computed over.
    fn gather(
        template: &ProfileTemplate,
        ctx: &RenderContext,
        stand_in: bool,
    ) -> Result<Self, TemplateError> {
        let mut roots = HashMap::new();
        let mut identities = HashMap::new();
        for (index, entry) in template.payloads.iter().enumerate() {
            let path = payload_path(index);
            match &entry.payload {
                PayloadSpec::RootCa(root) => {
                    let der = match &root.ca {
                        CaSource::FlotteRoot if ctx.root_ca_der.is_empty() => {
                            return Err(TemplateError::MissingRootCa { path });
                        }
                        CaSource::FlotteRoot => ctx.root_ca_der.clone(),
                        CaSource::Pem(pem) => {
                            pem_to_der(pem).map_err(|reason| TemplateError::Invalid {
                                path: format!("{path}.ca.pem"),
                                reason,
                            })?
                        }
                    };
                    roots.insert(entry.key.clone(), der);
                }
                PayloadSpec::ClientIdentity(spec) => {
                    let kind = spec.certificate;
                    let issued = ctx
                        .identity(kind)
                        .ok_or(TemplateError::MissingIdentity { kind, path })?;
                    let identity = if stand_in {
                        let digest = hex(&Sha256::digest(&issued.certificate_der));
                        IssuedIdentity {
                            certificate_der: issued.certificate_der.clone(),
                            pkcs12: format!("flotte:certificate-sha256:{digest}").into_bytes(),
                            password: String::new(),
                        }
                    } else {
                        issued.clone()
                    };
                    identities.insert(entry.key.clone(), (kind, identity));
                }
                _ => {}
            }
        }
        Ok(Self { roots, identities })
    }

    fn identity(&self, key: &str) -> Option<&(IdentityKind, IssuedIdentity)> {
        self.identities.get(key)
    }
}

// ---------------------------------------------------------------------------------------------
// Apple

fn apple_encryption(encryption: WifiEncryption) -> apple::WifiEncryption {
    match encryption {
        WifiEncryption::Wpa2 => apple::WifiEncryption::Wpa2,
        WifiEncryption::Wpa3 => apple::WifiEncryption::Wpa3,
        WifiEncryption::Any => apple::WifiEncryption::Any,
    }
}

fn opt_string(text: &Option<Text>) -> Option<String> {
    text.as_ref().map(|text| text.as_str().to_owned())
}

fn apple_trust(trust: &TrustSpec) -> ServerTrust {
    ServerTrust {
        anchor_certificates: trust.root_cas.clone(),
        server_names: trust
            .server_names
            .iter()
            .map(|name| name.as_str().to_owned())
            .collect(),
    }
}

fn apple_wifi(wifi: &WifiSpec) -> Wifi {
    let security = match &wifi.security {
        WifiSecuritySpec::Psk {
            encryption,
            password,
        } => WifiSecurity::Personal {
            encryption: apple_encryption(*encryption),
            password: password.as_str().to_owned(),
        },
        WifiSecuritySpec::EapTls {
            encryption,
            identity,
            user_name,
            trust,
        } => WifiSecurity::EapTls {
            encryption: apple_encryption(*encryption),
            identity: identity.clone(),
            user_name: opt_string(user_name),
            trust: apple_trust(trust),
        },
        WifiSecuritySpec::Peap {
            encryption,
            user_name,
            outer_identity,
            trust,
        } => WifiSecurity::Peap {
            encryption: apple_encryption(*encryption),
            user_name: opt_string(user_name),
            password: None,
            outer_identity: opt_string(outer_identity),
            inner_authentication: None,
            trust: apple_trust(trust),
        },
    };
    Wifi {
        ssid: wifi.ssid.as_str().to_owned(),
        hidden_network: wifi.hidden,
        auto_join: wifi.auto_join,
        security,
    }
}

fn apple_web_clip(clip: &WebClipSpec) -> WebClip {
    WebClip {
        url: clip.url.as_str().to_owned(),
        label: clip.label.as_str().to_owned(),
        is_removable: clip.removable,
        full_screen: clip.full_screen,
        icon: clip.icon.clone(),
        precomposed: clip.precomposed,
        ignore_manifest_scope: clip.ignore_manifest_scope,
    }
}

fn apple_mail_server(server: &MailServerSpec) -> MailServer {
    MailServer {
        host_name: server.host_name.as_str().to_owned(),
        port: server.port,
        use_ssl: server.use_ssl,
        username: opt_string(&server.username),
        authentication: match server.authentication {
            MailAuth::None => MailAuthentication::None,
            MailAuth::Password => MailAuthentication::Password,
            MailAuth::CramMd5 => MailAuthentication::CramMd5,
            MailAuth::Ntlm => MailAuthentication::Ntlm,
            MailAuth::HttpMd5 => MailAuthentication::HttpMd5,
        },
        password: None,
    }
}

fn apple_mail(mail: &MailSpec) -> MailAccount {
    MailAccount {
        account_type: match mail.protocol {
            MailProtocol::Imap => MailAccountType::Imap,
            MailProtocol::Pop => MailAccountType::Pop,
        },
        account_description: opt_string(&mail.account_description),
        account_name: opt_string(&mail.account_name),
        email_address: opt_string(&mail.email_address),
        incoming: apple_mail_server(&mail.incoming),
        outgoing: apple_mail_server(&mail.outgoing),
        outgoing_password_same_as_incoming: mail.outgoing_password_same_as_incoming,
        prevent_move: mail.prevent_move,
    }
}

/// The profile dictionary (with the identifier-derived top-level UUID) and the commands that
/// go with it.
fn build_apple(
    template: &ProfileTemplate,
    materials: &Materials,
    ctx: &RenderContext,
) -> Result<(Dictionary, Vec<Command>), TemplateError> {
    let mut profile = Profile::new(
        ctx.namespace,
        template.identifier.clone(),
        template.display_name.as_str(),
    );
    profile.organization = opt_string(&template.organisation);
    profile.description = opt_string(&template.description);
    profile.removal_disallowed = template.removal_disallowed;
    let mut commands = Vec::new();
    for entry in &template.payloads {
        let payload: apple::Payload = match &entry.payload {
            PayloadSpec::Wifi(wifi) => apple_wifi(wifi).into(),
            PayloadSpec::RootCa(_) => RootCertificate {
                der: materials.roots[&entry.key].clone(),
                file_name: Some(format!("{}.cer", entry.key)),
            }
            .into(),
            PayloadSpec::ClientIdentity(_) => {
                let (_, identity) = &materials.identities[&entry.key];
                Pkcs12Identity {
                    pkcs12: identity.pkcs12.clone(),
                    password: Some(identity.password.clone()),
                    file_name: Some(format!("{}.p12", entry.key)),
                }
                .into()
            }
            PayloadSpec::WebClip(clip) => apple_web_clip(clip).into(),
            // `check` made sure the Apple part is there.
            PayloadSpec::Restrictions(restrictions) => {
                restrictions.apple.clone().unwrap_or_default().into()
            }
            PayloadSpec::Mail(mail) => apple_mail(mail).into(),
            PayloadSpec::LockScreen(lock) => LockScreenMessage {
                footnote: opt_string(&lock.footnote),
                asset_tag: opt_string(&lock.asset_tag),
            }
            .into(),
            PayloadSpec::DeviceName(name) => {
                commands.push(Command::set_device_name(name.name.as_str()));
                continue;
            }
        };
        profile.payloads.push(PayloadEntry {
            key: entry.key.clone(),
            display_name: opt_string(&entry.display_name),
            description: None,
            payload,
        });
    }
    let dictionary = profile.to_dictionary().map_err(TemplateError::Apple)?;
    Ok((dictionary, commands))
}

// ---------------------------------------------------------------------------------------------
// Windows

struct WindowsParts {
    commands: Vec<SyncMlCommand>,
    removal: Vec<SyncMlCommand>,
    probe_uris: Vec<String>,
}

/// Windows needs a certificate in place before the Wi-Fi profile that uses it (Microsoft:
/// install the certificate first), so CAs go first, then client certificates, then the rest
/// in template order.
fn windows_rank(payload: &PayloadSpec) -> u8 {
    match payload {
        PayloadSpec::RootCa(_) => 0,
        PayloadSpec::ClientIdentity(_) => 1,
        _ => 2,
    }
}

fn pfx_scope(kind: IdentityKind) -> Scope {
    // A person's certificate belongs in the signed-in user's store (the CSP answers 405 when
    // nobody is signed in); the device's in the machine store.
    match kind {
        IdentityKind::PerPerson => Scope::User,
        IdentityKind::PerDevice => Scope::Device,
    }
}

fn build_windows(
    template: &ProfileTemplate,
    materials: &Materials,
) -> Result<WindowsParts, TemplateError> {
    let mut ids = SequentialCmdIds::new("", 1).map_err(|source| TemplateError::Windows {
        path: "payloads".to_owned(),
        source,
    })?;
    let mut removal_ids = ids.clone();
    let mut parts = WindowsParts {
        commands: Vec::new(),
        removal: Vec::new(),
        probe_uris: Vec::new(),
    };
    let mut order: Vec<_> = template.payloads.iter().enumerate().collect();
    order.sort_by_key(|(index, entry)| (windows_rank(&entry.payload), *index));
    for (index, entry) in order {
        let path = payload_path(index);
        let csp = |source: CspError| TemplateError::Windows {
            path: path.clone(),
            source,
        };
        match &entry.payload {
            PayloadSpec::RootCa(_) => {
                let der = &materials.roots[&entry.key];
                parts
                    .commands
                    .push(windows::root_ca_certificate(ids.next_cmd_id(), der).map_err(csp)?);
            }
            PayloadSpec::ClientIdentity(_) => {
                let (kind, identity) = &materials.identities[&entry.key];
                let scope = pfx_scope(*kind);
                let certificate = PfxCertificate {
                    unique_id: Thumbprint::of_der(&identity.certificate_der)
                        .as_str()
                        .to_owned(),
                    pfx: identity.pkcs12.clone(),
                    password: identity.password.clone(),
                    key_location: KeyLocation::TpmIfPresent,
                    key_exportable: None,
                    container_name: None,
                };
                parts.commands.push(
                    windows::pfx_certificate_install(&mut ids, scope, &certificate).map_err(csp)?,
                );
                parts.removal.push(
                    windows::pfx_certificate_delete(
                        removal_ids.next_cmd_id(),
                        scope,
                        &certificate.unique_id,
                    )
                    .map_err(csp)?,
                );
                parts
                    .probe_uris
                    .push(windows::pfx_certificate_uri(scope, &certificate.unique_id));
            }
            PayloadSpec::Wifi(wifi) => {
                let profile = windows_wifi(wifi, materials);
                parts.commands.push(
                    windows::wifi_profile(ids.next_cmd_id(), Scope::Device, &profile)
                        .map_err(csp)?,
                );
                parts.removal.push(
                    windows::wifi_profile_delete(
                        removal_ids.next_cmd_id(),
                        Scope::Device,
                        &profile.ssid,
                    )
                    .map_err(csp)?,
                );
                parts
                    .probe_uris
                    .push(windows::wifi_profile_uri(Scope::Device, &profile.ssid));
            }
            PayloadSpec::Restrictions(restrictions) => {
                let policies = restrictions.windows.clone().unwrap_or_default();
                let commands = windows::restrictions(&mut ids, &policies).map_err(csp)?;
                undo_settings(&mut parts, &mut removal_ids, commands).map_err(csp)?;
            }
            PayloadSpec::LockScreen(lock) => {
                let commands = windows::lock_screen_message(
                    &mut ids,
                    lock.windows_title.as_ref().map(Text::as_str),
                    &windows_notice(lock),
                )
                .map_err(csp)?;
                undo_settings(&mut parts, &mut removal_ids, commands).map_err(csp)?;
            }
            PayloadSpec::DeviceName(name) => {
                parts.commands.push(
                    windows::computer_name(
                        ids.next_cmd_id(),
                        name.name.as_str(),
                        ComputerNameNode::DevDetailDnsComputerName,
                    )
                    .map_err(csp)?,
                );
            }
            PayloadSpec::WebClip(_) | PayloadSpec::Mail(_) => {
                // `check` refuses these for Windows before rendering starts.
                return Err(TemplateError::Unsupported {
                    path,
                    platform: Platform::Windows,
                    reason: "no Windows form".to_owned(),
                });
            }
        }
    }
    // Undo in reverse: the Wi-Fi profile goes before the certificate it authenticates with.
    parts.removal.reverse();
    Ok(parts)
}

/// Adds policy settings and, as their undo, one `Delete` of the same nodes (deleting a Policy
/// CSP node returns the setting to its default).
fn undo_settings(
    parts: &mut WindowsParts,
    removal_ids: &mut SequentialCmdIds,
    commands: Vec<SyncMlCommand>,
) -> Result<(), CspError> {
    let uris: Vec<String> = commands
        .iter()
        .flat_map(SyncMlCommand::target_uris)
        .map(str::to_owned)
        .collect();
    if !uris.is_empty() {
        let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
        parts
            .removal
            .push(windows::delete_nodes(removal_ids.next_cmd_id(), &uris)?);
    }
    parts.commands.extend(commands);
    Ok(())
}

fn windows_notice(lock: &LockScreenSpec) -> String {
    [&lock.footnote, &lock.asset_tag]
        .into_iter()
        .flatten()
        .map(Text::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

fn windows_wifi(wifi: &WifiSpec, materials: &Materials) -> WlanProfile {
    let trusted = |trust: &TrustSpec| -> (Vec<String>, Vec<Thumbprint>) {
        (
            trust
                .server_names
                .iter()
                .map(|name| name.as_str().to_owned())
                .collect(),
            trust
                .root_cas
                .iter()
                .map(|key| Thumbprint::of_der(&materials.roots[key]))
                .collect(),
        )
    };
    let security = match &wifi.security {
        WifiSecuritySpec::Psk { password, .. } => WlanSecurity::Wpa2Personal {
            passphrase: password.as_str().to_owned(),
        },
        WifiSecuritySpec::EapTls {
            identity, trust, ..
        } => {
            let (server_names, trusted_root_cas) = trusted(trust);
            // The certificate's owner decides whose credentials 802.1X presents.
            let auth_mode = match materials.identity(identity) {
                Some((IdentityKind::PerPerson, _)) => OneXAuthMode::User,
                _ => OneXAuthMode::Machine,
            };
            WlanSecurity::Wpa2EnterpriseTls {
                server_names,
                trusted_root_cas,
                auth_mode,
            }
        }
        WifiSecuritySpec::Peap { trust, .. } => {
            let (server_names, trusted_root_cas) = trusted(trust);
            WlanSecurity::Wpa2EnterprisePeap {
                server_names,
                trusted_root_cas,
                auth_mode: OneXAuthMode::User,
            }
        }
    };
    WlanProfile {
        ssid: wifi.ssid.as_str().to_owned(),
        hidden: wifi.hidden,
        auto_connect: wifi.auto_join,
        security,
    }
}
