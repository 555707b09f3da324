//! The village PC side of Jejak: the durable local store ([`store`]) and the background
//! agent ([`daemon`]) with its collectors ([`collect`]: connectivity probe, interface
//! counters), its configuration ([`config`]), pseudonymous patron keys ([`patron`]) and
//! the patron check-in page with the librarian screen ([`checkin`]). What differs between
//! Linux and Windows sits in one layer, [`platform`].

pub mod checkin;
pub mod clock;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod login;
pub mod netdev;
pub mod patron;
pub mod platform;
pub mod store;
