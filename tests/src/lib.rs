//! Test support: the harness that spawns the real app, device simulators and
//! stand-ins for services no test machine can reach.

pub mod apns;
pub mod app;
pub mod apple_device;
pub mod bench_apple;
pub mod bench_directory;
pub mod bench_profiles;
pub mod bench_windows;
pub mod benchmarks;
pub mod browser;
pub mod slapd;
pub mod windows_device;
pub mod worker;

pub use apns::ApnsStandIn;
pub use app::{TestApp, TestEnv, eventually};
