//! Messages between actors, grouped by receiver. The cluster wire protocol will get its own
//! module here (`wire.rs`).

pub mod cluster;
pub mod load;
pub mod store;
pub mod wire;
