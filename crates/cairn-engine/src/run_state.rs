//! The state of one run, shared by every step task: what the run works from (the request, the
//! options, the program's URNs), what it has found so far (resolved values, provider
//! references, configured provider instances, secrets seen) and what it has done (the outcome
//! being built). Step tasks reach it through an `Arc<RunState>`, so the few public fields are
//! read-only; everything that changes during the run sits behind this module's methods:
//!
//! - what the run works from: `request`, `options`, `cancel`, `root_urn`, `urns`,
//!   `resource_index`, `marked_default_providers`, `program`, `is_dry_run`, `is_targeted`;
//! - progress: `emit`, `record_step`, `record_error`, `record_failure`, `mark_program_error`,
//!   `has_failed`;
//! - what the run leaves: `finish_resource` (and `is_finished`, `finished_state`,
//!   `refinish_resource`), `delete_later`, `claim_alias`, and the `take_` methods `deploy`
//!   builds the outcome from;
//! - state: `begin` and `end` of each operation (journaled; nothing in a dry run),
//!   `old_state`, `old_snapshot`, `set_old` (after a refresh), `storable`, and
//!   `into_persister` for the final checkpoint;
//! - provider calls: `call_context`, `held_call_context`, `acquire_permit`,
//!   `provider_instances`, the provider references (`default_provider`, `explicit_provider`
//!   and their setters);
//! - the evaluator's view (`eval_context`): `resolved_resource`, `resolved_variable`,
//!   `publish_resource`, `publish_variable`, `secrets`, and `forget_resolved` once the
//!   outputs are evaluated.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use cairn_core::urn::ROOT_STACK_TYPE;
use cairn_core::{PendingOperationKind, PropertyMap, ResourceState, Snapshot, StepOp, Urn, Value};
use cairn_program::{Program, ResourceValue};
use cairn_state::Persister;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::events::{EngineEvent, FailureCause, StepError, StepRecord};
use crate::graph;
use crate::provider_instances::ProviderInstances;
use crate::secrets::{HeldLogs, SecretTexts};
use crate::{Cancellation, DeployOptions, DeployRequest};

/// State shared by every step task of one deployment.
pub(crate) struct RunState {
    /// What the run works from; never changed once the run starts.
    pub request: DeployRequest,
    pub options: DeployOptions,
    pub cancel: Cancellation,
    /// The root `pulumi:pulumi:Stack` resource's URN.
    pub root_urn: Urn,
    /// URNs of the program's resources, by resource index.
    pub urns: Vec<Urn>,
    /// Resource index by resource key.
    pub resource_index: HashMap<String, usize>,
    /// Indices of the resources marked `defaultProvider: true`, in program order. There are few,
    /// so each resource's provider lookup scans these instead of the whole program (which made
    /// a run quadratic in its resources).
    pub marked_default_providers: Vec<usize>,
    /// Values of the resources and variables finished so far, for the evaluator.
    resolved: Resolved,
    persister: Option<Persister>,
    events: UnboundedSender<EngineEvent>,
    /// One per provider operation allowed at once (`--parallel`).
    permits: Semaphore,
    /// The old snapshot, refreshed first when asked, and the position of each live (not
    /// waiting-for-deletion) resource in it by URN. Set again after a refresh.
    old: RwLock<(Arc<Snapshot>, HashMap<Urn, usize>)>,
    /// Provider references (`urn::id`) of the default provider of each package.
    default_providers: Mutex<HashMap<String, String>>,
    /// Provider references of explicit provider resources, by resource key.
    explicit_providers: Mutex<HashMap<String, String>>,
    /// The configured provider instance behind each provider reference.
    provider_instances: ProviderInstances,
    /// Plaintexts of the secrets this run has seen, masked out of everything it sends out.
    secrets: SecretTexts,
    outcome: Mutex<OutcomeBuilder>,
}

/// Values produced so far in a deployment, shared by every step task.
#[derive(Default)]
struct Resolved {
    resources: RwLock<HashMap<String, ResourceValue>>,
    variables: RwLock<HashMap<String, Value>>,
}

/// What the tasks collect while they run.
#[derive(Default)]
pub(crate) struct OutcomeBuilder {
    pub steps: Vec<StepRecord>,
    /// A step failed, or the program could not be evaluated.
    pub has_failed: bool,
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
    /// What never ran because something it depends on failed.
    pub blocked: Vec<crate::Blocked>,
}

impl RunState {
    /// The state of a run that is about to start: nothing done yet, the old snapshot as the
    /// request gives it.
    pub fn new(
        request: DeployRequest,
        options: DeployOptions,
        persister: Option<Persister>,
        events: UnboundedSender<EngineEvent>,
        cancel: Cancellation,
    ) -> RunState {
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
        let marked_default_providers = match &request.program {
            Some(program) => program
                .resources
                .iter()
                .enumerate()
                .filter(|(_, resource)| resource.options.default_provider)
                .map(|(index, _)| index)
                .collect(),
            None => Vec::new(),
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
        RunState {
            request,
            options,
            cancel,
            root_urn,
            persister,
            events,
            permits: Semaphore::new(parallel),
            old: RwLock::new(old),
            urns,
            resource_index,
            marked_default_providers,
            default_providers: Mutex::default(),
            explicit_providers: Mutex::default(),
            provider_instances: Default::default(),
            resolved: Resolved::default(),
            secrets: SecretTexts::of_values(request_config_values.iter()),
            outcome: Mutex::new(OutcomeBuilder::default()),
        }
    }

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
            EngineEvent::Warning(message) => EngineEvent::Warning(self.secrets.mask(&message)),
            other => other,
        };
        // A closed receiver means nobody is watching progress; the work goes on regardless.
        let _ = self.events.send(event);
    }

    /// Records a finished or failed step. Its error is masked of every secret this run has
    /// seen: provider and plugin messages (a failed command's output) may quote one.
    pub fn record_step(&self, mut record: StepRecord) {
        if let Some(error) = &mut record.error {
            error.message = self.secrets.mask(&error.message);
        }
        self.emit(EngineEvent::StepFinished(Box::new(record.clone())));
        let mut outcome = self.lock_outcome();
        outcome.has_failed |= record.error.is_some();
        outcome.steps.push(record);
    }

    /// Records what a failure kept from running (named in one warning as well).
    pub fn record_blocked(&self, blocked: Vec<crate::Blocked>) {
        self.lock_outcome().blocked.extend(blocked);
    }

    /// Records a failure that is not a step's (a variable that cannot be evaluated): `warning`
    /// is shown as it happens, `error` kept with the outcome's errors.
    pub fn record_failure(&self, warning: String, error: &str) {
        self.emit(EngineEvent::Warning(warning));
        let error = self.secrets.mask(error);
        let mut outcome = self.lock_outcome();
        outcome.has_failed = true;
        outcome.program_errors.push(error);
        outcome.has_program_error = true;
    }

    /// Records a failed step: what it attempted, on which resource, and why.
    pub fn record_error(
        &self,
        op: StepOp,
        urn: &Urn,
        parent: Option<&Urn>,
        error: impl Into<StepError>,
    ) {
        let mut record = StepRecord::new(
            op,
            urn.clone(),
            urn.type_token().to_owned(),
            parent.cloned(),
        );
        record.error = Some(error.into());
        self.record_step(record);
    }

    /// A resource reached its final state this run: it goes into the new snapshot.
    pub fn finish_resource(&self, state: ResourceState) {
        let mut outcome = self.lock_outcome();
        outcome.finished_urns.insert(state.urn.clone());
        outcome.new_states.push(state);
    }

    /// Whether a resource with this URN reached its final state this run.
    pub fn is_finished(&self, urn: &Urn) -> bool {
        self.lock_outcome().finished_urns.contains(urn)
    }

    /// The state a resource finished with this run, if it did.
    pub fn finished_state(&self, urn: &Urn) -> Option<ResourceState> {
        self.lock_outcome()
            .new_states
            .iter()
            .find(|state| &state.urn == urn)
            .cloned()
    }

    /// Replaces the state a resource finished with (the root, once the outputs are known).
    pub fn refinish_resource(&self, state: ResourceState) {
        let mut outcome = self.lock_outcome();
        if let Some(finished) = outcome
            .new_states
            .iter_mut()
            .find(|finished| finished.urn == state.urn)
        {
            *finished = state;
        }
    }

    /// An old copy a replacement superseded: it is deleted at the end of the run.
    pub fn delete_later(&self, old: ResourceState) {
        self.lock_outcome().replaced.push(old);
    }

    /// Takes the old copies `delete_later` collected.
    pub fn take_replaced(&self) -> Vec<ResourceState> {
        std::mem::take(&mut self.lock_outcome().replaced)
    }

    /// An old URN a program resource took over through `aliases`: it is not deleted as gone.
    pub fn claim_alias(&self, urn: Urn) {
        self.lock_outcome().claimed_aliases.insert(urn);
    }

    /// Takes the URNs `claim_alias` collected.
    pub fn take_claimed_aliases(&self) -> HashSet<Urn> {
        std::mem::take(&mut self.lock_outcome().claimed_aliases)
    }

    /// Some failure was an error in the program itself, found while evaluating it.
    pub fn mark_program_error(&self) {
        self.lock_outcome().has_program_error = true;
    }

    /// Whether anything has failed so far.
    pub fn has_failed(&self) -> bool {
        self.lock_outcome().has_failed
    }

    /// Takes what the run collected, to build its outcome once every task has ended.
    pub fn take_outcome(&self) -> OutcomeBuilder {
        std::mem::take(&mut *self.lock_outcome())
    }

    fn lock_outcome(&self) -> MutexGuard<'_, OutcomeBuilder> {
        lock(&self.outcome)
    }

    pub fn is_dry_run(&self) -> bool {
        self.options.dry_run
    }

    /// Durably records that an operation begins (nothing in a dry run).
    pub async fn begin(
        &self,
        kind: PendingOperationKind,
        state: &ResourceState,
    ) -> Result<Option<u64>, StepError> {
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
    fn state_error(&self, error: cairn_state::persister::StateError) -> StepError {
        if error.is_lock_lost() && !self.cancel.graceful.is_cancelled() {
            self.cancel.graceful.cancel();
            self.emit(EngineEvent::Warning(format!(
                "{error}: starting no more steps"
            )));
        }
        StepError::new(
            FailureCause::StateNotSaved,
            format!("saving state: {error}"),
        )
    }

    /// Durably records an operation's outcome.
    pub async fn end(
        &self,
        op: Option<u64>,
        removed: Option<&ResourceState>,
        added: Option<&ResourceState>,
    ) -> Result<(), StepError> {
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
        let old = read(&self.old);
        old.1.get(urn).map(|&index| old.0.resources[index].clone())
    }

    pub fn old_snapshot(&self) -> Arc<Snapshot> {
        read(&self.old).0.clone()
    }

    /// Replaces the old snapshot (refreshed, or with its pending operations resolved).
    pub fn set_old(&self, snapshot: Arc<Snapshot>) {
        *write(&self.old) = index_old(snapshot);
    }

    /// The context of a provider call about `urn`: cancelled by a hard stop.
    pub fn call_context(&self, urn: &Urn) -> cairn_provider::CallContext {
        // Weak, so that a provider holding on to a context never keeps the event stream open
        // after the deployment ends.
        let events = self.events.downgrade();
        let secrets = self.secrets.clone();
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
        let held = HeldLogs::new(urn, self.events.clone(), self.secrets.clone());
        let ctx = cairn_provider::CallContext {
            logs: held.sink(),
            secret_outputs,
            ..self.call_context(urn)
        };
        (ctx, held)
    }

    /// The program; only program nodes (variables, resources, outputs) ask, and they run only
    /// when the request has one.
    pub fn program(&self) -> Arc<Program> {
        self.request
            .program
            .clone()
            .expect("program nodes only run when the request has a program")
    }

    pub fn is_targeted(&self, urn: &Urn) -> bool {
        self.options.targets.is_empty() || self.options.targets.contains(urn)
    }

    /// Waits for a turn to call a provider: at most `--parallel` calls run at once. The permit
    /// is the turn; dropping it gives the turn to the next caller.
    pub async fn acquire_permit(&self) -> Result<SemaphorePermit<'_>, StepError> {
        // The semaphore is closed only when the run stops.
        self.permits.acquire().await.map_err(|_| {
            StepError::new(
                FailureCause::Cancelled,
                "the run stopped before this step began",
            )
        })
    }

    /// The configured provider instances of this run (see `providers::provider_instance`).
    pub fn provider_instances(&self) -> &ProviderInstances {
        &self.provider_instances
    }

    /// The plaintexts of the secrets this run has seen.
    pub fn secrets(&self) -> &SecretTexts {
        &self.secrets
    }

    /// The reference of `package`'s default provider, once registered.
    pub fn default_provider(&self, package: &str) -> Option<String> {
        lock(&self.default_providers).get(package).cloned()
    }

    /// The references of every default provider registered so far.
    pub fn default_provider_references(&self) -> Vec<String> {
        lock(&self.default_providers).values().cloned().collect()
    }

    pub fn set_default_provider(&self, package: &str, reference: String) {
        lock(&self.default_providers).insert(package.to_owned(), reference);
    }

    /// The reference of the explicit provider resource `key`, once its step has finished.
    pub fn explicit_provider(&self, key: &str) -> Option<String> {
        lock(&self.explicit_providers).get(key).cloned()
    }

    pub fn set_explicit_provider(&self, key: &str, reference: String) {
        lock(&self.explicit_providers).insert(key.to_owned(), reference);
    }

    /// The value of the program resource `key`, once its step has finished.
    pub fn resolved_resource(&self, key: &str) -> Option<ResourceValue> {
        read(&self.resolved.resources).get(key).cloned()
    }

    /// The value of the variable `name`, once evaluated.
    pub fn resolved_variable(&self, name: &str) -> Option<Value> {
        read(&self.resolved.variables).get(name).cloned()
    }

    /// Makes a finished resource's value visible to the expressions that refer to it.
    pub fn publish_resource(&self, key: &str, value: ResourceValue) {
        write(&self.resolved.resources).insert(key.to_owned(), value);
    }

    /// Makes an evaluated variable visible to the expressions that refer to it.
    pub fn publish_variable(&self, name: &str, value: Value) {
        write(&self.resolved.variables).insert(name.to_owned(), value);
    }

    /// Drops the values published so far, once the stack's outputs are evaluated and no
    /// expression is left to evaluate: they copy every resource's outputs, and the final
    /// checkpoint, encoded next, is where a run's memory peaks.
    pub fn forget_resolved(&self) {
        std::mem::take(&mut *write(&self.resolved.resources));
        std::mem::take(&mut *write(&self.resolved.variables));
    }

    /// The persister, for the final checkpoint; `None` in a dry run. Takes the run state, so
    /// that no step can record anything after it.
    pub fn into_persister(self) -> Option<Persister> {
        self.persister
    }
}

// A poisoned lock means a step task panicked while holding it; what it holds is still the
// best record of the run, so the run goes on with it rather than losing it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
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
