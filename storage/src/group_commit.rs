//! Group commit: the writes of many requests in one transaction.
//!
//! SQLite has one writer. A write transaction of its own costs every check-in a hand-off of the
//! write lock, a BEGIN, a COMMIT and a WAL append, and keeps all other writers waiting
//! meanwhile: check-ins were bound by that queue, not by the processor. Here a request that
//! arrives while a batch is being written waits for the next batch, which carries everything
//! that queued up. Under load batches grow by themselves; a lone request is written at once.
//! PostgreSQL gains fewer round trips from the same code.

use flotte_core::CoreError;
use std::future::Future;
use tokio::sync::oneshot;

/// Enough to carry a burst of check-ins while keeping statements well under the bind-parameter
/// limits of both databases.
const MAX_BATCH: usize = 64;

pub(crate) struct GroupCommit<W, R> {
    waiting: std::sync::Mutex<Vec<Waiting<W, R>>>,
    /// Held by the request whose batch is being written.
    writing: tokio::sync::Mutex<()>,
}

struct Waiting<W, R> {
    write: W,
    done: oneshot::Sender<Result<R, CoreError>>,
}

impl<W, R> std::fmt::Debug for GroupCommit<W, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<W, R> Default for GroupCommit<W, R> {
    fn default() -> Self {
        Self {
            waiting: std::sync::Mutex::new(Vec::new()),
            writing: tokio::sync::Mutex::new(()),
        }
    }
}

impl<W: Send + 'static, R: Send + 'static> GroupCommit<W, R> {
    /// Write `write` together with whatever else is waiting. `apply` gets the batch in arrival
    /// order and answers each write in the same order.
    pub(crate) async fn submit<F, Fut>(&self, write: W, apply: F) -> Result<R, CoreError>
    where
        F: Fn(Vec<W>) -> Fut,
        Fut: Future<Output = Vec<Result<R, CoreError>>> + Send + 'static,
    {
        let (done, mut answer) = oneshot::channel();
        self.queue().push(Waiting { write, done });
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(interrupted()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            // Whoever holds this answers every write it took before letting go, so after it
            // either ours is answered or it is still queued and ours to take.
            let _writing = self.writing.lock().await;
            let batch: Vec<Waiting<W, R>> = {
                let mut queue = self.queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                continue;
            }
            let (writes, dones): (Vec<W>, Vec<_>) =
                batch.into_iter().map(|w| (w.write, w.done)).unzip();
            // Spawned: a request that goes away mid-batch must not abandon the others' writes.
            if let Ok(results) = tokio::spawn(apply(writes)).await {
                for (done, result) in dones.into_iter().zip(results) {
                    let _ = done.send(result);
                }
            }
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Waiting<W, R>>> {
        // A panic while holding this lock cannot leave the queue half-changed (push or drain).
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn interrupted() -> CoreError {
    CoreError::storage(std::io::Error::other(
        "the batch carrying this write did not finish",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Concurrent writes are carried in fewer batches than writes, each answered with its own
    /// result, and none is left behind when more wait than one batch holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_batches_and_each_gets_its_answer() {
        let group = Arc::new(GroupCommit::<usize, usize>::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..500 {
            let group = group.clone();
            let batches = batches.clone();
            tasks.push(tokio::spawn(async move {
                group
                    .submit(i, |writes| {
                        let batches = batches.clone();
                        async move {
                            batches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                            writes
                                .into_iter()
                                .map(|w| {
                                    if w % 7 == 0 {
                                        Err(CoreError::Conflict(format!("{w}")))
                                    } else {
                                        Ok(w * 2)
                                    }
                                })
                                .collect()
                        }
                    })
                    .await
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(doubled) => assert_eq!(doubled, i * 2),
                Err(CoreError::Conflict(which)) => {
                    assert_eq!(i % 7, 0);
                    assert_eq!(which, i.to_string());
                }
                Err(other) => panic!("write {i}: {other}"),
            }
        }
        let batches = batches.load(Ordering::SeqCst);
        // Shared: far fewer batches than writes; bounded: none larger than MAX_BATCH.
        assert!(
            (500 / MAX_BATCH..100).contains(&batches),
            "{batches} batches"
        );
    }
}
