//! How to reach the directory and where things live in it.

use std::fmt;
use std::time::Duration;

/// Connection and bind settings for the read-only service account.
#[derive(Clone)]
pub struct LdapSettings {
    /// `ldap://host:port` (plain, or StartTLS when `starttls` is set) or
    /// `ldaps://host:port`. UCS with the Samba AD app listens on 7389/7636.
    pub url: String,
    /// The read-only service account (a UCS "simple authentication account").
    pub bind_dn: String,
    pub bind_password: String,
    /// The LDAP base (`ldap/base` in UCS), e.g. `dc=schulen,dc=luebeck,dc=de`.
    pub base_dn: String,
    /// PEM of the CA that issued the directory's certificate. Only this CA
    /// is trusted; without it, the operating system's roots are used.
    pub ca_cert_pem: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    pub starttls: bool,
    /// Members of this group may act as technicians in Flotte.
    pub technician_group_dn: Option<String>,
    /// Entries per page of a Simple Paged Results search (RFC 2696).
    pub page_size: u32,
    /// Applies to connecting and to every single LDAP response; a search
    /// that stalls for longer than this fails.
    pub timeout: Duration,
    pub layout: DirectoryLayout,
}

impl LdapSettings {
    /// Settings with UCS@school's default layout, pages of 500 entries and a
    /// 30 s time-out.
    pub fn new(
        url: impl Into<String>,
        bind_dn: impl Into<String>,
        bind_password: impl Into<String>,
        base_dn: impl Into<String>,
    ) -> Self {
        LdapSettings {
            url: url.into(),
            bind_dn: bind_dn.into(),
            bind_password: bind_password.into(),
            base_dn: base_dn.into(),
            ca_cert_pem: None,
            starttls: false,
            technician_group_dn: None,
            page_size: 500,
            timeout: Duration::from_secs(30),
            layout: DirectoryLayout::default(),
        }
    }
}

// The password must never reach a log line.
impl fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("base_dn", &self.base_dn)
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(|_| "<pem>"))
            .field("starttls", &self.starttls)
            .field("technician_group_dn", &self.technician_group_dn)
            .field("page_size", &self.page_size)
            .field("timeout", &self.timeout)
            .field("layout", &self.layout)
            .finish()
    }
}

/// Where UCS@school keeps schools, classes and workgroups. The container
/// names are UCR variables (`ucsschool/ldap/default/container/*`) and can
/// differ per installation, so none of them is hard-coded in the adapter.
///
/// People are found by object class (`ucsschoolStudent`, …) anywhere below
/// the base, as UCS@school's own lookups do, so user containers need no
/// configuration. Schools are found by object class too, which also covers
/// district mode (`ou=gym1,ou=gy,<base>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryLayout {
    /// Object class of a school OU.
    pub school_object_class: String,
    /// Object class of class and workgroup entries.
    pub group_object_class: String,
    /// Container of school classes, relative to the school OU.
    pub classes_container: String,
    /// Container of workgroups, relative to the school OU. Only its direct
    /// children are workgroups (UCS@school's `isWorkgroup()` rule).
    pub workgroups_container: String,
    /// Container of exam-mode accounts, relative to the school OU. Entries
    /// below it are never synced.
    pub exam_users_container: String,
    /// Prefix of class and workgroup names; `{school}` is replaced by the
    /// school code and matched case-insensitively. Stripped from the name.
    pub group_name_prefix: String,
    /// Mail attributes, in order of preference.
    pub mail_attributes: Vec<String>,
}

impl Default for DirectoryLayout {
    fn default() -> Self {
        DirectoryLayout {
            school_object_class: "ucsschoolOrganizationalUnit".to_owned(),
            group_object_class: "posixGroup".to_owned(),
            classes_container: "cn=klassen,cn=schueler,cn=groups".to_owned(),
            workgroups_container: "cn=schueler,cn=groups".to_owned(),
            exam_users_container: "cn=examusers".to_owned(),
            group_name_prefix: "{school}-".to_owned(),
            mail_attributes: vec!["mailPrimaryAddress".to_owned(), "mail".to_owned()],
        }
    }
}
