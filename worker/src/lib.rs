//! Flotte's background worker: apalis workers over the shared database, one
//! per job type, plus a small scheduler for periodic jobs. Handlers decide
//! between "retry" (the error is returned) and "give up" (logged and audited).

pub mod apns;
mod jobs;
mod runtime;
mod watchdog;

pub use jobs::perform_directory_sync;
pub use jobs::{ProfileKit, refresh_crl};
pub use runtime::{WorkerDeps, run};
