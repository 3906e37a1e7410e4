//! The one integration-test binary: every black-box test of Flotte.

mod apple;
mod cli;
mod directory;
mod directory_ldap;
mod foundation;
mod loans;
mod profiles;
mod pushes;
mod web;
mod windows;
