//! The optional `placement` of a plan: where an execution runs and what it reserves.

use serde::Serialize;
use serde_json::Value;

use crate::validate::{FieldErrors, Keyword, Obj, kind};

/// The most nodes `placement.node_count` may ask for.
pub const MAX_NODE_COUNT: u32 = 10_000;

/// An execution's `placement`: which nodes, by which strategy, and what it reserves from the
/// resource pool before it starts.
///
/// ```yaml
/// placement:
///   nodes: [node-1]              # run on exactly these (empty: chosen by the strategy)
///   node_count: 2                # spread over this many (default: every eligible node)
///   strategy: least_loaded       # default: distribution.default_strategy
///   preferred_location: us-west-1
///   required_capabilities: [http_load]
///   priority: 0                  # higher is served first when the pool is short
///   resource_requirements: {cpu: 2, memory: 1073741824}
/// ```
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlacementRequest {
    pub nodes: Vec<String>,
    pub node_count: Option<u32>,
    pub strategy: Option<crate::placement::Strategy>,
    pub preferred_location: Option<String>,
    pub required_capabilities: Vec<String>,
    pub priority: i32,
    pub resource_requirements: std::collections::BTreeMap<String, f64>,
}

/// The optional `priority` of an object: a whole number, higher first; 0 when absent.
pub fn read_priority(o: &mut Obj<'_>, e: &mut FieldErrors) -> i32 {
    let priority: f64 = o.or("priority", 0.0, e);
    if priority.fract() != 0.0 || priority.abs() > 1_000_000.0 {
        e.push(
            o.key_path("priority"),
            format!("expected a whole number in -1000000..=1000000, got {priority}"),
        );
        return 0;
    }
    priority as i32
}

pub(crate) fn read_placement(v: Option<&Value>, e: &mut FieldErrors) -> PlacementRequest {
    let Some(v) = v else {
        return PlacementRequest::default();
    };
    let Some(mut o) = Obj::new(v, "placement", e) else {
        return PlacementRequest::default();
    };
    let strategy: Option<Keyword> = o.opt("strategy", e);
    let strategy = strategy.and_then(|s| {
        s.parse::<crate::placement::Strategy>()
            .map_err(|why| e.push("placement.strategy", why.to_string()))
            .ok()
    });
    let node_count: Option<u32> = o.opt("node_count", e);
    if node_count.is_some_and(|n| n == 0 || n > MAX_NODE_COUNT) {
        e.push(
            "placement.node_count",
            format!("must be in 1..={MAX_NODE_COUNT}"),
        );
    }
    let priority = read_priority(&mut o, e);
    let mut resource_requirements = std::collections::BTreeMap::<String, f64>::new();
    match o.raw("resource_requirements") {
        None => {}
        Some(Value::Object(map)) => {
            for (name, v) in map {
                let path = format!("placement.resource_requirements.{name}");
                let resource = crate::resources::normalize(name);
                if let Some(x) = crate::resources::read_amount(&resource, v, &path, e) {
                    resource_requirements.insert(name.clone(), x);
                }
            }
        }
        Some(other) => e.push(
            "placement.resource_requirements",
            format!(
                "expected a mapping of resource to amount, got {}",
                kind(other)
            ),
        ),
    }
    for (name, amount) in &resource_requirements {
        let path = format!("placement.resource_requirements.{name}");
        if let Some(why) = crate::resources::name_problem(&crate::resources::normalize(name)) {
            e.push(&path, format!("not a resource name: {why}"));
        }
        if !amount.is_finite() || *amount < 0.0 || *amount > crate::resources::MAX_AMOUNT {
            e.push(
                &path,
                format!(
                    "must be an amount in 0..={:e}, got {amount}",
                    crate::resources::MAX_AMOUNT
                ),
            );
        }
    }
    let nodes: Vec<String> = o.or("nodes", Vec::new(), e);
    for (i, n) in nodes.iter().enumerate() {
        let path = format!("placement.nodes[{i}]");
        if n.trim().is_empty() || n.len() > 256 || n.chars().any(char::is_control) {
            e.push(
                &path,
                "must be a node id: 1 to 256 bytes, no control characters",
            );
        } else if nodes[..i].contains(n) {
            e.push(&path, format!("node {n:?} is listed twice"));
        }
    }
    let p = PlacementRequest {
        nodes,
        node_count,
        strategy,
        preferred_location: o.opt("preferred_location", e),
        required_capabilities: o.or("required_capabilities", Vec::new(), e),
        priority,
        resource_requirements,
    };
    o.finish(e);
    p
}
