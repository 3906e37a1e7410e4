use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Months, Utc};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509StoreContext, X509VerifyResult};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Version;

use crate::info::{cert_pem, info_of, parse_cert, to_offset};
use crate::keys::{self, Key};
use crate::{CertificateInfo, PkiError, sha256_fingerprint};

const ROOT_CERT: &str = "ca.pem";
const ROOT_KEY: &str = "ca-key.pem";
const ISSUING_CERT: &str = "issuing-ca.pem";
const ISSUING_KEY: &str = "issuing-ca-key.pem";

const ROOT_YEARS: u32 = 20;
const ISSUING_YEARS: u32 = 10;

/// Devices and servers disagree about the time by minutes to hours (iPads fresh out of the box,
/// laptops with a flat CMOS battery); starting validity an hour early keeps a certificate issued
/// "now" from being "not yet valid" on them.
const BACKDATE: Duration = Duration::hours(1);

/// Apple platforms (since iOS 13 / macOS 10.15) refuse TLS server certificates valid for more
/// than 825 days, even under a private root; issuing a longer one would only break enrolment.
pub const MAX_SERVER_VALIDITY_DAYS: u32 = 825;

/// Microsoft's User Principal Name otherName, which Windows and RADIUS servers map to an account.
const UPN_OID: [u64; 10] = [1, 3, 6, 1, 4, 1, 311, 20, 2, 3];

/// X509_V_ERR_* codes (stable in OpenSSL's ABI) that we turn into typed errors.
const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;

/// A root CA plus the issuing CA that signs everything day to day, so that the root key can be
/// kept offline by an operator and a compromised issuing CA can be replaced without re-trusting a
/// new root on every device.
pub struct CertificateAuthority {
    root: X509,
    root_der: Vec<u8>,
    issuing: X509,
    issuing_der: Vec<u8>,
    issuing_not_after: DateTime<Utc>,
    issuing_ski: Option<Vec<u8>>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// Recognises the issuing CA's own signature without a chain walk; see [`crate::fast`].
    own: Option<crate::fast::OwnIssuer>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("root_sha256", &sha256_fingerprint(&self.root_der))
            .field("issuing_sha256", &sha256_fingerprint(&self.issuing_der))
            .finish_non_exhaustive()
    }
}

/// Who a client identity is for. We never take names from a device's CSR: the server decides the
/// subject, so a device cannot name itself after another one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertificateRequest {
    pub common_name: String,
    pub organisation: Option<String>,
    pub organisational_unit: Option<String>,
    /// SAN rfc822Name, for EAP-TLS setups that match users by mail address.
    pub email: Option<String>,
    pub uri_sans: Vec<String>,
    /// SAN otherName 1.3.6.1.4.1.311.20.2.3 (UTF8String), what NPS/Windows map to an AD account.
    pub upn: Option<String>,
    /// Subject UID (0.9.2342.19200300.100.1.1): where Apple puts an MDM push
    /// certificate's topic. Tests use it to mint stand-in push certificates.
    pub user_id: Option<String>,
    pub validity_days: u32,
}

impl ClientCertificateRequest {
    pub fn new(common_name: impl Into<String>, validity_days: u32) -> Self {
        Self {
            common_name: common_name.into(),
            validity_days,
            ..Self::default()
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    pub cert_der: Vec<u8>,
    pub cert_pem: String,
    /// PKCS#8 PEM; `None` when the key stayed on the device (CSR signing).
    pub key_pem: Option<String>,
    pub serial_hex: String,
    pub sha256_hex: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("serial_hex", &self.serial_hex)
            .field("sha256_hex", &self.sha256_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Server TLS key type. ECDSA P-256 is the default because it is fast and every supported client
/// (iPadOS, Windows 10/11, browsers) negotiates ECDHE-ECDSA; RSA remains for odd middleboxes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerKeyType {
    #[default]
    EcdsaP256,
    Rsa2048,
}

/// One CRL entry; the serial is the `serial_hex` we returned when issuing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    pub serial_hex: String,
    pub revoked_at: DateTime<Utc>,
}

/// The four files as found on disk; `None` when absent.
struct CaFiles {
    root_cert: Option<String>,
    root_key: Option<String>,
    issuing_cert: Option<String>,
    issuing_key: Option<String>,
}

impl CertificateAuthority {
    /// Load the CA from `dir`, or create what is missing on first start.
    ///
    /// Existing files are never overwritten: an operator's own root and issuing CA are used as-is,
    /// and an inconsistent directory is an error rather than something we "repair" by minting new
    /// keys, because that would silently invalidate every enrolled device. The root key is only
    /// read when the issuing CA has to be created, so it may be kept offline afterwards.
    /// A key file without its certificate (an interrupted first start, or an operator bringing
    /// only keys) gets a new certificate for that key.
    ///
    /// Meant to be called once at start-up by one process: two processes creating the same empty
    /// directory at the same moment would each mint a CA.
    pub fn load_or_create(
        dir: &Path,
        organisation: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, PkiError> {
        create_private_dir(dir)?;
        let files = CaFiles {
            root_cert: read_optional(&dir.join(ROOT_CERT))?,
            root_key: read_optional(&dir.join(ROOT_KEY))?,
            issuing_cert: read_optional(&dir.join(ISSUING_CERT))?,
            issuing_key: read_optional(&dir.join(ISSUING_KEY))?,
        };
        let dir_error = |reason: String| PkiError::CaDirectory {
            dir: dir.to_path_buf(),
            reason,
        };

        // Root.
        let root_key = match &files.root_key {
            Some(pem) => {
                Some(keys::key_from_pem(pem).map_err(|e| dir_error(format!("{ROOT_KEY}: {e}")))?)
            }
            None => None,
        };
        let (root_der, root_key) = match (&files.root_cert, root_key) {
            (Some(pem), key) => (
                cert_der_from_pem(pem).map_err(|e| dir_error(format!("{ROOT_CERT}: {e}")))?,
                key,
            ),
            (None, key) => {
                if files.issuing_cert.is_some() {
                    return Err(dir_error(format!(
                        "{ISSUING_CERT} exists but {ROOT_CERT} is missing"
                    )));
                }
                let key = match key {
                    Some(key) => key,
                    None => {
                        let key = keys::new_rsa_key()?;
                        write_file(&dir.join(ROOT_KEY), key.pem.as_bytes(), true)?;
                        key
                    }
                };
                let cert = root_params(organisation, now)?.self_signed(&key.rcgen)?;
                write_file(&dir.join(ROOT_CERT), cert.pem().as_bytes(), false)?;
                (cert.der().to_vec(), Some(key))
            }
        };
        let root = X509::from_der(&root_der)?;
        if let Some(key) = &root_key {
            ensure_key_matches(&root, key).map_err(|e| dir_error(format!("{ROOT_KEY}: {e}")))?;
        }
        ensure_ca(&root_der).map_err(|e| dir_error(format!("{ROOT_CERT}: {e}")))?;

        // Issuing CA.
        let issuing_key = match &files.issuing_key {
            Some(pem) => Some(
                keys::key_from_pem(pem).map_err(|e| dir_error(format!("{ISSUING_KEY}: {e}")))?,
            ),
            None => None,
        };
        let (issuing_der, issuing_key) = match (&files.issuing_cert, issuing_key) {
            (Some(pem), Some(key)) => (
                cert_der_from_pem(pem).map_err(|e| dir_error(format!("{ISSUING_CERT}: {e}")))?,
                key,
            ),
            (Some(_), None) => {
                return Err(dir_error(format!(
                    "{ISSUING_CERT} exists but {ISSUING_KEY} is missing"
                )));
            }
            (None, key) => {
                let Some(root_key) = &root_key else {
                    return Err(dir_error(format!(
                        "{ROOT_KEY} is needed to create the issuing CA"
                    )));
                };
                let key = match key {
                    Some(key) => key,
                    None => {
                        let key = keys::new_rsa_key()?;
                        write_file(&dir.join(ISSUING_KEY), key.pem.as_bytes(), true)?;
                        key
                    }
                };
                let root_issuer = rcgen::Issuer::from_ca_cert_der(
                    &CertificateDer::from(root_der.as_slice()),
                    &root_key.rcgen,
                )?;
                let mut params = issuing_params(organisation, now)?;
                // Under an operator's root that ends sooner, end with it rather than after it.
                let root_not_after = to_offset(crate::certificate_info(&root_der)?.not_after)?;
                params.not_after = params.not_after.min(root_not_after);
                let cert = params.signed_by(&key.rcgen, &root_issuer)?;
                write_file(&dir.join(ISSUING_CERT), cert.pem().as_bytes(), false)?;
                (cert.der().to_vec(), key)
            }
        };
        let issuing = X509::from_der(&issuing_der)?;
        ensure_key_matches(&issuing, &issuing_key)
            .map_err(|e| dir_error(format!("{ISSUING_KEY}: {e}")))?;
        ensure_ca(&issuing_der).map_err(|e| dir_error(format!("{ISSUING_CERT}: {e}")))?;
        if root.issued(&issuing) != X509VerifyResult::OK
            || !issuing.verify(root.public_key()?.as_ref())?
        {
            return Err(dir_error(format!(
                "{ISSUING_CERT} is not signed by {ROOT_CERT}"
            )));
        }

        let issuing_parsed = parse_cert(&issuing_der)?;
        let issuing_info = info_of(&issuing_parsed, &issuing_der)?;
        let root_info = crate::certificate_info(&root_der)?;
        for (name, info) in [(ROOT_CERT, &root_info), (ISSUING_CERT, &issuing_info)] {
            if info.not_after <= now {
                return Err(dir_error(format!("{name} expired at {}", info.not_after)));
            }
        }
        let issuing_ski =
            issuing_parsed
                .iter_extensions()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                    _ => None,
                });
        let issuer = rcgen::Issuer::from_ca_cert_der(
            &CertificateDer::from(issuing_der.as_slice()),
            issuing_key.rcgen,
        )
        .map_err(|e| dir_error(format!("{ISSUING_CERT}: cannot sign with this CA: {e}")))?;
        let own = crate::fast::OwnIssuer::new(
            &issuing_parsed,
            issuing_info.not_before.max(root_info.not_before),
            issuing_info.not_after.min(root_info.not_after),
        );

        Ok(Self {
            root,
            root_der,
            issuing,
            issuing_der,
            issuing_not_after: issuing_info.not_after,
            issuing_ski,
            issuer,
            own,
        })
    }

    pub fn root_pem(&self) -> String {
        cert_pem(&self.root_der)
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.root_der.clone()
    }

    pub fn issuing_pem(&self) -> String {
        cert_pem(&self.issuing_der)
    }

    pub fn issuing_der(&self) -> Vec<u8> {
        self.issuing_der.clone()
    }

    /// Issuing CA then root, the order TLS servers and PKCS#12/CMS chains want after the leaf.
    pub fn chain_pem(&self) -> Vec<String> {
        vec![self.issuing_pem(), self.root_pem()]
    }

    /// A TLS server certificate with an ECDSA P-256 key; see [`ServerKeyType`].
    pub fn issue_server_certificate(
        &self,
        hosts: &[String],
        now: DateTime<Utc>,
        validity_days: u32,
    ) -> Result<IssuedCertificate, PkiError> {
        self.issue_server_certificate_with_key(hosts, now, validity_days, ServerKeyType::default())
    }

    /// The CN repeats the first host only for old clients; Apple and browsers read the SANs.
    pub fn issue_server_certificate_with_key(
        &self,
        hosts: &[String],
        now: DateTime<Utc>,
        validity_days: u32,
        key_type: ServerKeyType,
    ) -> Result<IssuedCertificate, PkiError> {
        if hosts.is_empty() {
            return Err(PkiError::InvalidRequest(
                "a server certificate needs at least one host".into(),
            ));
        }
        if validity_days > MAX_SERVER_VALIDITY_DAYS {
            return Err(PkiError::InvalidRequest(format!(
                "server certificates valid over {MAX_SERVER_VALIDITY_DAYS} days are rejected by Apple devices"
            )));
        }
        let mut params = CertificateParams::default();
        for host in hosts {
            let host = host.trim();
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => {
                    if !is_dns_name(host) {
                        return Err(PkiError::InvalidRequest(format!(
                            "{host:?} is neither an IP address nor a DNS name"
                        )));
                    }
                    SanType::DnsName(host.to_owned().try_into()?)
                }
            };
            params.subject_alt_names.push(san);
        }
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, hosts[0].trim());
        let key = match key_type {
            ServerKeyType::EcdsaP256 => keys::new_p256_key()?,
            ServerKeyType::Rsa2048 => keys::new_rsa_key()?,
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key_type == ServerKeyType::Rsa2048 {
            // TLS 1.2 RSA key exchange encrypts to the key; harmless to allow, needed by some clients.
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(
            params,
            &key.rcgen,
            Some(&key),
            now,
            validity_days,
            Some(Duration::days(i64::from(MAX_SERVER_VALIDITY_DAYS))),
        )
    }

    /// A client identity (device or user) with a fresh RSA key, e.g. for a PKCS#12 in a profile.
    pub fn issue_client_certificate(
        &self,
        req: &ClientCertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, PkiError> {
        let key = keys::new_rsa_key()?;
        let params = client_params(req)?;
        self.issue(params, &key.rcgen, Some(&key), now, req.validity_days, None)
    }

    /// A certificate for signing configuration profiles (CMS). EKU emailProtection because that is
    /// the purpose S/MIME-style verifiers (OpenSSL's `smimesign`) require of a CMS signer; a
    /// clientAuth identity would be refused there.
    pub fn issue_signing_certificate(
        &self,
        common_name: &str,
        now: DateTime<Utc>,
        validity_days: u32,
    ) -> Result<IssuedCertificate, PkiError> {
        let key = keys::new_rsa_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
        self.issue(params, &key.rcgen, Some(&key), now, validity_days, None)
    }

    /// Signs a device's PKCS#10. The CSR only contributes its public key, after its
    /// self-signature proves the device holds the private key; subject and extensions come from
    /// `req`, so a device cannot ask for CA rights, other EKUs or another device's name.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        req: &ClientCertificateRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedCertificate, PkiError> {
        let csr = crate::csr::parse_verified_csr(csr_der)?;
        let spki = &csr.certification_request_info.subject_pki;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(spki.raw)
            .map_err(|e| PkiError::Unsupported(format!("CSR public key: {e}")))?;
        let params = client_params(req)?;
        self.issue(params, &public_key, None, now, req.validity_days, None)
    }

    /// Checks that `cert_der` is an end-entity certificate issued directly by our issuing CA,
    /// chaining to our root, and valid at `now` (as are the CAs above it). It does not check key
    /// usage: callers decide what the certificate may be used for.
    pub fn verify_issued(
        &self,
        cert_der: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CertificateInfo, PkiError> {
        let parsed = parse_cert(cert_der)?;
        let info = info_of(&parsed, cert_der)?;
        if now < info.not_before {
            return Err(PkiError::NotYetValid {
                not_before: info.not_before,
            });
        }
        if now > info.not_after {
            return Err(PkiError::Expired {
                not_after: info.not_after,
            });
        }
        if parsed.is_ca() {
            // Our CA certificates are public; presenting one must not pass as a device identity.
            return Err(PkiError::UntrustedIssuer(
                "a CA certificate is not an identity".into(),
            ));
        }
        if self
            .own
            .as_ref()
            .is_some_and(|own| own.signed(&parsed, now))
        {
            return Ok(info);
        }
        let cert = X509::from_der(cert_der)
            .map_err(|e| PkiError::Malformed(format!("certificate: {e}")))?;

        let mut param = X509VerifyParam::new()?;
        param.set_time(now.timestamp());
        // Our root file is the trust anchor even when an operator's "root" is itself subordinate.
        param.set_flags(X509VerifyFlags::PARTIAL_CHAIN)?;
        let mut store = X509StoreBuilder::new()?;
        store.add_cert(self.root.clone())?;
        store.set_param(&param)?;
        let store = store.build();
        let mut untrusted = Stack::new()?;
        untrusted.push(self.issuing.clone())?;

        let mut ctx = X509StoreContext::new()?;
        let outcome = ctx.init(&store, &cert, &untrusted, |ctx| {
            let ok = ctx.verify_cert()?;
            if ok {
                let chain_issuer = ctx
                    .chain()
                    .and_then(|chain| chain.get(1))
                    .map(|c| c.to_der())
                    .transpose()?;
                return Ok(Ok(chain_issuer));
            }
            let failing = ctx.current_cert().map(|c| c.to_der()).transpose()?;
            Ok(Err((ctx.error(), failing)))
        })?;
        match outcome {
            Ok(Some(issuer_der)) if issuer_der == self.issuing_der => Ok(info),
            Ok(_) => Err(PkiError::UntrustedIssuer(
                "not issued by the issuing CA".into(),
            )),
            Err((error, failing)) => {
                let failing_info = failing
                    .as_deref()
                    .and_then(|der| crate::certificate_info(der).ok());
                Err(match (error.as_raw(), failing_info) {
                    (X509_V_ERR_CERT_HAS_EXPIRED, Some(i)) => PkiError::Expired {
                        not_after: i.not_after,
                    },
                    (X509_V_ERR_CERT_NOT_YET_VALID, Some(i)) => PkiError::NotYetValid {
                        not_before: i.not_before,
                    },
                    _ => PkiError::UntrustedIssuer(error.error_string().to_owned()),
                })
            }
        }
    }

    /// A CRL (DER) signed by the issuing CA. `crl_number` must grow with every CRL published,
    /// so relying parties can tell which is newer.
    pub fn issue_crl(
        &self,
        revoked: &[RevokedCertificate],
        crl_number: u64,
        now: DateTime<Utc>,
        next_update_days: u32,
    ) -> Result<Vec<u8>, PkiError> {
        if next_update_days == 0 {
            return Err(PkiError::InvalidRequest(
                "next_update_days must be positive".into(),
            ));
        }
        let revoked_certs = revoked
            .iter()
            .map(|r| {
                let serial = hex::decode(r.serial_hex.trim()).map_err(|e| {
                    PkiError::InvalidRequest(format!("serial {:?}: {e}", r.serial_hex))
                })?;
                Ok(rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: to_offset(r.revoked_at)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_offset(now - BACKDATE)?,
            next_update: to_offset(now + Duration::days(i64::from(next_update_days)))?,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: match &self.issuing_ski {
                Some(ski) => KeyIdMethod::PreSpecified(ski.clone()),
                None => KeyIdMethod::Sha256,
            },
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }

    /// Everything issued goes through here, so serial, validity, AKI and the issuer check are
    /// applied the same way to every certificate.
    fn issue(
        &self,
        mut params: CertificateParams,
        public_key: &impl PublicKeyData,
        key: Option<&Key>,
        now: DateTime<Utc>,
        validity_days: u32,
        max_span: Option<Duration>,
    ) -> Result<IssuedCertificate, PkiError> {
        if validity_days == 0 {
            return Err(PkiError::InvalidRequest(
                "validity_days must be positive".into(),
            ));
        }
        let not_before = now - BACKDATE;
        // A certificate outliving its issuer would fail validation after the issuer expires anyway;
        // capping it makes the real end date visible to whoever stores it.
        let mut not_after =
            (now + Duration::days(i64::from(validity_days))).min(self.issuing_not_after);
        // Limits like Apple's 825 days count from notBefore, backdating included.
        if let Some(span) = max_span {
            not_after = not_after.min(not_before + span);
        }
        if not_after <= now {
            return Err(PkiError::InvalidRequest(format!(
                "the issuing CA expires at {}, nothing can be issued at {now}",
                self.issuing_not_after
            )));
        }
        let serial = keys::random_serial()?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        params.use_authority_key_identifier_extension = true;
        if matches!(params.is_ca, IsCa::NoCa) {
            params.is_ca = IsCa::ExplicitNoCa;
        }
        let cert = params.signed_by(public_key, &self.issuer)?;
        let cert_der = cert.der().to_vec();

        // rcgen re-encodes the issuer name from the parsed CA certificate; if that ever differs
        // from the CA's real subject (unusual operator DNs), fail now rather than hand out a
        // certificate no device can chain.
        let issued = X509::from_der(&cert_der)?;
        if self.issuing.issued(&issued) != X509VerifyResult::OK {
            return Err(PkiError::Unsupported(
                "issuing CA subject cannot be reproduced by rcgen".into(),
            ));
        }
        let info = crate::certificate_info(&cert_der)?;
        Ok(IssuedCertificate {
            cert_pem: cert_pem(&cert_der),
            key_pem: key.map(|k| k.pem.clone()),
            serial_hex: info.serial_hex,
            sha256_hex: info.sha256_hex,
            not_before: info.not_before,
            not_after: info.not_after,
            cert_der,
        })
    }
}

fn root_params(organisation: &str, now: DateTime<Utc>) -> Result<CertificateParams, PkiError> {
    ca_params(
        "Flotte Root CA",
        organisation,
        now,
        ROOT_YEARS,
        BasicConstraints::Unconstrained,
    )
}

fn issuing_params(organisation: &str, now: DateTime<Utc>) -> Result<CertificateParams, PkiError> {
    // pathlen 0: the issuing CA signs end entities only.
    let mut params = ca_params(
        "Flotte Issuing CA",
        organisation,
        now,
        ISSUING_YEARS,
        BasicConstraints::Constrained(0),
    )?;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn ca_params(
    common_name: &str,
    organisation: &str,
    now: DateTime<Utc>,
    years: u32,
    constraints: BasicConstraints,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if !organisation.trim().is_empty() {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organisation.trim());
    }
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from_slice(&keys::random_serial()?));
    params.not_before = to_offset(now - BACKDATE)?;
    let not_after = now
        .checked_add_months(Months::new(years * 12))
        .ok_or_else(|| PkiError::InvalidRequest("CA validity out of range".into()))?;
    params.not_after = to_offset(not_after)?;
    Ok(params)
}

/// The LDAP `uid` attribute type, used in subjects.
const USER_ID_OID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

fn client_params(req: &ClientCertificateRequest) -> Result<CertificateParams, PkiError> {
    if req.common_name.trim().is_empty() {
        return Err(PkiError::InvalidRequest("common name is empty".into()));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, req.common_name.as_str());
    if let Some(o) = req.organisation.as_deref().filter(|s| !s.is_empty()) {
        params.distinguished_name.push(DnType::OrganizationName, o);
    }
    if let Some(ou) = req.organisational_unit.as_deref().filter(|s| !s.is_empty()) {
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
    }
    if let Some(uid) = req.user_id.as_deref().filter(|s| !s.is_empty()) {
        params
            .distinguished_name
            .push(DnType::CustomDnType(USER_ID_OID.to_vec()), uid);
    }
    if let Some(email) = req.email.as_deref().filter(|s| !s.is_empty()) {
        params
            .subject_alt_names
            .push(SanType::Rfc822Name(email.to_owned().try_into()?));
    }
    for uri in &req.uri_sans {
        params
            .subject_alt_names
            .push(SanType::URI(uri.clone().try_into()?));
    }
    if let Some(upn) = req.upn.as_deref().filter(|s| !s.is_empty()) {
        params
            .subject_alt_names
            .push(SanType::OtherName((UPN_OID.to_vec(), upn.into())));
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// Checked here because rcgen accepts any IA5 string, and a SAN with a typo (a space, a URL)
/// would only show up as a TLS failure on the devices.
fn is_dns_name(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && host.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, PkiError> {
    let der = crate::pem_to_der(pem)?;
    let cert = parse_cert(&der)?;
    if cert.version() != X509Version::V3 {
        return Err(PkiError::Unsupported(
            "CA certificate is not X.509 v3".into(),
        ));
    }
    Ok(der)
}

fn ensure_ca(der: &[u8]) -> Result<(), PkiError> {
    if parse_cert(der)?.is_ca() {
        Ok(())
    } else {
        Err(PkiError::InvalidRequest(
            "certificate is not a CA (basicConstraints CA:TRUE missing)".into(),
        ))
    }
}

fn ensure_key_matches(cert: &X509, key: &Key) -> Result<(), PkiError> {
    if cert.public_key()?.public_eq(&key.openssl) {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch(
            "the key is not the certificate's key".into(),
        ))
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PkiError::io(path, e)),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| PkiError::io(dir, e))
}

/// Writes through a temporary file and a rename so a crash never leaves half a PEM behind; keys are
/// created 0600 from the start rather than chmod-ed afterwards, so they are never readable by others.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), PkiError> {
    let tmp: PathBuf = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        path.with_file_name(name)
    };
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(|e| PkiError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_can_be_shared_between_server_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CertificateAuthority>();
    }

    #[test]
    fn dns_names_are_checked_before_they_reach_a_certificate() {
        for ok in [
            "mdm.example.org",
            "localhost",
            "*.example.org",
            "a-b.c_d.example",
        ] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "bad host",
            "https://x.org",
            "a..b",
            "-a.org",
            "*.",
            "a.*.org",
            "é.org",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
