//! Test support: the harness that spawns the real app, device simulators and
//! stand-ins for services no test machine can reach.

pub mod slapd;
