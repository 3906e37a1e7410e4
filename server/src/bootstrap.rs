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
    /// The certificate and key that sign configuration profiles.
    pub signer: Arc<ProfileSigner>,
    /// The key that seals secrets at rest in the database.
    pub sealing_key: [u8; 32],
}

/// Signs `.mobileconfig` files, so that iPads show them as verified.
pub struct ProfileSigner {
    pub cert_pem: String,
    pub key_pem: String,
    pub chain_pem: Vec<String>,
}

impl ProfileSigner {
    pub fn sign(&self, content: &[u8]) -> Result<Vec<u8>, flotte_pki::PkiError> {
        flotte_pki::sign_attached(content, &self.cert_pem, &self.key_pem, &self.chain_pem)
    }
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
    let signer = profile_signer(dir, &ca, now)?;
    let sealing_key = sealing_key(dir)?;
    bootstrap_token(settings, store, now).await?;
    Ok(Prepared {
        ca: Arc::new(ca),
        tls_chain_pem,
        tls_key_pem,
        signer: Arc::new(signer),
        sealing_key,
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

/// The profile-signing certificate, renewed like the TLS certificate.
fn profile_signer(
    dir: &Path,
    ca: &CertificateAuthority,
    now: DateTime<Utc>,
) -> anyhow::Result<ProfileSigner> {
    let cert_path = dir.join("profile-signing.pem");
    let key_path = dir.join("profile-signing-key.pem");
    let chain_pem = vec![ca.issuing_pem(), ca.root_pem()];
    if let (Ok(cert_pem), Ok(key_pem)) = (
        fs::read_to_string(&cert_path),
        fs::read_to_string(&key_path),
    ) {
        let der = flotte_pki::pem_to_der(&cert_pem)?;
        if let Ok(info) = ca.verify_issued(&der, now)
            && info.not_after - now > Duration::days(TLS_RENEW_BEFORE_DAYS)
        {
            return Ok(ProfileSigner {
                cert_pem,
                key_pem,
                chain_pem,
            });
        }
    }
    let issued = ca.issue_signing_certificate("Flotte profile signing", now, 3 * 365)?;
    let key_pem = issued
        .key_pem
        .ok_or_else(|| anyhow::anyhow!("the CA returned a signing certificate without its key"))?;
    write_private(&key_path, key_pem.as_bytes())?;
    fs::write(&cert_path, &issued.cert_pem)?;
    Ok(ProfileSigner {
        cert_pem: issued.cert_pem,
        key_pem,
        chain_pem,
    })
}

/// 32 random bytes in `<data dir>/secret.key`: every server and worker of one
/// installation must share this file to read the sealed secrets.
fn sealing_key(dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = dir.join("secret.key");
    match fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            write_private(&path, &key)?;
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
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
