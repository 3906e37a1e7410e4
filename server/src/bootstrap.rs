//! What happens before the server answers its first request: the data
//! directory, the CA, the server's TLS certificate and the first technician token.

use chrono::{DateTime, Duration, Utc};
use flotte_config::Settings;
use flotte_pki::CertificateAuthority;
use flotte_storage::Store;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// The TLS certificate is renewed when it has less than this left.
const TLS_RENEW_BEFORE_DAYS: i64 = 30;
const TLS_VALIDITY_DAYS: u32 = 397;
/// The file a generated bootstrap token is written to, inside the data directory.
pub const TOKEN_FILE: &str = "admin-token";

pub struct Prepared {
    pub ca: Arc<CertificateAuthority>,
    /// Server certificate followed by the issuing CA.
    pub tls_chain_pem: String,
    pub tls_key_pem: String,
}

/// Create or load everything in the data directory. Safe to run on every start.
pub async fn prepare(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
) -> anyhow::Result<Prepared> {
    let dir = &settings.data_dir;
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let ca = CertificateAuthority::load_or_create(dir, &settings.organisation, now)?;
    let (tls_chain_pem, tls_key_pem) = server_certificate(dir, &ca, &settings.tls_hosts(), now)?;
    bootstrap_token(settings, store, now).await?;
    Ok(Prepared {
        ca: Arc::new(ca),
        tls_chain_pem,
        tls_key_pem,
    })
}

/// Reuse the stored certificate while it names the same hosts and has time
/// left; otherwise issue a new one.
fn server_certificate(
    dir: &Path,
    ca: &CertificateAuthority,
    hosts: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<(String, String)> {
    let cert_path = dir.join("tls.pem");
    let key_path = dir.join("tls-key.pem");
    let hosts_path = dir.join("tls-hosts");
    let wanted_hosts = hosts.join("\n");
    if let (Ok(chain), Ok(key), Ok(stored_hosts)) = (
        fs::read_to_string(&cert_path),
        fs::read_to_string(&key_path),
        fs::read_to_string(&hosts_path),
    ) {
        let leaf = flotte_pki::pem_to_der(&chain)?;
        let info = flotte_pki::certificate_info(&leaf)?;
        if stored_hosts == wanted_hosts
            && info.not_after - now > Duration::days(TLS_RENEW_BEFORE_DAYS)
            && ca.verify_issued(&leaf, now).is_ok()
        {
            return Ok((chain, key));
        }
        tracing::info!("renewing the server's TLS certificate");
    }
    let issued = ca.issue_server_certificate(hosts, now, TLS_VALIDITY_DAYS)?;
    let chain = format!("{}{}", issued.cert_pem, ca.issuing_pem());
    let key = issued
        .key_pem
        .ok_or_else(|| anyhow::anyhow!("the CA returned a server certificate without its key"))?;
    write_private(&key_path, key.as_bytes())?;
    fs::write(&cert_path, &chain)?;
    fs::write(&hosts_path, &wanted_hosts)?;
    Ok((chain, key))
}

/// The first technician token: the configured one, or a generated one written
/// to `<data dir>/admin-token` so that the operator can read it once.
async fn bootstrap_token(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if let Some(token) = settings.admin_token.as_deref().filter(|t| !t.is_empty()) {
        if token.len() < 16 {
            anyhow::bail!("FLOTTE_ADMIN_TOKEN must be at least 16 characters");
        }
        store
            .ensure_token("admin (configured)", token, "technician", now)
            .await?;
        return Ok(());
    }
    let path = settings.data_dir.join(TOKEN_FILE);
    let token = match fs::read_to_string(&path) {
        Ok(existing) => existing.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = generate_token();
            write_private(&path, format!("{token}\n").as_bytes())?;
            tracing::info!(path = %path.display(), "generated the bootstrap technician token");
            token
        }
        Err(e) => return Err(e.into()),
    };
    store
        .ensure_token("bootstrap", &token, "technician", now)
        .await?;
    Ok(())
}

/// 256 random bits, URL-safe.
pub fn generate_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Write a secret readable by the owner only, from the moment it exists.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
