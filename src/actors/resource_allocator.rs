//! `ResourceAllocator` (being written).
use actix::prelude::*;
pub struct ResourceAllocator;
impl Actor for ResourceAllocator {
    type Context = Context<Self>;
}
