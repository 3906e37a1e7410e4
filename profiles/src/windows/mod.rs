//! Windows MDM (OMA-DM / SyncML 1.2) command blocks for configuration service providers.
//!
//! Builders return [`SyncMlCommand`] values; [`SyncMlCommand::to_xml`] renders the bare
//! `<Add>`/`<Replace>`/`<Exec>`/… element that the server places inside `<SyncBody>`. Every
//! `CmdID` comes from the caller (the server maps them to its queue), either directly as a
//! [`CmdId`] or through a [`CmdIdSource`] when one setting needs several commands.
//!
//! Text is escaped by the XML writer, so values containing `&`, `<` or quotes survive; a WLAN
//! profile is itself an XML document, carried escaped inside `<Data>` as Microsoft's WiFi CSP
//! examples do.
//!
//! Not covered: a Windows counterpart of Apple's web clip. No CSP adds a single URL shortcut:
//! `Policy/Config/Start/ConfigureStartPins` replaces the whole Start pin list with a JSON
//! document, and Edge's managed favourites are an ADMX-backed policy that needs the Edge ADMX
//! ingested first. Both are deliberate product decisions rather than a typed builder.

mod csp;
mod syncml;
mod wlan;

pub use csp::{
    ComputerNameNode, InventoryNode, KeyLocation, PfxCertificate, Scope, Thumbprint,
    WindowsRestrictions, computer_name, delete_nodes, get_nodes, lock_screen_message,
    pfx_certificate_delete, pfx_certificate_install, pfx_certificate_uri, reboot_now, remote_lock,
    remote_wipe, restrictions, root_ca_certificate, root_ca_certificate_delete,
    root_ca_certificate_uri, wifi_profile, wifi_profile_delete, wifi_profile_uri,
};
pub use syncml::{
    CmdId, CmdIdSource, CommandBody, Format, Item, SequentialCmdIds, SyncMlCommand, render_commands,
};
pub use wlan::{OneXAuthMode, WlanProfile, WlanSecurity};

/// Why a SyncML command could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CspError {
    /// A `CmdID` was empty or contained characters that cannot appear in XML text.
    #[error("invalid CmdID {0:?}")]
    InvalidCmdId(String),
    /// A value contains characters that XML 1.0 cannot carry (control characters).
    #[error("{field} contains a character that XML cannot carry")]
    UnencodableText {
        /// The field that was rejected.
        field: &'static str,
    },
    /// A field has a value the device would reject.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field that was rejected.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}
