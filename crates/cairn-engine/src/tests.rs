//! Executor tests with a probe provider that records every call, measures concurrency, and
//! checks that each side effect's intent was journaled before the call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{PackageSchema, PropertyMap, ResourceSchema, Snapshot, StepOp, Value};
use cairn_provider::{
    CallContext, CheckResponse, CreateResponse, DiffResponse, Provider, ProviderError,
    ProviderRegistry, ProviderResult, ReadResponse,
};
use cairn_state::backend::BackendResult;
use cairn_state::{Deployment, JournalRecord, Persister, UpdateResult, UpdateWriter};

use crate::{
    Cancellation, DeployOptions, DeployOutcome, DeployRequest, FailureCause, Operation,
    StackReferences, StepRecord,
};

const THING: &str = "probe:index:Thing";

/// Journal records, shared between the writer and the probe.
type Journal = Arc<Mutex<Vec<JournalRecord>>>;

#[derive(Default)]
struct ProbeLog {
    /// `create a`, `done a`, `delete a`, ... in the order they happened.
    events: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
}

/// A provider whose resources take `ms` milliseconds and fail when `fail` is true.
struct Probe {
    schema: PackageSchema,
    log: Arc<Mutex<ProbeLog>>,
    journal: Journal,
}

impl Probe {
    fn new(journal: Journal) -> Probe {
        Probe {
            schema: PackageSchema {
                name: "probe".to_owned(),
                config: Default::default(),
                version: "1.0.0".to_owned(),
                resources: vec![ResourceSchema {
                    token: THING.to_owned(),
                    accepts_any_input: true,
                    ..ResourceSchema::default()
                }],
                functions: Vec::new(),
            },
            log: Arc::default(),
            journal,
        }
    }

    fn events(&self) -> Vec<String> {
        self.log.lock().unwrap().events.clone()
    }

    async fn act(&self, verb: &str, ctx: &CallContext, inputs: &PropertyMap) -> ProviderResult<()> {
        let name = ctx.urn.name().to_owned();
        // Write-ahead: the intent must already be in the journal when the provider is called.
        let journaled = self.journal.lock().unwrap().iter().any(|record| {
            matches!(record, JournalRecord::Begin { resource, .. } if resource.urn == ctx.urn.as_str())
        });
        assert!(
            journaled,
            "{verb} {name} was called before its intent was journaled"
        );
        {
            let mut log = self.log.lock().unwrap();
            log.events.push(format!("{verb} {name}"));
            log.in_flight += 1;
            log.max_in_flight = log.max_in_flight.max(log.in_flight);
        }
        let ms = inputs.get("ms").and_then(Value::as_f64).unwrap_or(0.0);
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        let mut log = self.log.lock().unwrap();
        log.in_flight -= 1;
        log.events.push(format!("done {name}"));
        if inputs.get("fail").and_then(Value::as_bool) == Some(true) {
            return Err(ProviderError::Failed(format!("{name} failed on purpose")));
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Probe {
    fn package(&self) -> &str {
        "probe"
    }
    fn schema(&self) -> &PackageSchema {
        &self.schema
    }
    async fn check(
        &self,
        _: &CallContext,
        _: &str,
        _: Option<&PropertyMap>,
        news: &PropertyMap,
    ) -> ProviderResult<CheckResponse> {
        Ok(CheckResponse {
            inputs: news.clone(),
            failures: Vec::new(),
        })
    }
    async fn diff(
        &self,
        _: &CallContext,
        _: &str,
        _: &str,
        olds: &PropertyMap,
        _: &PropertyMap,
        news: &PropertyMap,
    ) -> ProviderResult<DiffResponse> {
        Ok(cairn_provider::diff_by_schema(None, olds, news))
    }
    async fn create(
        &self,
        ctx: &CallContext,
        _: &str,
        inputs: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<CreateResponse> {
        if !preview {
            self.act("create", ctx, inputs).await?;
        }
        let mut outputs = inputs.clone();
        // `deepOutput: true`: an output nested past what the state can hold.
        if inputs.get("deepOutput").and_then(Value::as_bool) == Some(true) {
            let mut deep = Value::Null;
            for _ in 0..=cairn_core::MAX_VALUE_DEPTH {
                deep = Value::Array(vec![deep]);
            }
            outputs.insert("deep".to_owned(), deep);
        }
        Ok(CreateResponse {
            id: format!("id-{}", ctx.urn.name()),
            outputs,
        })
    }
    async fn read(
        &self,
        _: &CallContext,
        _: &str,
        id: &str,
        inputs: &PropertyMap,
        outputs: &PropertyMap,
    ) -> ProviderResult<Option<ReadResponse>> {
        Ok(Some(ReadResponse {
            id: id.to_owned(),
            inputs: inputs.clone(),
            outputs: outputs.clone(),
        }))
    }
    async fn update(
        &self,
        ctx: &CallContext,
        _: &str,
        _: &str,
        _: &PropertyMap,
        _: &PropertyMap,
        news: &PropertyMap,
        preview: bool,
    ) -> ProviderResult<PropertyMap> {
        if !preview {
            self.act("update", ctx, news).await?;
        }
        Ok(news.clone())
    }
    async fn delete(
        &self,
        ctx: &CallContext,
        _: &str,
        _: &str,
        inputs: &PropertyMap,
        _: &PropertyMap,
    ) -> ProviderResult<()> {
        self.act("delete", ctx, inputs).await
    }
    async fn invoke(
        &self,
        _: &CallContext,
        token: &str,
        _: &PropertyMap,
    ) -> ProviderResult<PropertyMap> {
        Err(ProviderError::UnknownFunction(token.to_owned()))
    }
}

/// Keeps journal records in memory.
struct MemoryWriter {
    journal: Journal,
}

#[async_trait]
impl UpdateWriter for MemoryWriter {
    async fn append(&self, records: Vec<JournalRecord>) -> BackendResult<()> {
        self.journal.lock().unwrap().extend(records);
        Ok(())
    }
    async fn finish(
        self: Box<Self>,
        _: Deployment,
        _: UpdateResult,
        _: BTreeMap<String, usize>,
    ) -> BackendResult<()> {
        Ok(())
    }
}

struct PlainText;

impl cairn_secrets::Crypter for PlainText {
    fn encrypt(&self, plaintext: &str) -> Result<String, cairn_secrets::SecretsError> {
        Ok(plaintext.to_owned())
    }
    fn decrypt(&self, ciphertext: &str) -> Result<String, cairn_secrets::SecretsError> {
        Ok(ciphertext.to_owned())
    }
}

struct NoStacks;

impl StackReferences for NoStacks {
    fn outputs(&self, stack: &str) -> Result<PropertyMap, String> {
        Err(format!("no stack `{stack}`"))
    }
}

struct NoFiles;

impl cairn_program::FileSource for NoFiles {
    fn read_to_string(&self, path: &std::path::Path) -> std::io::Result<String> {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.display().to_string(),
        ))
    }
}

struct Harness {
    probe: Arc<Probe>,
    journal: Journal,
}

impl Harness {
    fn new() -> Harness {
        let journal: Journal = Arc::default();
        Harness {
            probe: Arc::new(Probe::new(journal.clone())),
            journal,
        }
    }

    async fn run(
        &self,
        program: &str,
        old: Snapshot,
        operation: Operation,
        dry_run: bool,
        parallel: usize,
    ) -> DeployOutcome {
        let mut registry = ProviderRegistry::new();
        registry.register(self.probe.clone());
        let loaded = cairn_program::load_str("Cairn.yaml", program, &registry);
        assert!(
            loaded.diagnostics.is_empty(),
            "{:?}",
            loaded
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        let request = DeployRequest {
            stack: "dev".to_owned(),
            project: "test".to_owned(),
            organization: "organization".to_owned(),
            program_dir: std::env::temp_dir(),
            program: loaded.program.map(Arc::new),
            config: BTreeMap::new(),
            old: Arc::new(old),
            providers: Arc::new(registry),
            files: Arc::new(NoFiles),
            stack_references: Arc::new(NoStacks),
        };
        let persister = (!dry_run).then(|| {
            Persister::new(
                Box::new(MemoryWriter {
                    journal: self.journal.clone(),
                }),
                Arc::new(PlainText),
            )
        });
        let options = DeployOptions {
            operation,
            dry_run,
            targets: Vec::new(),
            parallel,
            refresh: false,
            clear_pending: false,
        };
        let (sender, _receiver) = tokio::sync::mpsc::unbounded_channel();
        crate::deploy(request, options, persister, sender, Cancellation::default())
            .await
            .unwrap()
    }
}

fn things(specs: &[(&str, u64, &str)]) -> String {
    let mut program = String::from("name: test\nruntime: yaml\nresources:\n");
    for (name, ms, extra) in specs {
        program.push_str(&format!(
            "  {name}:\n    type: probe:Thing\n    properties:\n      ms: {ms}\n{extra}"
        ));
    }
    program
}

fn position(events: &[String], event: &str) -> usize {
    events
        .iter()
        .position(|candidate| candidate == event)
        .unwrap_or_else(|| panic!("no `{event}` in {events:?}"))
}

// The clock is paused: a provider's `ms` is simulated time, advanced only when every task
// waits, so the order of events depends on the latencies alone, never on the machine's load.
#[tokio::test(start_paused = true)]
async fn independent_steps_run_in_parallel_up_to_the_bound() {
    let harness = Harness::new();
    let specs: Vec<(String, u64, &str)> =
        (0..8).map(|index| (format!("r{index}"), 50, "")).collect();
    let specs: Vec<(&str, u64, &str)> = specs
        .iter()
        .map(|(name, ms, extra)| (name.as_str(), *ms, *extra))
        .collect();
    let outcome = harness
        .run(
            &things(&specs),
            Snapshot::default(),
            Operation::Update,
            false,
            3,
        )
        .await;
    assert!(!outcome.has_failed(), "{:?}", outcome.steps);
    assert_eq!(
        outcome.changes[&StepOp::Create],
        9,
        "8 things and the stack"
    );
    assert_eq!(harness.probe.log.lock().unwrap().max_in_flight, 3);
}

#[tokio::test(start_paused = true)]
async fn a_step_starts_when_its_own_dependencies_finish() {
    let harness = Harness::new();
    // slow → afterSlow, and fast → afterFast: afterFast must not wait for slow.
    let program = things(&[
        ("slow", 300, ""),
        ("afterSlow", 0, "      after: ${slow.ms}\n"),
        ("fast", 0, ""),
        ("afterFast", 0, "      after: ${fast.ms}\n"),
    ]);
    harness
        .run(&program, Snapshot::default(), Operation::Update, false, 10)
        .await;
    let events = harness.probe.events();
    assert!(
        position(&events, "done afterFast") < position(&events, "done slow"),
        "{events:?}"
    );
    assert!(
        position(&events, "done slow") < position(&events, "create afterSlow"),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_stops_dependents_and_lets_independent_work_finish() {
    let harness = Harness::new();
    let program = things(&[
        ("broken", 0, "      fail: true\n"),
        ("dependent", 0, "      after: ${broken.ms}\n"),
        ("independent", 100, ""),
    ]);
    let outcome = harness
        .run(&program, Snapshot::default(), Operation::Update, false, 10)
        .await;
    let failed: Vec<&StepRecord> = outcome.failed_steps().collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].urn.name(), "broken");
    // What the failure kept from running is a value too.
    assert_eq!(outcome.blocked.len(), 1, "{:?}", outcome.blocked);
    assert_eq!(outcome.blocked[0].name, "dependent");
    assert_eq!(
        outcome.blocked[0]
            .urn
            .as_ref()
            .map(|urn| urn.name().to_owned()),
        Some("dependent".to_owned())
    );
    let error = failed[0].error.as_ref().expect("error");
    assert_eq!(error.cause, FailureCause::Provider);
    assert!(
        error.message.contains("broken failed on purpose"),
        "{error}"
    );
    assert!(
        outcome.program_errors.is_empty(),
        "{:?}",
        outcome.program_errors
    );
    let events = harness.probe.events();
    assert!(
        events.contains(&"done independent".to_owned()),
        "{events:?}"
    );
    assert!(
        !events.contains(&"create dependent".to_owned()),
        "{events:?}"
    );
    let names: Vec<&str> = outcome
        .snapshot
        .resources
        .iter()
        .map(|resource| resource.urn.name())
        .collect();
    assert!(names.contains(&"independent"), "{names:?}");
    assert!(
        !names.contains(&"broken") && !names.contains(&"dependent"),
        "{names:?}"
    );
    // The failed create's intent was closed: nothing is left pending.
    let begun = harness
        .journal
        .lock()
        .unwrap()
        .iter()
        .filter(|record| matches!(record, JournalRecord::Begin { .. }))
        .count();
    let ended = harness
        .journal
        .lock()
        .unwrap()
        .iter()
        .filter(|record| matches!(record, JournalRecord::End { .. }))
        .count();
    assert_eq!(begun, ended);
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_has_no_side_effects_and_records_nothing() {
    let harness = Harness::new();
    let outcome = harness
        .run(
            &things(&[("a", 0, ""), ("b", 0, "      after: ${a.ms}\n")]),
            Snapshot::default(),
            Operation::Update,
            true,
            10,
        )
        .await;
    assert_eq!(outcome.changes[&StepOp::Create], 3);
    assert!(harness.probe.events().is_empty());
    assert!(harness.journal.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn destroy_deletes_dependents_first() {
    let harness = Harness::new();
    let program = things(&[
        ("base", 0, ""),
        ("middle", 0, "      after: ${base.ms}\n"),
        ("top", 0, "      after: ${middle.ms}\n"),
    ]);
    let created = harness
        .run(&program, Snapshot::default(), Operation::Update, false, 10)
        .await;
    let outcome = harness
        .run(&program, created.snapshot, Operation::Destroy, false, 10)
        .await;
    assert!(!outcome.has_failed(), "{:?}", outcome.steps);
    assert!(
        outcome.snapshot.resources.is_empty(),
        "{:?}",
        outcome.snapshot.resources
    );
    let events = harness.probe.events();
    let deletes: Vec<&String> = events
        .iter()
        .filter(|event| event.starts_with("delete"))
        .collect();
    assert_eq!(deletes, vec!["delete top", "delete middle", "delete base"]);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_program_is_a_no_op() {
    let harness = Harness::new();
    let program = things(&[("a", 0, ""), ("b", 0, "      after: ${a.ms}\n")]);
    let created = harness
        .run(&program, Snapshot::default(), Operation::Update, false, 10)
        .await;
    let n_records = harness.journal.lock().unwrap().len();
    let again = harness
        .run(
            &program,
            created.snapshot.clone(),
            Operation::Update,
            false,
            10,
        )
        .await;
    assert_eq!(again.changes.get(&StepOp::Same), Some(&3));
    assert_eq!(again.changes.len(), 1);
    assert_eq!(
        harness.journal.lock().unwrap().len(),
        n_records,
        "a no-op writes no records"
    );
    assert_eq!(again.snapshot, created.snapshot);
}

#[tokio::test]
async fn an_output_too_deep_for_the_state_is_left_out_and_the_resource_kept() {
    let harness = Harness::new();
    let program = things(&[("r", 0, "      deepOutput: true\n")]);
    let outcome = harness
        .run(&program, Snapshot::default(), Operation::Update, false, 4)
        .await;
    assert!(!outcome.has_failed(), "{:?}", outcome.steps);
    let journal = harness.journal.lock().unwrap();
    let recorded = journal
        .iter()
        .find_map(|record| match record {
            JournalRecord::End {
                added: Some(added), ..
            } if added.urn.ends_with("::r") => Some(added.clone()),
            _ => None,
        })
        .expect("the created resource is recorded");
    assert_eq!(recorded.id, "id-r");
    assert!(recorded.outputs.contains_key("deepOutput"));
    assert!(
        !recorded.outputs.contains_key("deep"),
        "{:?}",
        recorded.outputs
    );
}
