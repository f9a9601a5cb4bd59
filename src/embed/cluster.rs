//! [`Discovery`] and [`Distributor`]: an orchestrator's service registry and workload
//! distributor.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Error, live, poll};
use crate::actors::registry::Registry;
use crate::discovery::{KnownService, Query, ServiceInstance, Source};
use crate::messages::discovery::{
    DiscoveryStats, ForgetService, GetDiscoveryStats, GetServices, RegisterService,
};
use crate::messages::distributor::{GetPlan, ListPlans, PlanView, WorkloadError};

/// An orchestrator's service registry: the nodes that joined, what multicast and DNS found,
/// and services registered from code (`GET /api/services`).
///
/// ```no_run
/// # async fn f(orchestrator: &mcp_testing::Orchestrator) -> Result<(), mcp_testing::embed::Error> {
/// use mcp_testing::discovery::Query;
/// let generators = orchestrator.discovery().services(Query::default()).await?;
/// for s in generators {
///     println!("{} at {}:{} ({:?})", s.service.service_id, s.service.host, s.service.port, s.source);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Discovery {
    registry: Arc<Registry>,
}

impl Discovery {
    pub(crate) fn of(registry: Arc<Registry>) -> Discovery {
        Discovery { registry }
    }

    /// The known services `query` lets through, by id.
    pub async fn services(&self, query: Query) -> Result<Vec<KnownService>, Error> {
        let d = live(&self.registry.discovery, "discovery")?;
        Ok(d.send(GetServices(query)).await?)
    }

    /// Records a service learned elsewhere; it is kept until forgotten or, unheard of, past
    /// `service_discovery.service_timeout`.
    pub async fn register(&self, service: ServiceInstance) -> Result<(), Error> {
        let d = live(&self.registry.discovery, "discovery")?;
        Ok(d.send(RegisterService(service, Source::Cluster)).await?)
    }

    /// Forgets a service.
    pub async fn forget(&self, service_id: &str) -> Result<(), Error> {
        let d = live(&self.registry.discovery, "discovery")?;
        Ok(d.send(ForgetService(service_id.to_string())).await?)
    }

    /// What discovery does and has counted.
    pub async fn stats(&self) -> Result<DiscoveryStats, Error> {
        let d = live(&self.registry.discovery, "discovery")?;
        Ok(d.send(GetDiscoveryStats).await?)
    }
}

/// An orchestrator's workload distributor: places a workload's scenarios on the nodes by a
/// strategy and runs them as executions (`POST /api/workloads`).
///
/// ```no_run
/// # async fn f(orchestrator: &mcp_testing::Orchestrator) -> Result<(), mcp_testing::embed::Error> {
/// let plan = orchestrator.distributor().submit(serde_json::json!({
///     "name": "suite",
///     "strategy": "locality_aware",
///     "execution_mode": "coordinated",
///     "scenarios": [{"scenario_id": "api", "test_type": "load_test",
///         "parameters": {"targets": [{"url": "http://127.0.0.1:8080/"}], "duration": "5s", "base_rps": 20}}]
/// })).await?;
/// let done = orchestrator.distributor().wait(&plan.plan_id, std::time::Duration::from_secs(60)).await?;
/// println!("{}: {}", done.plan_id, done.state);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Distributor {
    registry: Arc<Registry>,
}

impl Distributor {
    pub(crate) fn of(registry: Arc<Registry>) -> Distributor {
        Distributor { registry }
    }

    /// Places a workload (`POST /api/workloads`'s body) and, unless it says `dry_run`, runs
    /// it; answers the plan. A scenario no node fits refuses the whole workload
    /// ([`Error::Unplaced`], each scenario with the reason).
    pub async fn submit(&self, workload: Value) -> Result<PlanView, Error> {
        let settings = self.registry.settings.clone();
        let msg = crate::http::workloads_api::read_workload(&workload, settings).await?;
        let d = live(&self.registry.distributor, "distributor")?;
        d.send(msg).await?.map_err(|e| match e {
            WorkloadError::TooLargeToCoordinate { .. } => {
                let mut f = crate::validate::FieldErrors::default();
                f.push("execution_mode", e.to_string());
                Error::Invalid(f)
            }
            WorkloadError::Unavailable(why) => Error::Unavailable(why),
            WorkloadError::Unplaced(unplaced) => Error::Unplaced(unplaced),
            WorkloadError::Duplicate(_) => Error::Refused(e.to_string()),
        })
    }

    /// A plan and its progress (`GET /api/workloads/{id}`).
    pub async fn plan(&self, plan_id: &str) -> Result<PlanView, Error> {
        let d = live(&self.registry.distributor, "distributor")?;
        d.send(GetPlan(plan_id.to_string()))
            .await?
            .ok_or_else(|| Error::NotFound(format!("plan {plan_id}")))
    }

    /// Every plan kept, newest first.
    pub async fn plans(&self) -> Result<Vec<PlanView>, Error> {
        let d = live(&self.registry.distributor, "distributor")?;
        Ok(d.send(ListPlans).await?)
    }

    /// Waits until a plan is over (completed, failed, cancelled or timed out); answers it. A
    /// dry run's plan (`planned`) runs nothing and is answered at once.
    pub async fn wait(&self, plan_id: &str, timeout: Duration) -> Result<PlanView, Error> {
        let over = || async {
            let plan = self.plan(plan_id).await?;
            let done = plan.finished_at_ms.is_some() || plan.state == "planned";
            Ok(done.then_some(plan))
        };
        let every = Duration::from_millis(200);
        poll(every, timeout, format!("plan {plan_id} not over"), over).await
    }
}
