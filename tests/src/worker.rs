//! A worker in its own thread and runtime, so that a test can kill it the way
//! a crash would: every task dropped at once, nothing acknowledged, no goodbye.

use flotte::Runtime;
use flotte_config::Settings;
use std::sync::mpsc;

pub struct KillableWorker {
    kill: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KillableWorker {
    pub fn start(settings: Settings) -> Self {
        let (kill_tx, kill_rx) = mpsc::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.spawn(async move {
                let runtime = Runtime::start(settings).await.expect("worker starts");
                let deps = runtime.worker_deps().expect("deps");
                let _ = ready_tx.send(());
                let _ =
                    flotte_worker::run(deps, flotte::worker_name(), std::future::pending()).await;
            });
            let _ = kill_rx.recv();
            rt.shutdown_background();
        });
        ready_rx.recv().expect("worker thread started");
        Self {
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    /// Drop the worker's runtime at once, mid-whatever it was doing.
    pub fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KillableWorker {
    fn drop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
    }
}
