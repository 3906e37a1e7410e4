//! Job handlers: each takes its job and the worker's dependencies.

mod prune;
mod wake;

pub(crate) use prune::prune_tables;
pub(crate) use wake::wake_device;
