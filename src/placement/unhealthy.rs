//! How placement names the nodes it left out for their health: `web_1 is critical (disk: disk
//! use 96.2% is at or past the critical threshold 95%), sec_1 is unhealthy`, at most
//! [`NODES_LISTED`] of them, each reason clipped to [`WHY_CHARS`] characters.

use super::NodeState;

/// Unhealthy nodes named in one reason; the rest are counted (`and 3 more`).
pub const NODES_LISTED: usize = 5;

/// Characters kept of one node's [`NodeState::unhealthy`].
pub const WHY_CHARS: usize = 160;

/// `s` cut to at most `max` characters, `…` marking a cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if s[end..].chars().nth(1).is_some() => format!("{}…", &s[..end]),
        _ => s.to_string(),
    }
}

/// One node left out: `id is why`, or `id has what but is why` (`unhealthy` when it gives no
/// reason).
fn one(node: &NodeState, has: Option<&str>) -> String {
    let why = node
        .unhealthy
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .unwrap_or("unhealthy");
    let why = clip(why, WHY_CHARS);
    match has {
        Some(what) => format!("{} has {what} but is {why}", node.node_id),
        None => format!("{} is {why}", node.node_id),
    }
}

/// The nodes left out, `, ` between them, `and N more` past [`NODES_LISTED`]; each with what
/// it has of the scenario's wants, when that matters.
pub fn listing(nodes: &[(&NodeState, Option<String>)]) -> String {
    let mut parts: Vec<String> = nodes
        .iter()
        .take(NODES_LISTED)
        .map(|(n, has)| one(n, has.as_deref()))
        .collect();
    if nodes.len() > NODES_LISTED {
        parts.push(format!("and {} more", nodes.len() - NODES_LISTED));
    }
    parts.join(", ")
}
