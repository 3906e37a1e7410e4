//! The composition root: the only place that builds the real adapters (the
//! database, the CA, the APNs client, the clock) and hands them to the server
//! and the worker. The integration tests start Flotte through this too.

pub mod admin;
pub mod client;
pub mod remote;

use flotte_config::{LogFormat, Settings};
use flotte_core::{Clock, SystemClock};
use flotte_server::{AppState, Application, Prepared};
use flotte_storage::Store;
use flotte_worker::WorkerDeps;
use flotte_worker::apns::StoredCertificatePusher;
use std::net::SocketAddr;
use std::sync::Arc;

/// Logs as configured: readable lines for a terminal, JSON for a log pipeline.
pub fn init_tracing(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match settings.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Flotte with its adapters built and the data directory prepared.
pub struct Runtime {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub prepared: Prepared,
    /// The LDAP directory, when configured; otherwise the local directory.
    pub ldap: Option<flotte_directory::LdapSettings>,
}

impl Runtime {
    /// Connect, migrate and prepare the data directory, with the wall clock.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        Self::start_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn start_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        install_crypto_provider();
        std::fs::create_dir_all(&settings.data_dir)?;
        let store = Store::connect(&settings.database_url()).await?;
        store.migrate().await?;
        let prepared = flotte_server::prepare(&settings, &store, clock.now()).await?;
        let store = store.with_sealing_key(&prepared.sealing_key);
        import_configured_push_certificate(&settings, &store, clock.now()).await?;
        let ldap = ldap_settings(&settings)?;
        Ok(Self {
            settings: Arc::new(settings),
            store,
            clock,
            prepared,
            ldap,
        })
    }

    pub async fn migrate_only(settings: Settings) -> anyhow::Result<()> {
        std::fs::create_dir_all(&settings.data_dir)?;
        let store = Store::connect(&settings.database_url()).await?;
        store.migrate().await?;
        tracing::info!("database schema is up to date");
        Ok(())
    }

    /// Bind the HTTPS listener (if serving) and report the address it got.
    pub fn bind(&self) -> anyhow::Result<Application> {
        let state = AppState::new(
            self.settings.clone(),
            self.store.clone(),
            self.clock.clone(),
            self.prepared.ca.clone(),
            self.prepared.signer.clone(),
        )
        .with_authenticator(self.authenticator());
        Application::build(state, &self.prepared)
    }

    pub fn worker_deps(&self) -> anyhow::Result<WorkerDeps> {
        Ok(WorkerDeps {
            store: self.store.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            pusher: Arc::new(StoredCertificatePusher::new(
                self.store.clone(),
                self.settings.apns.clone(),
            )),
            directory: self.directory_source(),
            profiles: Arc::new(flotte_worker::ProfileKit {
                ca: self.prepared.ca.clone(),
                signer_cert_pem: self.prepared.signer.cert_pem.clone(),
                signer_key_pem: self.prepared.signer.key_pem.clone(),
                signer_chain_pem: self.prepared.signer.chain_pem.clone(),
            }),
        })
    }

    /// Staff passwords are checked by an LDAP bind when a directory is
    /// configured, else against the local Argon2id accounts.
    pub fn authenticator(&self) -> Arc<dyn flotte_core::auth::StaffAuthenticator> {
        match &self.ldap {
            Some(ldap) => Arc::new(flotte_directory::LdapAuthenticator::new(ldap.clone())),
            None => Arc::new(flotte_server::local_auth::LocalAuthenticator::new(
                self.store.clone(),
            )),
        }
    }

    /// What the sync job reads from: LDAP, or nothing in local mode.
    pub fn directory_source(&self) -> Option<Arc<dyn flotte_core::directory::DirectorySource>> {
        self.ldap.clone().map(|ldap| {
            Arc::new(flotte_directory::LdapSource::new(ldap))
                as Arc<dyn flotte_core::directory::DirectorySource>
        })
    }

    /// Run the chosen roles until `shutdown` resolves.
    pub async fn run(
        self,
        serve: bool,
        work: bool,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let stop = {
            let tx = tx.clone();
            async move {
                shutdown.await;
                let _ = tx.send(());
            }
        };
        tokio::spawn(stop);
        let wait = |tx: &tokio::sync::broadcast::Sender<()>| {
            let mut rx = tx.subscribe();
            async move {
                let _ = rx.recv().await;
            }
        };
        let server = if serve {
            let app = self.bind()?;
            let addr: SocketAddr = app.local_addr()?;
            tracing::info!(%addr, public_url = %self.settings.public_url(), "HTTPS server listening");
            Some(tokio::spawn(app.run_until_stopped(wait(&tx))))
        } else {
            None
        };
        let worker = if work {
            let deps = self.worker_deps()?;
            Some(tokio::spawn(flotte_worker::run(
                deps,
                worker_name(),
                wait(&tx),
            )))
        } else {
            None
        };
        if let Some(server) = server {
            server.await??;
        }
        if let Some(worker) = worker {
            worker.await??;
        }
        Ok(())
    }
}

/// A worker name unique to this process, so that the job tables can tell a
/// dead worker's jobs from a live one's.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}-{}-{}", std::process::id(), &uuid_suffix())
}

fn uuid_suffix() -> String {
    flotte_server::bootstrap::generate_token()[..8].to_owned()
}

/// A push certificate named in the settings is imported into the database,
/// where every worker reads the active one from.
async fn import_configured_push_certificate(
    settings: &Settings,
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let Some(path) = &settings.apns.certificate_path else {
        return Ok(());
    };
    let pem = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("APNs certificate {}: {e}", path.display()))?;
    let actor = flotte_core::audit::AuditEntry::new("system", "apple.push_certificate.import", "")
        .from_source(Some(path.display().to_string()));
    flotte_server::api::import_push_certificate(store, &pem, false, &actor, now)
        .await
        .map_err(|e| anyhow::anyhow!("APNs certificate {}: {e}", path.display()))?;
    Ok(())
}

/// The adapter's settings from `[ldap]`; `None` without `ldap.url`.
pub fn ldap_settings(
    settings: &Settings,
) -> anyhow::Result<Option<flotte_directory::LdapSettings>> {
    let ldap = &settings.ldap;
    let (Some(url), Some(bind_dn), Some(password), Some(base)) = (
        ldap.url.as_ref().filter(|u| !u.trim().is_empty()),
        &ldap.bind_dn,
        &ldap.bind_password,
        &ldap.base_dn,
    ) else {
        return Ok(None);
    };
    let mut out = flotte_directory::LdapSettings::new(url, bind_dn, password, base);
    out.technician_group_dn = ldap.technician_group.clone();
    out.starttls = ldap.starttls;
    if ldap.page_size > 0 {
        out.page_size = ldap.page_size;
    }
    if ldap.timeout_secs > 0 {
        out.timeout = std::time::Duration::from_secs(ldap.timeout_secs);
    }
    if let Some(path) = &ldap.ca_path {
        out.ca_cert_pem = Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("ldap.ca_path {}: {e}", path.display()))?,
        );
    }
    Ok(Some(out))
}

/// rustls needs one process-wide crypto provider; ring is the only one built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
