//! `Recorder<M>`: keeps every `M` it is sent, in order, in a list its creator holds. For tests
//! (in the crate and under `tests/`) that hand an actor a recipient and check what it was told:
//! STYLE's "collaborators come in through the constructor". Supervises nothing. Takes: `M`.

use std::sync::{Arc, Mutex};

use actix::prelude::*;

pub struct Recorder<M>(pub Arc<Mutex<Vec<M>>>);

impl<M: Unpin + 'static> Actor for Recorder<M> {
    type Context = Context<Self>;
}

impl<M> Handler<M> for Recorder<M>
where
    M: Message<Result = ()> + Send + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, m: M, _ctx: &mut Context<Self>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(m);
    }
}
