//! The parallel executor: runs a graph of nodes, each the moment all its dependencies have
//! succeeded, a bounded number at once, with graceful and hard cancellation.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use tokio::task::JoinSet;

use crate::graph;
use crate::{Cancellation, DeployOptions};

/// The outcome of running a graph of nodes.
pub(crate) struct DagResult {
    pub succeeded: Vec<bool>,
    /// Nodes that never ran because a dependency failed, in order.
    pub blocked: Vec<usize>,
}

/// How many nodes may run at once: provider operations are bounded by `--parallel` anyway, and
/// spawning every ready node up front would only hold thousands of idle futures in memory.
pub(crate) fn parallel_of(options: &DeployOptions) -> usize {
    options.parallel.max(1)
}

/// Runs every node once all its dependencies succeeded, up to `max_in_flight` at once. A failed
/// node blocks everything that depends on it, transitively; independent nodes go on. A graceful
/// cancellation starts nothing new; a hard one abandons the nodes in flight.
pub(crate) async fn run_dag<F, Fut>(
    dependencies: Vec<Vec<usize>>,
    cancel: &Cancellation,
    max_in_flight: usize,
    run: F,
) -> DagResult
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let n_nodes = dependencies.len();
    let dependents = graph::dependents_of(&dependencies);
    let mut n_waiting_for: Vec<usize> = dependencies
        .iter()
        .enumerate()
        .map(|(node, deps)| {
            deps.iter()
                .filter(|&&dep| dep < n_nodes && dep != node)
                .collect::<HashSet<_>>()
                .len()
        })
        .collect();
    let mut succeeded = vec![false; n_nodes];
    let mut blocked = vec![false; n_nodes];
    let mut ready: Vec<usize> = (0..n_nodes)
        .filter(|&node| n_waiting_for[node] == 0)
        .collect();
    ready.reverse();
    let mut in_flight: JoinSet<(usize, bool)> = JoinSet::new();
    let mut node_of_task = HashMap::new();
    loop {
        while !cancel.graceful.is_cancelled()
            && in_flight.len() < max_in_flight
            && let Some(node) = ready.pop()
        {
            let future = run(node);
            let handle = in_flight.spawn(async move { (node, future.await) });
            node_of_task.insert(handle.id(), node);
        }
        let joined = tokio::select! {
            joined = in_flight.join_next_with_id() => joined,
            () = cancel.hard.cancelled() => {
                in_flight.abort_all();
                while in_flight.join_next().await.is_some() {}
                break;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (node, node_succeeded) = match joined {
            Ok((_task, (node, node_succeeded))) => (node, node_succeeded),
            // A panicking step is a bug; treat it as a failure of its node so the rest of the
            // deployment can still finish and save state.
            Err(error) => match node_of_task.get(&error.id()) {
                Some(&node) => (node, false),
                None => continue,
            },
        };
        if node_succeeded {
            succeeded[node] = true;
            for &dependent in &dependents[node] {
                n_waiting_for[dependent] -= 1;
                if n_waiting_for[dependent] == 0 && !blocked[dependent] {
                    ready.push(dependent);
                }
            }
        } else {
            // Block everything downstream; a node already blocked was reached before, and so
            // were its dependents, which keeps this linear overall.
            let mut to_visit = vec![node];
            while let Some(current) = to_visit.pop() {
                for &dependent in &dependents[current] {
                    if !blocked[dependent] {
                        blocked[dependent] = true;
                        to_visit.push(dependent);
                    }
                }
            }
        }
    }
    DagResult {
        succeeded,
        blocked: (0..n_nodes).filter(|&node| blocked[node]).collect(),
    }
}
