//! [`ResourcePool`]: the cluster's global resource pool.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};

use super::{Error, live};
use crate::actors::registry::Registry;
use crate::actors::resource_allocator::ResourceAllocator;
use crate::messages::resources::{
    Allocate, Confirm, Deallocate, GetAllocation, GetPoolStatus, RemoveNode, SetNodeCapacity,
};
use crate::resources::{
    AllocError, AllocationRequest, AllocationState, Confirmed, Outcome, PoolStatus, Released,
};

/// The resources of a cluster's nodes (CPU cores, memory bytes, network mbps, concurrent
/// requests, custom ones), allocated all-or-nothing across nodes (`/api/resources`). An
/// orchestrator's pool holds the nodes that joined it; [`ResourcePool::start`] runs one alone,
/// whose nodes you add.
///
/// ```
/// use mcp_testing::resources::{AllocationRequest, Outcome, ResourceSpec};
/// use std::time::Duration;
/// # actix_rt::System::new().block_on(async {
/// let pool = mcp_testing::ResourcePool::start(Duration::from_secs(300), Duration::from_secs(30));
/// pool.add_node("node_0", [("cpu".to_string(), 16.0)].into()).await?;
/// let too_much = AllocationRequest::new("big", "suite", vec![ResourceSpec::new("cpu", 32.0)]);
/// assert!(pool.allocate(too_much).await?.is_err(), "more than the pool has");
/// let ask = AllocationRequest::new("job", "suite", vec![ResourceSpec::new("cpu", 8.0)]);
/// assert!(matches!(pool.allocate(ask).await?, Ok(Outcome::Granted(_))));
/// pool.deallocate("job").await?;
/// assert!(pool.status().await?.allocations.is_empty());
/// # Ok::<(), mcp_testing::embed::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct ResourcePool {
    at: Where,
}

#[derive(Clone)]
enum Where {
    Cluster(Arc<Registry>),
    Alone(Addr<ResourceAllocator>),
}

impl ResourcePool {
    /// A pool of its own (no cluster): a grant not confirmed within `allocation_timeout`
    /// expires; expiries are swept every `cleanup_interval`.
    pub fn start(allocation_timeout: Duration, cleanup_interval: Duration) -> ResourcePool {
        let addr = ResourceAllocator::new(allocation_timeout, cleanup_interval).start();
        ResourcePool {
            at: Where::Alone(addr),
        }
    }

    pub(crate) fn of(registry: Arc<Registry>) -> ResourcePool {
        ResourcePool {
            at: Where::Cluster(registry),
        }
    }

    fn addr(&self) -> Result<Addr<ResourceAllocator>, Error> {
        match &self.at {
            Where::Cluster(r) => live(&r.allocator, "resource allocator"),
            Where::Alone(a) => Ok(a.clone()),
        }
    }

    /// Adds a node with its capacity per resource (`cpu` cores, `memory` bytes, `network`
    /// mbps, `requests`, or a custom name), or sets a known node's.
    pub async fn add_node(
        &self,
        node_id: &str,
        capacity: BTreeMap<String, f64>,
    ) -> Result<(), Error> {
        let msg = SetNodeCapacity {
            node_id: node_id.to_string(),
            capacity,
        };
        self.addr()?.send(msg).await?.map_err(Error::Invalid)
    }

    /// Removes a node; its grants are released whole. Answers their ids.
    pub async fn remove_node(&self, node_id: &str) -> Result<Vec<String>, Error> {
        Ok(self.addr()?.send(RemoveNode(node_id.to_string())).await?)
    }

    /// Asks for resources: granted whole, queued (`request.queue`), or refused with what was
    /// short (the inner error).
    pub async fn allocate(
        &self,
        request: AllocationRequest,
    ) -> Result<Result<Outcome, AllocError>, Error> {
        let msg = Allocate {
            request,
            notify: None,
        };
        Ok(self.addr()?.send(msg).await?)
    }

    /// Confirms a grant, so it no longer expires.
    pub async fn confirm(&self, allocation_id: &str) -> Result<Confirmed, Error> {
        self.addr()?
            .send(Confirm(allocation_id.to_string()))
            .await?
            .map_err(|e| Error::NotFound(format!("allocation {}", e.0)))
    }

    /// Releases a grant (or cancels a waiting request); the queue is then served.
    pub async fn deallocate(&self, allocation_id: &str) -> Result<Released, Error> {
        self.addr()?
            .send(Deallocate(allocation_id.to_string()))
            .await?
            .map_err(|e| Error::NotFound(format!("allocation {}", e.0)))
    }

    /// One allocation, granted or waiting.
    pub async fn allocation(&self, allocation_id: &str) -> Result<AllocationState, Error> {
        self.addr()?
            .send(GetAllocation(allocation_id.to_string()))
            .await?
            .ok_or_else(|| Error::NotFound(format!("allocation {allocation_id}")))
    }

    /// Nodes, per-resource totals, grants and the queue (`GET /api/resources`).
    pub async fn status(&self) -> Result<PoolStatus, Error> {
        Ok(self.addr()?.send(GetPoolStatus).await?)
    }
}
