//! Messages between actors, grouped by receiver. The cluster wire protocol will get its own
//! module here (`wire.rs`).

pub mod load;
