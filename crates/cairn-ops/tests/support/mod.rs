//! What the in-process tests share: a reporter that records what it is told, and a project
//! with a `file://` backend in a temporary directory. Each test binary uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use cairn_engine::{Cancellation, DeployOutcome, EngineEvent};
use cairn_ops::{
    Caller, ConfigEntry, OpsError, Phase, PhaseStats, PluginSearch, Plugins, Project, Reporter,
    RunRequest, StackOperation, StackSession,
};
use cairn_program::Diagnostic;
use cairn_state::{Backend, StackRef};

/// Records everything, and answers the approval as told.
#[derive(Default)]
pub struct Recorder {
    approve: bool,
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn approving() -> Arc<Recorder> {
        Arc::new(Recorder {
            approve: true,
            ..Recorder::default()
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    fn push(&self, line: String) {
        self.lines.lock().expect("lines").push(line);
    }
}

impl Reporter for Recorder {
    fn diagnostics(&self, diagnostics: &[Diagnostic]) {
        for diagnostic in diagnostics {
            self.push(format!("diagnostic: {diagnostic}"));
        }
    }

    fn warning(&self, message: &str) {
        self.push(format!("warning: {message}"));
    }

    fn phase_started(&self, operation: StackOperation, phase: Phase, stack: &str) {
        self.push(format!("start {} {phase:?} {stack}", operation.noun()));
    }

    fn event(&self, phase: Phase, event: &EngineEvent) {
        if let EngineEvent::StepFinished(record) = event {
            self.push(format!(
                "{} {:?} {}",
                if phase.is_preview() { "plan" } else { "step" },
                record.op,
                record.urn.name()
            ));
        }
    }

    fn phase_finished(&self, phase: Phase, outcome: &DeployOutcome, _stats: &PhaseStats) {
        self.push(format!("end {phase:?} failed={}", outcome.has_failed()));
    }

    fn approve(&self, question: &str) -> Result<bool, String> {
        self.push(format!("asked: {question}"));
        Ok(self.approve)
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub backend: Arc<dyn Backend>,
    pub stack: StackRef,
    /// The stack's secrets salt: every session of the fixture opens the same secrets.
    salt: String,
}

impl Fixture {
    pub fn new(program: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("project")).expect("mkdir");
        let fixture = Fixture {
            backend: Arc::new(
                cairn_backend_file::FileBackend::open(
                    dir.path().join("state"),
                    "file://state".to_owned(),
                    "tester".to_owned(),
                )
                .expect("backend"),
            ),
            stack: StackRef::parse("dev", "ops").expect("stack"),
            salt: cairn_secrets::new_salt(),
            dir,
        };
        fixture.write_program(program);
        fixture
    }

    pub fn project_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("project")
    }

    pub fn write_program(&self, resources: &str) {
        let text = format!(
            "name: ops\nruntime: yaml\nconfig:\n  greeting:\n    type: string\n{resources}"
        );
        std::fs::write(self.project_dir().join("Cairn.yaml"), text).expect("write");
    }

    pub fn session(&self) -> StackSession {
        StackSession {
            backend: self.backend.clone(),
            stack: self.stack.clone(),
            project: "ops".to_owned(),
            project_dir: self.project_dir(),
            crypter: Arc::new(
                cairn_secrets::PassphraseCrypter::new("correct horse", &self.salt)
                    .expect("crypter"),
            ),
            config: vec![(
                "ops:greeting".to_owned(),
                ConfigEntry::Plain(cairn_core::Value::String("hello".to_owned())),
            )],
            passphrase: Arc::new(|| Ok("correct horse".to_owned())),
            caller: Caller {
                user: "tester".to_owned(),
                command: "ops test".to_owned(),
            },
            cancel_command: "cairn cancel".to_owned(),
            clear_pending_command: "cairn refresh --clear-pending".to_owned(),
        }
    }

    pub async fn ensure_stack(&self) {
        if !self
            .backend
            .stack_exists(&self.stack)
            .await
            .expect("exists")
        {
            self.backend
                .create_stack(&self.stack)
                .await
                .expect("create");
        }
    }

    /// Runs `request` with the project's program (for an update) and the built-in providers.
    pub async fn run(
        &self,
        request: RunRequest,
        reporter: Arc<Recorder>,
        cancellation: Cancellation,
    ) -> Result<cairn_ops::RunOutcome, OpsError> {
        self.ensure_stack().await;
        let project = Project::load(&self.project_dir()).expect("project");
        let (registry, plugins) = Plugins::start(Some(&project), &PluginSearch::default())
            .await
            .expect("plugins");
        let program = match request.operation {
            StackOperation::Update => Some(cairn_ops::load_program(
                &self.project_dir(),
                &registry,
                &[],
                reporter.as_ref(),
            )?),
            _ => None,
        };
        let result = cairn_ops::run(
            &self.session(),
            program,
            Arc::new(registry),
            request,
            reporter,
            cancellation,
        )
        .await;
        plugins.shutdown().await;
        result
    }

    pub async fn resource_names(&self) -> Vec<String> {
        let snapshot = self.session().snapshot().await.expect("snapshot");
        snapshot
            .resources
            .iter()
            .filter(|resource| resource.type_.starts_with("fake:"))
            .map(|resource| resource.urn.name().to_owned())
            .collect()
    }
}

impl Fixture {
    /// Replaces the stack's state with `snapshot` (creating the stack), as `stack import` does.
    pub async fn write_snapshot(&self, snapshot: &cairn_core::Snapshot) {
        self.ensure_stack().await;
        let session = self.session();
        let deployment = cairn_state::deployment::encode_snapshot(
            snapshot,
            session.crypter.as_ref(),
            "2026-01-01T00:00:00Z",
        )
        .expect("encode");
        self.backend
            .import_deployment(&self.stack, deployment)
            .await
            .expect("import");
    }

    /// The stack's resources as the backend has them now.
    pub async fn resources(&self) -> Vec<cairn_core::ResourceState> {
        self.session().snapshot().await.expect("snapshot").resources
    }
}

/// A `fake:Resource` of the fixture's stack named `name`.
pub fn fake(name: &str) -> cairn_core::ResourceState {
    cairn_core::ResourceState {
        urn: urn(name),
        custom: true,
        id: format!("{name}-id"),
        type_: "fake:index:Resource".to_owned(),
        ..Default::default()
    }
}

/// The URN of the fixture's `fake:Resource` named `name`.
pub fn urn(name: &str) -> cairn_core::Urn {
    cairn_core::Urn::parse(&format!("urn:pulumi:dev::ops::fake:index:Resource::{name}"))
        .expect("urn")
}

/// The names of `resources`, in order.
pub fn names(resources: &[cairn_core::ResourceState]) -> Vec<&str> {
    resources
        .iter()
        .map(|resource| resource.urn.name())
        .collect()
}
