//! Kicks job workers that stopped heartbeating.
//!
//! An apalis 1.0 worker on the SQL backends parks after an empty fetch and is woken by a
//! timer (its heartbeat, our poll interval). Under heavy write contention on SQLite we saw
//! workers whose wake-up was lost: no heartbeat, no fetch, their running jobs never
//! acknowledged, while the process was otherwise healthy. Every worker's events are watched
//! here; one silent for two heartbeats is paused and resumed, which wakes its task.

use apalis::prelude::{Event, WorkerContext};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
pub(crate) struct Watchdog {
    seen: Arc<Mutex<HashMap<String, (WorkerContext, Instant)>>>,
}

impl Watchdog {
    /// Note a worker's event (hooked into the monitor).
    pub(crate) fn saw(&self, worker: &WorkerContext, event: &Event) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        match event {
            Event::Stop | Event::Exit => {
                seen.remove(worker.name());
            }
            _ => {
                seen.insert(worker.name().to_owned(), (worker.clone(), Instant::now()));
            }
        }
    }

    /// The workers silent for longer than `limit`, marked as seen now (one kick per limit).
    fn silent(&self, limit: Duration) -> Vec<WorkerContext> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.values_mut()
            .filter(|(worker, at)| worker.is_running() && at.elapsed() > limit)
            .map(|(worker, at)| {
                *at = Instant::now();
                worker.clone()
            })
            .collect()
    }

    /// Twice every heartbeat interval, kick the workers silent for two of them.
    pub(crate) async fn run(self, heartbeat: Duration) {
        loop {
            tokio::time::sleep(heartbeat / 2).await;
            for worker in self.silent(heartbeat * 2) {
                tracing::warn!(worker = %worker.name(), "job worker silent for two heartbeats; waking it");
                if worker.pause().is_ok() {
                    let _ = worker.resume();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_workers_silent_past_the_limit_are_kicked_and_then_once_per_limit() {
        let dog = Watchdog::default();
        let mut quiet = WorkerContext::new("quiet");
        let mut busy = WorkerContext::new("busy");
        quiet.start().unwrap();
        busy.start().unwrap();
        dog.saw(&quiet, &Event::HeartBeat);
        dog.saw(&busy, &Event::HeartBeat);
        std::thread::sleep(Duration::from_millis(30));
        dog.saw(&busy, &Event::HeartBeat);
        let kicked: Vec<String> = dog
            .silent(Duration::from_millis(20))
            .iter()
            .map(|w| w.name().to_owned())
            .collect();
        assert_eq!(kicked, ["quiet"]);
        assert!(
            dog.silent(Duration::from_millis(20)).is_empty(),
            "not twice at once"
        );
        dog.saw(&quiet, &Event::Stop);
        std::thread::sleep(Duration::from_millis(30));
        let kicked: Vec<String> = dog
            .silent(Duration::from_millis(20))
            .iter()
            .map(|w| w.name().to_owned())
            .collect();
        assert_eq!(kicked, ["busy"], "a stopped worker is forgotten");
    }
}
