//! TEMPORARY runner for the profile tests while other test modules do not compile; removed
//! before hand-over.
#[path = "../it/profiles.rs"]
mod profiles;
#[path = "../it/pushes.rs"]
mod pushes;
