//! Flotte's domain core: the fleet's nouns, the rules between them and the small
//! traits (ports) that storage, push, directory and CA adapters implement.
//! Nothing here performs I/O; everything that needs the time takes a [`Clock`].

pub mod assignment;
pub mod audit;
pub mod auth;
pub mod certificates;
pub mod clock;
pub mod command;
pub mod csv;
pub mod device;
pub mod directory;
pub mod error;
pub mod jobs;
pub mod loans;
pub mod push;

pub use clock::{Clock, SystemClock};
pub use error::CoreError;
