//! Windows MDM wire formats, without I/O.
//!
//! * [`soap`]: MS-MDE2 enrolment — `Discover`, MS-XCEP `GetPolicies` and MS-WSTEP
//!   `RequestSecurityToken` requests and their answers, SOAP faults with MS-MDE2's codes.
//! * [`provisioning`]: the wap-provisioningdoc the enrolment answer carries.
//! * [`syncml`]: OMA-DM (SyncML 1.2) messages of the management sessions.
//! * [`session`]: the session rules (authentication, `MsgID` order, nonce hand-over) and the
//!   shape of the server's answer.
//! * [`digest`]: the `syncml:auth-md5` credential.
//! * [`commands`]: the typed Windows commands of the shared command queue.
//! * [`inventory`]: inventory fields from what the laptop reports.
//!
//! All parsing goes through [`xml`]: namespace-aware, bounded in size, depth and node count,
//! refusing DOCTYPEs and entity references. Both directions of every message are here so that
//! the laptop simulator in the tests speaks exactly what the server parses.

#![warn(missing_docs)]

pub mod commands;
pub mod digest;
pub mod inventory;
pub mod provisioning;
pub mod session;
pub mod soap;
pub mod syncml;
pub mod xml;

mod write;
