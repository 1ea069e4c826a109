//! Where a command runs: the project directory, `CAIRN_HOME`, the backend, the selected stack,
//! the stack's configuration file and its secrets crypter. Resolving these is the CLI's job;
//! the libraries receive plain paths and objects.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context;
use cairn_app::AppStore;
use cairn_ops::Project;
use cairn_secrets::{Crypter, PassphraseCrypter, SecretsError};
use cairn_state::jobs::JobQueue;
use cairn_state::{Backend, StackRef};
use sha2::Digest;

use crate::cli::GlobalArgs;
use crate::env;
use crate::stack_config::StackConfigFile;

/// The project of `cairn group`'s stacks, and where their stack files are kept under
/// `CAIRN_HOME`.
pub const GROUPS_PROJECT: &str = "cairn-groups";
pub const GROUPS_DIR: &str = "groups";

pub struct Workspace {
    pub global: GlobalArgs,
    /// The directory the command works in (`--cwd`, else the current directory).
    pub project_dir: PathBuf,
    /// `CAIRN_HOME`, else `~/.cairn`.
    pub home: PathBuf,
    project: OnceLock<Project>,
}

impl Workspace {
    pub fn new(global: GlobalArgs) -> anyhow::Result<Workspace> {
        let current = std::env::current_dir().context("reading the current directory")?;
        let project_dir = match &global.cwd {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => current.join(dir),
            None => current,
        };
        if !project_dir.is_dir() {
            return Err(crate::bad_input(format!(
                "`{}` is not a directory",
                project_dir.display()
            )));
        }
        let home = env::var(env::CAIRN_HOME)
            .map(PathBuf::from)
            .unwrap_or_else(|| env::home_dir().join(".cairn"));
        Ok(Workspace {
            global,
            project_dir,
            home,
            project: OnceLock::new(),
        })
    }

    /// The `cairn` command line that reaches this project's `stack` from the user's directory
    /// (`cairn cancel --stack dev`), with `--cwd` when the project is elsewhere: a hint must
    /// name a command that works, also for the groups project under `CAIRN_HOME`.
    pub fn command_for(&self, command: &str, stack: &str) -> String {
        let here = std::env::current_dir().ok();
        let is_here = here
            .is_some_and(|here| here.canonicalize().ok() == self.project_dir.canonicalize().ok());
        if is_here {
            format!("cairn {command} --stack {stack}")
        } else {
            format!(
                "cairn {command} --stack {stack} --cwd {}",
                self.project_dir.display()
            )
        }
    }

    /// The project in the command's directory, read once.
    pub fn project(&self) -> anyhow::Result<&Project> {
        if let Some(project) = self.project.get() {
            return Ok(project);
        }
        let project = match self.groups_project() {
            Some(project) => project,
            None => Project::load(&self.project_dir)?,
        };
        Ok(self.project.get_or_init(|| project))
    }

    /// The project of `cairn group`'s stacks, when this workspace is one of their directories
    /// (`$CAIRN_HOME/groups/<stack>`, where `cairn cancel --cwd ...` hints lead): it has no
    /// project file, as its program is made in memory from the committed specs.
    fn groups_project(&self) -> Option<Project> {
        let groups_dir = self.home.join(GROUPS_DIR);
        let parent = self.project_dir.parent()?;
        let is_groups_dir = parent.canonicalize().ok()? == groups_dir.canonicalize().ok()?;
        let has_project_file = Project::find_file(&self.project_dir).is_ok();
        (is_groups_dir && !has_project_file)
            .then(|| Project::in_memory(&self.project_dir, GROUPS_PROJECT, &["cairn"]))
    }

    /// The project's name.
    pub fn project_name(&self) -> anyhow::Result<String> {
        Ok(self.project()?.name.clone())
    }

    fn credentials_path(&self) -> PathBuf {
        self.home.join("credentials.json")
    }

    /// The backend URL: `--backend`, `CAIRN_BACKEND_URL`, what `cairn login` stored, or the
    /// default `file://~/.cairn`.
    pub fn backend_url(&self) -> String {
        if let Some(url) = &self.global.backend {
            return url.clone();
        }
        if let Some(url) = env::var(env::CAIRN_BACKEND_URL) {
            return url;
        }
        if let Some(url) = self.logged_in_url() {
            return url;
        }
        format!("file://{}", self.home.display())
    }

    pub fn logged_in_url(&self) -> Option<String> {
        let text = fs_err::read_to_string(self.credentials_path()).ok()?;
        let credentials: serde_json::Value = serde_json::from_str(&text).ok()?;
        credentials
            .get("current")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    /// Stores the URL `cairn login` was given (it may hold a PostgreSQL password), or none.
    pub fn store_login(&self, url: Option<&str>) -> anyhow::Result<()> {
        fs_err::create_dir_all(&self.home)?;
        let credentials = match url {
            Some(url) => serde_json::json!({ "current": url }),
            None => serde_json::json!({}),
        };
        let path = self.credentials_path();
        crate::atomic_file::write(
            &path,
            format!("{credentials:#}\n").as_bytes(),
            crate::atomic_file::Access::Private,
        )
        .with_context(|| format!("writing {}", path.display()))
    }

    /// Opens the backend.
    pub fn backend(&self) -> anyhow::Result<Arc<dyn Backend>> {
        let url = self.backend_url();
        open_backend(&url, &self.home)
    }

    /// Opens the job queue of the backend (`file://`: under its directory; `postgres://`: in
    /// its database).
    pub fn job_queue(&self) -> anyhow::Result<Arc<dyn JobQueue>> {
        let url = self.backend_url();
        open_job_queue(&url, &self.home)
    }

    /// Opens the app store of the backend (`file://`: under its directory; `postgres://`: in
    /// its database).
    pub fn app_store(&self) -> anyhow::Result<Arc<dyn AppStore>> {
        let url = self.backend_url();
        open_app_store(&url, &self.home)
    }

    fn workspace_file(&self, project: &str) -> PathBuf {
        let digest = sha2::Sha256::digest(self.project_dir.to_string_lossy().as_bytes());
        self.home.join("workspaces").join(format!(
            "{project}-{}-workspace.json",
            &hex::encode(digest)[..16]
        ))
    }

    pub fn selected_stack(&self, project: &str) -> Option<String> {
        let text = fs_err::read_to_string(self.workspace_file(project)).ok()?;
        let settings: serde_json::Value = serde_json::from_str(&text).ok()?;
        settings
            .get("stack")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    }

    pub fn select_stack(&self, project: &str, stack: Option<&str>) -> anyhow::Result<()> {
        let path = self.workspace_file(project);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let settings = match stack {
            Some(stack) => serde_json::json!({ "stack": stack }),
            None => serde_json::json!({}),
        };
        crate::atomic_file::write(
            &path,
            format!("{settings:#}\n").as_bytes(),
            crate::atomic_file::Access::Shared,
        )?;
        Ok(())
    }

    /// The stack to operate on: `--stack`, else the selected one.
    pub fn stack_ref(&self, project: &str) -> anyhow::Result<StackRef> {
        let name = match (&self.global.stack, self.selected_stack(project)) {
            (Some(name), _) => name.clone(),
            (None, Some(name)) => name,
            (None, None) => {
                return Err(crate::bad_input(
                    "no stack selected\nhelp: run `cairn stack init <name>` to create one, or `cairn stack select <name>`",
                ));
            }
        };
        StackRef::parse(&name, project).map_err(crate::bad_input)
    }

    /// `Cairn.<stack>.yaml`, or `Pulumi.<stack>.yaml` for projects that use Pulumi's names
    /// (or where that file already exists).
    pub fn stack_config_path(&self, stack: &str) -> PathBuf {
        let uses_pulumi_names = self
            .project()
            .is_ok_and(|project| project.uses_pulumi_names);
        cairn_ops::project::stack_config_path(&self.project_dir, uses_pulumi_names, stack)
    }

    /// The stack's crypter. The passphrase is only asked for, and the key only derived, when a
    /// secret is first sealed or unsealed.
    pub fn crypter(&self, stack: &str) -> Arc<dyn Crypter> {
        Arc::new(LazyCrypter {
            config_path: self.stack_config_path(stack),
            crypter: OnceLock::new(),
            init: Mutex::new(()),
        })
    }
}

/// Where a backend URL points: the one reading of backend URLs, shared by the stacks'
/// backend and its job queue.
enum BackendLocation {
    /// `postgres://` or `postgresql://`, connected to.
    Postgres(cairn_backend_postgres::PostgresBackend),
    /// `file://DIR` (`~` is the home directory; `file://` alone is `CAIRN_HOME`).
    File { root: PathBuf },
}

impl BackendLocation {
    /// Reads `url` and, for PostgreSQL, connects (`PGPASSWORD`, `PGSSLROOTCERT`).
    fn open(url: &str, home: &Path) -> anyhow::Result<BackendLocation> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let password = env::var(env::PGPASSWORD);
            let root_cert = env::var(env::PGSSLROOTCERT).map(PathBuf::from);
            // Connecting is async; commands open their backend from async code on the
            // multi-threaded runtime, where waiting in place is allowed.
            let backend = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(
                    cairn_backend_postgres::PostgresBackend::connect_with(
                        url,
                        password.as_deref(),
                        root_cert.as_deref(),
                    ),
                )
            })
            .with_context(|| {
                format!(
                    "opening the backend `{}`",
                    cairn_backend_postgres::redact(url)
                )
            })?;
            return Ok(BackendLocation::Postgres(backend));
        }
        let Some(path) = url.strip_prefix("file://") else {
            return Err(crate::bad_input(format!(
                "unsupported backend URL `{}`\nhelp: use `file://<directory>` (for example `file://~/.cairn`) or `postgres://user@host:5432/database`",
                cairn_backend_postgres::redact(url)
            )));
        };
        let root = if path == "~" {
            env::home_dir()
        } else if let Some(rest) = path.strip_prefix("~/") {
            env::home_dir().join(rest)
        } else if path.is_empty() {
            home.to_owned()
        } else {
            PathBuf::from(path)
        };
        Ok(BackendLocation::File { root })
    }
}

/// Opens a backend by URL scheme.
pub fn open_backend(url: &str, home: &Path) -> anyhow::Result<Arc<dyn Backend>> {
    let root = match BackendLocation::open(url, home)? {
        BackendLocation::Postgres(backend) => return Ok(Arc::new(backend)),
        BackendLocation::File { root } => root,
    };
    let mut backend = cairn_backend_file::FileBackend::open(root, url.to_owned(), env::user_name())
        .with_context(|| format!("opening the backend `{url}`"))?;
    if let Some(bytes) = env::var(env::CAIRN_JOURNAL_FOLD_BYTES) {
        let bytes = bytes.parse().map_err(|_| {
            crate::bad_input(format!(
                "`{}` must be a number of bytes, not `{bytes}`",
                env::CAIRN_JOURNAL_FOLD_BYTES
            ))
        })?;
        backend = backend.with_fold_threshold(bytes);
    }
    Ok(Arc::new(backend))
}

/// Opens the job queue kept by the backend at `url` (`cairn job`, `cairn worker`).
pub fn open_job_queue(url: &str, home: &Path) -> anyhow::Result<Arc<dyn JobQueue>> {
    match BackendLocation::open(url, home)? {
        BackendLocation::Postgres(backend) => Ok(Arc::new(backend.job_queue())),
        BackendLocation::File { root } => {
            let queue = cairn_backend_file::FileJobQueue::open(&root)
                .with_context(|| format!("opening the job queue of the backend `{url}`"))?;
            Ok(Arc::new(queue))
        }
    }
}

/// Opens the app store kept by the backend at `url` (`cairn app`, `cairn pool`, `cairn node`).
pub fn open_app_store(url: &str, home: &Path) -> anyhow::Result<Arc<dyn AppStore>> {
    match BackendLocation::open(url, home)? {
        BackendLocation::Postgres(backend) => Ok(Arc::new(backend.app_store())),
        BackendLocation::File { root } => {
            let store = cairn_backend_file::FileAppStore::open(&root)
                .with_context(|| format!("opening the app store of the backend `{url}`"))?;
            Ok(Arc::new(store))
        }
    }
}

/// The passphrase the environment gives (the variable, or the file it names), if any.
pub fn passphrase_from_environment() -> Option<Result<String, String>> {
    if let Some(passphrase) =
        env::var(env::CAIRN_CONFIG_PASSPHRASE).or_else(|| env::var(env::PULUMI_CONFIG_PASSPHRASE))
    {
        return Some(Ok(passphrase));
    }
    let path = env::var(env::CAIRN_CONFIG_PASSPHRASE_FILE)
        .or_else(|| env::var(env::PULUMI_CONFIG_PASSPHRASE_FILE))?;
    Some(
        fs_err::read_to_string(&path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|error| error.to_string()),
    )
}

/// Reads the passphrase from the environment, a file, or (when interactive) a prompt.
pub fn passphrase() -> Result<String, String> {
    if let Some(passphrase) = passphrase_from_environment() {
        return passphrase;
    }
    if crate::commands::is_interactive() {
        // Read without echo, so the passphrase never shows on screen or in a recording.
        return rpassword::prompt_password("Enter your passphrase to unlock config/secrets: ")
            .map_err(|error| format!("reading the passphrase: {error}"));
    }
    Err(format!(
        "a passphrase is needed for this stack's secrets: set `{}` (or `{}`)",
        env::CAIRN_CONFIG_PASSPHRASE,
        env::CAIRN_CONFIG_PASSPHRASE_FILE
    ))
}

/// A passphrase crypter made on first use; creates the stack's salt if it has none.
struct LazyCrypter {
    config_path: PathBuf,
    crypter: OnceLock<Result<Box<dyn Crypter>, String>>,
    init: Mutex<()>,
}

impl LazyCrypter {
    fn get(&self) -> Result<&dyn Crypter, SecretsError> {
        let _guard = self.init.lock();
        let result = self.crypter.get_or_init(|| {
            let passphrase = passphrase()?;
            // Under the file's lock: two processes finding no salt must not each make one.
            StackConfigFile::edit(&self.config_path, |config| {
                Ok(match &config.encryption_salt {
                    Some(salt) => cairn_secrets::crypter_for_salt(&passphrase, salt)
                        .map_err(|error| error.to_string()),
                    None => PassphraseCrypter::new(&passphrase, &cairn_secrets::new_salt())
                        .map(|crypter| {
                            config.encryption_salt = Some(crypter.encryption_salt());
                            Box::new(crypter) as Box<dyn Crypter>
                        })
                        .map_err(|error| error.to_string()),
                })
            })
            .map_err(|error| format!("{error:#}"))?
        });
        result
            .as_ref()
            .map(|crypter| crypter.as_ref())
            .map_err(|message| SecretsError::Unavailable(message.clone()))
    }
}

impl Crypter for LazyCrypter {
    fn encrypt(&self, plaintext: &str) -> Result<String, SecretsError> {
        self.get()?.encrypt(plaintext)
    }

    fn decrypt(&self, ciphertext: &str) -> Result<String, SecretsError> {
        self.get()?.decrypt(ciphertext)
    }

    fn passphrase_salt_state(&self) -> Option<String> {
        // Reading the salt needs no passphrase, so this never prompts.
        match self.crypter.get() {
            Some(Ok(crypter)) => crypter.passphrase_salt_state(),
            _ => {
                StackConfigFile::load(&self.config_path)
                    .ok()?
                    .encryption_salt
            }
        }
    }
}
