//! A private OpenLDAP server shaped like a small UCS@school directory.
//!
//! [`Slapd`] runs Debian's `/usr/sbin/slapd` (packages `slapd` and
//! `ldap-utils`; `apt-get install -y slapd ldap-utils` if missing) on a free
//! loopback port, with a throw-away mdb database in a temp dir, the stock
//! core/cosine/nis/inetorgperson schemas and Flotte's hand-written
//! `tests/ldap/ucsschool-minimal.schema`. Fixture LDIF is loaded offline with
//! `slapadd` before the server starts (far faster than `ldapadd` for big
//! directories), the server is killed when the value is dropped.
//!
//! Accounts: the root DN (for fixtures and live changes), the read-only
//! service account Flotte binds with, and a second read-only account with a
//! size limit of 5 entries for limit tests. An ACL withholds `userPassword`
//! from everyone (binds only).
//!
//! [`Fixtures`] builds the LDIF: an edge-case directory with a list of live
//! changes, and a deterministic city-sized directory for load tests.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flotte_directory::LdapSettings;

pub const BASE_DN: &str = "dc=flotte,dc=test";
pub const ROOT_DN: &str = "cn=admin,dc=flotte,dc=test";
pub const ROOT_PASSWORD: &str = "root-secret";
/// The read-only account Flotte binds with.
pub const SERVICE_DN: &str = "uid=mdm-sync,cn=users,dc=flotte,dc=test";
pub const SERVICE_PASSWORD: &str = "sync-secret";
/// Read-only too, but slapd stops its searches after 5 entries.
pub const LIMITED_SERVICE_DN: &str = "uid=mdm-limited,cn=users,dc=flotte,dc=test";
pub const LIMITED_SERVICE_PASSWORD: &str = "limited-secret";
/// The edge-case directory's technician group.
pub const TECHNICIAN_GROUP_DN: &str = "cn=mdm-techniker,cn=groups,dc=flotte,dc=test";

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const LDAPMODIFY: &str = "/usr/bin/ldapmodify";

/// Whether and how the server offers RFC 4533 content sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentSync {
    /// No `syncprov`: clients must fall back to `modifyTimestamp`.
    Off,
    /// `syncprov` without a session log: deletions arrive as a present set
    /// (every unchanged entry's id).
    PresentPhase,
    /// `syncprov` with a session log: deletions arrive as a list of ids.
    DeletePhase,
}

/// Options for [`Slapd`].
#[derive(Debug)]
pub struct SlapdBuilder {
    ldif: String,
    content_sync: ContentSync,
    tls: bool,
}

impl SlapdBuilder {
    /// Appends LDIF (entries without `changetype`) to load before starting.
    pub fn ldif(mut self, ldif: &str) -> Self {
        self.ldif.push_str(ldif);
        if !self.ldif.ends_with("\n\n") {
            self.ldif.push('\n');
        }
        self
    }

    pub fn content_sync(mut self, mode: ContentSync) -> Self {
        self.content_sync = mode;
        self
    }

    /// Also listen on `ldaps://` and offer StartTLS, with a certificate for
    /// 127.0.0.1 from a fresh test CA ([`Slapd::ca_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Loads the LDIF and starts the server; panics with slapd's own words
    /// if that fails.
    pub fn start(self) -> Slapd {
        for tool in [SLAPD, SLAPADD, LDAPMODIFY] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: apt-get install -y slapd ldap-utils"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir for slapd");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let tls = self.tls.then(|| write_tls_files(dir.path()));
        let conf = dir.path().join("slapd.conf");
        std::fs::write(
            &conf,
            slapd_conf(dir.path(), self.content_sync, tls.is_some()),
        )
        .expect("write slapd.conf");

        let ldif_path = dir.path().join("fixture.ldif");
        let mut ldif = skeleton();
        ldif.push_str(&self.ldif);
        std::fs::write(&ldif_path, &ldif).expect("write fixture");
        let entries = ldif.matches("\ndn:").count() + usize::from(ldif.starts_with("dn:"));
        let load_started = Instant::now();
        let output = Command::new(SLAPADD)
            .args(["-q", "-w", "-f"])
            .arg(&conf)
            .arg("-l")
            .arg(&ldif_path)
            .output()
            .expect("run slapadd");
        assert!(
            output.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let load = load_started.elapsed();
        // The LDIF can be tens of MB; the database has it now.
        let _ = std::fs::remove_file(&ldif_path);

        // A free port can be taken by someone else before slapd binds it;
        // then slapd exits at once and we try another one.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let tls_port = tls.as_ref().map(|_| free_port());
            let mut urls = format!("ldap://127.0.0.1:{port}/");
            if let Some(tls_port) = tls_port {
                write!(urls, " ldaps://127.0.0.1:{tls_port}/").expect("write to String");
            }
            let log_path = dir.path().join("slapd.log");
            let log = std::fs::File::create(&log_path).expect("slapd log");
            let started = Instant::now();
            let mut child = Command::new(SLAPD)
                .arg("-f")
                .arg(&conf)
                .args(["-h", &urls, "-d", "0"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .spawn()
                .expect("spawn slapd");
            let ports: Vec<u16> = std::iter::once(port).chain(tls_port).collect();
            if wait_until_listening(&mut child, &ports) {
                return Slapd {
                    child,
                    dir,
                    port,
                    tls_port,
                    ca_pem: tls.map(|t| t.ca_pem),
                    timings: SlapdTimings {
                        entries,
                        load,
                        start: started.elapsed(),
                    },
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("slapd did not start: {last_log}");
    }
}

/// How long getting the server up took.
#[derive(Debug, Clone, Copy)]
pub struct SlapdTimings {
    /// Entries loaded, skeleton included.
    pub entries: usize,
    /// `slapadd` of the fixture.
    pub load: Duration,
    /// Process start until the ports accept connections.
    pub start: Duration,
}

/// A running private slapd; killed on drop.
#[derive(Debug)]
pub struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    tls_port: Option<u16>,
    ca_pem: Option<String>,
    timings: SlapdTimings,
}

impl Slapd {
    /// An empty directory: base, `cn=users`, `cn=groups` and the service
    /// accounts; content sync in present-phase mode.
    pub fn start() -> Slapd {
        Slapd::builder().start()
    }

    pub fn builder() -> SlapdBuilder {
        SlapdBuilder {
            ldif: String::new(),
            content_sync: ContentSync::PresentPhase,
            tls: false,
        }
    }

    /// `ldap://127.0.0.1:<port>` (plain; StartTLS too when built with TLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:<port>` when built with TLS.
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    /// The PEM of the CA that issued the server certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    pub fn timings(&self) -> SlapdTimings {
        self.timings
    }

    /// Settings for the service account: plain LDAP, the edge-case
    /// technician group, small pages (so paging really happens) and a short
    /// time-out.
    pub fn settings(&self) -> LdapSettings {
        let mut settings = LdapSettings::new(self.url(), SERVICE_DN, SERVICE_PASSWORD, BASE_DN);
        settings.technician_group_dn = Some(TECHNICIAN_GROUP_DN.to_owned());
        settings.page_size = 7;
        settings.timeout = Duration::from_secs(5);
        settings
    }

    /// Applies `ldapmodify` LDIF (with `changetype`s) as the root DN, with
    /// ManageDsaIT so that referral objects can be added and changed.
    /// Panics with ldapmodify's message if anything is refused.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new(LDAPMODIFY)
            .args([
                "-x",
                "-M",
                "-H",
                &self.url(),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PASSWORD,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ldapmodify");
        child
            .stdin
            .take()
            .expect("ldapmodify stdin")
            .write_all(ldif.as_bytes())
            .expect("write to ldapmodify");
        let output = child.wait_with_output().expect("ldapmodify");
        assert!(
            output.status.success(),
            "ldapmodify failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }

    /// Deletes one entry as the root DN.
    pub fn delete(&self, dn: &str) {
        self.modify(&format!("dn: {dn}\nchangetype: delete\n"));
    }

    /// The server's configuration directory (config, database, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_until_listening(child: &mut Child, ports: &[u16]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ports
            .iter()
            .all(|p| TcpStream::connect((Ipv4Addr::LOCALHOST, *p)).is_ok())
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn schema_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ldap/ucsschool-minimal.schema")
}

fn slapd_conf(dir: &Path, content_sync: ContentSync, tls: bool) -> String {
    let dir = dir.display();
    let schema = schema_file();
    let mut conf = format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
include {schema}
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
",
        schema = schema.display()
    );
    if content_sync != ContentSync::Off {
        conf.push_str("moduleload syncprov\n");
    }
    if tls {
        write!(
            conf,
            "TLSCACertificateFile {dir}/ca.pem
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
"
        )
        .expect("write to String");
    }
    write!(
        conf,
        r#"access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read
database mdb
maxsize 2147483648
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {dir}/db
index objectClass,uid,entryUUID,entryCSN,ucsschoolSchool,ucsschoolRole,memberUid,uniqueMember eq
limits dn.exact="{SERVICE_DN}" size=unlimited time=unlimited
limits dn.exact="{LIMITED_SERVICE_DN}" size=5 size.prtotal=5
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by dn.exact="{SERVICE_DN}" read
    by dn.exact="{LIMITED_SERVICE_DN}" read
    by * none
"#
    )
    .expect("write to String");
    match content_sync {
        ContentSync::Off => {}
        ContentSync::PresentPhase => {
            conf.push_str("overlay syncprov\nsyncprov-checkpoint 100 10\n")
        }
        ContentSync::DeletePhase => conf
            .push_str("overlay syncprov\nsyncprov-checkpoint 100 10\nsyncprov-sessionlog 10000\n"),
    }
    conf
}

struct TlsFiles {
    ca_pem: String,
}

/// A test CA and a server certificate for 127.0.0.1, written next to the
/// config.
fn write_tls_files(dir: &Path) -> TlsFiles {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Flotte test directory CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");

    let server_key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let cert = params
        .signed_by(&server_key, &ca)
        .expect("server certificate");

    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("write server.key");
    TlsFiles { ca_pem: ca.pem() }
}

/// Base, global containers and the service accounts; part of every fixture.
fn skeleton() -> String {
    let mut ldif = Ldif::new();
    ldif.entry(BASE_DN, &[("objectClass", "domain"), ("dc", "flotte")]);
    for cn in ["users", "groups"] {
        ldif.entry(
            &format!("cn={cn},{BASE_DN}"),
            &[("objectClass", "organizationalRole"), ("cn", cn)],
        );
    }
    for (dn, uid, password) in [
        (SERVICE_DN, "mdm-sync", SERVICE_PASSWORD),
        (LIMITED_SERVICE_DN, "mdm-limited", LIMITED_SERVICE_PASSWORD),
    ] {
        ldif.entry(
            dn,
            &[
                ("objectClass", "account"),
                ("objectClass", "simpleSecurityObject"),
                ("uid", uid),
                ("userPassword", password),
            ],
        );
    }
    ldif.finish()
}

// ---------------------------------------------------------------------------
// LDIF

/// Writes LDIF entries. Every entry gets a `modifyTimestamp` one second after
/// the previous one (from 2025-01-01), as in a directory that grew over time;
/// `modifyTimestamp>=` polling would otherwise see the whole fixture as
/// changed in one second.
#[derive(Debug, Default)]
pub struct Ldif {
    text: String,
    entries: u64,
}

impl Ldif {
    pub fn new() -> Self {
        Ldif::default()
    }

    pub fn entry(&mut self, dn: &str, attrs: &[(&str, &str)]) {
        put(&mut self.text, "dn", dn);
        for (name, value) in attrs {
            put(&mut self.text, name, value);
        }
        let stamp = chrono::DateTime::from_timestamp(1_735_689_600 + self.entries as i64, 0)
            .expect("timestamp in range")
            .format("%Y%m%d%H%M%SZ")
            .to_string();
        put(&mut self.text, "createTimestamp", &stamp);
        put(&mut self.text, "modifyTimestamp", &stamp);
        self.text.push('\n');
        self.entries += 1;
    }

    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// One `name: value` line, base64 where RFC 2849 requires it (non-ASCII,
/// leading space, colon or `<`, trailing space, line breaks).
fn put(out: &mut String, name: &str, value: &str) {
    let safe = value
        .bytes()
        .all(|b| b.is_ascii() && b != b'\n' && b != b'\r' && b != 0)
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        let _ = writeln!(out, "{name}: {value}");
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let _ = writeln!(out, "{name}:: {encoded}");
    }
}

// ---------------------------------------------------------------------------
// Fixtures

/// The edge-case directory and the live changes to apply to it.
#[derive(Debug, Clone)]
pub struct EdgeCases {
    /// Entries to load (see [`Fixtures::edge_cases`]).
    pub ldif: String,
    /// `ldapmodify` input for the second phase.
    pub changes: String,
}

/// A generated city directory.
#[derive(Debug, Clone)]
pub struct CityFixture {
    pub ldif: String,
    pub entries: u64,
    pub schools: usize,
    pub pupils: usize,
    pub teachers: usize,
    pub classes: usize,
    /// Pupils generated as disabled (about 1 %).
    pub disabled: usize,
}

/// Size and seed of a generated city.
#[derive(Debug, Clone, Copy)]
pub struct CitySpec {
    pub schools: usize,
    pub pupils: usize,
    pub teachers: usize,
    pub classes: usize,
    pub seed: u64,
}

impl CitySpec {
    /// The city's UCS@school: 57 schools, 30,000 pupils, 3,000 teachers,
    /// about 1,100 classes.
    pub fn luebeck() -> Self {
        CitySpec {
            schools: 57,
            pupils: 30_000,
            teachers: 3_000,
            classes: 1_100,
            seed: 42,
        }
    }
}

pub struct Fixtures;

/// One person of a fixture.
struct Person<'a> {
    uid: &'a str,
    given: &'a str,
    family: &'a str,
    /// Home school OU and user container below it, e.g. `cn=schueler,cn=users`.
    school: &'a str,
    container: &'a str,
    role_classes: &'a [&'a str],
    schools: &'a [&'a str],
    roles: &'a [&'a str],
    mail: Option<(&'a str, &'a str)>,
    /// (shadowExpire, sambaAcctFlags, krb5KDCFlags)
    flags: (Option<&'a str>, &'a str, &'a str),
    extra: &'a [(&'a str, &'a str)],
    uid_number: u32,
}

const ENABLED: (Option<&str>, &str, &str) = (None, "[U          ]", "126");

fn person_dn(p: &Person<'_>) -> String {
    format!("uid={},{},ou={},{BASE_DN}", p.uid, p.container, p.school)
}

/// Writes a UCS@school user. With `password`, the password is `pw-<uid>`;
/// load fixtures go without, as hashing is not what they measure.
fn write_person(ldif: &mut Ldif, p: &Person<'_>, password: bool) {
    let dn = person_dn(p);
    let cn = format!("{} {}", p.given, p.family);
    let uid_number = p.uid_number.to_string();
    let home = format!("/home/{}/{}", p.school, p.uid);
    let secret = format!("pw-{}", p.uid);
    let mut attrs: Vec<(&str, &str)> = [
        "top",
        "person",
        "organizationalPerson",
        "inetOrgPerson",
        "posixAccount",
        "shadowAccount",
        "univentionMail",
        "univentionObject",
        "sambaSamAccount",
        "krb5KDCEntry",
    ]
    .iter()
    .chain(p.role_classes)
    .map(|c| ("objectClass", *c))
    .collect();
    attrs.extend([
        ("uid", p.uid),
        ("cn", cn.as_str()),
        ("givenName", p.given),
        ("sn", p.family),
        ("displayName", cn.as_str()),
        ("uidNumber", uid_number.as_str()),
        ("gidNumber", "5000"),
        ("homeDirectory", home.as_str()),
        ("univentionObjectType", "users/user"),
        ("sambaAcctFlags", p.flags.1),
        ("krb5KDCFlags", p.flags.2),
    ]);
    if password {
        attrs.push(("userPassword", secret.as_str()));
    }
    if let Some(expire) = p.flags.0 {
        attrs.push(("shadowExpire", expire));
    }
    if let Some((attr, mail)) = p.mail {
        attrs.push((attr, mail));
    }
    attrs.extend(p.schools.iter().map(|s| ("ucsschoolSchool", *s)));
    attrs.extend(p.roles.iter().map(|r| ("ucsschoolRole", *r)));
    attrs.extend(p.extra.iter().copied());
    ldif.entry(&dn, &attrs);
}

fn write_group(
    ldif: &mut Ldif,
    dn: &str,
    cn: &str,
    gid: u32,
    role: Option<&str>,
    members: &[String],
) {
    let gid = gid.to_string();
    let uids: Vec<String> = members
        .iter()
        .filter_map(|dn| dn.strip_prefix("uid=").and_then(|r| r.split(',').next()))
        .map(str::to_owned)
        .collect();
    let mut attrs: Vec<(&str, &str)> = vec![
        ("objectClass", "top"),
        ("objectClass", "posixGroup"),
        ("objectClass", "univentionGroup"),
        ("objectClass", "univentionObject"),
        ("objectClass", "ucsschoolGroup"),
        ("cn", cn),
        ("gidNumber", gid.as_str()),
        ("univentionObjectType", "groups/group"),
    ];
    if let Some(role) = role {
        attrs.push(("ucsschoolRole", role));
    }
    attrs.extend(members.iter().map(|m| ("uniqueMember", m.as_str())));
    attrs.extend(uids.iter().map(|u| ("memberUid", u.as_str())));
    ldif.entry(dn, &attrs);
}

/// The OU and UCS@school's fixed containers below it.
fn write_school(ldif: &mut Ldif, code: &str, display_name: &str, gid: u32) {
    let ou = format!("ou={code},{BASE_DN}");
    let role = format!("school:school:{code}");
    ldif.entry(
        &ou,
        &[
            ("objectClass", "top"),
            ("objectClass", "organizationalUnit"),
            ("objectClass", "ucsschoolOrganizationalUnit"),
            ("objectClass", "univentionObject"),
            ("ou", code),
            ("displayName", display_name),
            ("univentionObjectType", "container/ou"),
            ("ucsschoolRole", role.as_str()),
        ],
    );
    for container in [
        "cn=users",
        "cn=schueler,cn=users",
        "cn=lehrer,cn=users",
        "cn=mitarbeiter,cn=users",
        "cn=lehrer und mitarbeiter,cn=users",
        "cn=admins,cn=users",
        "cn=sorgeberechtigte,cn=users",
        "cn=groups",
        "cn=schueler,cn=groups",
        "cn=klassen,cn=schueler,cn=groups",
        "cn=lehrer,cn=groups",
        "cn=raeume,cn=groups",
        "cn=examusers",
    ] {
        let cn = container
            .split(',')
            .next()
            .and_then(|rdn| rdn.strip_prefix("cn="))
            .unwrap_or(container);
        ldif.entry(
            &format!("{container},{ou}"),
            &[("objectClass", "organizationalRole"), ("cn", cn)],
        );
    }
    // A computer room: a group under cn=raeume that must never become a class.
    write_group(
        ldif,
        &format!("cn={code}-raum101,cn=raeume,cn=groups,{ou}"),
        &format!("{code}-raum101"),
        gid,
        Some(&format!("computer_room:school:{code}")),
        &[],
    );
}

impl Fixtures {
    /// A three-school directory with one entry per edge case. Users (all
    /// with password `pw-<uid>`):
    ///
    /// | uid | school | what it tests |
    /// |---|---|---|
    /// | anna.mueller | gym1, 5a + workgroup musik | umlaut name, mailPrimaryAddress |
    /// | ben.schulz | gym1, 5a | disabled by `shadowExpire: 1`; re-enabled in `changes` |
    /// | carla.weber | gym1, 5b | disabled by `sambaAcctFlags: [UD …]` only |
    /// | deniz.yilmaz | gym1, 5b | disabled by `krb5KDCFlags: 254` only; "Yılmaz" |
    /// | emil.expired | gym1 | `shadowExpire` in the past → disabled |
    /// | frieda.future | gym1 | `shadowExpire` in the future → enabled; disabled (krb5) in `changes` |
    /// | gustav.locked | gym1 | `sambaAcctFlags: [UL …]` (locked) → not disabled |
    /// | hanna.mover | gym1, 5a | moves to gs2 / 4a in `changes` (new DN, same entryUUID) |
    /// | ida.rename | gym1, 5b | renamed to ida.neumann in `changes` |
    /// | jonas.leaver | gym1, 5a | disabled + purge timestamp; deleted in `changes` |
    /// | ole.legacy | gym1 | no `ucsschoolRole`, only the role class + `ucsschoolSchool` |
    /// | exam-anna.mueller | gym1 examusers | exam account: never synced |
    /// | lena.lehrer | gym1 + gs2, teacher at both, in 5a | multi-school; technician |
    /// | max.multi | gym1 | teacher and staff, DN with spaces (`cn=lehrer und mitarbeiter`) |
    /// | mia.mitarbeiter | gym1 | staff |
    /// | paul.grund | gs2, 4a | |
    /// | rita.real | rs3, 7c | mail only in `mail` |
    /// | sam.admin | rs3 | school admin |
    /// | tom.guardian | rs3 | legal guardian: not a school user Flotte syncs |
    /// | tech.nik | none (`cn=users,<base>`) | technician, not a school user |
    ///
    /// Groups: classes gym1-5a, gym1-5b (renamed to gym1-6b in `changes`),
    /// gs2-4a, rs3-7c; workgroup gym1-musik; default groups, a computer room
    /// and an exam group that are neither; the technician group.
    pub fn edge_cases() -> EdgeCases {
        let mut ldif = Ldif::new();
        write_school(&mut ldif, "gym1", "Gymnasium Mitte", 6001);
        write_school(&mut ldif, "gs2", "Grundschule Nord", 6002);
        write_school(&mut ldif, "rs3", "Regionalschule Süd", 6003);

        let pupil = |uid: &'static str, given: &'static str, family: &'static str, n: u32| Person {
            uid,
            given,
            family,
            school: "gym1",
            container: "cn=schueler,cn=users",
            role_classes: &["ucsschoolStudent"],
            schools: &["gym1"],
            roles: &["student:school:gym1"],
            mail: None,
            flags: ENABLED,
            extra: &[],
            uid_number: 10_000 + n,
        };
        let people = [
            Person {
                mail: Some(("mailPrimaryAddress", "anna.mueller@gym1.schule.example")),
                ..pupil("anna.mueller", "Anna", "Müller", 1)
            },
            Person {
                flags: (Some("1"), "[UD         ]", "254"),
                ..pupil("ben.schulz", "Ben", "Schulz", 2)
            },
            Person {
                flags: (None, "[UD         ]", "126"),
                ..pupil("carla.weber", "Carla", "Weber", 3)
            },
            Person {
                flags: (None, "[U          ]", "254"),
                ..pupil("deniz.yilmaz", "Deniz", "Yılmaz", 4)
            },
            Person {
                flags: (Some("19000"), "[U          ]", "126"),
                ..pupil("emil.expired", "Emil", "Expired", 5)
            },
            Person {
                flags: (Some("40000"), "[U          ]", "126"),
                ..pupil("frieda.future", "Frieda", "Future", 6)
            },
            Person {
                flags: (None, "[UL         ]", "126"),
                ..pupil("gustav.locked", "Gustav", "Locked", 7)
            },
            pupil("hanna.mover", "Hanna", "Mover", 8),
            Person {
                mail: Some(("mailPrimaryAddress", "ida.rename@gym1.schule.example")),
                ..pupil("ida.rename", "Ida", "Rename", 9)
            },
            Person {
                flags: (Some("1"), "[UD         ]", "254"),
                extra: &[("ucsschoolPurgeTimestamp", "20260731000000Z")],
                ..pupil("jonas.leaver", "Jonas", "Leaver", 10)
            },
            Person {
                roles: &[],
                ..pupil("ole.legacy", "Ole", "Legacy", 11)
            },
            Person {
                container: "cn=examusers",
                role_classes: &["ucsschoolStudent", "ucsschoolExam"],
                roles: &["exam_user:exam:mathe-klausur-gym1", "student:school:gym1"],
                ..pupil("exam-anna.mueller", "Anna", "Müller", 12)
            },
            Person {
                container: "cn=lehrer,cn=users",
                role_classes: &["ucsschoolTeacher"],
                schools: &["gym1", "gs2"],
                roles: &["teacher:school:gym1", "teacher:school:gs2"],
                mail: Some(("mailPrimaryAddress", "lena.lehrer@schule.example")),
                ..pupil("lena.lehrer", "Lena", "Lehrer", 20)
            },
            Person {
                container: "cn=lehrer und mitarbeiter,cn=users",
                role_classes: &["ucsschoolTeacher", "ucsschoolStaff"],
                roles: &["teacher:school:gym1", "staff:school:gym1"],
                ..pupil("max.multi", "Max", "Multi", 21)
            },
            Person {
                container: "cn=mitarbeiter,cn=users",
                role_classes: &["ucsschoolStaff"],
                roles: &["staff:school:gym1"],
                ..pupil("mia.mitarbeiter", "Mia", "Mitarbeiter", 22)
            },
            Person {
                school: "gs2",
                schools: &["gs2"],
                roles: &["student:school:gs2"],
                ..pupil("paul.grund", "Paul", "Grund", 30)
            },
            Person {
                school: "rs3",
                schools: &["rs3"],
                roles: &["student:school:rs3"],
                mail: Some(("mail", "rita.real@example.org")),
                ..pupil("rita.real", "Rita", "Real", 40)
            },
            Person {
                school: "rs3",
                container: "cn=admins,cn=users",
                role_classes: &["ucsschoolAdministrator"],
                schools: &["rs3"],
                roles: &["school_admin:school:rs3"],
                ..pupil("sam.admin", "Sam", "Admin", 41)
            },
            Person {
                school: "rs3",
                container: "cn=sorgeberechtigte,cn=users",
                role_classes: &["ucsschoolLegalGuardian"],
                schools: &["rs3"],
                roles: &["legal_guardian:school:rs3"],
                ..pupil("tom.guardian", "Tom", "Guardian", 42)
            },
        ];
        for person in &people {
            write_person(&mut ldif, person, true);
        }
        let dn = |uid: &str| {
            people
                .iter()
                .find(|p| p.uid == uid)
                .map(person_dn)
                .unwrap_or_else(|| panic!("no fixture person {uid}"))
        };
        let dns = |uids: &[&str]| uids.iter().map(|u| dn(u)).collect::<Vec<_>>();

        // A global user: technicians are board staff, not school users.
        let tech_dn = format!("uid=tech.nik,cn=users,{BASE_DN}");
        ldif.entry(
            &tech_dn,
            &[
                ("objectClass", "inetOrgPerson"),
                ("objectClass", "posixAccount"),
                ("uid", "tech.nik"),
                ("cn", "Nik Technik"),
                ("givenName", "Nik"),
                ("sn", "Technik"),
                ("uidNumber", "9001"),
                ("gidNumber", "5000"),
                ("homeDirectory", "/home/tech.nik"),
                ("userPassword", "pw-tech.nik"),
            ],
        );
        let mut technicians = vec![tech_dn];
        technicians.push(dn("lena.lehrer"));
        write_group(
            &mut ldif,
            TECHNICIAN_GROUP_DN,
            "mdm-techniker",
            7000,
            None,
            &technicians,
        );

        let class = |school: &str, name: &str| {
            format!("cn={school}-{name},cn=klassen,cn=schueler,cn=groups,ou={school},{BASE_DN}")
        };
        write_group(
            &mut ldif,
            &class("gym1", "5a"),
            "gym1-5a",
            6101,
            Some("school_class:school:gym1"),
            &dns(&[
                "anna.mueller",
                "ben.schulz",
                "hanna.mover",
                "jonas.leaver",
                "lena.lehrer",
            ]),
        );
        write_group(
            &mut ldif,
            &class("gym1", "5b"),
            "gym1-5b",
            6102,
            Some("school_class:school:gym1"),
            &dns(&["carla.weber", "deniz.yilmaz", "ida.rename"]),
        );
        write_group(
            &mut ldif,
            &class("gs2", "4a"),
            "gs2-4a",
            6201,
            Some("school_class:school:gs2"),
            &dns(&["paul.grund", "lena.lehrer"]),
        );
        write_group(
            &mut ldif,
            &class("rs3", "7c"),
            "rs3-7c",
            6301,
            Some("school_class:school:rs3"),
            &dns(&["rita.real"]),
        );
        write_group(
            &mut ldif,
            &format!("cn=gym1-musik,cn=schueler,cn=groups,ou=gym1,{BASE_DN}"),
            "gym1-musik",
            6110,
            Some("workgroup:school:gym1"),
            &dns(&["anna.mueller", "max.multi"]),
        );
        // Exam-mode group with the exam account (and a member that is no
        // longer there): neither a class nor a workgroup.
        write_group(
            &mut ldif,
            &format!("cn=mathe-klausur-gym1,cn=examusers,ou=gym1,{BASE_DN}"),
            "mathe-klausur-gym1",
            6120,
            None,
            &[dn("exam-anna.mueller")],
        );
        for (school, pupils) in [
            (
                "gym1",
                dns(&[
                    "anna.mueller",
                    "ben.schulz",
                    "carla.weber",
                    "deniz.yilmaz",
                    "emil.expired",
                    "frieda.future",
                    "gustav.locked",
                    "hanna.mover",
                    "ida.rename",
                    "jonas.leaver",
                    "ole.legacy",
                ]),
            ),
            ("gs2", dns(&["paul.grund"])),
            ("rs3", dns(&["rita.real"])),
        ] {
            write_group(
                &mut ldif,
                &format!("cn=schueler-{school},cn=groups,ou={school},{BASE_DN}"),
                &format!("schueler-{school}"),
                6400,
                Some(&format!("school_student_group:school:{school}")),
                &pupils,
            );
        }

        let old_hanna = dn("hanna.mover");
        let new_hanna = format!("uid=hanna.mover,cn=schueler,cn=users,ou=gs2,{BASE_DN}");
        let old_ida = dn("ida.rename");
        let new_ida = format!("uid=ida.neumann,cn=schueler,cn=users,ou=gym1,{BASE_DN}");
        let class_5a = class("gym1", "5a");
        let class_5b = class("gym1", "5b");
        let class_4a = class("gs2", "4a");
        let changes = format!(
            "# hanna.mover changes school: new DN, same entryUUID
dn: {old_hanna}
changetype: modrdn
newrdn: uid=hanna.mover
deleteoldrdn: 1
newsuperior: cn=schueler,cn=users,ou=gs2,{BASE_DN}

dn: {new_hanna}
changetype: modify
replace: ucsschoolSchool
ucsschoolSchool: gs2
-
replace: ucsschoolRole
ucsschoolRole: student:school:gs2
-

dn: {class_4a}
changetype: modify
add: uniqueMember
uniqueMember: {new_hanna}
-
add: memberUid
memberUid: hanna.mover
-

# ida.rename becomes ida.neumann (uid, DN, name and mail change)
dn: {old_ida}
changetype: modrdn
newrdn: uid=ida.neumann
deleteoldrdn: 1

dn: {new_ida}
changetype: modify
replace: sn
sn: Neumann
-
replace: mailPrimaryAddress
mailPrimaryAddress: ida.neumann@gym1.schule.example
-

dn: {class_5b}
changetype: modify
delete: uniqueMember
uniqueMember: {old_ida}
-
add: uniqueMember
uniqueMember: {new_ida}
-
delete: memberUid
memberUid: ida.rename
-
add: memberUid
memberUid: ida.neumann
-

# jonas.leaver is deleted after his grace period
dn: {jonas}
changetype: delete

dn: {class_5a}
changetype: modify
delete: uniqueMember
uniqueMember: {old_hanna}
uniqueMember: {jonas}
-
delete: memberUid
memberUid: hanna.mover
memberUid: jonas.leaver
-

# the class 5b moves up: renamed to 6b, same entryUUID
dn: {class_5b}
changetype: modrdn
newrdn: cn=gym1-6b
deleteoldrdn: 1

# ben.schulz is enabled again, frieda.future disabled (Kerberos flag only)
dn: {ben}
changetype: modify
delete: shadowExpire
-
replace: sambaAcctFlags
sambaAcctFlags: [U          ]
-
replace: krb5KDCFlags
krb5KDCFlags: 126
-

dn: {frieda}
changetype: modify
replace: krb5KDCFlags
krb5KDCFlags: 254
-
",
            jonas = dn("jonas.leaver"),
            ben = dn("ben.schulz"),
            frieda = dn("frieda.future"),
        );
        EdgeCases {
            ldif: ldif.finish(),
            changes,
        }
    }

    /// A deterministic city directory (same spec, same LDIF). Pupils are
    /// spread unevenly over the schools, about 1 % are disabled and 0.5 %
    /// carry a purge timestamp; 5 % of teachers teach at a second school;
    /// every class has its pupils and two teachers; each school has a
    /// workgroup, default groups and a computer room. Nobody has a password.
    pub fn city(spec: &CitySpec) -> CityFixture {
        let mut rng = SplitMix64(spec.seed);
        let mut ldif = Ldif::new();
        let codes: Vec<String> = (1..=spec.schools).map(|n| format!("s{n:03}")).collect();
        const KINDS: [&str; 6] = [
            "Grundschule",
            "Gemeinschaftsschule",
            "Gymnasium",
            "Förderzentrum",
            "Berufsbildende Schule",
            "Grund- und Gemeinschaftsschule",
        ];

        let weights: Vec<f64> = (0..spec.schools).map(|_| 0.4 + rng.unit() * 1.2).collect();
        let pupils_per = share_out(spec.pupils, &weights);
        let teachers_per = share_out(
            spec.teachers,
            &pupils_per.iter().map(|&p| p as f64).collect::<Vec<_>>(),
        );
        let classes_per = share_out(
            spec.classes,
            &pupils_per.iter().map(|&p| p as f64).collect::<Vec<_>>(),
        );

        let mut serial = 0u32;
        let mut disabled = 0usize;
        let mut classes_total = 0usize;
        // Teacher DNs per school, for class membership; filled first so that
        // classes can name them.
        let mut teacher_dns: Vec<Vec<String>> = vec![Vec::new(); spec.schools];
        for (s, code) in codes.iter().enumerate() {
            let display = format!("{} {}", KINDS[s % KINDS.len()], code.to_uppercase());
            write_school(&mut ldif, code, &display, 60_000 + s as u32);
        }
        for (s, code) in codes.iter().enumerate() {
            for _ in 0..teachers_per[s] {
                serial += 1;
                let (given, family) = rng.name();
                let uid = format!("{}.{}{serial}", fold(given), fold(family));
                let mut schools = vec![code.clone()];
                if spec.schools > 1 && rng.unit() < 0.05 {
                    let other = (s + 1 + rng.below(spec.schools - 1)) % spec.schools;
                    schools.push(codes[other].clone());
                }
                let roles: Vec<String> = schools
                    .iter()
                    .map(|c| format!("teacher:school:{c}"))
                    .collect();
                let school_refs: Vec<&str> = schools.iter().map(String::as_str).collect();
                let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
                let mail = format!("{uid}@{code}.schule.example");
                let person = Person {
                    uid: &uid,
                    given,
                    family,
                    school: code,
                    container: "cn=lehrer,cn=users",
                    role_classes: &["ucsschoolTeacher"],
                    schools: &school_refs,
                    roles: &role_refs,
                    mail: Some(("mailPrimaryAddress", mail.as_str())),
                    flags: ENABLED,
                    extra: &[],
                    uid_number: 100_000 + serial,
                };
                write_person(&mut ldif, &person, false);
                teacher_dns[s].push(person_dn(&person));
            }
        }
        for (s, code) in codes.iter().enumerate() {
            let class_count = classes_per[s].max(1);
            let mut class_members: Vec<Vec<String>> = vec![Vec::new(); class_count];
            let mut pupil_dns = Vec::with_capacity(pupils_per[s]);
            let role = format!("student:school:{code}");
            for p in 0..pupils_per[s] {
                serial += 1;
                let (given, family) = rng.name();
                let uid = format!("{}.{}{serial}", fold(given), fold(family));
                let roll = rng.unit();
                let flags = if roll < 0.01 {
                    disabled += 1;
                    (Some("1"), "[UD         ]", "254")
                } else {
                    ENABLED
                };
                let extra: &[(&str, &str)] = if roll < 0.005 {
                    &[("ucsschoolPurgeTimestamp", "20270731000000Z")]
                } else {
                    &[]
                };
                let person = Person {
                    uid: &uid,
                    given,
                    family,
                    school: code,
                    container: "cn=schueler,cn=users",
                    role_classes: &["ucsschoolStudent"],
                    schools: &[code.as_str()],
                    roles: &[role.as_str()],
                    mail: None,
                    flags,
                    extra,
                    uid_number: 100_000 + serial,
                };
                write_person(&mut ldif, &person, false);
                let dn = person_dn(&person);
                class_members[p % class_count].push(dn.clone());
                pupil_dns.push(dn);
            }
            for (c, mut members) in class_members.into_iter().enumerate() {
                let teachers = &teacher_dns[s];
                if !teachers.is_empty() {
                    members.push(teachers[(2 * c) % teachers.len()].clone());
                    members.push(teachers[(2 * c + 1) % teachers.len()].clone());
                    members.dedup();
                }
                let name = format!("{}{}", 5 + c / 4 % 9, ['a', 'b', 'c', 'd'][c % 4]);
                let name = if c >= 36 {
                    format!("{name}{}", c / 36)
                } else {
                    name
                };
                let cn = format!("{code}-{name}");
                write_group(
                    &mut ldif,
                    &format!("cn={cn},cn=klassen,cn=schueler,cn=groups,ou={code},{BASE_DN}"),
                    &cn,
                    70_000 + classes_total as u32,
                    Some(&format!("school_class:school:{code}")),
                    &members,
                );
                classes_total += 1;
            }
            write_group(
                &mut ldif,
                &format!("cn={code}-ag-musik,cn=schueler,cn=groups,ou={code},{BASE_DN}"),
                &format!("{code}-ag-musik"),
                80_000 + s as u32,
                Some(&format!("workgroup:school:{code}")),
                &pupil_dns[..pupil_dns.len().min(12)],
            );
            write_group(
                &mut ldif,
                &format!("cn=schueler-{code},cn=groups,ou={code},{BASE_DN}"),
                &format!("schueler-{code}"),
                81_000 + s as u32,
                Some(&format!("school_student_group:school:{code}")),
                &pupil_dns,
            );
            write_group(
                &mut ldif,
                &format!("cn=lehrer-{code},cn=groups,ou={code},{BASE_DN}"),
                &format!("lehrer-{code}"),
                82_000 + s as u32,
                Some(&format!("school_teacher_group:school:{code}")),
                &teacher_dns[s],
            );
        }
        CityFixture {
            entries: ldif.entries(),
            ldif: ldif.finish(),
            schools: spec.schools,
            pupils: spec.pupils,
            teachers: spec.teachers,
            classes: classes_total,
            disabled,
        }
    }
}

/// Splits `total` in proportion to `weights`; the parts add up exactly.
fn share_out(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let mut parts: Vec<usize> = weights
        .iter()
        .map(|w| ((total as f64) * w / sum).floor() as usize)
        .collect();
    let mut missing = total - parts.iter().sum::<usize>();
    let mut i = 0;
    while missing > 0 && !parts.is_empty() {
        parts[i % weights.len()] += 1;
        missing -= 1;
        i += 1;
    }
    parts
}

/// Names for user ids: umlauts and other letters folded to ASCII.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            'ä' | 'Ä' => out.push_str("ae"),
            'ö' | 'Ö' => out.push_str("oe"),
            'ü' | 'Ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'ı' => out.push('i'),
            'ë' => out.push('e'),
            'ç' => out.push('c'),
            'ş' => out.push('s'),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out
}

/// SplitMix64: tiny, and its output never changes between crate versions,
/// unlike `rand`'s generators, so fixtures stay the same forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn name(&mut self) -> (&'static str, &'static str) {
        const GIVEN: [&str; 24] = [
            "Mia", "Emma", "Sophia", "Hannah", "Emilia", "Lina", "Ella", "Mila", "Lea", "Clara",
            "Zoë", "Elif", "Noah", "Leon", "Paul", "Ben", "Finn", "Elias", "Felix", "Luca",
            "Jonas", "Emil", "Ömer", "Jürgen",
        ];
        const FAMILY: [&str; 24] = [
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schulz",
            "Hoffmann",
            "Koch",
            "Yılmaz",
            "Kaya",
            "Öztürk",
            "Nowak",
            "Kowalski",
            "Jensen",
            "Petersen",
            "Hansen",
            "Lüth",
            "Voß",
            "Şahin",
            "Çelik",
            "Brügge",
        ];
        (
            GIVEN[self.below(GIVEN.len())],
            FAMILY[self.below(FAMILY.len())],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldif_values_that_need_it_are_base64() {
        let mut out = String::new();
        put(&mut out, "sn", "Müller");
        put(&mut out, "cn", "plain");
        put(&mut out, "description", " leading space");
        assert_eq!(
            out,
            "sn:: TcO8bGxlcg==\ncn: plain\ndescription:: IGxlYWRpbmcgc3BhY2U=\n"
        );
    }

    #[test]
    fn the_city_is_the_same_every_time_and_adds_up() {
        let spec = CitySpec {
            schools: 5,
            pupils: 500,
            teachers: 50,
            classes: 20,
            seed: 7,
        };
        let a = Fixtures::city(&spec);
        let b = Fixtures::city(&spec);
        assert_eq!(a.ldif, b.ldif);
        assert_eq!(
            a.ldif.matches("objectClass: ucsschoolStudent\n").count(),
            500
        );
        assert_eq!(
            a.ldif.matches("objectClass: ucsschoolTeacher\n").count(),
            50
        );
        assert_eq!(a.classes, 20);
        assert_eq!(share_out(10, &[1.0, 1.0, 1.0]).iter().sum::<usize>(), 10);
    }
}
