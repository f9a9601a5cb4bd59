//! `Distributor` (being written).
use actix::prelude::*;
pub struct Distributor;
impl Actor for Distributor {
    type Context = Context<Self>;
}
