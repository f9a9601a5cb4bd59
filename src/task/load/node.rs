//! A load task on a node: its traffic for the worker pool, split over the pool's workers, and
//! the rate plan its merged windows are accounted against.

use crate::engine::share::UserSplit;
use crate::task::load::{LoadTask, Model};
use crate::task::work::{NodeCtx, NodeRun};

/// The node's part of `load`: the users the node runs (its share of them in a cluster) dealt
/// over its workers, each worker one shard.
pub fn run(load: LoadTask, ctx: &NodeCtx) -> NodeRun {
    let split = UserSplit::new(
        load.concurrent_users,
        load.connections,
        ctx.share,
        ctx.workers,
    );
    let rate_plan = (load.model == Model::Open).then(|| load.rate_plan());
    NodeRun::Pool {
        traffic: load.traffic,
        split,
        rate_plan,
    }
}
