//! Pure wire-format builders for device management.
//!
//! * [`apple`]: configuration profiles (`.mobileconfig`, unsigned XML plist) built from typed
//!   payloads, with stable identifiers so that a new version of a profile replaces the old one
//!   on the device, and MDM command plists (`{CommandUUID, Command: {RequestType, ...}}`).
//! * [`windows`]: SyncML command blocks (`<Add>`, `<Replace>`, `<Exec>`, `<Delete>`, `<Get>`,
//!   `<Atomic>`) for the configuration service providers a school laptop needs.
//! * [`template`]: profile templates as administrators save them, with `{{variables}}`
//!   resolved per device and person, rendered for either platform with a stable checksum.
//!
//! Nothing here performs I/O, reads the clock or draws random numbers: identifiers are derived
//! from caller-supplied names, and SyncML command ids come from the caller. Signing profiles is
//! somebody else's job.

#![warn(missing_docs)]

pub mod apple;
pub mod template;
pub mod windows;

mod b64;
