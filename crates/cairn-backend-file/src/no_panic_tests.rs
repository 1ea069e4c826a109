//! The checkpoint and journal readers never panic, whatever the files hold: arbitrary bytes,
//! and real files cut short or with bytes changed (a crash, a bad disk, a careless edit).
//! Every damaged file reads as its old self, an error, or (for a journal) a shorter journal.
//! `PROPTEST_CASES` sets how many inputs each property tries (256 by default).

use proptest::prelude::*;

use crate::files::read_checkpoint;
use crate::journal_file::{read_journal, read_journal_up_to_damage};

/// A real checkpoint and a real journal of a few records, as the backend writes them (made
/// once).
fn real_files() -> &'static (String, String) {
    static FILES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    FILES.get_or_init(make_real_files)
}

fn make_real_files() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let backend = crate::FileBackend::open(
        dir.path().to_owned(),
        "file://fuzz".to_owned(),
        "fuzzer".to_owned(),
    )
    .unwrap();
    let stack = cairn_state::StackRef::parse("dev", "fuzz").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        use cairn_state::Backend;
        backend.create_stack(&stack).await.unwrap();
        let (persister, _lock) = cairn_state::conformance::locked_persister(&backend, &stack).await;
        for (index, name) in ["a", "b", "c"].into_iter().enumerate() {
            let resource = cairn_core::ResourceState {
                urn: cairn_core::Urn::parse(&format!(
                    "urn:pulumi:dev::fuzz::fake:index:Resource::{name}"
                ))
                .unwrap(),
                custom: true,
                id: index.to_string(),
                type_: "fake:index:Resource".to_owned(),
                ..Default::default()
            };
            let op = persister
                .begin(cairn_core::PendingOperationKind::Creating, &resource)
                .await
                .unwrap();
            if index < 2 {
                persister.end(op, None, Some(&resource)).await.unwrap();
            }
        }
        // Left unfinished, as a crash leaves it.
        drop(persister);
    });
    let root = dir.path().join(".pulumi/stacks/fuzz");
    let checkpoint = std::fs::read_to_string(root.join("dev.json")).unwrap();
    let journal = std::fs::read_to_string(root.join("dev.journal")).unwrap();
    (checkpoint, journal)
}

/// `text` with the bytes at `positions` replaced and cut to `keep` bytes.
fn damaged(text: &str, positions: &[(usize, u8)], keep: usize) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for (position, byte) in positions {
        if !bytes.is_empty() {
            let index = position % bytes.len();
            bytes[index] = *byte;
        }
    }
    bytes.truncate(keep.min(bytes.len()));
    bytes
}

fn read_both(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, bytes).unwrap();
    let _ = read_checkpoint(&path, "dev");
    let _ = read_journal(&path, "dev");
    let _ = read_journal_up_to_damage(&path);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        read_both(&bytes);
    }

    #[test]
    fn damaged_real_files_never_panic_and_never_read_as_something_else(
        positions in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        keep in any::<usize>(),
    ) {
        let (checkpoint, journal) = real_files();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev.json");
        std::fs::write(&path, checkpoint).unwrap();
        let original = read_checkpoint(&path, "dev").unwrap().unwrap();
        std::fs::write(&path, damaged(checkpoint, &positions, keep)).unwrap();
        // Refused (by its checksum or its shape), or read as the original when the damage
        // missed everything that matters.
        if let Ok(Some(read)) = read_checkpoint(&path, "dev") {
            prop_assert_eq!(
                serde_json::to_value(&read.deployment).unwrap(),
                serde_json::to_value(&original.deployment).unwrap()
            );
        }

        let path = dir.path().join("dev.journal");
        std::fs::write(&path, journal).unwrap();
        let original = read_journal(&path, "dev").unwrap().unwrap();
        std::fs::write(&path, damaged(journal, &positions, keep)).unwrap();
        // A damaged journal is refused, or reads as a prefix of the original's records: a
        // record is never changed, only lost from the torn end.
        let records = |records: &[cairn_state::JournalRecord]| {
            records.iter().map(|record| serde_json::to_value(record).unwrap()).collect::<Vec<_>>()
        };
        if let Ok(Some(read)) = read_journal(&path, "dev") {
            let read_records = records(&read.records);
            let original_records = records(&original.records);
            prop_assert!(read_records.len() <= original_records.len());
            prop_assert_eq!(&read_records[..], &original_records[..read_records.len()]);
        }
        // What `cairn state repair` keeps of it is such a prefix too.
        if let Ok(Some(salvaged)) = read_journal_up_to_damage(&path) {
            let kept = records(&salvaged.records);
            let original_records = records(&original.records);
            prop_assert!(kept.len() <= original_records.len());
            prop_assert_eq!(&kept[..], &original_records[..kept.len()]);
        }
    }
}
