//! The village PC side of Jejak: the durable local store ([`store`]) and the background
//! agent ([`daemon`]) with its collectors (heartbeat, connectivity probe, interface
//! counters).

pub mod clock;
pub mod store;
