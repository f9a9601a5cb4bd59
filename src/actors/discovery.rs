//! `Discovery` (being written).
use actix::prelude::*;
pub struct Discovery;
impl Actor for Discovery {
    type Context = Context<Self>;
}
