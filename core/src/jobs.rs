//! Background jobs: what the server asks the worker to do.
//!
//! Each job is a small serde struct with a queue name. The server writes a job
//! in the same database transaction as the data change it follows from, so a
//! change never commits without its job or the other way round.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A job type the worker knows how to run.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The apalis queue (`job_type`) the job is stored under. Part of the
    /// on-disk format: renaming one strands the jobs already queued.
    const QUEUE: &'static str;

    /// Jobs with the same key are stored once while one is still waiting;
    /// that is how repeated wake-ups for one device coalesce.
    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

/// Wake a device so that it fetches its queued commands (an APNs push for an
/// iPad). Coalesced per device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeDevice {
    pub device_id: String,
    /// A coalescing window: all wake-ups for one device in the same window share one job.
    pub window: i64,
}

impl Job for WakeDevice {
    const QUEUE: &'static str = "flotte.wake_device";

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("{}:{}", self.device_id, self.window))
    }
}

/// Keep the command and job tables bounded: delete finished rows past retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneTables {
    pub requested_by: String,
}

impl Job for PruneTables {
    const QUEUE: &'static str = "flotte.prune_tables";
}

/// Synchronise the directory from LDAP: read (everything, or the changes since
/// the stored cookie), plan, apply. The run row `run_id` was written together
/// with the job and receives the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDirectory {
    pub run_id: String,
    /// Read everything instead of the changes since the last run.
    pub full: bool,
}

impl Job for SyncDirectory {
    const QUEUE: &'static str = "flotte.sync_directory";

    fn idempotency_key(&self) -> Option<String> {
        Some(self.run_id.clone())
    }
}

/// Plan and queue one batch of a push's devices (those with `seq` in
/// `[batch × batch_size, (batch + 1) × batch_size)`). `generation` counts resumptions of a
/// paused push, so a resumed batch gets a fresh key while a re-run of the same batch (a
/// worker killed mid-job) is stored once and, by the push targets' own state, sends nothing
/// twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushBatch {
    pub push_id: String,
    pub batch: u32,
    pub generation: u32,
}

impl Job for PushBatch {
    const QUEUE: &'static str = "flotte.push_batch";

    fn idempotency_key(&self) -> Option<String> {
        Some(format!(
            "{}:{}:{}",
            self.push_id, self.generation, self.batch
        ))
    }
}

/// Follow a running push: copy the devices' answers into its progress, wake devices that
/// stay silent, finish it when every device has answered (or the push expired). Each tick
/// enqueues the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushProgress {
    pub push_id: String,
    pub tick: u64,
}

impl Job for PushProgress {
    const QUEUE: &'static str = "flotte.push_progress";

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("{}:{}", self.push_id, self.tick))
    }
}

/// Bring one device to its desired profile state (after a certificate was renewed or
/// revoked). Coalesced per device and window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileDevice {
    pub device_id: String,
    pub window: i64,
}

impl Job for ReconcileDevice {
    const QUEUE: &'static str = "flotte.reconcile_device";

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("{}:{}", self.device_id, self.window))
    }
}

/// Revoke client certificates whose loan ended or whose person departed, renew those close
/// to expiry (by reconciling their devices), and publish a fresh CRL when needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainCertificates {
    pub requested_by: String,
}

impl Job for MaintainCertificates {
    const QUEUE: &'static str = "flotte.maintain_certificates";

    fn idempotency_key(&self) -> Option<String> {
        Some(self.requested_by.clone())
    }
}

/// Give a lent device its pupil's configuration: the device name (and, through
/// [`ReconcileDevice`], the pupil's profiles). Written with the loan; done once per loan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonaliseLoanDevice {
    pub loan_id: String,
}

impl Job for PersonaliseLoanDevice {
    const QUEUE: &'static str = "flotte.personalise_loan_device";

    fn idempotency_key(&self) -> Option<String> {
        Some(self.loan_id.clone())
    }
}

/// The daily loan check: mark newly overdue loans and tell their schools, flag open
/// loans whose borrower left, and anonymise returned loans past their retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainLoans {
    pub requested_by: String,
}

impl Job for MaintainLoans {
    const QUEUE: &'static str = "flotte.maintain_loans";

    fn idempotency_key(&self) -> Option<String> {
        Some(self.requested_by.clone())
    }
}
