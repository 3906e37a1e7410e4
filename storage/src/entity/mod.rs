//! sea-orm entities: one file per table, columns as the migrations made them.

pub mod api_token;
pub mod audit_log;
pub mod command;
pub mod device;
pub mod enrollment;
pub mod school;
