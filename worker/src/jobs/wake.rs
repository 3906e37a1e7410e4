use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use flotte_core::audit::AuditEntry;
use flotte_core::jobs::WakeDevice;
use flotte_core::push::PushError;

/// Wake a device that has queued commands. A device without a push token yet
/// (registered, not enrolled) is skipped: it will fetch its commands when it
/// first checks in.
pub(crate) async fn wake_device(
    job: WakeDevice,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let now = deps.clock.now();
    let outcome = match deps.store.push_target(&job.device_id).await? {
        None => "skipped: no push token".to_owned(),
        Some(target) => match deps.pusher.push(&target).await {
            Ok(()) => "pushed".to_owned(),
            Err(PushError::BadToken(reason)) => {
                deps.store
                    .mark_push_token_invalid(&job.device_id, &reason, now)
                    .await?;
                format!("token invalid: {reason}")
            }
            // Returning the error hands the job back to apalis' retry policy.
            Err(e @ PushError::Transient(_)) => return Err(Box::new(e)),
            Err(e @ (PushError::Rejected(_) | PushError::NotConfigured)) => {
                tracing::error!(device = %job.device_id, error = %e, "push not sent");
                format!("not sent: {e}")
            }
        },
    };
    deps.store
        .audit(
            &AuditEntry::new("system", "device.wake", format!("device:{}", job.device_id))
                .with_details(serde_json::json!({ "outcome": outcome })),
            now,
        )
        .await?;
    Ok(())
}
