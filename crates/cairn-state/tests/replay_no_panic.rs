//! Journal replay never panics, whatever order, repetition or nonsense the records come in (a
//! journal is data from disk: a torn write, a journal from another version, a careless edit),
//! and what it makes is bounded by what the records say. `PROPTEST_CASES` sets how many
//! journals each property tries (256 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_state::Deployment;
use cairn_state::deployment::ResourceV3;
use cairn_state::journal::{JournalRecord, open_begins, replay};
use proptest::prelude::*;
use serde_json::json;

fn resource() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(vec!["a", "b", "c", ""]),
        prop::sample::select(vec!["", "1", "2", "3"]),
        any::<bool>(),
    )
        .prop_map(|(name, id, delete)| {
            json!({
                "urn": format!("urn:pulumi:dev::p::fake:index:Resource::{name}"),
                "custom": true,
                "id": id,
                "type": "fake:index:Resource",
                "delete": delete,
            })
        })
}

fn record() -> impl Strategy<Value = serde_json::Value> {
    let operation =
        prop::sample::select(vec!["creating", "updating", "deleting", "reading", "bogus"]);
    prop_oneof![
        (0..6u64, operation, resource()).prop_map(|(op, operation, resource)| {
            json!({"kind": "begin", "op": op, "operation": operation, "resource": resource})
        }),
        (
            0..6u64,
            prop::option::of(resource()),
            prop::option::of(resource())
        )
            .prop_map(|(op, removed, added)| {
                let removed =
                    removed.map(|resource| json!({"urn": resource["urn"], "id": resource["id"]}));
                json!({"kind": "end", "op": op, "removed": removed, "added": added})
            }),
    ]
}

proptest! {
    #[test]
    fn any_journal_replays_without_panicking(
        base in prop::collection::vec(resource(), 0..4),
        records in prop::collection::vec(record(), 0..24),
    ) {
        let base: Vec<ResourceV3> = base
            .into_iter()
            .map(|resource| serde_json::from_value(resource).unwrap())
            .collect();
        // Records that do not decode are what a reader would refuse; the rest are replayed.
        let records: Vec<JournalRecord> = records
            .into_iter()
            .filter_map(|record| serde_json::from_value(record).ok())
            .collect();
        let n_base = base.len();
        let deployment = Deployment { resources: base, ..Deployment::default() };
        let open = open_begins(&records);
        let replayed = replay(Some(deployment), &records);
        let n_added = records
            .iter()
            .filter(|record| matches!(record, JournalRecord::End { added: Some(_), .. }))
            .count();
        prop_assert!(replayed.resources.len() <= n_base + n_added);
        // What a fold carries over as open is exactly what replay leaves pending.
        prop_assert_eq!(replayed.pending_operations.len(), open.len());
        // The replayed deployment is one that can be written and read back.
        let text = serde_json::to_string(&replayed).unwrap();
        let _: Deployment = serde_json::from_str(&text).unwrap();
    }
}
