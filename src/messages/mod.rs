//! Messages between actors, grouped by receiver; `wire.rs` holds the cluster's application
//! messages, carried in the link's frames (`hub::frame`).

pub mod cluster;
pub mod discovery;
pub mod distributor;
pub mod events;
pub mod health;
pub mod load;
pub mod resources;
pub mod store;
pub mod wire;
