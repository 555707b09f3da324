//! Reports on the server. The report layer itself (facts, the registry of reports, the
//! builders, the model and its renderers) is the `jejak-report` crate, which has no IO;
//! it is re-exported here whole, and this module adds the glue that reads a report's
//! facts from a [`crate::ServerStore`] ([`load`]).

pub use jejak_report::*;

pub mod load;

#[cfg(test)]
mod build_tests;

pub use load::{LoadError, load};
