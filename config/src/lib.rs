//! Flotte's typed settings: defaults, then an optional TOML file, then
//! `FLOTTE_…` environment variables. Loaded once by the binary and passed down;
//! nothing reads the environment anywhere else.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    Figment(#[from] Box<figment::Error>),
}

/// Every setting Flotte has. Field names are the TOML keys; environment
/// variables are `FLOTTE_<KEY>`, nested sections joined with `__`
/// (`FLOTTE_APNS__ENDPOINT`), and the directory keys also as `FLOTTE_LDAP_<KEY>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the CA, the TLS certificate, the bootstrap token and the SQLite database live.
    pub data_dir: PathBuf,
    /// The address the HTTPS server listens on.
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; empty means SQLite in the data directory.
    pub database_url: Option<String>,
    /// The URL devices use to reach Flotte (enrolment profiles point here).
    pub public_url: Option<String>,
    /// A technician token to accept instead of generating a bootstrap token.
    pub admin_token: Option<String>,
    /// Extra host names and addresses for the server's TLS certificate.
    pub tls_hosts: Vec<String>,
    /// The organisation name shown in certificates and profiles.
    pub organisation: String,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info,flotte_server=debug`.
    pub log_level: String,
    pub http: HttpSettings,
    pub worker: WorkerSettings,
    pub retention: RetentionSettings,
    pub apns: ApnsSettings,
    pub apple: AppleSettings,
    /// The UCS@school directory over LDAP; without `url`, Flotte keeps a local
    /// directory filled by CSV imports and local staff accounts.
    pub ldap: LdapConfig,
    pub directory: DirectorySettings,
    pub auth: AuthSettings,
    /// Profiles, bulk pushes and EAP-TLS client certificates.
    #[serde(default)]
    pub profiles: ProfileSettings,
    /// Device loans to pupils: accessories, due dates, what a return does, retention.
    #[serde(default)]
    pub loans: LoanSettings,
    /// Outgoing mail (overdue lists to schools); off unless `host` is set.
    #[serde(default)]
    pub mail: MailSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body accepted from devices and the API, in bytes.
    pub body_limit_bytes: usize,
    /// Largest upload for imports (delivery lists, directory CSV), in bytes.
    pub import_limit_bytes: usize,
    /// A request that takes longer is answered 408.
    pub request_timeout_secs: u64,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Jobs of one kind running at once in one worker process.
    pub concurrency: usize,
    /// How often a worker tells the database it is alive.
    pub heartbeat_secs: u64,
    /// A job held by a worker that has been silent this long is handed to another.
    pub orphan_after_secs: u64,
    /// How often the job queues are polled when idle, in milliseconds.
    pub poll_interval_ms: u64,
    /// How often the table pruning runs.
    pub prune_every_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Finished commands and their results are deleted after this many days.
    pub command_days: u32,
    /// Finished jobs are deleted after this many days.
    pub job_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppleSettings {
    /// Validity of the device identity in an enrolment profile, in days.
    pub identity_validity_days: u32,
    /// How long a one-time enrolment link stays usable, in hours.
    pub enrollment_link_hours: u32,
    /// Behind a TLS-terminating proxy: the header carrying the client
    /// certificate (RFC 9440 `:base64:` or URL-escaped PEM). Off when unset.
    pub cert_header: Option<String>,
    /// Only these proxy addresses may set `cert_header`.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// A device that answered NotNow is pushed again after this many seconds.
    pub not_now_retry_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSettings {
    /// Apple's push gateway; tests point this at a local stand-in.
    pub endpoint: String,
    /// PEM bundle with the MDM push certificate and its key (optional: can be uploaded through the API).
    pub certificate_path: Option<PathBuf>,
    /// Extra CA certificates to trust for the push endpoint (the tests' stand-in).
    pub ca_path: Option<PathBuf>,
    /// Seconds a push stays valid at Apple when the device is offline.
    pub expiration_secs: u64,
    /// Pushes per second, fleet-wide per worker.
    pub rate_per_sec: u32,
    /// Wake-ups for one device within this many seconds are sent once.
    pub coalesce_secs: u64,
}

/// How to reach the directory. `FLOTTE_LDAP_URL`, `FLOTTE_LDAP_BIND_DN`, … set these keys.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`. Unset: no LDAP (local directory).
    pub url: Option<String>,
    /// The read-only service account.
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// The LDAP base, e.g. `dc=schulen,dc=stadt,dc=de`.
    pub base_dn: Option<String>,
    /// DN of the group whose members are technicians (all schools).
    pub technician_group: Option<String>,
    /// PEM file of the CA that issued the directory's certificate.
    pub ca_path: Option<PathBuf>,
    /// Upgrade `ldap://` with StartTLS before binding.
    pub starttls: bool,
    /// Entries per page of a paged search (0: the adapter's default).
    pub page_size: u32,
    /// Time-out for connecting and for every LDAP response, in seconds (0: default).
    pub timeout_secs: u64,
}

// The bind password must never reach a log line.
impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field(
                "bind_password",
                &self.bind_password.as_ref().map(|_| "<redacted>"),
            )
            .field("base_dn", &self.base_dn)
            .field("technician_group", &self.technician_group)
            .field("ca_path", &self.ca_path)
            .field("starttls", &self.starttls)
            .field("page_size", &self.page_size)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl LdapConfig {
    /// Whether an LDAP directory is configured (otherwise the local directory is used).
    pub fn is_configured(&self) -> bool {
        self.url.as_deref().is_some_and(|u| !u.trim().is_empty())
    }
}

/// When and how carefully the directory is synchronised.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// Seconds between scheduled syncs (0: no schedule, only on demand).
    pub sync_every_secs: u64,
    /// Every n-th scheduled sync reads everything; the others read changes only.
    /// Deletions are only certain in a full read when the server has no content sync.
    pub full_sync_every: u32,
    /// Refuse a sync that would mark more than this share (0.0–1.0) of the
    /// active people as departed.
    pub max_missing_share: f64,
    /// School codes that may come back empty without stopping the sync (a school closing).
    pub allow_emptied_schools: Vec<String>,
}

/// Staff sign-in: sessions, tokens and the throttle on failed attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// How long a browser session lasts, in hours.
    pub session_hours: u32,
    /// How long a token from `POST /api/v1/auth/login` lasts, in hours.
    pub token_hours: u32,
    /// Failed sign-ins for one user name within the window before it is refused.
    pub max_failures_per_user: u32,
    /// Failed sign-ins from one address within the window before it is refused.
    pub max_failures_per_address: u32,
    /// The throttle window, in seconds.
    pub failure_window_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./flotte-data"),
            listen: "0.0.0.0:8443".parse().expect("literal address"),
            database_url: None,
            public_url: None,
            admin_token: None,
            tls_hosts: Vec::new(),
            organisation: "Flotte".into(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            http: HttpSettings {
                body_limit_bytes: 1024 * 1024,
                import_limit_bytes: 16 * 1024 * 1024,
                request_timeout_secs: 30,
                shutdown_grace_secs: 10,
            },
            worker: WorkerSettings {
                concurrency: 8,
                heartbeat_secs: 10,
                orphan_after_secs: 60,
                poll_interval_ms: 500,
                prune_every_secs: 3600,
            },
            retention: RetentionSettings {
                command_days: 30,
                job_days: 7,
            },
            apns: ApnsSettings {
                endpoint: "https://api.push.apple.com".into(),
                certificate_path: None,
                ca_path: None,
                expiration_secs: 3 * 24 * 3600,
                rate_per_sec: 200,
                coalesce_secs: 30,
            },
            apple: AppleSettings {
                identity_validity_days: 730,
                enrollment_link_hours: 72,
                cert_header: None,
                trusted_proxies: Vec::new(),
                not_now_retry_secs: 300,
            },
            ldap: LdapConfig::default(),
            directory: DirectorySettings {
                sync_every_secs: 4 * 3600,
                full_sync_every: 6,
                max_missing_share: 0.10,
                allow_emptied_schools: Vec::new(),
            },
            auth: AuthSettings {
                session_hours: 10,
                token_hours: 12,
                max_failures_per_user: 5,
                max_failures_per_address: 50,
                failure_window_secs: 900,
            },
            profiles: ProfileSettings::default(),
            loans: LoanSettings::default(),
            mail: MailSettings::default(),
        }
    }
}

impl Settings {
    /// Defaults, then `file` (if given and present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(
            Env::prefixed("FLOTTE_")
                .split("__")
                .ignore(&["config", "url", "token", "ca"])
                .map(|key| {
                    // `FLOTTE_LDAP_URL` is the documented spelling for `[ldap] url`.
                    // The key keeps the variable's case, hence the lowercasing.
                    let key = key.as_str().to_ascii_lowercase();
                    match key.strip_prefix("ldap_") {
                        Some(rest) => format!("ldap.{rest}").into(),
                        None => key.into(),
                    }
                }),
        );
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url
            && !url.starts_with("https://")
        {
            return Err(ConfigError::Invalid(format!(
                "public_url must start with https:// (devices refuse plain HTTP), got {url:?}"
            )));
        }
        if self.http.body_limit_bytes < 16 * 1024 {
            return Err(ConfigError::Invalid(
                "http.body_limit_bytes below 16 KiB would refuse ordinary device messages".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.directory.max_missing_share) {
            return Err(ConfigError::Invalid(format!(
                "directory.max_missing_share must be between 0.0 and 1.0, got {}",
                self.directory.max_missing_share
            )));
        }
        if self.ldap.is_configured() {
            let missing: Vec<&str> = [
                ("bind_dn", &self.ldap.bind_dn),
                ("bind_password", &self.ldap.bind_password),
                ("base_dn", &self.ldap.base_dn),
            ]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_none_or(|v| v.trim().is_empty()))
            .map(|(k, _)| k)
            .collect();
            if !missing.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "ldap.url is set, so ldap.{} must be set too (FLOTTE_LDAP_{})",
                    missing.join(", ldap."),
                    missing[0].to_uppercase()
                )));
            }
        }
        if self.loans.max_loan_days == 0 || self.loans.default_loan_days > self.loans.max_loan_days
        {
            return Err(ConfigError::Invalid(format!(
                "loans.max_loan_days must be at least 1 and at least loans.default_loan_days ({} > {})",
                self.loans.default_loan_days, self.loans.max_loan_days
            )));
        }
        Ok(())
    }

    /// The database to use: the configured URL, else SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("flotte.db").display()
            ),
        }
    }

    /// The URL devices use: configured, else derived from the listen port on localhost.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://localhost:{}", self.listen.port()),
        }
    }

    /// Host names and addresses the server certificate must name.
    pub fn tls_hosts(&self) -> Vec<String> {
        let mut hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Some(host) = host_of(&self.public_url()) {
            hosts.push(host);
        }
        hosts.extend(self.tls_hosts.iter().cloned());
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
// figment's `Jail` closures must return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "flotte.toml",
                "listen = \"127.0.0.1:9443\"\norganisation = \"Stadt\"\n[http]\nbody_limit_bytes = 65536\nimport_limit_bytes = 1\nrequest_timeout_secs = 5\nshutdown_grace_secs = 1\n",
            )?;
            jail.set_env("FLOTTE_ORGANISATION", "Hansestadt");
            jail.set_env("FLOTTE_APNS__ENDPOINT", "https://127.0.0.1:1");
            let s = Settings::load(Some(Path::new("flotte.toml"))).expect("loads");
            assert_eq!(s.listen.port(), 9443);
            assert_eq!(s.organisation, "Hansestadt");
            assert_eq!(s.apns.endpoint, "https://127.0.0.1:1");
            assert_eq!(s.http.body_limit_bytes, 65536);
            assert_eq!(s.data_dir, PathBuf::from("./flotte-data"));
            Ok(())
        });
    }

    #[test]
    fn a_plain_http_public_url_is_refused_with_a_reason() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FLOTTE_PUBLIC_URL", "http://mdm.example");
            let err = Settings::load(None).unwrap_err();
            assert!(err.to_string().contains("https://"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_an_error_not_silently_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("flotte.toml", "listn = \"127.0.0.1:1\"\n")?;
            let err = Settings::load(Some(Path::new("flotte.toml"))).unwrap_err();
            assert!(err.to_string().contains("listn"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn ldap_variables_fill_the_ldap_section_and_need_each_other() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FLOTTE_LDAP_URL", "ldaps://ucs.schule.example:7636");
            jail.set_env("FLOTTE_LDAP_BIND_DN", "uid=mdm,cn=users,dc=s,dc=de");
            jail.set_env("FLOTTE_LDAP_BASE_DN", "dc=s,dc=de");
            jail.set_env(
                "FLOTTE_LDAP_TECHNICIAN_GROUP",
                "cn=mdm,cn=groups,dc=s,dc=de",
            );
            let err = Settings::load(None).unwrap_err();
            assert!(err.to_string().contains("ldap.bind_password"), "{err}");
            jail.set_env("FLOTTE_LDAP_BIND_PASSWORD", "secret");
            jail.set_env("FLOTTE_DIRECTORY__MAX_MISSING_SHARE", "0.2");
            let s = Settings::load(None).expect("loads");
            assert!(s.ldap.is_configured());
            assert_eq!(
                s.ldap.technician_group.as_deref(),
                Some("cn=mdm,cn=groups,dc=s,dc=de")
            );
            assert_eq!(s.directory.max_missing_share, 0.2);
            assert!(
                !format!("{:?}", s.ldap).contains("secret"),
                "password redacted"
            );
            Ok(())
        });
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("flotte.example.toml");
        let s = Settings::load(Some(&path)).expect("the documented example is valid");
        assert_eq!(s.directory.sync_every_secs, 4 * 3600);
    }

    #[test]
    fn without_ldap_the_local_directory_is_the_default() {
        let s = Settings::default();
        assert!(!s.ldap.is_configured());
        assert_eq!(s.directory.max_missing_share, 0.10);
    }

    #[test]
    fn database_defaults_to_sqlite_in_the_data_dir_and_hosts_include_the_public_host() {
        let mut s = Settings::default();
        assert!(
            s.database_url()
                .starts_with("sqlite://./flotte-data/flotte.db")
        );
        s.public_url = Some("https://mdm.schule.example:8443/".into());
        assert_eq!(s.public_url(), "https://mdm.schule.example:8443");
        assert!(s.tls_hosts().contains(&"mdm.schule.example".to_owned()));
    }
}

/// Profiles, bulk pushes and the client certificates profiles embed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileSettings {
    /// Identifiers of Flotte's profiles start with this (ending in `.`); only such profiles
    /// are ever removed from a device.
    pub identifier_prefix: String,
    /// Devices one fan-out job plans and queues in one transaction.
    pub push_batch_size: u32,
    /// A device of a push that has not answered this long is pushed (woken) again.
    pub silent_after_secs: u64,
    /// How often a running push copies device answers into its progress.
    pub progress_every_secs: u64,
    /// A push stops waiting for devices after this many hours; the rest count as expired.
    pub push_expiry_hours: u32,
    /// Validity of the EAP-TLS client certificates Flotte issues, in days.
    pub certificate_validity_days: u32,
    /// Certificates are renewed (and the profiles carrying them pushed again) this many
    /// days before they expire.
    pub renew_before_days: u32,
    /// How often certificates are checked for renewal and revocation, and the CRL refreshed.
    pub certificate_check_every_secs: u64,
    /// The CRL's `nextUpdate`, in days after it is issued.
    pub crl_validity_days: u32,
    /// Kerberos/Samba realm for the UPN in pupils' certificates (`username@realm`); without
    /// it the UPN is the mail address.
    pub upn_realm: Option<String>,
}

impl Default for ProfileSettings {
    fn default() -> Self {
        Self {
            identifier_prefix: "de.flotte.".into(),
            push_batch_size: 500,
            silent_after_secs: 4 * 3600,
            progress_every_secs: 10,
            push_expiry_hours: 14 * 24,
            certificate_validity_days: 365,
            renew_before_days: 30,
            certificate_check_every_secs: 3600,
            crl_validity_days: 7,
            upn_realm: None,
        }
    }
}

/// What returning a device does to it, once staff confirm it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnAction {
    /// Nothing: the device keeps its data.
    None,
    /// Erase it to factory settings (Apple `EraseDevice`, Windows `RemoteWipe`).
    #[serde(alias = "wipe")]
    Erase,
}

/// Device loans to pupils.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoanSettings {
    /// The accessories a loan can include (checkboxes on the lending form and the contract).
    pub accessories: Vec<String>,
    /// The due date the lending form suggests, in days from today.
    pub default_loan_days: u32,
    /// A due date further away than this many days is refused (a typo such as 2062).
    pub max_loan_days: u32,
    /// What returning an iPad does once staff confirm it: `none` or `erase`.
    pub return_action_apple: ReturnAction,
    /// What returning a Windows laptop does once staff confirm it: `none` or `wipe`.
    pub return_action_windows: ReturnAction,
    /// The name a lent device gets. Placeholders: `{given_name}`, `{family_name}`,
    /// `{family_initial}`, `{class}`, `{asset_tag}`, `{serial}`, `{school}`. Windows
    /// computer names are cut to 15 letters, digits and hyphens. The name is visible to
    /// nearby devices (Bluetooth, AirDrop, the network), so keep it short of full names.
    pub device_name_template: String,
    /// Returned loans are anonymised this many days after the return (BGB §606: the
    /// lender's claims for damage expire six months after the device came back).
    pub retention_days: u32,
    /// The same for loans with recorded damage, whose claims may still be settled.
    pub retention_days_damaged: u32,
    /// How often overdue loans, borrowers who left and retention are checked, in seconds.
    pub check_every_secs: u64,
    /// Who lends, as the contract names them (default: `organisation`).
    pub lender: Option<String>,
    /// The contract's terms, one paragraph each; empty: Flotte's built-in German terms.
    pub agreement_terms: Vec<String>,
}

impl Default for LoanSettings {
    fn default() -> Self {
        Self {
            accessories: vec!["Ladegerät".into(), "Hülle".into(), "Stift".into()],
            default_loan_days: 90,
            max_loan_days: 730,
            return_action_apple: ReturnAction::Erase,
            return_action_windows: ReturnAction::None,
            device_name_template: "{given_name} {family_initial}. {class}".into(),
            retention_days: 183,
            retention_days_damaged: 3 * 365,
            check_every_secs: 24 * 3600,
            lender: None,
            agreement_terms: Vec::new(),
        }
    }
}

/// How a mail connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine.
    None,
}

/// Outgoing mail through SMTP. Nothing is sent unless `host` is set.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// The SMTP server. Unset: no mail is sent (the lists are still in the web UI).
    pub host: Option<String>,
    pub port: u16,
    pub security: MailSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender address, e.g. `Flotte <flotte@schulen.example.de>`.
    pub from: String,
    /// PEM of a CA to trust for the SMTP server besides the system's.
    pub ca_path: Option<PathBuf>,
    /// Mail each school's overdue list to its school administrators (their directory mail).
    pub notify_school_admins: bool,
    /// Addresses that get every school's list (the school board's office).
    pub overdue_to: Vec<String>,
    /// Time-out for the SMTP conversation, in seconds.
    pub timeout_secs: u64,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            security: MailSecurity::Starttls,
            username: None,
            password: None,
            from: "Flotte <flotte@localhost>".into(),
            ca_path: None,
            notify_school_admins: true,
            overdue_to: Vec::new(),
            timeout_secs: 30,
        }
    }
}

impl MailSettings {
    /// Whether mail is to be sent at all.
    pub fn is_configured(&self) -> bool {
        self.host.as_deref().is_some_and(|h| !h.trim().is_empty())
    }
}

// The SMTP password must never reach a log line.
impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("ca_path", &self.ca_path)
            .field("notify_school_admins", &self.notify_school_admins)
            .field("overdue_to", &self.overdue_to)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}
