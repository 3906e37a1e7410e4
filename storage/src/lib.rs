//! Flotte's storage: sea-orm over SQLite (the embedded default) or PostgreSQL
//! (for several servers and workers), with the job tables on the same database
//! so that a data change and the job that follows it commit together.
//!
//! Every query that returns school data takes a [`SchoolScope`](flotte_core::auth::SchoolScope)
//! and applies it in SQL. Errors leave as [`CoreError`](flotte_core::CoreError).

mod apple;
mod audit;
mod commands;
mod db;
mod devices;
mod enrollments;
pub mod entity;
mod jobs;
mod prune;
mod seal;
mod tokens;
mod windows;

pub use apple::{
    APPLE_IDENTITY, AuthenticateFacts, IdentityBinding, IssuedRecord, NextCommand, PushCertificate,
    Report, School,
};
pub use commands::{CommandRecord, NewCommand};
pub use db::{Backend, JobPool, Store};
pub use devices::{DeviceFilter, DeviceRecord, NewDevice};
pub use enrollments::TokenUpdate;
pub use prune::PruneReport;
pub use tokens::{TokenRecord, hash_token};
pub use windows::{
    EnrolledWindowsDevice, NewWindowsEnrollmentSecret, NonceRotation, WindowsCommandOutcome,
    WindowsCredentials, WindowsDeviceRecord, WindowsEnrolledBy, WindowsEnrollment,
    WindowsEnrollmentSecret, WindowsInventory, WindowsMessageOutcome, WindowsOutgoing,
    WindowsReport, WindowsSessionStep,
};
