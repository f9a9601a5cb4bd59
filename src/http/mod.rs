//! HTTP surfaces: the orchestrator's REST API (`api.rs`, with the health, resources, services,
//! workloads, preview and timeline routes in their own files), its cluster route (`cluster_route.rs`),
//! the event stream (`events.rs`), `/metrics`, the OpenAPI documents, the limits on slow and
//! large requests, a node's REST API, the `ApiError` they share, the web UI, and the
//! `mcpt target` server.

pub mod adjust_api;
pub mod api;
pub mod cluster_route;
pub mod error;
pub mod events;
pub mod health_api;
pub mod limits;
pub mod metrics_api;
pub mod metrics_doc_api;
pub mod node_api;
pub mod openapi;
pub mod preview_api;
pub mod report_api;
pub mod resources_api;
pub mod services_api;
pub mod target;
pub mod timeline_api;
pub mod ui;
pub mod workloads_api;
