//! Dependency graphs over indices: topological order and cycle detection, used to order
//! deletions (reverse dependency order) and to sort snapshots. Pure data, no async.

/// Orders `n_nodes` nodes so that every node comes after the nodes it depends on, keeping the
/// original order where dependencies allow it. `dependencies[i]` lists the nodes node `i`
/// depends on (out-of-range or self edges are ignored). Nodes on a cycle are appended at the
/// end in their original order, so the result is always a permutation.
pub fn topological_order(dependencies: &[Vec<usize>]) -> Vec<usize> {
    let n_nodes = dependencies.len();
    let mut n_unfinished_deps = vec![0usize; n_nodes];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n_nodes];
    for (node, deps) in dependencies.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for &dep in deps {
            if dep < n_nodes && dep != node && seen.insert(dep) {
                n_unfinished_deps[node] += 1;
                dependents[dep].push(node);
            }
        }
    }
    // A min-heap on the index keeps the original order stable among ready nodes.
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n_nodes)
        .filter(|&node| n_unfinished_deps[node] == 0)
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(n_nodes);
    let mut placed = vec![false; n_nodes];
    while let Some(std::cmp::Reverse(node)) = ready.pop() {
        order.push(node);
        placed[node] = true;
        for &dependent in &dependents[node] {
            n_unfinished_deps[dependent] -= 1;
            if n_unfinished_deps[dependent] == 0 {
                ready.push(std::cmp::Reverse(dependent));
            }
        }
    }
    order.extend((0..n_nodes).filter(|&node| !placed[node]));
    order
}

/// For each node, the nodes that depend on it.
pub fn dependents_of(dependencies: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut dependents = vec![Vec::new(); dependencies.len()];
    for (node, deps) in dependencies.iter().enumerate() {
        for &dep in deps {
            // A node may name one dependency twice (a resource's provider is often also in
            // its `dependsOn`); it is still one edge, or the executor would count it twice.
            if dep < dependencies.len() && dep != node && dependents[dep].last() != Some(&node) {
                dependents[dep].push(node);
            }
        }
    }
    dependents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_named_twice_is_one_edge() {
        let dependents = dependents_of(&[vec![], vec![0, 0], vec![0, 1, 0]]);
        assert_eq!(dependents, vec![vec![1, 2], vec![2], vec![]]);
    }

    #[test]
    fn keeps_original_order_when_possible() {
        assert_eq!(topological_order(&[vec![], vec![], vec![]]), vec![0, 1, 2]);
    }

    #[test]
    fn moves_dependents_after_dependencies() {
        // 0 depends on 2, 1 depends on 0.
        assert_eq!(
            topological_order(&[vec![2], vec![0], vec![]]),
            vec![2, 0, 1]
        );
    }

    #[test]
    fn cycles_are_appended_not_lost() {
        let order = topological_order(&[vec![1], vec![0], vec![]]);
        assert_eq!(order, vec![2, 0, 1]);
    }
}
