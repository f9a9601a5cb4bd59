//! `HealthMonitor` (being written).
use actix::prelude::*;
pub struct HealthMonitor;
impl Actor for HealthMonitor {
    type Context = Context<Self>;
}
