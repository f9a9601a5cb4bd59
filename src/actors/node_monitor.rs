//! `NodeMonitor` (being written).
use actix::prelude::*;
pub struct NodeMonitor;
impl Actor for NodeMonitor {
    type Context = Context<Self>;
}
