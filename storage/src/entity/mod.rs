//! sea-orm entities: one file per table, columns as the migrations made them.

pub mod api_token;
pub mod audit_log;
pub mod certificate;
pub mod command;
pub mod device;
pub mod enrollment;
pub mod enrollment_link;
pub mod installed_profile;
pub mod push_certificate;
pub mod school;
pub mod windows_command_delivery;
pub mod windows_device;
pub mod windows_enrollment_secret;
