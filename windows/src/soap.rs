//! MS-MDE2 enrolment messages: SOAP 1.2 envelopes for discovery, policy (MS-XCEP) and
//! enrolment (MS-WSTEP), in both directions.
//!
//! The server side parses `Discover`, `GetPolicies` and `RequestSecurityToken` and renders the
//! answers and SOAP faults; the client side (used by the laptop simulator) renders the requests
//! and reads the answers. Every element is matched by namespace URI and local name; prefixes
//! are whatever the writer chose.

use crate::write::XmlWriter;
use crate::xml::{self, Element, Limits, XmlError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};

/// SOAP 1.2 envelope.
pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing.
pub const NS_ADDRESSING: &str = "http://www.w3.org/2005/08/addressing";
/// WS-Security utility (timestamps, ids).
pub const NS_WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// WS-Security extension (tokens).
pub const NS_WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Trust 1.3.
pub const NS_WST: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
/// AdditionalContext of the enrolment request.
pub const NS_AC: &str = "http://schemas.xmlsoap.org/ws/2006/12/authorization";
/// The discovery service's body.
pub const NS_DISCOVERY: &str = "http://schemas.microsoft.com/windows/management/2012/01/enrollment";
/// MS-XCEP, the enrolment policy service's body.
pub const NS_XCEP: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy";
/// MS-WSTEP extensions (DispositionMessage, RequestID).
pub const NS_WSTEP: &str = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment";
/// WCF's correlation header.
pub const NS_DIAGNOSTICS: &str = "http://schemas.microsoft.com/2004/09/ServiceModel/Diagnostics";
const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const NS_XSD: &str = "http://www.w3.org/2001/XMLSchema";

/// `TokenType` of an enrolment request and response.
pub const TOKEN_TYPE_ENROLLMENT: &str =
    "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentToken";
/// `ValueType` of the response's provisioning document.
pub const VALUE_TYPE_PROVISION_DOC: &str = "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentProvisionDoc";
/// `ValueType` of a PKCS#10 in the request.
pub const VALUE_TYPE_PKCS10: &str =
    "http://schemas.microsoft.com/windows/pki/2009/01/enrollment#PKCS10";
/// `EncodingType` of binary tokens.
pub const ENCODING_BASE64: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd#base64binary";
/// `Type` of a clear-text password in a `UsernameToken`.
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
const REQUEST_ISSUE: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue";
const REQUEST_RENEW: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Renew";
/// The SHA-256 OID that the policy names, so that Windows signs its CSR with SHA-256 (without
/// it, Windows 10 falls back to sha1WithRSA).
pub const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const ANONYMOUS: &str = "http://www.w3.org/2005/08/addressing/anonymous";

/// One of the three enrolment services; each has its request and response action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `/EnrollmentServer/Discovery.svc`.
    Discovery,
    /// `/EnrollmentServer/Policy.svc` (MS-XCEP).
    Policy,
    /// `/EnrollmentServer/Enrollment.svc` (MS-WSTEP).
    Enrollment,
}

impl Service {
    /// The `a:Action` a request to this service carries.
    pub fn request_action(self) -> &'static str {
        match self {
            Self::Discovery => {
                "http://schemas.microsoft.com/windows/management/2012/01/enrollment/IDiscoveryService/Discover"
            }
            Self::Policy => {
                "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPolicies"
            }
            Self::Enrollment => {
                "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RST/wstep"
            }
        }
    }

    /// The `a:Action` of this service's answers, faults included.
    pub fn response_action(self) -> &'static str {
        match self {
            Self::Discovery => {
                "http://schemas.microsoft.com/windows/management/2012/01/enrollment/IDiscoveryService/DiscoverResponse"
            }
            Self::Policy => {
                "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy/IPolicy/GetPoliciesResponse"
            }
            Self::Enrollment => {
                "http://schemas.microsoft.com/windows/pki/2009/01/enrollment/RSTRC/wstep"
            }
        }
    }
}

/// MS-MDE2 §2.2.10 fault subcodes; Windows shows the matching `MENROLL_E_*` code to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// 0x80180001: the message could not be read.
    MessageFormat,
    /// 0x80180002: the user (or enrolment secret) was not recognised.
    Authentication,
    /// 0x80180003: the user may not enrol.
    Authorization,
    /// 0x80180004: the certificate request was refused.
    CertificateRequest,
    /// 0x80180005: a generic failure of the management server.
    EnrollmentServer,
    /// 0x80180006: an internal error.
    InternalServiceFault,
    /// 0x80180007: the security header was invalid.
    InvalidSecurity,
}

impl FaultCode {
    /// The qualified subcode as written in `<s:Subcode><s:Value>`.
    pub fn subcode(self) -> &'static str {
        match self {
            Self::MessageFormat => "s:MessageFormat",
            Self::Authentication => "s:Authentication",
            Self::Authorization => "s:Authorization",
            Self::CertificateRequest => "s:CertificateRequest",
            Self::EnrollmentServer => "s:EnrollmentServer",
            Self::InternalServiceFault => "s:InternalServiceFault",
            Self::InvalidSecurity => "a:InvalidSecurity",
        }
    }

    /// The device-side HRESULT the subcode maps to.
    pub fn hresult(self) -> u32 {
        match self {
            Self::MessageFormat => 0x8018_0001,
            Self::Authentication => 0x8018_0002,
            Self::Authorization => 0x8018_0003,
            Self::CertificateRequest => 0x8018_0004,
            Self::EnrollmentServer => 0x8018_0005,
            Self::InternalServiceFault => 0x8018_0006,
            Self::InvalidSecurity => 0x8018_0007,
        }
    }

    /// Whether the request was at fault (SOAP `Sender`, HTTP 4xx) rather than the server
    /// (`Receiver`, HTTP 5xx).
    pub fn is_sender_fault(self) -> bool {
        !matches!(self, Self::EnrollmentServer | Self::InternalServiceFault)
    }

    fn from_subcode(value: &str) -> Option<Self> {
        let local = value.rsplit(':').next().unwrap_or(value);
        [
            Self::MessageFormat,
            Self::Authentication,
            Self::Authorization,
            Self::CertificateRequest,
            Self::EnrollmentServer,
            Self::InternalServiceFault,
            Self::InvalidSecurity,
        ]
        .into_iter()
        .find(|c| c.subcode().rsplit(':').next() == Some(local))
    }
}

/// A SOAP fault: the code Windows acts on and a reason an operator can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The MS-MDE2 subcode.
    pub code: FaultCode,
    /// `<s:Reason><s:Text>`; never internal details.
    pub reason: String,
}

impl Fault {
    /// A fault with `code` and `reason`.
    pub fn new(code: FaultCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// Why a SOAP message was refused (server side) or an answer could not be used (client side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    /// The bytes are not acceptable XML.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// Well-formed XML that is not the expected message.
    #[error("{0}")]
    Invalid(String),
    /// The answer was a SOAP fault (client side).
    #[error("SOAP fault {subcode}: {reason}")]
    Fault {
        /// The subcode as sent.
        subcode: String,
        /// The reason text.
        reason: String,
    },
}

impl SoapError {
    fn invalid(what: impl Into<String>) -> Self {
        Self::Invalid(what.into())
    }

    /// The fault the server answers this error with: always a message-format fault, because a
    /// message that cannot be read cannot be anything else.
    pub fn fault(&self) -> Fault {
        Fault::new(FaultCode::MessageFormat, self.to_string())
    }

    /// The fault code, when this error is a received fault with a known subcode.
    pub fn fault_code(&self) -> Option<FaultCode> {
        match self {
            Self::Fault { subcode, .. } => FaultCode::from_subcode(subcode),
            _ => None,
        }
    }
}

/// A credential from the `wsse:Security` header.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// OnPremise: user name and clear-text password (protected by TLS only).
    UsernameToken {
        /// The user name (a UPN or e-mail address in practice).
        username: String,
        /// The password or enrolment secret.
        password: String,
    },
    /// Federated or programmatic enrolment: an opaque token.
    BinarySecurityToken {
        /// Its `ValueType`.
        value_type: String,
        /// Its base64 text.
        value: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords and tokens never reach a log, not even a debug one.
        match self {
            Self::UsernameToken { username, .. } => f
                .debug_struct("UsernameToken")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::BinarySecurityToken { value_type, .. } => f
                .debug_struct("BinarySecurityToken")
                .field("value_type", value_type)
                .finish_non_exhaustive(),
        }
    }
}

/// The parts of the SOAP header the services use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SoapHeader {
    /// `a:Action`.
    pub action: Option<String>,
    /// `a:MessageID`, echoed as `a:RelatesTo`.
    pub message_id: Option<String>,
    /// `a:To`.
    pub to: Option<String>,
    /// The credential from `wsse:Security`, if any.
    pub credential: Option<Credential>,
}

struct Envelope {
    header: SoapHeader,
    body: Element,
}

fn parse_envelope(input: &[u8], service: Service) -> Result<Envelope, SoapError> {
    let root = xml::parse(input, &Limits::SOAP)?;
    if !root.is(NS_SOAP, "Envelope") {
        return Err(SoapError::invalid(format!(
            "expected a SOAP 1.2 Envelope, got {{{}}}{}",
            root.namespace.as_deref().unwrap_or(""),
            root.name
        )));
    }
    let header = root
        .child(NS_SOAP, "Header")
        .map(header_of)
        .unwrap_or_default();
    if let Some(action) = &header.action
        && action != service.request_action()
    {
        return Err(SoapError::invalid(format!(
            "action {action:?} is not {:?}",
            service.request_action()
        )));
    }
    let mut body = root
        .child(NS_SOAP, "Body")
        .ok_or_else(|| SoapError::invalid("the envelope has no Body"))?
        .children();
    let payload = body
        .next()
        .ok_or_else(|| SoapError::invalid("the Body is empty"))?
        .clone();
    Ok(Envelope {
        header,
        body: payload,
    })
}

fn header_of(header: &Element) -> SoapHeader {
    let text = |name: &str| {
        header
            .child(NS_ADDRESSING, name)
            .map(Element::trimmed_text)
            .filter(|t| !t.is_empty())
    };
    let credential = header.child(NS_WSSE, "Security").and_then(|security| {
        if let Some(token) = security.child(NS_WSSE, "UsernameToken") {
            return Some(Credential::UsernameToken {
                username: token
                    .child(NS_WSSE, "Username")
                    .map(Element::trimmed_text)
                    .unwrap_or_default(),
                // Passwords are taken verbatim: spaces may be part of them.
                password: token
                    .child(NS_WSSE, "Password")
                    .map(Element::text)
                    .unwrap_or_default(),
            });
        }
        security.child(NS_WSSE, "BinarySecurityToken").map(|token| {
            Credential::BinarySecurityToken {
                value_type: token.attr("ValueType").unwrap_or_default().to_owned(),
                value: token.trimmed_text(),
            }
        })
    });
    SoapHeader {
        action: text("Action"),
        message_id: text("MessageID"),
        to: text("To"),
        credential,
    }
}

fn expect_body(body: &Element, namespace: &str, name: &str) -> Result<(), SoapError> {
    if body.is(namespace, name) {
        Ok(())
    } else {
        Err(SoapError::invalid(format!(
            "expected {{{namespace}}}{name} in the Body, got {{{}}}{}",
            body.namespace.as_deref().unwrap_or(""),
            body.name
        )))
    }
}

/// A `Discover` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverRequest {
    /// The SOAP header.
    pub header: SoapHeader,
    /// The user's address (empty for programmatic enrolment).
    pub email_address: String,
    /// `RequestVersion` (4.0, 5.0, 6.0 …).
    pub request_version: Option<String>,
    /// `DeviceType`, e.g. `CIMClient_Windows`.
    pub device_type: Option<String>,
    /// `ApplicationVersion`, the Windows build.
    pub application_version: Option<String>,
    /// `AuthPolicies` the client supports.
    pub auth_policies: Vec<String>,
}

/// Reads a `Discover` request.
pub fn parse_discover(input: &[u8]) -> Result<DiscoverRequest, SoapError> {
    let envelope = parse_envelope(input, Service::Discovery)?;
    expect_body(&envelope.body, NS_DISCOVERY, "Discover")?;
    let request = envelope
        .body
        .child(NS_DISCOVERY, "request")
        .ok_or_else(|| SoapError::invalid("Discover has no request element"))?;
    let text = |name: &str| {
        request
            .child(NS_DISCOVERY, name)
            .map(Element::trimmed_text)
            .filter(|t| !t.is_empty())
    };
    Ok(DiscoverRequest {
        email_address: text("EmailAddress").unwrap_or_default(),
        request_version: text("RequestVersion"),
        device_type: text("DeviceType"),
        application_version: text("ApplicationVersion"),
        auth_policies: request
            .child(NS_DISCOVERY, "AuthPolicies")
            .map(|p| {
                p.children_named(NS_DISCOVERY, "AuthPolicy")
                    .map(Element::trimmed_text)
                    .collect()
            })
            .unwrap_or_default(),
        header: envelope.header,
    })
}

/// A `GetPolicies` request: only its header matters (the credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRequest {
    /// The SOAP header.
    pub header: SoapHeader,
}

/// Reads a `GetPolicies` request.
pub fn parse_get_policies(input: &[u8]) -> Result<PolicyRequest, SoapError> {
    let envelope = parse_envelope(input, Service::Policy)?;
    expect_body(&envelope.body, NS_XCEP, "GetPolicies")?;
    Ok(PolicyRequest {
        header: envelope.header,
    })
}

/// What the client asks the enrolment service for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// A new enrolment (PKCS#10).
    Issue,
    /// A certificate renewal (PKCS#7 around a PKCS#10).
    Renew,
}

/// Where the client certificate goes, from `EnrollmentType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollmentType {
    /// `Full`: a user enrolled the device; `My/User`.
    Full,
    /// `Device`: device-wide enrolment (provisioning packages); `My/System`.
    Device,
}

/// A `RequestSecurityToken` (MS-WSTEP) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRequest {
    /// The SOAP header.
    pub header: SoapHeader,
    /// Issue or renew.
    pub request_type: RequestType,
    /// The `ValueType` of the binary token.
    pub value_type: String,
    /// The decoded token: a PKCS#10 for [`RequestType::Issue`].
    pub token_der: Vec<u8>,
    /// `AdditionalContext` items in document order (`MAC` repeats).
    pub context: Vec<(String, String)>,
}

impl EnrollmentRequest {
    /// The first context item called `name`.
    pub fn context_value(&self, name: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `DeviceID`: the identifier the device later sends as SyncML `Source`.
    pub fn device_id(&self) -> Option<&str> {
        self.context_value("DeviceID")
    }

    /// `HWDevID`: stable for the hardware, across re-installations.
    pub fn hw_dev_id(&self) -> Option<&str> {
        self.context_value("HWDevID")
    }

    /// `EnrollmentType`; `Full` unless the device says `Device`.
    pub fn enrollment_type(&self) -> EnrollmentType {
        match self.context_value("EnrollmentType") {
            Some(t) if t.eq_ignore_ascii_case("Device") => EnrollmentType::Device,
            _ => EnrollmentType::Full,
        }
    }
}

/// Reads a `RequestSecurityToken`. The token is base64-decoded (line breaks allowed); its
/// content is not checked here.
pub fn parse_request_security_token(input: &[u8]) -> Result<EnrollmentRequest, SoapError> {
    let envelope = parse_envelope(input, Service::Enrollment)?;
    let body = &envelope.body;
    expect_body(body, NS_WST, "RequestSecurityToken")?;
    let request_type = match body
        .child(NS_WST, "RequestType")
        .map(Element::trimmed_text)
        .as_deref()
    {
        Some(REQUEST_ISSUE) => RequestType::Issue,
        Some(REQUEST_RENEW) => RequestType::Renew,
        Some(other) => {
            return Err(SoapError::invalid(format!("unknown RequestType {other:?}")));
        }
        None => {
            return Err(SoapError::invalid(
                "RequestSecurityToken has no RequestType",
            ));
        }
    };
    let token = body
        .child(NS_WSSE, "BinarySecurityToken")
        .ok_or_else(|| SoapError::invalid("RequestSecurityToken has no BinarySecurityToken"))?;
    let compact: String = token
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let token_der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| SoapError::invalid(format!("BinarySecurityToken is not base64: {e}")))?;
    if token_der.is_empty() {
        return Err(SoapError::invalid("BinarySecurityToken is empty"));
    }
    let context = body
        .child(NS_AC, "AdditionalContext")
        .map(|ac| {
            ac.children_named(NS_AC, "ContextItem")
                .filter_map(|item| {
                    let name = item.attr("Name")?.to_owned();
                    let value = item
                        .child(NS_AC, "Value")
                        .map(Element::trimmed_text)
                        .unwrap_or_default();
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(EnrollmentRequest {
        request_type,
        value_type: token.attr("ValueType").unwrap_or_default().to_owned(),
        token_der,
        context,
        header: envelope.header,
    })
}

fn response_envelope(
    w: &mut XmlWriter,
    service: Service,
    relates_to: Option<&str>,
    activity_id: &str,
    extra_header: impl FnOnce(&mut XmlWriter),
) {
    w.start(
        "s:Envelope",
        &[
            ("xmlns:s", NS_SOAP),
            ("xmlns:a", NS_ADDRESSING),
            ("xmlns:u", NS_WSU),
        ],
    );
    w.start("s:Header", &[]);
    w.element(
        "a:Action",
        &[("s:mustUnderstand", "1")],
        service.response_action(),
    );
    w.element(
        "ActivityId",
        &[("CorrelationId", activity_id), ("xmlns", NS_DIAGNOSTICS)],
        activity_id,
    );
    if let Some(id) = relates_to {
        w.element("a:RelatesTo", &[], id);
    }
    extra_header(w);
    w.end("s:Header");
}

/// What the discovery service answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverResponse {
    /// `OnPremise`, `Federated` or `Certificate`.
    pub auth_policy: String,
    /// The protocol version the server speaks.
    pub enrollment_version: String,
    /// Where `GetPolicies` goes.
    pub policy_url: String,
    /// Where `RequestSecurityToken` goes.
    pub enrollment_url: String,
}

/// Renders a `DiscoverResponse`; `relates_to` is the request's `MessageID`.
pub fn render_discover_response(
    response: &DiscoverResponse,
    relates_to: Option<&str>,
    activity_id: &str,
) -> String {
    let mut w = XmlWriter::new();
    response_envelope(&mut w, Service::Discovery, relates_to, activity_id, |_| {});
    w.start("s:Body", &[]);
    w.start("DiscoverResponse", &[("xmlns", NS_DISCOVERY)]);
    w.start("DiscoverResult", &[]);
    w.element("AuthPolicy", &[], &response.auth_policy);
    w.element("EnrollmentVersion", &[], &response.enrollment_version);
    w.element("EnrollmentPolicyServiceUrl", &[], &response.policy_url);
    w.element("EnrollmentServiceUrl", &[], &response.enrollment_url);
    w.end("DiscoverResult");
    w.end("DiscoverResponse");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

/// Renders the MS-XCEP `GetPoliciesResponse`: one policy asking for an RSA key of at least
/// `min_key_length` bits and a SHA-256 signature, everything else left to the client.
pub fn render_get_policies_response(
    relates_to: Option<&str>,
    activity_id: &str,
    min_key_length: u32,
) -> String {
    let mut w = XmlWriter::new();
    response_envelope(&mut w, Service::Policy, relates_to, activity_id, |_| {});
    w.start("s:Body", &[("xmlns:xsi", NS_XSI), ("xmlns:xsd", NS_XSD)]);
    w.start("GetPoliciesResponse", &[("xmlns", NS_XCEP)]);
    w.start("response", &[]);
    w.empty("policyID", &[]);
    w.nil("policyFriendlyName");
    w.nil("nextUpdateHours");
    w.nil("policiesNotChanged");
    w.start("policies", &[]);
    w.start("policy", &[]);
    w.element("policyOIDReference", &[], "0");
    w.nil("cAs");
    w.start("attributes", &[]);
    w.nil("commonName");
    w.element("policySchema", &[], "3");
    w.start("certificateValidity", &[]);
    w.element("validityPeriodSeconds", &[], "1209600");
    w.element("renewalPeriodSeconds", &[], "172800");
    w.end("certificateValidity");
    w.start("permission", &[]);
    w.element("enroll", &[], "true");
    w.element("autoEnroll", &[], "false");
    w.end("permission");
    w.start("privateKeyAttributes", &[]);
    w.element("minimalKeyLength", &[], &min_key_length.to_string());
    w.nil("keySpec");
    w.nil("keyUsageProperty");
    w.nil("permissions");
    w.nil("algorithmOIDReference");
    w.nil("cryptoProviders");
    w.end("privateKeyAttributes");
    w.start("revision", &[]);
    w.element("majorRevision", &[], "101");
    w.element("minorRevision", &[], "0");
    w.end("revision");
    w.nil("supersededPolicies");
    w.nil("privateKeyFlags");
    w.nil("subjectNameFlags");
    w.nil("enrollmentFlags");
    w.nil("generalFlags");
    w.element("hashAlgorithmOIDReference", &[], "0");
    w.nil("rARequirements");
    w.nil("keyArchivalAttributes");
    w.nil("extensions");
    w.end("attributes");
    w.end("policy");
    w.end("policies");
    w.end("response");
    w.nil("cAs");
    w.start("oIDs", &[]);
    w.start("oID", &[]);
    w.element("value", &[], OID_SHA256);
    w.element("group", &[], "4");
    w.element("oIDReferenceID", &[], "0");
    w.element("defaultName", &[], "szOID_NIST_sha256");
    w.end("oID");
    w.end("oIDs");
    w.end("GetPoliciesResponse");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

/// Renders the `RequestSecurityTokenResponseCollection` carrying `provisioning_doc`
/// (the wap-provisioningdoc XML, base64-encoded here).
pub fn render_enrollment_response(
    provisioning_doc: &str,
    relates_to: Option<&str>,
    activity_id: &str,
    now: DateTime<Utc>,
) -> String {
    let mut w = XmlWriter::new();
    let created = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let expires = (now + chrono::Duration::minutes(5)).to_rfc3339_opts(SecondsFormat::Millis, true);
    response_envelope(&mut w, Service::Enrollment, relates_to, activity_id, |w| {
        w.start(
            "o:Security",
            &[("xmlns:o", NS_WSSE), ("s:mustUnderstand", "1")],
        );
        w.start("u:Timestamp", &[("u:Id", "_0")]);
        w.element("u:Created", &[], &created);
        w.element("u:Expires", &[], &expires);
        w.end("u:Timestamp");
        w.end("o:Security");
    });
    w.start("s:Body", &[]);
    w.start(
        "RequestSecurityTokenResponseCollection",
        &[("xmlns", NS_WST)],
    );
    w.start("RequestSecurityTokenResponse", &[]);
    w.element("TokenType", &[], TOKEN_TYPE_ENROLLMENT);
    w.empty("DispositionMessage", &[("xmlns", NS_WSTEP)]);
    w.start("RequestedSecurityToken", &[]);
    w.element(
        "BinarySecurityToken",
        &[
            ("ValueType", VALUE_TYPE_PROVISION_DOC),
            ("EncodingType", ENCODING_BASE64),
            ("xmlns", NS_WSSE),
        ],
        &STANDARD.encode(provisioning_doc.as_bytes()),
    );
    w.end("RequestedSecurityToken");
    w.element("RequestID", &[("xmlns", NS_WSTEP)], "0");
    w.end("RequestSecurityTokenResponse");
    w.end("RequestSecurityTokenResponseCollection");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

/// Renders a SOAP fault with the response action of `service` (MS-MDE2 §2.2.10).
pub fn render_fault(
    service: Service,
    fault: &Fault,
    relates_to: Option<&str>,
    activity_id: &str,
) -> String {
    let mut w = XmlWriter::new();
    response_envelope(&mut w, service, relates_to, activity_id, |_| {});
    w.start("s:Body", &[]);
    w.start("s:Fault", &[]);
    w.start("s:Code", &[]);
    w.element(
        "s:Value",
        &[],
        if fault.code.is_sender_fault() {
            "s:Sender"
        } else {
            "s:Receiver"
        },
    );
    w.start("s:Subcode", &[]);
    w.element("s:Value", &[], fault.code.subcode());
    w.end("s:Subcode");
    w.end("s:Code");
    w.start("s:Reason", &[]);
    w.element("s:Text", &[("xml:lang", "en-US")], &fault.reason);
    w.end("s:Reason");
    w.end("s:Fault");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

// ---------------------------------------------------------------------------------------------
// The client side, for simulators and tests.

fn request_envelope(
    w: &mut XmlWriter,
    service: Service,
    message_id: &str,
    to: &str,
    credential: Option<&Credential>,
) {
    w.start(
        "s:Envelope",
        &[
            ("xmlns:s", NS_SOAP),
            ("xmlns:a", NS_ADDRESSING),
            ("xmlns:u", NS_WSU),
            ("xmlns:wsse", NS_WSSE),
            ("xmlns:wst", NS_WST),
            ("xmlns:ac", NS_AC),
        ],
    );
    w.start("s:Header", &[]);
    w.element(
        "a:Action",
        &[("s:mustUnderstand", "1")],
        service.request_action(),
    );
    w.element("a:MessageID", &[], message_id);
    w.start("a:ReplyTo", &[]);
    w.element("a:Address", &[], ANONYMOUS);
    w.end("a:ReplyTo");
    w.element("a:To", &[("s:mustUnderstand", "1")], to);
    match credential {
        Some(Credential::UsernameToken { username, password }) => {
            w.start("wsse:Security", &[("s:mustUnderstand", "1")]);
            w.start("wsse:UsernameToken", &[("u:Id", "uuid-0-1")]);
            w.element("wsse:Username", &[], username);
            w.element("wsse:Password", &[("wsse:Type", PASSWORD_TEXT)], password);
            w.end("wsse:UsernameToken");
            w.end("wsse:Security");
        }
        Some(Credential::BinarySecurityToken { value_type, value }) => {
            w.start("wsse:Security", &[("s:mustUnderstand", "1")]);
            w.element(
                "wsse:BinarySecurityToken",
                &[("ValueType", value_type), ("EncodingType", ENCODING_BASE64)],
                value,
            );
            w.end("wsse:Security");
        }
        None => {}
    }
    w.end("s:Header");
}

/// Renders a `Discover` request as Windows sends it.
pub fn render_discover_request(message_id: &str, to: &str, email_address: &str) -> String {
    let mut w = XmlWriter::new();
    request_envelope(&mut w, Service::Discovery, message_id, to, None);
    w.start("s:Body", &[]);
    w.start("Discover", &[("xmlns", NS_DISCOVERY)]);
    w.start("request", &[("xmlns:i", NS_XSI)]);
    w.element("EmailAddress", &[], email_address);
    w.element("RequestVersion", &[], "5.0");
    w.element("DeviceType", &[], "CIMClient_Windows");
    w.element("ApplicationVersion", &[], "10.0.22631.4602");
    w.element("OSEdition", &[], "121");
    w.start("AuthPolicies", &[]);
    w.element("AuthPolicy", &[], "OnPremise");
    w.element("AuthPolicy", &[], "Federated");
    w.end("AuthPolicies");
    w.end("request");
    w.end("Discover");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

/// Renders a `GetPolicies` request with `credential`.
pub fn render_get_policies_request(message_id: &str, to: &str, credential: &Credential) -> String {
    let mut w = XmlWriter::new();
    request_envelope(&mut w, Service::Policy, message_id, to, Some(credential));
    w.start("s:Body", &[("xmlns:xsi", NS_XSI), ("xmlns:xsd", NS_XSD)]);
    w.start("GetPolicies", &[("xmlns", NS_XCEP)]);
    w.start("client", &[]);
    w.nil("lastUpdate");
    w.nil("preferredLanguage");
    w.end("client");
    w.nil("requestFilter");
    w.end("GetPolicies");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

/// Renders a `RequestSecurityToken` for a new enrolment with `csr_der` and the given
/// `AdditionalContext` items.
pub fn render_request_security_token(
    message_id: &str,
    to: &str,
    credential: &Credential,
    csr_der: &[u8],
    context: &[(&str, &str)],
) -> String {
    let mut w = XmlWriter::new();
    request_envelope(
        &mut w,
        Service::Enrollment,
        message_id,
        to,
        Some(credential),
    );
    w.start("s:Body", &[]);
    w.start("wst:RequestSecurityToken", &[]);
    w.element("wst:TokenType", &[], TOKEN_TYPE_ENROLLMENT);
    w.element("wst:RequestType", &[], REQUEST_ISSUE);
    w.element(
        "wsse:BinarySecurityToken",
        &[
            ("ValueType", VALUE_TYPE_PKCS10),
            ("EncodingType", ENCODING_BASE64),
        ],
        &STANDARD.encode(csr_der),
    );
    w.start("ac:AdditionalContext", &[("xmlns", NS_AC)]);
    for (name, value) in context {
        w.start("ac:ContextItem", &[("Name", name)]);
        w.element("ac:Value", &[], value);
        w.end("ac:ContextItem");
    }
    w.end("ac:AdditionalContext");
    w.end("wst:RequestSecurityToken");
    w.end("s:Body");
    w.end("s:Envelope");
    w.finish()
}

fn parse_response(input: &[u8]) -> Result<Element, SoapError> {
    let root = xml::parse(input, &Limits::SOAP)?;
    if !root.is(NS_SOAP, "Envelope") {
        return Err(SoapError::invalid("not a SOAP 1.2 envelope"));
    }
    let body = root
        .child(NS_SOAP, "Body")
        .and_then(|b| b.children().next())
        .ok_or_else(|| SoapError::invalid("the Body is empty"))?
        .clone();
    if body.is(NS_SOAP, "Fault") {
        let subcode = body
            .child(NS_SOAP, "Code")
            .and_then(|c| c.child(NS_SOAP, "Subcode"))
            .and_then(|s| s.child(NS_SOAP, "Value"))
            .map(Element::trimmed_text)
            .unwrap_or_default();
        let reason = body
            .child(NS_SOAP, "Reason")
            .and_then(|r| r.child(NS_SOAP, "Text"))
            .map(Element::trimmed_text)
            .unwrap_or_default();
        return Err(SoapError::Fault { subcode, reason });
    }
    Ok(body)
}

/// Reads a `DiscoverResponse` (or the fault it is).
pub fn parse_discover_response(input: &[u8]) -> Result<DiscoverResponse, SoapError> {
    let body = parse_response(input)?;
    expect_body(&body, NS_DISCOVERY, "DiscoverResponse")?;
    let result = body
        .child(NS_DISCOVERY, "DiscoverResult")
        .ok_or_else(|| SoapError::invalid("no DiscoverResult"))?;
    let text = |name: &str| {
        result
            .child(NS_DISCOVERY, name)
            .map(Element::trimmed_text)
            .ok_or_else(|| SoapError::invalid(format!("DiscoverResult has no {name}")))
    };
    Ok(DiscoverResponse {
        auth_policy: text("AuthPolicy")?,
        enrollment_version: text("EnrollmentVersion")?,
        policy_url: text("EnrollmentPolicyServiceUrl")?,
        enrollment_url: text("EnrollmentServiceUrl")?,
    })
}

/// What a client takes from a `GetPoliciesResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAnswer {
    /// `minimalKeyLength`.
    pub min_key_length: Option<u32>,
    /// The OID the policy's `hashAlgorithmOIDReference` points at.
    pub hash_algorithm_oid: Option<String>,
}

/// Reads a `GetPoliciesResponse` (or the fault it is).
pub fn parse_get_policies_response(input: &[u8]) -> Result<PolicyAnswer, SoapError> {
    let body = parse_response(input)?;
    expect_body(&body, NS_XCEP, "GetPoliciesResponse")?;
    let attributes = body
        .child(NS_XCEP, "response")
        .and_then(|r| r.child(NS_XCEP, "policies"))
        .and_then(|p| p.child(NS_XCEP, "policy"))
        .and_then(|p| p.child(NS_XCEP, "attributes"))
        .ok_or_else(|| SoapError::invalid("the response names no policy"))?;
    let min_key_length = attributes
        .child(NS_XCEP, "privateKeyAttributes")
        .and_then(|k| k.child(NS_XCEP, "minimalKeyLength"))
        .and_then(|k| k.trimmed_text().parse().ok());
    let hash_ref = attributes
        .child(NS_XCEP, "hashAlgorithmOIDReference")
        .filter(|r| !r.is_nil())
        .map(Element::trimmed_text);
    let hash_algorithm_oid = hash_ref.and_then(|reference| {
        body.child(NS_XCEP, "oIDs")?
            .children_named(NS_XCEP, "oID")
            .find(|oid| {
                oid.child(NS_XCEP, "oIDReferenceID")
                    .is_some_and(|r| r.trimmed_text() == reference)
            })
            .and_then(|oid| oid.child(NS_XCEP, "value"))
            .map(Element::trimmed_text)
    });
    Ok(PolicyAnswer {
        min_key_length,
        hash_algorithm_oid,
    })
}

/// Reads a `RequestSecurityTokenResponseCollection` and returns the decoded
/// wap-provisioningdoc (or the fault it is).
pub fn parse_enrollment_response(input: &[u8]) -> Result<String, SoapError> {
    let body = parse_response(input)?;
    expect_body(&body, NS_WST, "RequestSecurityTokenResponseCollection")?;
    let token = body
        .child(NS_WST, "RequestSecurityTokenResponse")
        .and_then(|r| r.child(NS_WST, "RequestedSecurityToken"))
        .and_then(|r| r.child(NS_WSSE, "BinarySecurityToken"))
        .ok_or_else(|| SoapError::invalid("the response carries no BinarySecurityToken"))?;
    if token.attr("ValueType") != Some(VALUE_TYPE_PROVISION_DOC) {
        return Err(SoapError::invalid(
            "the token is not a provisioning document",
        ));
    }
    let compact: String = token
        .text()
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| SoapError::invalid(format!("the token is not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| SoapError::invalid("the document is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_requests_parse_back() {
        let discover = render_discover_request("urn:uuid:1", "https://x/d", "a@b.example");
        let parsed = parse_discover(discover.as_bytes()).unwrap();
        assert_eq!(parsed.email_address, "a@b.example");
        assert_eq!(parsed.header.message_id.as_deref(), Some("urn:uuid:1"));
        assert_eq!(parsed.auth_policies, ["OnPremise", "Federated"]);

        let cred = Credential::UsernameToken {
            username: "u".into(),
            password: " p&<x ".into(),
        };
        let policy = render_get_policies_request("urn:uuid:2", "https://x/p", &cred);
        let parsed = parse_get_policies(policy.as_bytes()).unwrap();
        assert_eq!(parsed.header.credential, Some(cred.clone()));

        let rst = render_request_security_token(
            "urn:uuid:3",
            "https://x/e",
            &cred,
            b"\x30\x03\x02\x01\x00",
            &[
                ("DeviceID", "ABC"),
                ("EnrollmentType", "Device"),
                ("MAC", "1"),
            ],
        );
        let parsed = parse_request_security_token(rst.as_bytes()).unwrap();
        assert_eq!(parsed.token_der, b"\x30\x03\x02\x01\x00");
        assert_eq!(parsed.device_id(), Some("ABC"));
        assert_eq!(parsed.enrollment_type(), EnrollmentType::Device);
        assert_eq!(parsed.request_type, RequestType::Issue);
    }

    #[test]
    fn a_body_for_another_service_or_action_is_refused() {
        let discover = render_discover_request("urn:uuid:1", "https://x/d", "");
        assert!(matches!(
            parse_get_policies(discover.as_bytes()),
            Err(SoapError::Invalid(_))
        ));
        let wrong_ns = discover.replace(NS_DISCOVERY, "urn:other");
        assert!(matches!(
            parse_discover(wrong_ns.as_bytes()),
            Err(SoapError::Invalid(_))
        ));
        let soap11 = discover.replace(NS_SOAP, "http://schemas.xmlsoap.org/soap/envelope/");
        assert!(parse_discover(soap11.as_bytes()).is_err());
    }

    #[test]
    fn responses_parse_back_and_faults_surface_as_faults() {
        let discover = render_discover_response(
            &DiscoverResponse {
                auth_policy: "OnPremise".into(),
                enrollment_version: "4.0".into(),
                policy_url: "https://x/p".into(),
                enrollment_url: "https://x/e".into(),
            },
            Some("urn:uuid:1"),
            "a",
        );
        assert_eq!(
            parse_discover_response(discover.as_bytes())
                .unwrap()
                .policy_url,
            "https://x/p"
        );
        let policy = render_get_policies_response(None, "a", 2048);
        let answer = parse_get_policies_response(policy.as_bytes()).unwrap();
        assert_eq!(answer.min_key_length, Some(2048));
        assert_eq!(answer.hash_algorithm_oid.as_deref(), Some(OID_SHA256));
        let doc = render_enrollment_response("<wap-provisioningdoc/>", None, "a", Utc::now());
        assert_eq!(
            parse_enrollment_response(doc.as_bytes()).unwrap(),
            "<wap-provisioningdoc/>"
        );
        let fault = render_fault(
            Service::Policy,
            &Fault::new(FaultCode::Authentication, "wrong password"),
            None,
            "a",
        );
        let err = parse_get_policies_response(fault.as_bytes()).unwrap_err();
        assert_eq!(err.fault_code(), Some(FaultCode::Authentication));
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let cred = Credential::UsernameToken {
            username: "anna".into(),
            password: "hunter2".into(),
        };
        let shown = format!("{cred:?}");
        assert!(shown.contains("anna") && !shown.contains("hunter2"));
    }
}
