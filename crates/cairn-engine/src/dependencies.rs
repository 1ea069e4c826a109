//! The order of resources by what they depend on: a checkpoint lists each resource after its
//! parent, dependencies and provider, and deletions go in the reverse order.

use std::collections::HashMap;

use cairn_core::{ResourceState, Urn};

use crate::graph;

/// The URNs a resource depends on: parent, dependencies, provider and `deletedWith`.
pub(crate) fn resource_dependencies(resource: &ResourceState) -> Vec<Urn> {
    let provider_urn = resource
        .provider
        .as_deref()
        .and_then(|reference| reference.rsplit_once("::"))
        .and_then(|(urn, _id)| Urn::parse(urn).ok());
    resource
        .parent
        .iter()
        .cloned()
        .chain(resource.dependencies.iter().cloned())
        .chain(provider_urn)
        .chain(resource.deleted_with.iter().cloned())
        .collect()
}

/// Orders resources so each comes after its parent, dependencies and provider.
pub fn sort_by_dependencies(resources: Vec<ResourceState>) -> Vec<ResourceState> {
    let mut index_by_urn: HashMap<&Urn, usize> = HashMap::new();
    for (index, resource) in resources.iter().enumerate() {
        // The live copy wins over an old copy waiting for deletion.
        if !resource.delete || !index_by_urn.contains_key(&resource.urn) {
            index_by_urn.insert(&resource.urn, index);
        }
    }
    let dependencies: Vec<Vec<usize>> = resources
        .iter()
        .map(|resource| {
            resource_dependencies(resource)
                .iter()
                .filter_map(|urn| index_by_urn.get(urn).copied())
                .collect()
        })
        .collect();
    let order = graph::topological_order(&dependencies);
    let mut slots: Vec<Option<ResourceState>> = resources.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect()
}
