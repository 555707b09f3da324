//! The village PC side of Jejak: the durable local store ([`store`]) and the background
//! agent ([`daemon`]) with its collectors ([`collect`]: connectivity probe, interface
//! counters), its configuration ([`config`]) and pseudonymous patron keys ([`patron`]).

pub mod clock;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod login;
pub mod netdev;
pub mod patron;
pub mod store;
