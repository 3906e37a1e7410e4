//! Flotte's storage: sea-orm over SQLite (the embedded default) or PostgreSQL
//! (for several servers and workers), with the job tables on the same database
//! so that a data change and the job that follows it commit together.
//!
//! Every query that returns school data takes a [`SchoolScope`](flotte_core::auth::SchoolScope)
//! and applies it in SQL. Errors leave as [`CoreError`](flotte_core::CoreError).

mod accounts;
mod apple;
mod audit;
mod checkin_batch;
mod commands;
mod db;
mod devices;
mod directory;
mod enrollments;
pub mod entity;
mod group_commit;
mod jobs;
mod loans;
mod profiles;
mod prune;
mod pushes;
mod register;
mod seal;
mod tokens;
mod windows;

pub use accounts::{LocalAccount, NewSession, SessionRecord, StaffFacts, ThrottleLimit};
pub use apple::{
    APPLE_IDENTITY, AuthenticateFacts, IdentityBinding, IssuedRecord, NextCommand, PollState,
    PushCertificate, Report, School, TokenBinding,
};
pub use commands::{CommandRecord, NewCommand};
pub use db::{Backend, JobPool, Store};
pub use devices::{DeviceFilter, DeviceRecord, NewDevice};
pub use directory::{
    ApplyContext, ClassRecord, CookieUpdate, DirectoryRun, KnownState, PeopleFilter, PersonClass,
    PersonRecord, PersonSchool, RunKind, RunReport, RunStatus, SyncInput, SyncRequest,
};
pub use enrollments::TokenUpdate;
pub use loans::{
    FlaggedLoan, LoanCounts, LoanDevice, LoanFilter, LoanPerson, LoanRecord, LoanSchool, LoanState,
    LoanStatus, NewLoan, PersonalisationFacts, ReturnLoan,
};
pub use profiles::{
    AssignmentRecord, CertificateHolder, CertificateRecord, CrlRecord, DeviceGroupRecord,
    DeviceProfileFacts, EAP_DEVICE, EAP_PERSON, EapCertificate, LoanHolder, NewEapCertificate,
    NewProfileVersion, ProfileRecord, ProfileStateRecord, ProfileVersionRecord, ReportedProfiles,
    RevocationReport, RevokedEntry, platforms_of,
};
pub use prune::PruneReport;
pub use pushes::{
    ALL_PROFILES, BatchOutcome, ChangeKind, DeviceChanges, NewPush, ProfileChange, ProgressReport,
    PushBatchWork, PushRecord, PushTargetRecord, Seen,
};
pub use register::{ImportOutcome, OpenLoanSummary, RegisterEntry, RegisterFilter};
pub use tokens::{NewToken, TokenRecord, hash_token};
pub use windows::{
    EnrolledWindowsDevice, NewWindowsEnrollmentSecret, NonceRotation, WINDOWS_IDENTITY,
    WindowsCommandOutcome, WindowsCredentials, WindowsDeviceRecord, WindowsEnrolledBy,
    WindowsEnrollment, WindowsEnrollmentSecret, WindowsIdentity, WindowsInventory,
    WindowsMessageOutcome, WindowsOutgoing, WindowsReport, WindowsSessionStep,
};
