//! The deployment executor: builds the graph of program nodes (variables and resources), runs
//! each node the moment its dependencies finish (bounded by `--parallel`), then deletes what the
//! program no longer declares in reverse dependency order, and assembles the new snapshot.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use cairn_core::urn::ROOT_STACK_TYPE;
use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, Snapshot, StepOp, Urn, Value};
use cairn_program::Program;
use cairn_state::{Persister, UpdateResult};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;

use crate::eval_context::Resolved;
use crate::events::{EngineEvent, StepRecord};
use crate::graph;
use crate::{Cancellation, DeployOptions, DeployOutcome, DeployRequest, EngineError, Operation};

/// State shared by every step task of one deployment.
pub(crate) struct Shared {
    pub request: DeployRequest,
    pub options: DeployOptions,
    pub cancel: Cancellation,
    pub root_urn: Urn,
    pub resolved: Resolved,
    pub persister: Option<Persister>,
    pub events: UnboundedSender<EngineEvent>,
    pub permits: Semaphore,
    /// The old snapshot, refreshed first when asked, and the position of each live (not
    /// waiting-for-deletion) resource in it by URN. Set again after a refresh.
    old: std::sync::RwLock<(Arc<Snapshot>, HashMap<Urn, usize>)>,
    /// URNs of the program's resources, by resource index.
    pub urns: Vec<Urn>,
    /// Resource index by resource key.
    pub resource_index: HashMap<String, usize>,
    /// Provider references (`urn::id`) of the default provider of each package.
    pub default_providers: Mutex<HashMap<String, String>>,
    /// Provider references of explicit provider resources, by resource key.
    pub explicit_providers: Mutex<HashMap<String, String>>,
    /// The configured provider instance behind each provider reference.
    pub provider_instances: crate::providers::ProviderInstances,
    /// Plaintexts of the secrets this run has seen, masked out of provider log lines.
    pub secret_texts: SecretTexts,
    pub outcome: Mutex<OutcomeBuilder>,
}

/// What the tasks collect while they run.
#[derive(Default)]
pub(crate) struct OutcomeBuilder {
    pub steps: Vec<StepRecord>,
    pub errors: Vec<String>,
    /// New resource states, in the order they finished.
    pub new_states: Vec<ResourceState>,
    /// Old resources replaced by a new copy, to delete at the end.
    pub replaced: Vec<ResourceState>,
    /// URNs of program resources that reached a final state this run.
    pub finished_urns: HashSet<Urn>,
    /// Old URNs that program resources took over through `aliases`.
    pub claimed_aliases: HashSet<Urn>,
    /// An error in the program itself was found while evaluating it.
    pub has_program_error: bool,
    /// The errors of failures that are no step's.
    pub program_errors: Vec<String>,
}

impl Shared {
    /// A provider's inputs or outputs without the properties nested deeper than the state can
    /// hold (`cairn_core::MAX_VALUE_DEPTH`), with a warning naming them. The resource exists,
    /// so it is kept (failing its step would lose track of it); only those values are not.
    ///
    /// Outside a preview, values a provider left unknown are left out the same way: an unknown
    /// is no value, and must never reach state or another resource's provider as one.
    pub fn storable(&self, urn: &Urn, kind: &str, mut map: PropertyMap) -> PropertyMap {
        if !self.is_dry_run() {
            let unknown = leave_out(&mut map, Value::contains_unknown);
            if !unknown.is_empty() {
                self.emit(EngineEvent::Warning(format!(
                    "{urn}: the provider returned {kind} `{}` as unknown outside a preview; they were left out",
                    unknown.join("`, `")
                )));
            }
        }
        let too_deep = leave_out(&mut map, |value| {
            value.depth() > cairn_core::MAX_VALUE_DEPTH
        });
        if !too_deep.is_empty() {
            self.emit(EngineEvent::Warning(format!(
                "{urn}: the provider returned {kind} `{}` nested more than {} levels deep; the state cannot hold it, so it was left out",
                too_deep.join("`, `"),
                cairn_core::MAX_VALUE_DEPTH
            )));
        }
        map
    }

    /// Sends a progress event. A warning is masked of every secret this run has seen: it may
    /// quote a provider's message. (Step errors are masked by `record_step`, log lines by
    /// their sink.)
    pub fn emit(&self, event: EngineEvent) {
        let event = match event {
            EngineEvent::Warning(message) => EngineEvent::Warning(self.secret_texts.mask(&message)),
            other => other,
        };
        // A closed receiver means nobody is watching progress; the work goes on regardless.
        let _ = self.events.send(event);
    }

    /// Records a finished or failed step. Its error is masked of every secret this run has
    /// seen: provider and plugin messages (a failed command's output) may quote one.
    pub fn record_step(&self, mut record: StepRecord) {
        record.error = record.error.map(|error| self.secret_texts.mask(&error));
        self.emit(EngineEvent::StepFinished(Box::new(record.clone())));
        let mut outcome = self.lock_outcome();
        if let Some(error) = &record.error {
            outcome.errors.push(format!("{}: {error}", record.urn));
        }
        outcome.steps.push(record);
    }

    /// Records a failure that is not a step's (a variable that cannot be evaluated): `warning`
    /// is shown as it happens, `error` kept with the outcome's errors.
    pub fn record_failure(&self, warning: String, error: &str) {
        self.emit(EngineEvent::Warning(warning));
        let error = self.secret_texts.mask(error);
        let mut outcome = self.lock_outcome();
        outcome.errors.push(error.clone());
        outcome.program_errors.push(error);
        outcome.has_program_error = true;
    }

    /// Records a failed step: what it attempted, on which resource, and why.
    pub fn record_error(&self, op: StepOp, urn: &Urn, parent: Option<&Urn>, message: String) {
        let mut record = StepRecord::new(
            op,
            urn.clone(),
            urn.type_token().to_owned(),
            parent.cloned(),
        );
        record.error = Some(message);
        self.record_step(record);
    }

    pub fn lock_outcome(&self) -> std::sync::MutexGuard<'_, OutcomeBuilder> {
        // A poisoned lock means a step task panicked; its partial record is still worth keeping.
        self.outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_dry_run(&self) -> bool {
        self.options.dry_run
    }

    /// Durably records that an operation begins (nothing in a dry run).
    pub async fn begin(
        &self,
        kind: PendingOperationKind,
        state: &ResourceState,
    ) -> Result<Option<u64>, String> {
        match &self.persister {
            Some(persister) => persister
                .begin(kind, state)
                .await
                .map(Some)
                .map_err(|error| self.state_error(error)),
            None => Ok(None),
        }
    }

    /// A failure to record state. When the update lost its lock (`cairn cancel` ran while it
    /// was alive), no step may start any more: the steps in flight finish, their outcomes
    /// unrecorded, and stay pending operations for the update after the cancel to settle.
    fn state_error(&self, error: cairn_state::persister::StateError) -> String {
        if error.is_lock_lost() && !self.cancel.graceful.is_cancelled() {
            self.cancel.graceful.cancel();
            self.emit(EngineEvent::Warning(format!(
                "{error}: starting no more steps"
            )));
        }
        format!("saving state: {error}")
    }

    /// Durably records an operation's outcome.
    pub async fn end(
        &self,
        op: Option<u64>,
        removed: Option<&ResourceState>,
        added: Option<&ResourceState>,
    ) -> Result<(), String> {
        match (&self.persister, op) {
            (Some(persister), Some(op)) => persister
                .end(
                    op,
                    removed.map(|state| (&state.urn, state.id.as_str())),
                    added,
                )
                .await
                .map_err(|error| self.state_error(error)),
            _ => Ok(()),
        }
    }

    /// The old state of the live resource with this URN.
    pub fn old_state(&self, urn: &Urn) -> Option<ResourceState> {
        let old = self
            .old
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        old.1.get(urn).map(|&index| old.0.resources[index].clone())
    }

    pub fn old_snapshot(&self) -> Arc<Snapshot> {
        let old = self
            .old
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        old.0.clone()
    }

    fn set_old(&self, snapshot: Arc<Snapshot>) {
        let mut old = self
            .old
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *old = index_old(snapshot);
    }

    /// The context of a provider call about `urn`: cancelled by a hard stop.
    pub fn call_context(&self, urn: &Urn) -> cairn_provider::CallContext {
        // Weak, so that a provider holding on to a context never keeps the event stream open
        // after the deployment ends.
        let events = self.events.downgrade();
        let secrets = self.secret_texts.clone();
        let log_urn = urn.clone();
        cairn_provider::CallContext {
            urn: urn.clone(),
            cancel: self.cancel.hard.child_token(),
            cwd: self.request.program_dir.clone(),
            logs: cairn_provider::LogSink::new(move |severity, message| {
                let Some(events) = events.upgrade() else {
                    return;
                };
                let _ = events.send(EngineEvent::Log {
                    urn: log_urn.clone(),
                    severity,
                    message: secrets.mask(message),
                });
            }),
            secret_outputs: Vec::new(),
        }
    }

    /// As `call_context`, but the log lines wait in `HeldLogs` until it is dropped, then go out
    /// masked with the secrets known by then. For a resource with secret outputs: its provider
    /// (or command) may print one before the engine can know it is a secret.
    pub fn held_call_context(
        &self,
        urn: &Urn,
        secret_outputs: Vec<String>,
    ) -> (cairn_provider::CallContext, HeldLogs) {
        let held = HeldLogs {
            lines: Arc::default(),
            urn: urn.clone(),
            events: self.events.clone(),
            secrets: self.secret_texts.clone(),
        };
        let lines = held.lines.clone();
        let ctx = cairn_provider::CallContext {
            logs: cairn_provider::LogSink::new(move |severity, message| {
                if let Ok(mut lines) = lines.lock() {
                    lines.push((severity, message.to_owned()));
                }
            }),
            secret_outputs,
            ..self.call_context(urn)
        };
        (ctx, held)
    }

    pub fn is_targeted(&self, urn: &Urn) -> bool {
        self.options.targets.is_empty() || self.options.targets.contains(urn)
    }
}

type HeldLine = (cairn_provider::LogSeverity, String);

/// Log lines of one resource held back until its step ends (see `held_call_context`).
pub(crate) struct HeldLogs {
    lines: Arc<Mutex<Vec<HeldLine>>>,
    urn: Urn,
    events: UnboundedSender<EngineEvent>,
    secrets: SecretTexts,
}

impl Drop for HeldLogs {
    fn drop(&mut self) {
        let lines = match self.lines.lock() {
            Ok(mut lines) => std::mem::take(&mut *lines),
            Err(_) => return,
        };
        for (severity, message) in lines {
            let _ = self.events.send(EngineEvent::Log {
                urn: self.urn.clone(),
                severity,
                message: self.secrets.mask(&message),
            });
        }
    }
}

/// Removes the properties whose value `is_left_out` picks, and returns their names.
fn leave_out(map: &mut PropertyMap, is_left_out: impl Fn(&Value) -> bool) -> Vec<String> {
    let names: Vec<String> = map
        .iter()
        .filter(|(_, value)| is_left_out(value))
        .map(|(key, _)| key.clone())
        .collect();
    for name in &names {
        map.remove(name);
    }
    names
}

/// The plaintexts of secrets, shared with every log sink, so a provider that prints a secret
/// (a command echoing its environment) never puts it in the log. Kept longest first, so that a
/// secret containing another is masked whole.
#[derive(Clone, Default)]
pub(crate) struct SecretTexts(Arc<std::sync::RwLock<BTreeSet<LongestFirst>>>);

/// A secret's plaintext, ordered by length, longest first.
type LongestFirst = (Reverse<usize>, String);

impl SecretTexts {
    fn of_values<'a>(values: impl Iterator<Item = &'a Value>) -> SecretTexts {
        let texts = SecretTexts::default();
        for value in values {
            texts.add_secrets_of(value);
        }
        texts
    }

    /// Remembers every secret string (and number, as text) inside `value`.
    pub fn add_secrets_of(&self, value: &Value) {
        let mut found = Vec::new();
        collect_secret_texts(value, false, &mut found);
        if found.is_empty() {
            return;
        }
        if let Ok(mut texts) = self.0.write() {
            for text in found {
                if !text.is_empty() {
                    texts.insert((Reverse(text.len()), text));
                }
            }
        }
    }

    /// The plaintexts, longest first.
    fn texts(&self) -> Vec<String> {
        match self.0.read() {
            Ok(texts) => texts.iter().map(|(_, text)| text.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn mask(&self, message: &str) -> String {
        let Ok(texts) = self.0.read() else {
            return "[message hidden: secrets unavailable]".to_owned();
        };
        let mut masked = message.to_owned();
        for (_, text) in texts.iter() {
            if masked.contains(text.as_str()) {
                masked = masked.replace(text.as_str(), "[secret]");
            }
        }
        masked
    }
}

/// Whether a plain string somewhere in `value` contains one of `texts`.
fn mentions_any(value: &Value, texts: &[String]) -> bool {
    match value {
        Value::String(text) => texts.iter().any(|secret| text.contains(secret.as_str())),
        Value::Array(items) => items.iter().any(|item| mentions_any(item, texts)),
        Value::Object(map) => map.values().any(|item| mentions_any(item, texts)),
        _ => false,
    }
}

fn collect_secret_texts(value: &Value, is_secret: bool, found: &mut Vec<String>) {
    match value {
        Value::Secret(inner) => collect_secret_texts(inner, true, found),
        Value::String(text) if is_secret => push_spellings(text, found),
        Value::Number(number) if is_secret => found.push(number.to_string()),
        Value::Array(items) => {
            for item in items {
                collect_secret_texts(item, is_secret, found);
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                collect_secret_texts(item, is_secret, found);
            }
        }
        _ => {}
    }
}

/// A secret, and the other ways it is printed: JSON-escaped (a command printing JSON turns a
/// `"` in it into `\"`), and line by line when it has several lines (a key, a certificate),
/// since log lines split it. Lines shorter than 4 characters are left alone: masking every
/// `}` or blank would only hide unrelated text.
fn push_spellings(text: &str, found: &mut Vec<String>) {
    found.push(text.to_owned());
    let escaped = json_escaped(text);
    if escaped != text {
        found.push(escaped);
    }
    if text.contains('\n') {
        for line in text.lines().map(|line| line.trim_end_matches('\r')) {
            if line.trim().chars().count() >= 4 {
                found.push(line.to_owned());
            }
        }
    }
}

/// `text` as it stands between the quotes of a JSON string.
fn json_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Indexes the live resources of a snapshot by URN.
fn index_old(snapshot: Arc<Snapshot>) -> (Arc<Snapshot>, HashMap<Urn, usize>) {
    let index = snapshot
        .resources
        .iter()
        .enumerate()
        .filter(|(_, resource)| !resource.delete)
        .map(|(position, resource)| (resource.urn.clone(), position))
        .collect();
    (snapshot, index)
}

/// Runs one operation on a stack. Resource failures are collected in the outcome; only a
/// failure to persist state is an `Err`.
pub async fn deploy(
    request: DeployRequest,
    options: DeployOptions,
    persister: Option<Persister>,
    events: UnboundedSender<EngineEvent>,
    cancel: Cancellation,
) -> Result<DeployOutcome, EngineError> {
    let root_urn = Urn::new(
        &request.stack,
        &request.project,
        None,
        ROOT_STACK_TYPE,
        &format!("{}-{}", request.project, request.stack),
    );
    let old = index_old(request.old.clone());
    let urns = match &request.program {
        Some(program) => program_urns(program, &request.stack, &request.project),
        None => Vec::new(),
    };
    let resource_index = match &request.program {
        Some(program) => program
            .resources
            .iter()
            .enumerate()
            .map(|(index, resource)| (resource.key.clone(), index))
            .collect(),
        None => HashMap::new(),
    };
    let parallel = options.parallel.max(1);
    // Secrets a provider might print: config, and the inputs and outputs of resources already
    // in state (a `delete` command sees those; a command may echo an old password).
    let request_config_values: Vec<Value> = request
        .config
        .values()
        .chain(
            request
                .old
                .resources
                .iter()
                .flat_map(|resource| resource.inputs.values().chain(resource.outputs.values()))
                .filter(|value| value.contains_secret()),
        )
        .cloned()
        .collect();
    let shared = Arc::new(Shared {
        request,
        options,
        cancel,
        root_urn,
        resolved: Resolved::default(),
        persister,
        events,
        permits: Semaphore::new(parallel),
        old: std::sync::RwLock::new(old),
        urns,
        resource_index,
        default_providers: Mutex::new(HashMap::new()),
        explicit_providers: Mutex::new(HashMap::new()),
        provider_instances: Default::default(),
        secret_texts: SecretTexts::of_values(request_config_values.iter()),
        outcome: Mutex::new(OutcomeBuilder::default()),
    });

    if shared.options.clear_pending {
        let resolved = crate::refresh::resolve_pending(&shared, &shared.old_snapshot()).await;
        shared.set_old(Arc::new(resolved));
    }
    if shared.options.operation == Operation::Refresh || shared.options.refresh {
        let refreshed = crate::refresh::refresh_all(&shared, &shared.old_snapshot()).await;
        shared.set_old(Arc::new(refreshed));
    }
    let old = shared.old_snapshot();
    let remaining = match shared.options.operation {
        Operation::Refresh => Ok(old.resources.clone()),
        Operation::Destroy => destroy_all(&shared, &old).await,
        Operation::Update => Ok(update(&shared, &old).await),
    };
    // Plugin processes configured for this run exit before the state is finished.
    shared.provider_instances.shutdown_all().await;
    finish(shared, old, remaining?).await
}

/// Runs the program and then deletes what it no longer declares. Returns the old resources
/// that stay in state (not re-declared this run and not deleted).
async fn update(shared: &Arc<Shared>, old: &Snapshot) -> Vec<ResourceState> {
    let Some(program) = shared.request.program.clone() else {
        return old.resources.clone();
    };
    crate::stack_resources::register_root(shared).await;
    crate::stack_resources::register_default_providers(shared, &program).await;

    let n_variables = program.variables.len();
    let node_ids: HashMap<&str, usize> = program
        .variables
        .iter()
        .enumerate()
        .map(|(index, variable)| (variable.name.as_str(), index))
        .chain(
            program
                .resources
                .iter()
                .enumerate()
                .map(|(index, resource)| (resource.key.as_str(), n_variables + index)),
        )
        .collect();
    let deps_of = |deps: &cairn_program::Deps| -> Vec<usize> {
        deps.variables
            .iter()
            .filter_map(|name| node_ids.get(name.as_str()).copied())
            .chain(
                deps.resources
                    .iter()
                    .filter_map(|key| node_ids.get(key.as_str()).copied()),
            )
            .collect()
    };
    let dependencies: Vec<Vec<usize>> = program
        .variables
        .iter()
        .map(|variable| deps_of(&variable.deps))
        .chain(
            program
                .resources
                .iter()
                .map(|resource| deps_of(&resource.deps)),
        )
        .collect();

    let run_shared = shared.clone();
    let result = crate::executor::run_dag(
        dependencies,
        &shared.cancel,
        crate::executor::parallel_of(shared),
        move |node| {
            let shared = run_shared.clone();
            async move {
                if node < n_variables {
                    crate::stack_resources::evaluate_variable(&shared, node)
                } else {
                    crate::resources::run_resource(&shared, node - n_variables).await
                }
            }
        },
    )
    .await;
    if result.n_blocked > 0 {
        let message = if result.n_blocked == 1 {
            "1 resource was not changed because a resource it depends on failed".to_owned()
        } else {
            format!(
                "{} resources were not changed because a resource they depend on failed",
                result.n_blocked
            )
        };
        shared.emit(EngineEvent::Warning(message));
    }
    crate::stack_resources::register_outputs(shared, &program).await;

    // Old resources the program no longer declares, old copies left by earlier replacements,
    // and the ones this run replaced, are deleted last, in reverse dependency order. After a
    // failure nothing is deleted: the state keeps them for the next run.
    let claimed_aliases = std::mem::take(&mut shared.lock_outcome().claimed_aliases);
    let mut program_urns: HashSet<&Urn> = shared.urns.iter().collect();
    program_urns.extend(claimed_aliases.iter());
    let default_provider_refs: Vec<String> = shared
        .default_providers
        .lock()
        .map(|providers| providers.values().cloned().collect())
        .unwrap_or_default();
    let is_kept_provider = |resource: &ResourceState| {
        default_provider_refs
            .iter()
            .any(|reference| reference.starts_with(&format!("{}::", resource.urn)))
    };
    let (mut to_delete, mut kept): (Vec<ResourceState>, Vec<ResourceState>) =
        old.resources.iter().cloned().partition(|resource| {
            resource.urn != shared.root_urn
                && (resource.delete
                    || (!program_urns.contains(&resource.urn) && !is_kept_provider(resource)))
                && shared.is_targeted(&resource.urn)
        });
    // Old states of re-declared resources are superseded by their new states (or carried
    // over by `finish` when their step did not run).
    kept.retain(|resource| resource.delete || !program_urns.contains(&resource.urn));
    kept.retain(|resource| resource.urn != shared.root_urn && !is_kept_provider(resource));
    to_delete.extend(std::mem::take(&mut shared.lock_outcome().replaced));
    let has_failed = !shared.lock_outcome().errors.is_empty();
    if has_failed || shared.cancel.graceful.is_cancelled() {
        kept.extend(to_delete);
        return kept;
    }
    kept.extend(delete_in_reverse_order(shared, to_delete).await);
    kept
}

/// Deletes every resource of the stack (`destroy`), refusing up front if one is protected.
async fn destroy_all(
    shared: &Arc<Shared>,
    old: &Snapshot,
) -> Result<Vec<ResourceState>, EngineError> {
    let (to_delete, kept): (Vec<ResourceState>, Vec<ResourceState>) = old
        .resources
        .iter()
        .cloned()
        .partition(|resource| shared.is_targeted(&resource.urn));
    let protected: Vec<&str> = to_delete
        .iter()
        .filter(|resource| resource.protect)
        .map(|resource| resource.urn.as_str())
        .collect();
    if !protected.is_empty() {
        return Err(EngineError::Refused(format!(
            "refusing to destroy: {} protected (`{}`); set `protect: false` and run `cairn up`, or run `cairn state unprotect <urn>`",
            if protected.len() == 1 {
                "a resource is"
            } else {
                "resources are"
            },
            protected.join("`, `")
        )));
    }
    let mut remaining = kept;
    remaining.extend(delete_in_reverse_order(shared, to_delete).await);
    Ok(remaining)
}

/// Deletes `resources` so that each goes only after everything in the set that depends on it.
/// Returns the resources that were not deleted (failures, blocked, cancelled).
async fn delete_in_reverse_order(
    shared: &Arc<Shared>,
    resources: Vec<ResourceState>,
) -> Vec<ResourceState> {
    let index_by_urn: HashMap<&Urn, Vec<usize>> =
        resources
            .iter()
            .enumerate()
            .fold(HashMap::new(), |mut map, (index, resource)| {
                map.entry(&resource.urn).or_default().push(index);
                map
            });
    // Node i waits for every node that depends on it.
    let mut wait_for: Vec<Vec<usize>> = vec![Vec::new(); resources.len()];
    for (dependent_index, resource) in resources.iter().enumerate() {
        for dependency in resource_dependencies(resource) {
            for &dependency_index in index_by_urn.get(&dependency).into_iter().flatten() {
                if dependency_index != dependent_index {
                    wait_for[dependency_index].push(dependent_index);
                }
            }
        }
    }
    // A resource whose `deletedWith` resource goes in the same operation is taken with it.
    let deleted_urns: HashSet<Urn> = resources
        .iter()
        .map(|resource| resource.urn.clone())
        .collect();
    let is_taken: Arc<Vec<bool>> = Arc::new(
        resources
            .iter()
            .map(|resource| {
                resource
                    .deleted_with
                    .as_ref()
                    .is_some_and(|urn| deleted_urns.contains(urn))
            })
            .collect(),
    );
    let resources = Arc::new(resources);
    let run_resources = resources.clone();
    let run_shared = shared.clone();
    let result = crate::executor::run_dag(
        wait_for,
        &shared.cancel,
        crate::executor::parallel_of(shared),
        move |node| {
            let shared = run_shared.clone();
            let resources = run_resources.clone();
            let is_taken = is_taken[node];
            async move { crate::delete::delete_resource(&shared, &resources[node], is_taken).await }
        },
    )
    .await;
    resources
        .iter()
        .enumerate()
        .filter(|(index, _)| !result.succeeded[*index])
        .map(|(_, resource)| resource.clone())
        .collect()
}

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

/// Assembles the new snapshot, persists it, and builds the outcome.
async fn finish(
    shared: Arc<Shared>,
    old: Arc<Snapshot>,
    remaining_old: Vec<ResourceState>,
) -> Result<DeployOutcome, EngineError> {
    let mut builder = std::mem::take(&mut *shared.lock_outcome());
    let mut resources = std::mem::take(&mut builder.new_states);
    // Program resources whose step did not run (blocked, untargeted, cancelled) keep their
    // old state. (`destroy` and `refresh` account for every old resource themselves.)
    let program_urns = match shared.options.operation {
        Operation::Update => shared.urns.as_slice(),
        Operation::Refresh | Operation::Destroy => &[],
    };
    for urn in program_urns {
        if !builder.finished_urns.contains(urn)
            && let Some(old_state) = shared.old_state(urn)
        {
            resources.push(old_state);
        }
    }
    if shared.options.operation == Operation::Update
        && !builder.finished_urns.contains(&shared.root_urn)
        && let Some(root) = shared.old_state(&shared.root_urn)
    {
        resources.push(root);
    }
    resources.extend(remaining_old);
    let snapshot = Snapshot {
        resources: sort_by_dependencies(resources),
        pending_operations: old.pending_operations.clone(),
    };
    // Show steps in the order the program declares its resources (the root first, deletions
    // last), as Pulumi does, not in the order they happened to finish.
    let program_position: HashMap<&Urn, usize> = std::iter::once(&shared.root_urn)
        .chain(shared.urns.iter())
        .enumerate()
        .map(|(position, urn)| (urn, position))
        .collect();
    builder.steps.sort_by_key(|step| {
        let is_delete = step.op == StepOp::Delete;
        (
            is_delete,
            program_position
                .get(&step.urn)
                .copied()
                .unwrap_or(usize::MAX),
        )
    });
    let mut changes = std::collections::BTreeMap::new();
    for step in builder.steps.iter().filter(|step| step.error.is_none()) {
        // Default providers are the engine's bookkeeping; explicit ones count as Pulumi's do.
        if !crate::providers::is_default_provider(&step.urn) {
            *changes.entry(step.op).or_insert(0) += 1;
        }
    }
    let outcome = DeployOutcome {
        outputs: snapshot.stack_outputs(),
        steps: builder.steps,
        changes,
        errors: builder.errors,
        program_errors: builder.program_errors,
        has_program_error: builder.has_program_error,
        snapshot,
        cancelled: shared.cancel.graceful.is_cancelled(),
    };
    let shared = Arc::try_unwrap(shared).map_err(|_| {
        EngineError::Refused("internal error: a step task outlived its deployment".to_owned())
    })?;
    if let Some(persister) = shared.persister {
        let result = if outcome.has_failed() {
            UpdateResult::Failed
        } else if outcome.cancelled {
            UpdateResult::Cancelled
        } else {
            UpdateResult::Succeeded
        };
        persister
            .finish(&outcome.snapshot, result, outcome.change_counts())
            .await?;
    }
    Ok(outcome)
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

/// The URN of every program resource, parents' types chained.
fn program_urns(program: &Program, stack: &str, project: &str) -> Vec<Urn> {
    let index_of: HashMap<&str, usize> = program
        .resources
        .iter()
        .enumerate()
        .map(|(index, resource)| (resource.key.as_str(), index))
        .collect();
    let parents: Vec<Vec<usize>> = program
        .resources
        .iter()
        .map(|resource| {
            resource
                .options
                .parent
                .as_deref()
                .and_then(|parent| index_of.get(parent).copied())
                .into_iter()
                .collect()
        })
        .collect();
    let mut qualified_types: Vec<Option<String>> = vec![None; program.resources.len()];
    let mut urns: Vec<Option<Urn>> = vec![None; program.resources.len()];
    for index in graph::topological_order(&parents) {
        let resource = &program.resources[index];
        let parent_type = parents[index]
            .first()
            .and_then(|&parent| qualified_types[parent].clone());
        let urn = Urn::new(
            stack,
            project,
            parent_type.as_deref(),
            &resource.type_token,
            &resource.name,
        );
        qualified_types[index] = Some(match parent_type {
            Some(parent_type) => format!("{parent_type}${}", resource.type_token),
            None => resource.type_token.clone(),
        });
        urns[index] = Some(urn);
    }
    urns.into_iter()
        .map(|urn| urn.expect("topological_order returns every node once"))
        .collect()
}

/// Property maps of a provider's outputs with secretness re-applied: outputs named like a
/// secret input, and outputs the schema marks secret, stay secret.
pub(crate) fn reseal_outputs(
    known_secrets: &SecretTexts,
    inputs: &PropertyMap,
    outputs: PropertyMap,
    schema_secret: &(dyn Fn(&str) -> bool + Sync),
) -> PropertyMap {
    // An output that repeats a secret (a command echoing its token) is as secret: the
    // plaintexts of this resource's secret inputs and of every secret the run has seen.
    let mut secret_texts = Vec::new();
    for value in inputs.values() {
        collect_secret_texts(value, false, &mut secret_texts);
    }
    secret_texts.extend(known_secrets.texts());
    secret_texts.retain(|text| !text.is_empty());
    let outputs: PropertyMap = outputs
        .into_iter()
        .map(|(key, value)| {
            let was_secret = inputs.get(&key).is_some_and(Value::contains_secret)
                || mentions_any(&value, &secret_texts);
            let value = if (was_secret || schema_secret(&key)) && !matches!(value, Value::Unknown) {
                value.into_secret()
            } else {
                value
            };
            (key, value)
        })
        .collect();
    // A secret output is masked from now on: in its own provider's log lines and errors, and
    // wherever a later resource repeats it.
    for value in outputs.values() {
        known_secrets.add_secrets_of(value);
    }
    outputs
}

#[cfg(test)]
mod secret_text_tests {
    use super::*;

    #[test]
    fn a_secret_is_masked_json_escaped_and_line_by_line() {
        let texts = SecretTexts::default();
        texts.add_secrets_of(&Value::string("Tr0ub\\&\"ESC").into_secret());
        texts.add_secrets_of(
            &Value::string("-----BEGIN KEY-----\nMLSECRET-LINE2\n-----END KEY-----").into_secret(),
        );
        assert_eq!(
            texts.mask(r#"{"password": "Tr0ub\\&\"ESC"}"#),
            r#"{"password": "[secret]"}"#
        );
        assert_eq!(texts.mask("line: MLSECRET-LINE2"), "line: [secret]");
    }

    #[test]
    fn a_secret_that_contains_another_is_masked_whole() {
        let texts = SecretTexts::default();
        // Learned shortest first: masking in that order would leave `-suffix` showing.
        texts.add_secrets_of(&Value::string("hunter2").into_secret());
        texts.add_secrets_of(&Value::string("hunter2-suffix").into_secret());
        texts.add_secrets_of(&Value::string("not secret"));
        assert_eq!(
            texts.mask("a hunter2-suffix and a hunter2, not secret"),
            "a [secret] and a [secret], not secret"
        );
    }
}
