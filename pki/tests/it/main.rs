//! One integration-test binary (one link step instead of one per file). Most tests drive the
//! OpenSSL command-line tool as an independent verifier: agreeing with ourselves proves little.

mod ca;
mod cms;
mod csr;
mod pkcs12;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use flotte_pki::CertificateAuthority;

/// A fixed "now" keeps the tests independent of the wall clock; the CLI gets it via `-attime`.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0).unwrap()
}

/// One CA shared by the tests that only issue from it: RSA key generation is the slow part.
/// The directory can go once loaded, since the CA lives in memory.
pub fn shared_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::load_or_create(dir.path(), "Test School Board", now()).unwrap()
    })
}

/// A second, unrelated CA, for "not ours" cases.
pub fn other_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        CertificateAuthority::load_or_create(dir.path(), "Somebody Else", now()).unwrap()
    })
}

pub fn vector(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors")
        .join(rel)
}

pub struct CliOutput {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub text: String,
}

/// Runs `openssl` with the given arguments; `text` holds stdout+stderr for error messages.
pub fn openssl(args: &[&str]) -> CliOutput {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI on PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    CliOutput {
        ok: out.status.success(),
        stdout: out.stdout,
        text,
    }
}

pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

pub fn attime() -> String {
    now().timestamp().to_string()
}
