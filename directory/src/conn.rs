//! Connecting, binding and searching: the only module that speaks ldap3.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ldap3::adapters::PagedResults;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::{DirectoryError, result_name};
use crate::settings::LdapSettings;

/// Opens a connection (TCP, then TLS or StartTLS as configured). Nothing is
/// bound yet.
pub(crate) async fn connect(settings: &LdapSettings) -> Result<Ldap, DirectoryError> {
    let url = settings.url.trim();
    let ldaps = url.starts_with("ldaps://");
    if !ldaps && !url.starts_with("ldap://") {
        return Err(DirectoryError::Config(format!(
            "url {url:?} must start with ldap:// or ldaps://"
        )));
    }
    if ldaps && settings.starttls {
        return Err(DirectoryError::Config(
            "starttls is for ldap:// URLs; ldaps:// is TLS from the first byte".to_owned(),
        ));
    }
    let mut conn_settings = LdapConnSettings::new()
        .set_conn_timeout(settings.timeout)
        .set_starttls(settings.starttls);
    if let Some(pem) = &settings.ca_cert_pem {
        conn_settings = conn_settings.set_config(Arc::new(tls_config(pem)?));
    }
    // The connection time-out only covers TCP; the StartTLS exchange and the
    // TLS handshake must not hang either.
    let connected = tokio::time::timeout(
        settings.timeout,
        LdapConnAsync::with_settings(conn_settings, url),
    )
    .await
    .map_err(|_| DirectoryError::Timeout {
        operation: format!("the connection to {url}"),
        after: settings.timeout,
    })?;
    let (conn, ldap) = connected.map_err(|source| match source {
        LdapError::Timeout { .. } => DirectoryError::Timeout {
            operation: format!("the connection to {url}"),
            after: settings.timeout,
        },
        source => DirectoryError::Connect {
            url: url.to_owned(),
            source: Box::new(source),
        },
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP connection ended with an error");
        }
    });
    Ok(ldap)
}

/// Trusts exactly the configured CA(s), nothing from the system store.
fn tls_config(pem: &str) -> Result<rustls::ClientConfig, DirectoryError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DirectoryError::Config(format!("ca_cert_pem is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(DirectoryError::Config(
            "ca_cert_pem contains no CERTIFICATE block".to_owned(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            DirectoryError::Config(format!("ca_cert_pem: unusable CA certificate: {e}"))
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Config(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Connects and binds as the service account.
pub(crate) async fn connect_service(settings: &LdapSettings) -> Result<Ldap, DirectoryError> {
    // An empty password turns a simple bind into an anonymous one (RFC 4513
    // §5.1.2), which would "succeed" and then read whatever anonymous may.
    if settings.bind_password.is_empty() {
        return Err(DirectoryError::Config(
            "bind_password is empty; that would be an anonymous bind".to_owned(),
        ));
    }
    let mut ldap = connect(settings).await?;
    let operation = "the service account bind";
    let result = ldap
        .with_timeout(settings.timeout)
        .simple_bind(&settings.bind_dn, &settings.bind_password)
        .await
        .map_err(|e| op_error(operation, e, settings))?;
    if result.rc != 0 {
        return Err(DirectoryError::ServiceBind {
            bind_dn: settings.bind_dn.clone(),
            reason: format!(
                "result code {} ({}) {}",
                result.rc,
                result_name(result.rc),
                result.text
            )
            .trim_end()
            .to_owned(),
        });
    }
    Ok(ldap)
}

/// Binds `dn` with `password` on a fresh connection. `Ok(false)` means the
/// directory said invalidCredentials.
pub(crate) async fn check_password(
    settings: &LdapSettings,
    dn: &str,
    password: &str,
) -> Result<bool, DirectoryError> {
    let mut ldap = connect(settings).await?;
    let result = ldap
        .with_timeout(settings.timeout)
        .simple_bind(dn, password)
        .await
        .map_err(|e| op_error("the user bind", e, settings))?;
    let _ = ldap.unbind().await;
    match result.rc {
        0 => Ok(true),
        49 => Ok(false),
        rc => Err(DirectoryError::Ldap {
            operation: "the user bind".to_owned(),
            rc,
            text: result.text,
        }),
    }
}

pub(crate) fn op_error(
    operation: &str,
    error: LdapError,
    settings: &LdapSettings,
) -> DirectoryError {
    match error {
        LdapError::Timeout { .. } => DirectoryError::Timeout {
            operation: operation.to_owned(),
            after: settings.timeout,
        },
        source => DirectoryError::Protocol {
            operation: operation.to_owned(),
            source: Box::new(source),
        },
    }
}

/// A search result entry with attribute names folded to lower case, because
/// servers answer with the schema's spelling, not the request's.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawEntry {
    pub dn: String,
    attrs: HashMap<String, Vec<String>>,
    /// Attributes whose values were not UTF-8; the text ones we read must not be.
    binary: HashSet<String>,
}

impl RawEntry {
    #[cfg(test)]
    pub fn new(dn: impl Into<String>) -> Self {
        RawEntry {
            dn: dn.into(),
            ..RawEntry::default()
        }
    }

    /// Adds values, builder style.
    #[cfg(test)]
    pub fn with(mut self, name: &str, values: &[&str]) -> Self {
        self.attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().map(|v| (*v).to_owned()));
        self
    }

    /// Drops an attribute, builder style.
    #[cfg(test)]
    pub fn without(mut self, name: &str) -> Self {
        self.attrs.remove(&name.to_ascii_lowercase());
        self
    }

    fn from_search_entry(entry: SearchEntry) -> Self {
        RawEntry {
            dn: entry.dn,
            attrs: entry
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            binary: entry
                .bin_attrs
                .into_keys()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn values(&self, name: &str) -> &[String] {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The attribute's only value. More than one value, or a value that is
    /// not text, is an error the caller reports.
    pub fn single(&self, name: &str) -> Result<Option<&str>, String> {
        if self.binary.contains(&name.to_ascii_lowercase()) {
            return Err(format!("{name} is not valid UTF-8"));
        }
        match self.values(name) {
            [] => Ok(None),
            [one] => Ok(Some(one.as_str())),
            many => Err(format!("{name} has {} values, expected one", many.len())),
        }
    }

    pub fn has_object_class(&self, class: &str) -> bool {
        self.values("objectClass")
            .iter()
            .any(|c| c.eq_ignore_ascii_case(class))
    }
}

/// One search: what it is for (for error messages), where, and what.
pub(crate) struct Query<'q> {
    pub operation: &'q str,
    pub base: &'q str,
    pub scope: Scope,
    pub filter: &'q str,
    pub attrs: &'q [&'q str],
    /// Use Simple Paged Results (RFC 2696); for anything that can be large.
    pub paged: bool,
}

/// Runs a search to its end and returns every entry. A referral, a
/// time-out or any result code other than success fails the whole search:
/// a partial result must never be mistaken for the directory's content.
pub(crate) async fn search(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    query: &Query<'_>,
) -> Result<Vec<RawEntry>, DirectoryError> {
    let fail = |e| op_error(query.operation, e, settings);
    let attrs: Vec<&str> = query.attrs.to_vec();
    ldap.with_timeout(settings.timeout);
    let mut stream = if query.paged {
        let page_size = i32::try_from(settings.page_size.max(1)).unwrap_or(i32::MAX);
        ldap.streaming_search_with(
            PagedResults::new(page_size),
            query.base,
            query.scope,
            query.filter,
            attrs,
        )
        .await
    } else {
        ldap.streaming_search(query.base, query.scope, query.filter, attrs)
            .await
    }
    .map_err(fail)?;

    let mut entries = Vec::new();
    while let Some(item) = stream.next().await.map_err(fail)? {
        if item.is_ref() {
            let _ = stream.finish().await;
            return Err(DirectoryError::Referral {
                operation: query.operation.to_owned(),
                refs: ldap3::parse_refs(item.0),
            });
        }
        if item.is_intermediate() {
            continue;
        }
        entries.push(RawEntry::from_search_entry(SearchEntry::construct(item)));
    }
    let result = stream.finish().await;
    check_result(query.operation, result)?;
    Ok(entries)
}

/// Turns a non-success search result into an error.
pub(crate) fn check_result(
    operation: &str,
    result: ldap3::LdapResult,
) -> Result<ldap3::LdapResult, DirectoryError> {
    match result.rc {
        0 => Ok(result),
        10 => Err(DirectoryError::Referral {
            operation: operation.to_owned(),
            refs: result.refs,
        }),
        rc => Err(DirectoryError::Ldap {
            operation: operation.to_owned(),
            rc,
            text: result.text,
        }),
    }
}

/// The root DSE's `supportedControl` values.
pub(crate) async fn supported_controls(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<Vec<String>, DirectoryError> {
    let entries = search(
        ldap,
        settings,
        &Query {
            operation: "the root DSE read",
            base: "",
            scope: Scope::Base,
            filter: "(objectClass=*)",
            attrs: &["supportedControl"],
            paged: false,
        },
    )
    .await?;
    Ok(entries
        .first()
        .map(|e| e.values("supportedControl").to_vec())
        .unwrap_or_default())
}

/// Wraps a raw entry of a content-sync stream.
pub(crate) fn raw_entry(item: ResultEntry) -> RawEntry {
    RawEntry::from_search_entry(SearchEntry::construct(item))
}
