//! WLAN profile documents (`WLANProfile` schema) for the WiFi CSP's `WlanXml` node.
//!
//! The EAP parts follow Microsoft's EapHost schemas: `EapTlsConnectionPropertiesV1` (+`V2`
//! extensions) for EAP-TLS and `MsPeapConnectionPropertiesV1` with MSCHAPv2 inside for PEAP.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesStart, Event};
use serde::{Deserialize, Serialize};

use super::CspError;
use super::csp::Thumbprint;
use super::syncml::{check_xml_text, end, into_string, start, text_element};

const NS_WLAN: &str = "http://www.microsoft.com/networking/WLAN/profile/v1";
const NS_ONEX: &str = "http://www.microsoft.com/networking/OneX/v1";
const NS_EAP_HOST: &str = "http://www.microsoft.com/provisioning/EapHostConfig";
const NS_EAP_COMMON: &str = "http://www.microsoft.com/provisioning/EapCommon";
const NS_BASE_EAP: &str = "http://www.microsoft.com/provisioning/BaseEapConnectionPropertiesV1";
const NS_EAP_TLS: &str = "http://www.microsoft.com/provisioning/EapTlsConnectionPropertiesV1";
const NS_EAP_TLS_V2: &str = "http://www.microsoft.com/provisioning/EapTlsConnectionPropertiesV2";
const NS_PEAP: &str = "http://www.microsoft.com/provisioning/MsPeapConnectionPropertiesV1";
const NS_PEAP_V2: &str = "http://www.microsoft.com/provisioning/MsPeapConnectionPropertiesV2";
const NS_MSCHAPV2: &str = "http://www.microsoft.com/provisioning/MsChapV2ConnectionPropertiesV1";

/// Which credentials 802.1X uses (`<authMode>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OneXAuthMode {
    /// The computer's credentials only (before and after logon).
    Machine,
    /// The signed-in user's credentials only.
    User,
    /// Computer before logon, user afterwards.
    MachineOrUser,
}

impl OneXAuthMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Machine => "machine",
            Self::User => "user",
            Self::MachineOrUser => "machineOrUser",
        }
    }
}

/// Security of a Windows Wi-Fi profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum WlanSecurity {
    /// WPA2-Personal (`WPA2PSK`, AES) with a passphrase.
    Wpa2Personal {
        /// 8 to 63 characters, or 64 hex digits.
        passphrase: String,
    },
    /// WPA2-Enterprise with EAP-TLS; the client certificate must already be installed
    /// (Microsoft: install the certificate before the profile).
    Wpa2EnterpriseTls {
        /// Accepted RADIUS server names (`<ServerNames>`, joined with `;`).
        server_names: Vec<String>,
        /// Root CAs that may issue the RADIUS server certificate (`<TrustedRootCA>`).
        trusted_root_cas: Vec<Thumbprint>,
        /// Machine or user certificate.
        auth_mode: OneXAuthMode,
    },
    /// WPA2-Enterprise with PEAP-MSCHAPv2; Windows asks for (or reuses) a user name and
    /// password.
    Wpa2EnterprisePeap {
        /// Accepted RADIUS server names.
        server_names: Vec<String>,
        /// Root CAs that may issue the RADIUS server certificate.
        trusted_root_cas: Vec<Thumbprint>,
        /// Machine or user credentials.
        auth_mode: OneXAuthMode,
    },
}

/// A Wi-Fi network for the WiFi CSP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WlanProfile {
    /// The SSID; also the profile `<name>`, which the CSP requires to equal the SSID.
    pub ssid: String,
    /// `<nonBroadcast>`: connect even though the network hides its SSID.
    #[serde(default)]
    pub hidden: bool,
    /// `<connectionMode>` `auto` (otherwise `manual`).
    #[serde(default = "default_true")]
    pub auto_connect: bool,
    /// Authentication and encryption.
    pub security: WlanSecurity,
}

fn default_true() -> bool {
    true
}

impl WlanProfile {
    /// Checks the profile and renders the `WLANProfile` document.
    pub fn to_xml(&self) -> Result<String, CspError> {
        self.validate()?;
        let mut writer = Writer::new(Vec::new());
        write(&mut writer, Event::Decl(BytesDecl::new("1.0", None, None)));
        start(&mut writer, ns_element("WLANProfile", NS_WLAN));
        text_element(&mut writer, "name", &self.ssid);
        start(&mut writer, BytesStart::new("SSIDConfig"));
        start(&mut writer, BytesStart::new("SSID"));
        // <hex> identifies the network by its bytes, so non-ASCII SSIDs match regardless of
        // how Windows decodes <name>.
        text_element(&mut writer, "hex", &hex_upper(self.ssid.as_bytes()));
        text_element(&mut writer, "name", &self.ssid);
        end(&mut writer, "SSID");
        text_element(&mut writer, "nonBroadcast", bool_str(self.hidden));
        end(&mut writer, "SSIDConfig");
        text_element(&mut writer, "connectionType", "ESS");
        let mode = if self.auto_connect { "auto" } else { "manual" };
        text_element(&mut writer, "connectionMode", mode);
        start(&mut writer, BytesStart::new("MSM"));
        start(&mut writer, BytesStart::new("security"));
        match &self.security {
            WlanSecurity::Wpa2Personal { passphrase } => {
                auth_encryption(&mut writer, "WPA2PSK", false);
                // The CSP requires keyType and protected before keyMaterial.
                start(&mut writer, BytesStart::new("sharedKey"));
                text_element(&mut writer, "keyType", "passPhrase");
                text_element(&mut writer, "protected", "false");
                text_element(&mut writer, "keyMaterial", passphrase);
                end(&mut writer, "sharedKey");
            }
            WlanSecurity::Wpa2EnterpriseTls {
                server_names,
                trusted_root_cas,
                auth_mode,
            } => {
                auth_encryption(&mut writer, "WPA2", true);
                one_x(&mut writer, *auth_mode, 13, |writer| {
                    start(writer, ns_element("EapType", NS_EAP_TLS));
                    start(writer, BytesStart::new("CredentialsSource"));
                    start(writer, BytesStart::new("CertificateStore"));
                    text_element(writer, "SimpleCertSelection", "true");
                    end(writer, "CertificateStore");
                    end(writer, "CredentialsSource");
                    server_validation(writer, server_names, trusted_root_cas);
                    text_element(writer, "DifferentUsername", "false");
                    ns_text_element(writer, "PerformServerValidation", NS_EAP_TLS_V2, "true");
                    ns_text_element(writer, "AcceptServerName", NS_EAP_TLS_V2, "true");
                    end(writer, "EapType");
                });
            }
            WlanSecurity::Wpa2EnterprisePeap {
                server_names,
                trusted_root_cas,
                auth_mode,
            } => {
                auth_encryption(&mut writer, "WPA2", true);
                one_x(&mut writer, *auth_mode, 25, |writer| {
                    start(writer, ns_element("EapType", NS_PEAP));
                    server_validation(writer, server_names, trusted_root_cas);
                    text_element(writer, "FastReconnect", "true");
                    text_element(writer, "InnerEapOptional", "false");
                    start(writer, ns_element("Eap", NS_BASE_EAP));
                    text_element(writer, "Type", "26");
                    start(writer, ns_element("EapType", NS_MSCHAPV2));
                    text_element(writer, "UseWinLogonCredentials", "false");
                    end(writer, "EapType");
                    end(writer, "Eap");
                    text_element(writer, "EnableQuarantineChecks", "false");
                    text_element(writer, "RequireCryptoBinding", "false");
                    start(writer, BytesStart::new("PeapExtensions"));
                    ns_text_element(writer, "PerformServerValidation", NS_PEAP_V2, "true");
                    ns_text_element(writer, "AcceptServerName", NS_PEAP_V2, "true");
                    end(writer, "PeapExtensions");
                    end(writer, "EapType");
                });
            }
        }
        end(&mut writer, "security");
        end(&mut writer, "MSM");
        end(&mut writer, "WLANProfile");
        Ok(into_string(writer))
    }

    fn validate(&self) -> Result<(), CspError> {
        if self.ssid.is_empty() || self.ssid.len() > 32 {
            return Err(CspError::InvalidField {
                field: "SSID",
                reason: "must be 1 to 32 bytes long".to_owned(),
            });
        }
        check_xml_text("SSID", &self.ssid)?;
        match &self.security {
            WlanSecurity::Wpa2Personal { passphrase } => {
                let len = passphrase.chars().count();
                let raw_psk = len == 64 && passphrase.chars().all(|c| c.is_ascii_hexdigit());
                if !(8..=63).contains(&len) && !raw_psk {
                    return Err(CspError::InvalidField {
                        field: "passphrase",
                        reason: "must be 8 to 63 characters or 64 hex digits".to_owned(),
                    });
                }
                check_xml_text("passphrase", passphrase)
            }
            WlanSecurity::Wpa2EnterpriseTls {
                server_names,
                trusted_root_cas,
                ..
            }
            | WlanSecurity::Wpa2EnterprisePeap {
                server_names,
                trusted_root_cas,
                ..
            } => {
                // Without either, Windows would prompt pupils to trust whatever certificate a
                // (possibly rogue) access point presents.
                if server_names.is_empty() || trusted_root_cas.is_empty() {
                    return Err(CspError::InvalidField {
                        field: "ServerValidation",
                        reason: "name at least one RADIUS server and one trusted root CA"
                            .to_owned(),
                    });
                }
                for name in server_names {
                    check_xml_text("ServerNames", name)?;
                    if name.is_empty() || name.contains(';') {
                        return Err(CspError::InvalidField {
                            field: "ServerNames",
                            reason: format!("{name:?} is empty or contains ';'"),
                        });
                    }
                }
                Ok(())
            }
        }
    }
}

fn auth_encryption(writer: &mut Writer<Vec<u8>>, authentication: &str, one_x: bool) {
    start(writer, BytesStart::new("authEncryption"));
    text_element(writer, "authentication", authentication);
    text_element(writer, "encryption", "AES");
    text_element(writer, "useOneX", bool_str(one_x));
    end(writer, "authEncryption");
}

fn one_x(
    writer: &mut Writer<Vec<u8>>,
    auth_mode: OneXAuthMode,
    eap_type: u8,
    eap_type_body: impl FnOnce(&mut Writer<Vec<u8>>),
) {
    let eap_type = eap_type.to_string();
    start(writer, ns_element("OneX", NS_ONEX));
    text_element(writer, "authMode", auth_mode.as_str());
    start(writer, BytesStart::new("EAPConfig"));
    start(writer, ns_element("EapHostConfig", NS_EAP_HOST));
    start(writer, BytesStart::new("EapMethod"));
    ns_text_element(writer, "Type", NS_EAP_COMMON, &eap_type);
    ns_text_element(writer, "VendorId", NS_EAP_COMMON, "0");
    ns_text_element(writer, "VendorType", NS_EAP_COMMON, "0");
    ns_text_element(writer, "AuthorId", NS_EAP_COMMON, "0");
    end(writer, "EapMethod");
    start(writer, ns_element("Config", NS_EAP_HOST));
    start(writer, ns_element("Eap", NS_BASE_EAP));
    text_element(writer, "Type", &eap_type);
    eap_type_body(writer);
    end(writer, "Eap");
    end(writer, "Config");
    end(writer, "EapHostConfig");
    end(writer, "EAPConfig");
    end(writer, "OneX");
}

fn server_validation(
    writer: &mut Writer<Vec<u8>>,
    server_names: &[String],
    trusted_root_cas: &[Thumbprint],
) {
    start(writer, BytesStart::new("ServerValidation"));
    text_element(writer, "DisableUserPromptForServerValidation", "true");
    text_element(writer, "ServerNames", &server_names.join(";"));
    for ca in trusted_root_cas {
        text_element(writer, "TrustedRootCA", &ca.spaced_lower_hex());
    }
    end(writer, "ServerValidation");
}

fn ns_element<'a>(name: &'a str, namespace: &'a str) -> BytesStart<'a> {
    let mut element = BytesStart::new(name);
    element.push_attribute(("xmlns", namespace));
    element
}

fn ns_text_element(writer: &mut Writer<Vec<u8>>, name: &str, namespace: &str, value: &str) {
    start(writer, ns_element(name, namespace));
    write(
        writer,
        Event::Text(quick_xml::events::BytesText::new(value)),
    );
    end(writer, name);
}

fn write(writer: &mut Writer<Vec<u8>>, event: Event<'_>) {
    writer
        .write_event(event)
        .expect("writing XML into memory cannot fail");
}

fn bool_str(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            // Writing into a String cannot fail.
            let _ = write!(out, "{byte:02X}");
            out
        })
}
