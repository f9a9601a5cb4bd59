//! Messages between actors, grouped by receiver. The cluster wire protocol will get its own
//! module here (`wire.rs`).

pub mod cluster;
pub mod discovery;
pub mod distributor;
pub mod events;
pub mod health;
pub mod load;
pub mod resources;
pub mod store;
pub mod wire;
