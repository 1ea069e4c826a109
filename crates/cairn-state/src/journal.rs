//! Journal records: what an update appends before and after each step, and `replay`, which
//! folds them onto the last checkpoint. A step that began and never ended becomes a pending
//! operation, so a crash at any instant leaves every resource a provider may have created either
//! in the resources or in the pending operations.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::deployment::{Deployment, OperationV2, ResourceV3};

/// Identifies one resource copy: a URN can have two (the live one and an old one waiting to be
/// deleted after its replacement), told apart by ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    pub urn: String,
    pub id: String,
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JournalRecord {
    /// A step is about to call its provider.
    Begin {
        op: u64,
        /// `creating`, `updating`, `deleting` or `reading`.
        operation: String,
        resource: ResourceV3,
    },
    /// The step finished: `removed` left the state and `added` joined it (either may be absent;
    /// both absent means the provider failed and nothing changed).
    End {
        op: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        removed: Option<ResourceKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added: Option<ResourceV3>,
    },
}

/// The `Begin` records without an `End` after them: the operations still open, exactly the
/// ones `replay` makes pending (a fold carries them into the next journal).
pub fn open_begins(records: &[JournalRecord]) -> Vec<JournalRecord> {
    let mut begun: HashMap<u64, &JournalRecord> = HashMap::new();
    let mut begin_order: Vec<u64> = Vec::new();
    let mut ended: HashSet<u64> = HashSet::new();
    for record in records {
        match record {
            JournalRecord::Begin { op, .. } => {
                if !ended.contains(op) {
                    begun.insert(*op, record);
                    begin_order.push(*op);
                }
            }
            JournalRecord::End { op, .. } => {
                ended.insert(*op);
                begun.remove(op);
            }
        }
    }
    begin_order
        .into_iter()
        .filter_map(|op| begun.remove(&op).cloned())
        .collect()
}

/// Applies `records` to `base` and returns the resulting deployment, its resources in
/// dependency order.
pub fn replay(base: Option<Deployment>, records: &[JournalRecord]) -> Deployment {
    let mut deployment = base.unwrap_or_default();
    let mut begun: HashMap<u64, (String, ResourceV3)> = HashMap::new();
    let mut begin_order: Vec<u64> = Vec::new();
    // A record written twice (a retried append, a copied line) is applied once: an operation
    // ends once, and a second `End` would add its resource a second time.
    let mut ended: HashSet<u64> = HashSet::new();
    // Removed copies leave a hole, filled in at the end, and each copy's place is found by its
    // key: removing from the vector after a scan for the key was quadratic in a large update.
    let mut resources: Vec<Option<ResourceV3>> = std::mem::take(&mut deployment.resources)
        .into_iter()
        .map(Some)
        .collect();
    // The places of the copies of each key, in order (later copies are pushed after earlier).
    let mut places: HashMap<ResourceKey, VecDeque<usize>> = HashMap::new();
    for (place, resource) in resources.iter().flatten().enumerate() {
        places.entry(key_of(resource)).or_default().push_back(place);
    }
    for record in records {
        match record {
            JournalRecord::Begin {
                op,
                operation,
                resource,
            } => {
                if ended.contains(op) {
                    continue;
                }
                begun.insert(*op, (operation.clone(), resource.clone()));
                begin_order.push(*op);
            }
            JournalRecord::End { op, removed, added } => {
                if !ended.insert(*op) {
                    continue;
                }
                begun.remove(op);
                if let Some(key) = removed {
                    // The first copy with the key goes; an old copy marked for deletion has its
                    // own ID, so URN + ID is unambiguous in practice.
                    if let Some(place) = places.get_mut(key).and_then(VecDeque::pop_front) {
                        resources[place] = None;
                    }
                }
                if let Some(resource) = added {
                    places
                        .entry(key_of(resource))
                        .or_default()
                        .push_back(resources.len());
                    resources.push(Some(resource.clone()));
                }
            }
        }
    }
    for op in begin_order {
        if let Some((operation, resource)) = begun.remove(&op) {
            deployment.pending_operations.push(OperationV2 {
                resource,
                type_: operation,
            });
        }
    }
    deployment.resources = sort_by_dependencies(resources.into_iter().flatten().collect());
    deployment
}

fn key_of(resource: &ResourceV3) -> ResourceKey {
    ResourceKey {
        urn: resource.urn.clone(),
        id: resource.id.clone(),
    }
}

/// Orders resources so each follows its parent, dependencies and provider, and otherwise keeps
/// their order: a resource that must come earlier is pulled forward to just before the first
/// resource that needs it. Depth-first, so O(resources + references).
pub fn sort_by_dependencies(resources: Vec<ResourceV3>) -> Vec<ResourceV3> {
    // References name a URN; when a URN has an old copy awaiting deletion too, they mean the
    // live copy.
    let mut index_by_urn: HashMap<&str, usize> = HashMap::new();
    for (index, resource) in resources.iter().enumerate() {
        if !resource.delete || !index_by_urn.contains_key(resource.urn.as_str()) {
            index_by_urn.insert(resource.urn.as_str(), index);
        }
    }
    let prerequisites: Vec<Vec<usize>> = resources
        .iter()
        .enumerate()
        .map(|(index, resource)| {
            let provider_urn = resource
                .provider
                .as_deref()
                .and_then(|reference| reference.rsplit_once("::"))
                .map(|(urn, _)| urn);
            let mut seen = HashSet::new();
            resource
                .parent
                .as_deref()
                .into_iter()
                .chain(resource.dependencies.iter().map(String::as_str))
                .chain(provider_urn)
                .filter_map(|urn| index_by_urn.get(urn).copied())
                .filter(|&prerequisite| prerequisite != index && seen.insert(prerequisite))
                .collect()
        })
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        /// On the current path; a reference back to it is a cycle (only a corrupt state has
        /// one), which is ignored rather than looped on.
        InProgress,
        Placed,
    }
    let mut marks = vec![Mark::Unvisited; resources.len()];
    let mut order = Vec::with_capacity(resources.len());
    // (resource, how many of its prerequisites have been looked at)
    let mut path: Vec<(usize, usize)> = Vec::new();
    for start in 0..resources.len() {
        if marks[start] != Mark::Unvisited {
            continue;
        }
        marks[start] = Mark::InProgress;
        path.push((start, 0));
        while let Some((index, cursor)) = path.last_mut() {
            let index = *index;
            match prerequisites[index].get(*cursor) {
                Some(&prerequisite) => {
                    *cursor += 1;
                    if marks[prerequisite] == Mark::Unvisited {
                        marks[prerequisite] = Mark::InProgress;
                        path.push((prerequisite, 0));
                    }
                }
                None => {
                    marks[index] = Mark::Placed;
                    order.push(index);
                    path.pop();
                }
            }
        }
    }
    let mut slots: Vec<Option<ResourceV3>> = resources.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, id: &str, deps: &[&str]) -> ResourceV3 {
        ResourceV3 {
            urn: format!("urn:pulumi:dev::p::fake:index:Resource::{name}"),
            custom: true,
            id: id.to_owned(),
            type_: "fake:index:Resource".to_owned(),
            dependencies: deps
                .iter()
                .map(|dep| format!("urn:pulumi:dev::p::fake:index:Resource::{dep}"))
                .collect(),
            ..ResourceV3::default()
        }
    }

    fn key(name: &str, id: &str) -> Option<ResourceKey> {
        Some(ResourceKey {
            urn: format!("urn:pulumi:dev::p::fake:index:Resource::{name}"),
            id: id.to_owned(),
        })
    }

    fn begin(op: u64, operation: &str, resource: ResourceV3) -> JournalRecord {
        JournalRecord::Begin {
            op,
            operation: operation.to_owned(),
            resource,
        }
    }

    fn names(deployment: &Deployment) -> Vec<String> {
        deployment
            .resources
            .iter()
            .map(|resource| {
                format!(
                    "{}/{}{}",
                    resource.urn.rsplit("::").next().unwrap(),
                    resource.id,
                    if resource.delete { "/delete" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn creates_updates_and_deletes() {
        let base = Deployment {
            resources: vec![resource("a", "1", &[]), resource("gone", "9", &[])],
            ..Deployment::default()
        };
        let mut updated = resource("a", "1", &[]);
        updated.protect = true;
        let records = vec![
            begin(1, "creating", resource("b", "", &["a"])),
            JournalRecord::End {
                op: 1,
                removed: None,
                added: Some(resource("b", "2", &["a"])),
            },
            begin(2, "updating", resource("a", "1", &[])),
            JournalRecord::End {
                op: 2,
                removed: key("a", "1"),
                added: Some(updated),
            },
            begin(3, "deleting", resource("gone", "9", &[])),
            JournalRecord::End {
                op: 3,
                removed: key("gone", "9"),
                added: None,
            },
        ];
        let replayed = replay(Some(base), &records);
        // `a` moved to the end on update, but `b` depends on it, so sorting puts it first.
        assert_eq!(names(&replayed), vec!["a/1", "b/2"]);
        assert!(replayed.resources[0].protect);
        assert!(replayed.pending_operations.is_empty());
    }

    /// A record that appears twice (a copied line) changes the state once.
    #[test]
    fn a_repeated_record_is_applied_once() {
        let created = JournalRecord::End {
            op: 1,
            removed: None,
            added: Some(resource("b", "2", &[])),
        };
        let records = vec![
            begin(1, "creating", resource("b", "", &[])),
            created.clone(),
            created,
            begin(1, "creating", resource("b", "", &[])),
        ];
        let replayed = replay(None, &records);
        assert_eq!(names(&replayed), vec!["b/2"]);
        assert!(replayed.pending_operations.is_empty());
        assert!(open_begins(&records).is_empty());
    }

    #[test]
    fn replacement_keeps_old_copy_marked_for_deletion() {
        let base = Deployment {
            resources: vec![resource("a", "1", &[])],
            ..Deployment::default()
        };
        let mut doomed = resource("a", "1", &[]);
        doomed.delete = true;
        let records = vec![
            begin(1, "creating", resource("a", "", &[])),
            JournalRecord::End {
                op: 1,
                removed: None,
                added: Some(resource("a", "2", &[])),
            },
            begin(2, "updating", resource("a", "1", &[])),
            JournalRecord::End {
                op: 2,
                removed: key("a", "1"),
                added: Some(doomed),
            },
        ];
        let replayed = replay(Some(base), &records);
        assert_eq!(names(&replayed), vec!["a/2", "a/1/delete"]);
    }

    #[test]
    fn begun_but_unfinished_steps_become_pending_operations() {
        let records = vec![
            begin(1, "creating", resource("a", "", &[])),
            JournalRecord::End {
                op: 1,
                removed: None,
                added: Some(resource("a", "1", &[])),
            },
            begin(2, "creating", resource("b", "", &[])),
            begin(3, "deleting", resource("a", "1", &[])),
        ];
        let replayed = replay(None, &records);
        assert_eq!(names(&replayed), vec!["a/1"]);
        let pending: Vec<(&str, &str)> = replayed
            .pending_operations
            .iter()
            .map(|operation| {
                (
                    operation.type_.as_str(),
                    operation.resource.urn.rsplit("::").next().unwrap(),
                )
            })
            .collect();
        assert_eq!(pending, vec![("creating", "b"), ("deleting", "a")]);
    }

    #[test]
    fn a_failed_step_leaves_nothing_pending() {
        let records = vec![
            begin(1, "creating", resource("a", "", &[])),
            JournalRecord::End {
                op: 1,
                removed: None,
                added: None,
            },
        ];
        let replayed = replay(None, &records);
        assert!(replayed.resources.is_empty());
        assert!(replayed.pending_operations.is_empty());
    }

    #[test]
    fn sorting_puts_parents_dependencies_and_providers_first_and_keeps_order_otherwise() {
        let mut child = resource("child", "3", &[]);
        child.parent = Some(resource("parent", "", &[]).urn);
        let mut uses_provider = resource("uses", "4", &[]);
        uses_provider.provider = Some(format!(
            "urn:pulumi:dev::p::pulumi:providers:fake::default::{}",
            "prov-id"
        ));
        let mut provider = resource("x", "prov-id", &[]);
        provider.urn = "urn:pulumi:dev::p::pulumi:providers:fake::default".to_owned();
        let sorted = sort_by_dependencies(vec![
            resource("alone", "1", &[]),
            child,
            uses_provider,
            resource("needs", "5", &["late"]),
            resource("parent", "2", &[]),
            provider,
            resource("late", "6", &[]),
            resource("tail", "7", &[]),
        ]);
        let names: Vec<&str> = sorted
            .iter()
            .map(|resource| resource.urn.rsplit("::").next().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![
                "alone", "parent", "child", "default", "uses", "late", "needs", "tail"
            ]
        );
    }

    #[test]
    fn sorting_survives_a_cycle_and_points_references_at_the_live_copy() {
        let mut doomed = resource("a", "1", &[]);
        doomed.delete = true;
        let sorted = sort_by_dependencies(vec![
            resource("b", "2", &["a"]),
            doomed,
            resource("c", "3", &["d"]),
            resource("d", "4", &["c"]),
            resource("a", "5", &[]),
        ]);
        let ids: Vec<&str> = sorted.iter().map(|resource| resource.id.as_str()).collect();
        assert_eq!(ids, vec!["5", "2", "1", "4", "3"]);
    }

    #[test]
    fn removing_matches_urn_and_id_and_takes_the_first_match() {
        let mut doomed = resource("a", "1", &[]);
        doomed.delete = true;
        let base = Deployment {
            resources: vec![doomed, resource("a", "2", &[]), resource("a", "2", &[])],
            ..Deployment::default()
        };
        let records = vec![JournalRecord::End {
            op: 1,
            removed: key("a", "2"),
            added: None,
        }];
        let replayed = replay(Some(base), &records);
        assert_eq!(names(&replayed), vec!["a/1/delete", "a/2"]);
        let records = vec![JournalRecord::End {
            op: 1,
            removed: key("a", "1"),
            added: None,
        }];
        assert_eq!(names(&replay(Some(replayed), &records)), vec!["a/2"]);
    }

    #[test]
    fn records_round_trip_as_json() {
        let record = JournalRecord::End {
            op: 7,
            removed: key("a", "1"),
            added: Some(resource("a", "2", &[])),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.starts_with(r#"{"kind":"end","op":7"#), "{text}");
        assert_eq!(
            serde_json::from_str::<JournalRecord>(&text).unwrap(),
            record
        );
    }
}
