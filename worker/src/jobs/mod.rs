//! Job handlers: each takes its job and the worker's dependencies.

mod certificates;
mod directory_sync;
mod loans;
mod prune;
mod push_fanout;
mod reconcile;
mod wake;

pub use directory_sync::perform_directory_sync;
pub(crate) use directory_sync::{schedule_directory_sync, sync_directory};
pub(crate) use prune::prune_tables;
pub(crate) use wake::wake_device;

pub use certificates::{ProfileKit, refresh_crl};
pub(crate) use certificates::{maintain_certificates, schedule as schedule_certificates};
pub(crate) use loans::{maintain_loans, personalise_loan_device, schedule as schedule_loans};
pub(crate) use push_fanout::{push_batch, push_progress};
pub(crate) use reconcile::reconcile_device;
