//! The `file://` backend: stacks, checkpoints, journals and history in a directory, laid out as
//! Pulumi's self-managed backend (`.pulumi/stacks/<project>/<stack>.json`).
//!
//! A checkpoint is written atomically (temporary file, fsync, rename, fsync of the directory)
//! and carries a checksum of its deployment. While an update runs, its steps go to
//! `<stack>.journal`, one checksummed JSON line per record, appended with group commit; the
//! journal names the checkpoint it applies to, so a journal already folded into a newer
//! checkpoint is never applied twice.

mod apps;
pub use apps::FileAppStore;
mod extras;
mod files;
mod jobs;
pub use jobs::FileJobQueue;
mod journal_file;
mod lock;
mod rename;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use cairn_state::backend::BackendResult;
use cairn_state::{
    Backend, BackendError, Deployment, JournalDamage, JournalRecord, LockOwner, StackLock,
    StackRef, StackSummary, UpdateInfo, UpdateKind, UpdateMetadata, UpdateResult, UpdateWriter,
};

use crate::files::{Checkpoint, io_error};
use crate::journal_file::{JournalFile, JournalPrefix, read_journal, read_journal_up_to_damage};

/// How many past checkpoints are kept per stack (`cairn stack export --version N`).
const KEPT_CHECKPOINTS: usize = 10;

/// A backend in a local directory.
pub struct FileBackend {
    root: PathBuf,
    url: String,
    user: String,
    bytes_written: Arc<AtomicU64>,
    /// A journal longer than this (or than four times the checkpoint) is folded into a new
    /// checkpoint during the update, which bounds both its length and the replay after a crash.
    fold_threshold: u64,
}

/// The default of `FileBackend::fold_threshold`.
pub const DEFAULT_FOLD_THRESHOLD: u64 = 64 * 1024 * 1024;

impl FileBackend {
    /// Opens (and creates) the backend directory `root`. `user` is who `whoami` reports.
    pub fn open(root: PathBuf, url: String, user: String) -> BackendResult<FileBackend> {
        let stacks = root.join(".pulumi").join("stacks");
        fs_err::create_dir_all(&stacks).map_err(|error| io_error("creating", &stacks, error))?;
        Ok(FileBackend {
            root,
            url,
            user,
            bytes_written: Arc::new(AtomicU64::new(0)),
            fold_threshold: DEFAULT_FOLD_THRESHOLD,
        })
    }

    /// Folds journals longer than `bytes` (tests and `CAIRN_JOURNAL_FOLD_BYTES` use a small one).
    pub fn with_fold_threshold(mut self, bytes: u64) -> FileBackend {
        self.fold_threshold = bytes;
        self
    }

    /// When an update's journal should fold, given the checkpoint on disk now.
    fn fold_threshold_for(&self, stack: &StackRef) -> u64 {
        let checkpoint = std::fs::metadata(self.checkpoint_path(stack))
            .map(|metadata| metadata.len())
            .unwrap_or(0);
        self.fold_threshold.max(4 * checkpoint)
    }

    /// A second handle on the same directory, sharing the byte counter.
    fn handle(&self) -> FileBackend {
        FileBackend {
            root: self.root.clone(),
            url: self.url.clone(),
            user: self.user.clone(),
            bytes_written: self.bytes_written.clone(),
            fold_threshold: self.fold_threshold,
        }
    }

    /// Refuses a reference whose parts are not valid names before any path is made of them
    /// (a stack named `..` would otherwise reach other projects' files). A directory backend
    /// has one organization, as Pulumi's self-managed backends do.
    fn check(stack: &StackRef) -> BackendResult<()> {
        stack.validate().map_err(BackendError::InvalidName)?;
        if stack.organization != cairn_state::stack_ref::DEFAULT_ORGANIZATION {
            return Err(BackendError::InvalidName(format!(
                "the organization of a stack in a `file://` backend must be `{}`, not `{}`\nhelp: use `{}/{}/{}` or just `{}`",
                cairn_state::stack_ref::DEFAULT_ORGANIZATION,
                stack.organization,
                cairn_state::stack_ref::DEFAULT_ORGANIZATION,
                stack.project,
                stack.name,
                stack.name
            )));
        }
        Ok(())
    }

    /// A fence for the writes of the update holding `token`: fails once the lock is gone.
    fn fence(&self, stack: &StackRef, token: &str) -> journal_file::Fence {
        let path = self.lock_path(stack);
        let name = stack.name.clone();
        let token = token.to_owned();
        Box::new(move || lock::check_token(&path, &name, &token))
    }

    /// Where a fold writes the journal that will follow its checkpoint.
    fn next_journal_path(&self, stack: &StackRef) -> PathBuf {
        self.journal_path(stack).with_extension("journal.next")
    }

    fn stacks_dir(&self) -> PathBuf {
        self.root.join(".pulumi").join("stacks")
    }

    fn stack_dir(&self, stack: &StackRef) -> PathBuf {
        self.stacks_dir().join(&stack.project)
    }

    fn checkpoint_path(&self, stack: &StackRef) -> PathBuf {
        self.stack_dir(stack).join(format!("{}.json", stack.name))
    }

    fn journal_path(&self, stack: &StackRef) -> PathBuf {
        self.stack_dir(stack)
            .join(format!("{}.journal", stack.name))
    }

    fn lock_path(&self, stack: &StackRef) -> PathBuf {
        self.root
            .join(".pulumi")
            .join("locks")
            .join(&stack.project)
            .join(format!("{}.json", stack.name))
    }

    /// Writes a history record (the same path is rewritten when the update ends).
    fn write_history(&self, path: &std::path::Path, info: &UpdateInfo) -> BackendResult<()> {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))?;
        }
        let text = serde_json::to_string_pretty(info)
            .map_err(|error| BackendError::format_from(error.to_string(), error))?;
        files::write_atomically(path, text.as_bytes())?;
        self.bytes_written
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn history_dir(&self, stack: &StackRef) -> PathBuf {
        self.root
            .join(".pulumi")
            .join("history")
            .join(&stack.project)
            .join(&stack.name)
    }

    fn read_checkpoint(&self, stack: &StackRef) -> BackendResult<Option<Checkpoint>> {
        files::read_checkpoint(&self.checkpoint_path(stack), &stack.name).map_err(|error| {
            match error {
                // Point at the kept checkpoints that can be read, and at how to go back to one.
                // Going back is left to the user on purpose: resources that the updates after
                // that checkpoint created are not in it, and falling back silently would leave
                // them running untracked.
                BackendError::Corrupt { stack: name, reason } => {
                    let good: Vec<u64> = self
                        .backup_versions(stack)
                        .unwrap_or_default()
                        .into_iter()
                        .rev()
                        .filter(|version| {
                            files::read_checkpoint(&self.backup_path(stack, *version), &stack.name)
                                .is_ok_and(|checkpoint| checkpoint.is_some())
                        })
                        .collect();
                    let hint = match good.first() {
                        Some(newest) => format!(
                            "\nhelp: the last good checkpoints are versions {}; restore the newest with `cairn stack export --version {newest} --file good.json` and `cairn stack import --file good.json`. Cairn does not go back by itself: what updates after version {newest} created or changed is not in it, so run `cairn refresh` after importing, and `cairn import` anything they created",
                            good.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                        ),
                        None => "\nhelp: no earlier checkpoint is kept for this stack".to_owned(),
                    };
                    BackendError::Corrupt {
                        stack: name,
                        reason: format!("{reason}{hint}"),
                    }
                }
                other => other,
            }
        })
    }

    fn backups_dir(&self, stack: &StackRef) -> PathBuf {
        self.root
            .join(".pulumi")
            .join("backups")
            .join(&stack.project)
            .join(&stack.name)
    }

    fn backup_path(&self, stack: &StackRef, version: u64) -> PathBuf {
        self.backups_dir(stack)
            .join(format!("{}.{version}.json", stack.name))
    }

    /// Versions of the checkpoints kept, oldest first.
    fn backup_versions(&self, stack: &StackRef) -> BackendResult<Vec<u64>> {
        let dir = self.backups_dir(stack);
        let Ok(entries) = fs_err::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}.", stack.name);
        let mut versions: Vec<u64> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_prefix(&prefix)?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// Keeps the checkpoint an update replaced (the `.json.bak` that `write_checkpoint` just
    /// set aside) as `version`, and only the newest few. The kept files are hard links to
    /// checkpoints that are never written again, so keeping them costs no bytes and damage to
    /// the current checkpoint cannot reach them.
    fn keep_version(&self, stack: &StackRef, version: u64) -> BackendResult<()> {
        let replaced = self.checkpoint_path(stack).with_extension("json.bak");
        if !replaced.exists() {
            return Ok(());
        }
        let dir = self.backups_dir(stack);
        fs_err::create_dir_all(&dir).map_err(|error| io_error("creating", &dir, error))?;
        let copied = files::keep_backup(&replaced, &self.backup_path(stack, version))?;
        self.bytes_written.fetch_add(copied, Ordering::Relaxed);
        let versions = self.backup_versions(stack)?;
        let excess = versions.len().saturating_sub(KEPT_CHECKPOINTS);
        for old in &versions[..excess] {
            let path = self.backup_path(stack, *old);
            fs_err::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
        }
        Ok(())
    }

    /// The latest state: the checkpoint, plus the journal of an unfinished update.
    fn load(&self, stack: &StackRef) -> BackendResult<Option<(Deployment, Option<String>)>> {
        let Some(checkpoint) = self.read_checkpoint(stack)? else {
            return Ok(None);
        };
        if let Some((path, journal)) = self.applicable_journal(stack, &checkpoint)? {
            if let Some(damage) = &journal.damage {
                return Err(damaged_journal(stack, &path, damage, &journal.records));
            }
            let deployment =
                cairn_state::journal::replay(Some(checkpoint.deployment), &journal.records);
            return Ok(Some((deployment, Some(checkpoint.checksum))));
        }
        Ok(Some((checkpoint.deployment, Some(checkpoint.checksum))))
    }

    /// The journal that applies to `checkpoint`, read up to any damage: the update's, or the
    /// one that a fold which crashed after writing its checkpoint left under its temporary
    /// name. A journal naming another checkpoint was already folded into this one and is
    /// passed over, damaged or not; one whose header is damaged may name this checkpoint, so
    /// it is returned.
    fn applicable_journal(
        &self,
        stack: &StackRef,
        checkpoint: &Checkpoint,
    ) -> BackendResult<Option<(PathBuf, JournalPrefix)>> {
        for path in [self.journal_path(stack), self.next_journal_path(stack)] {
            let Some(journal) = read_journal_up_to_damage(&path)? else {
                continue;
            };
            let applies = match &journal.base_checksum {
                Some(base) => *base == checkpoint.checksum,
                None => true,
            };
            if applies {
                return Ok(Some((path, journal)));
            }
        }
        Ok(None)
    }

    /// The damaged journal that stops every load of `stack`, if there is one.
    fn find_damage(
        &self,
        stack: &StackRef,
    ) -> BackendResult<Option<(Checkpoint, PathBuf, JournalPrefix, JournalDamage)>> {
        let Some(checkpoint) = self.read_checkpoint(stack)? else {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        };
        let Some((path, journal)) = self.applicable_journal(stack, &checkpoint)? else {
            return Ok(None);
        };
        let Some(damage) = &journal.damage else {
            return Ok(None);
        };
        let pending = cairn_state::journal::open_begins(&journal.records)
            .iter()
            .filter_map(|record| match record {
                JournalRecord::Begin { resource, .. } => Some(resource.urn.clone()),
                JournalRecord::End { .. } => None,
            })
            .collect();
        let report = JournalDamage {
            location: damage.location(&path),
            reason: damage.reason.to_owned(),
            kept_records: journal.records.len(),
            pending,
            damaged_lines: damage.tail_lines,
            damaged_urns: damage.tail_urns.clone(),
            moved_to: None,
        };
        Ok(Some((checkpoint, path, journal, report)))
    }

    /// Salvages the damaged journal of `stack` (see `Backend::salvage_journal`). A crash at any
    /// point leaves either the damage as it was (to be repaired again) or the salvaged state:
    /// the journal is kept aside (a hard link, so nothing is copied) before the checkpoint that
    /// takes in its intact records is written, and that checkpoint makes the journal stale (it
    /// names the checkpoint before; when the kept records change nothing, the checkpoint is the
    /// same and the damage simply stays until the removal) before the journal is removed.
    fn salvage(&self, stack: &StackRef, token: &str) -> BackendResult<Option<JournalDamage>> {
        lock::check_token(&self.lock_path(stack), &stack.name, token)?;
        let Some((checkpoint, path, journal, mut report)) = self.find_damage(stack)? else {
            return Ok(None);
        };
        let aside = aside_path(&path)?;
        let dir = self.stack_dir(stack);
        match journal.base_checksum {
            Some(_) => {
                let copied = files::keep_backup(&path, &aside)?;
                self.bytes_written.fetch_add(copied, Ordering::Relaxed);
                files::sync_dir(&dir)?;
                let deployment =
                    cairn_state::journal::replay(Some(checkpoint.deployment), &journal.records);
                lock::check_token(&self.lock_path(stack), &stack.name, token)?;
                self.write_checkpoint(stack, &deployment)?;
                fs_err::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
            }
            // Which checkpoint it applied to cannot be read, so none of it is applied; moved
            // away, it no longer stops the loads, which then find what they found before it.
            None => {
                fs_err::rename(&path, &aside).map_err(|error| io_error("moving", &path, error))?;
            }
        }
        files::sync_dir(&dir)?;
        report.moved_to = Some(aside.display().to_string());
        Ok(Some(report))
    }

    fn write_checkpoint(&self, stack: &StackRef, deployment: &Deployment) -> BackendResult<String> {
        let (text, checksum) = files::encode_checkpoint(deployment)?;
        self.write_checkpoint_text(stack, &text)?;
        Ok(checksum)
    }

    /// Writes an encoded checkpoint, setting the one it replaces aside as `.json.bak`.
    fn write_checkpoint_text(&self, stack: &StackRef, text: &str) -> BackendResult<()> {
        let path = self.checkpoint_path(stack);
        if path.exists() {
            let backup = path.with_extension("json.bak");
            let copied = files::keep_backup(&path, &backup)?;
            self.bytes_written.fetch_add(copied, Ordering::Relaxed);
        }
        files::write_atomically(&path, text.as_bytes())?;
        self.bytes_written
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn require_stack(&self, stack: &StackRef) -> BackendResult<()> {
        if self.checkpoint_path(stack).exists() {
            Ok(())
        } else {
            Err(BackendError::StackNotFound(stack.name.clone()))
        }
    }

    fn read_history(&self, stack: &StackRef) -> BackendResult<Vec<UpdateInfo>> {
        let dir = self.history_dir(stack);
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("listing", &dir, error)),
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|entry| {
                entry
                    .map(|entry| entry.path())
                    .map_err(|error| io_error("listing", &dir, error))
            })
            .collect::<BackendResult<Vec<PathBuf>>>()?
            .into_iter()
            .filter(|path| path.to_string_lossy().ends_with(".history.json"))
            .collect();
        paths.sort();
        paths.reverse();
        let mut updates = Vec::new();
        for path in paths {
            let text =
                fs_err::read_to_string(&path).map_err(|error| io_error("reading", &path, error))?;
            let info: UpdateInfo =
                serde_json::from_str(&text).map_err(|error| BackendError::Corrupt {
                    stack: stack.name.clone(),
                    reason: format!("{}: {error}", path.display()),
                })?;
            updates.push(info);
        }
        Ok(updates)
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn url(&self) -> &str {
        &self.url
    }

    async fn current_user(&self) -> BackendResult<String> {
        Ok(self.user.clone())
    }

    async fn create_stack(&self, stack: &StackRef) -> BackendResult<()> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        if self.checkpoint_path(stack).exists() {
            return Err(BackendError::StackAlreadyExists(stack.name.clone()));
        }
        let dir = self.stack_dir(stack);
        fs_err::create_dir_all(&dir).map_err(|error| io_error("creating", &dir, error))?;
        let empty = Deployment {
            manifest: cairn_state::deployment::Manifest {
                time: cairn_state::persister::rfc3339_now(),
                magic: String::new(),
                version: String::new(),
            },
            ..Deployment::default()
        };
        let (text, _) = files::encode_checkpoint(&empty)?;
        if !files::create_exclusively(&self.checkpoint_path(stack), text.as_bytes())? {
            return Err(BackendError::StackAlreadyExists(stack.name.clone()));
        }
        Ok(())
    }

    async fn stack_exists(&self, stack: &StackRef) -> BackendResult<bool> {
        Self::check(stack)?;
        match self.settle_rename(stack) {
            Ok(()) => {}
            // Both names exist while a rename runs: each is busy, not missing, so commands
            // go on to report the lock (and `cairn cancel` can find it).
            Err(BackendError::Locked { .. }) => return Ok(true),
            Err(error) => return Err(error),
        }
        Ok(self.checkpoint_path(stack).exists())
    }

    async fn list_stacks(&self, project: Option<&str>) -> BackendResult<Vec<StackSummary>> {
        if let Some(project) = project {
            cairn_state::stack_ref::validate_project_name(project)
                .map_err(BackendError::InvalidName)?;
        }
        let stacks_dir = self.stacks_dir();
        let projects: Vec<String> = match project {
            Some(project) => vec![project.to_owned()],
            None => fs_err::read_dir(&stacks_dir)
                .map_err(|error| io_error("listing", &stacks_dir, error))?
                .flatten()
                .filter(|entry| entry.path().is_dir())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect(),
        };
        let mut summaries = Vec::new();
        for project in projects {
            let dir = stacks_dir.join(&project);
            // A rename still running lists its stack once: under the old name while its
            // checkpoint is there, under the new one once the checkpoint has moved.
            let renaming = self.settle_renames_in(&project)?;
            let Ok(entries) = fs_err::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".json").map(str::to_owned)
                })
                .collect();
            let arriving: Vec<String> = renaming
                .into_iter()
                .filter(|(from, _)| names.contains(from))
                .map(|(_, to)| to)
                .collect();
            names.retain(|name| !arriving.contains(name));
            names.sort();
            for name in names {
                let stack = StackRef {
                    organization: cairn_state::stack_ref::DEFAULT_ORGANIZATION.to_owned(),
                    project: project.clone(),
                    name,
                };
                let (resource_count, mut problem) = match self.load(&stack) {
                    Ok(loaded) => (
                        loaded.map(|(deployment, _)| deployment.count_resources()),
                        None,
                    ),
                    Err(error) => (None, Some(error.to_string())),
                };
                let history = self.read_history(&stack).unwrap_or_else(|error| {
                    problem.get_or_insert(error.to_string());
                    Vec::new()
                });
                let last_update = history
                    .iter()
                    .find(|update| {
                        update.kind != UpdateKind::Preview
                            && update.result != UpdateResult::InProgress
                    })
                    .map(|update| update.end_time);
                summaries.push(StackSummary {
                    stack,
                    last_update,
                    resource_count,
                    problem,
                });
            }
        }
        Ok(summaries)
    }

    async fn remove_stack(
        &self,
        stack: &StackRef,
        force: bool,
        lock: &dyn StackLock,
    ) -> BackendResult<()> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        let checkpoint = self.checkpoint_path(stack);
        if !checkpoint.exists() {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        }
        lock::check_token(&self.lock_path(stack), &stack.name, lock.token())?;
        // With `force` the state is not even read, so a corrupt stack can still be removed.
        if !force && let Some((deployment, _)) = self.load(stack)? {
            let count = deployment.count_resources_and_pending();
            if count > 0 {
                return Err(BackendError::StackHasResources {
                    stack: stack.name.clone(),
                    count,
                });
            }
        }
        for path in [
            checkpoint.clone(),
            checkpoint.with_extension("json.bak"),
            self.journal_path(stack),
            self.next_journal_path(stack),
            self.tags_path(stack),
            self.logs_path(stack),
        ] {
            if path.exists() {
                fs_err::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
            }
        }
        for dir in [self.history_dir(stack), self.backups_dir(stack)] {
            if dir.exists() {
                fs_err::remove_dir_all(&dir).map_err(|error| io_error("removing", &dir, error))?;
            }
        }
        Ok(())
    }

    async fn load_deployment(&self, stack: &StackRef) -> BackendResult<Option<Deployment>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        Ok(self.load(stack)?.map(|(deployment, _)| deployment))
    }

    async fn begin_update(
        &self,
        stack: &StackRef,
        kind: UpdateKind,
        metadata: UpdateMetadata,
        lock: &dyn StackLock,
    ) -> BackendResult<Box<dyn UpdateWriter>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        let Some((deployment, base_checksum)) = self.load(stack)? else {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        };
        let token = lock.token().to_owned();
        // Folding a crashed update's journal is a write too: only under the lock.
        lock::check_token(&self.lock_path(stack), &stack.name, &token)?;
        // A journal left by a crashed update is folded into a checkpoint first, so the new
        // journal always applies to the checkpoint on disk.
        let journal_path = self.journal_path(stack);
        let next_path = self.next_journal_path(stack);
        let base_checksum = if journal_path.exists() || next_path.exists() {
            let checksum = self.write_checkpoint(stack, &deployment)?;
            for path in [&journal_path, &next_path] {
                if path.exists() {
                    fs_err::remove_file(path).map_err(|error| io_error("removing", path, error))?;
                }
            }
            checksum
        } else {
            base_checksum.unwrap_or_default()
        };
        let journal = JournalFile::create(
            &journal_path,
            &base_checksum,
            &[],
            self.bytes_written.clone(),
            self.fence(stack, &token),
        )?;
        // The update is in history from its start, so `cairn cancel` can mark it cancelled if
        // this process dies.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|duration| duration.as_nanos())
            .unwrap_or(0);
        let history_path = self
            .history_dir(stack)
            .join(format!("{}-{nanos:020}.history.json", stack.name));
        let info = UpdateInfo {
            kind,
            start_time: crate::files::unix_now(),
            message: metadata.message,
            environment: metadata.environment,
            result: UpdateResult::InProgress,
            end_time: 0,
            resource_changes: BTreeMap::new(),
            version: self.read_history(stack)?.len() as u64 + 1,
        };
        self.write_history(&history_path, &info)?;
        Ok(Box::new(FileUpdateWriter {
            backend: self.handle(),
            stack: stack.clone(),
            journal: tokio::sync::RwLock::new(Some(journal)),
            fold_threshold: AtomicU64::new(self.fold_threshold_for(stack)),
            history_path,
            info,
            token,
        }))
    }

    async fn history(&self, stack: &StackRef) -> BackendResult<Vec<UpdateInfo>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        self.read_history(stack)
    }

    async fn load_version(
        &self,
        stack: &StackRef,
        version: u64,
    ) -> BackendResult<Option<Deployment>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        let path = self.backup_path(stack, version);
        if let Some(checkpoint) = files::read_checkpoint(&path, &stack.name)? {
            return Ok(Some(checkpoint.deployment));
        }
        // The newest version is the current checkpoint itself.
        let newest = self
            .read_history(stack)?
            .first()
            .map(|update| update.version);
        if newest == Some(version) {
            return Ok(self
                .read_checkpoint(stack)?
                .map(|checkpoint| checkpoint.deployment));
        }
        Ok(None)
    }

    async fn import_deployment(
        &self,
        stack: &StackRef,
        deployment: Deployment,
    ) -> BackendResult<()> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        if !self.checkpoint_path(stack).exists() {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        }
        self.write_checkpoint(stack, &deployment)?;
        // The imported state replaces whatever an interrupted update left behind.
        for path in [self.journal_path(stack), self.next_journal_path(stack)] {
            if path.exists() {
                fs_err::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
            }
        }
        Ok(())
    }

    async fn lock_stack(
        &self,
        stack: &StackRef,
        owner: LockOwner,
    ) -> BackendResult<Box<dyn StackLock>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        if !self.checkpoint_path(stack).exists() {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        }
        let lock = lock::acquire(&self.lock_path(stack), &stack.name, owner)?;
        Ok(Box::new(lock))
    }

    async fn lock_holder(&self, stack: &StackRef) -> BackendResult<Option<LockOwner>> {
        Self::check(stack)?;
        Ok(lock::holder(&self.lock_path(&self.guarding(stack)?)))
    }

    async fn cancel(&self, stack: &StackRef) -> BackendResult<Option<LockOwner>> {
        Self::check(stack)?;
        // During a rename into `stack`, the renamer holds the old name's lock: that is the one
        // to release (the next access then finishes the rename).
        let stack = &self.guarding(stack)?;
        let path = self.lock_path(stack);
        let holder = lock::holder(&path);
        if holder.is_some() {
            fs_err::remove_file(&path).map_err(|error| io_error("removing", &path, error))?;
        }
        // The newest update still in progress is the one whose process died or hung.
        let dir = self.history_dir(stack);
        let mut paths: Vec<PathBuf> = fs_err::read_dir(&dir)
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        paths.sort();
        for path in paths.iter().rev() {
            let Ok(text) = fs_err::read_to_string(path) else {
                continue;
            };
            let Ok(mut info) = serde_json::from_str::<UpdateInfo>(&text) else {
                continue;
            };
            if info.result == UpdateResult::InProgress {
                info.result = UpdateResult::Cancelled;
                info.end_time = crate::files::unix_now();
                self.write_history(path, &info)?;
                break;
            }
        }
        Ok(holder)
    }

    async fn rename_stack(
        &self,
        stack: &StackRef,
        new_name: &str,
        lock: &dyn StackLock,
    ) -> BackendResult<()> {
        Self::check(stack)?;
        cairn_state::stack_ref::validate_stack_name(new_name).map_err(BackendError::InvalidName)?;
        let new = StackRef {
            name: new_name.to_owned(),
            ..stack.clone()
        };
        self.settle_rename(stack)?;
        self.settle_rename(&new)?;
        if !self.checkpoint_path(stack).exists() {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        }
        if self.checkpoint_path(&new).exists() {
            return Err(BackendError::StackAlreadyExists(new.name));
        }
        lock::check_token(&self.lock_path(stack), &stack.name, lock.token())?;
        if self.journal_path(stack).exists() || self.next_journal_path(stack).exists() {
            return Err(BackendError::UpdateInProgress(stack.name.clone()));
        }
        let intent = self.start_rename(stack, &new, lock.token())?;
        self.run_rename(stack, &new, &intent, lock.token(), None)
            .map(|_| ())
    }

    async fn journal_damage(&self, stack: &StackRef) -> BackendResult<Option<JournalDamage>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        Ok(self.find_damage(stack)?.map(|(_, _, _, report)| report))
    }

    async fn salvage_journal(
        &self,
        stack: &StackRef,
        lock: &dyn StackLock,
    ) -> BackendResult<Option<JournalDamage>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        self.salvage(stack, lock.token())
    }

    async fn stack_tags(&self, stack: &StackRef) -> BackendResult<BTreeMap<String, String>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        self.require_stack(stack)?;
        self.read_tags(stack)
    }

    async fn set_stack_tag(&self, stack: &StackRef, name: &str, value: &str) -> BackendResult<()> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        cairn_state::validate_tag(name, value)?;
        self.require_stack(stack)?;
        let mut tags = self.read_tags(stack)?;
        tags.insert(name.to_owned(), value.to_owned());
        self.write_tags(stack, &tags)
    }

    async fn remove_stack_tag(&self, stack: &StackRef, name: &str) -> BackendResult<()> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        self.require_stack(stack)?;
        let mut tags = self.read_tags(stack)?;
        if tags.remove(name).is_some() {
            self.write_tags(stack, &tags)?;
        }
        Ok(())
    }

    async fn append_logs(
        &self,
        stack: &StackRef,
        entries: Vec<cairn_state::LogEntry>,
    ) -> BackendResult<()> {
        Self::check(stack)?;
        self.append_log_lines(stack, &entries)
    }

    async fn logs(
        &self,
        stack: &StackRef,
        since_ms: Option<i64>,
        urn: Option<&str>,
    ) -> BackendResult<Vec<cairn_state::LogEntry>> {
        Self::check(stack)?;
        self.settle_rename(stack)?;
        self.require_stack(stack)?;
        self.read_logs(stack, since_ms, urn)
    }

    fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }
}

/// Records one update of one stack.
struct FileUpdateWriter {
    backend: FileBackend,
    stack: StackRef,
    /// Appends share it; a fold takes it alone, so no append runs while the journal is swapped.
    journal: tokio::sync::RwLock<Option<JournalFile>>,
    /// The journal length that triggers a fold: the backend's threshold, or four times the
    /// checkpoint, so rewriting checkpoints stays a fraction of what the journal writes.
    fold_threshold: AtomicU64,
    history_path: PathBuf,
    /// The in-progress history record, completed by `finish`.
    info: UpdateInfo,
    /// The fencing token of the lock the update holds.
    token: String,
}

#[async_trait]
impl UpdateWriter for FileUpdateWriter {
    async fn append(&self, records: Vec<JournalRecord>) -> BackendResult<()> {
        let needs_fold = {
            let journal = self.journal.read().await;
            let journal = journal.as_ref().ok_or_else(closed_journal)?;
            journal.append(records).await?;
            journal.length() > self.fold_threshold.load(Ordering::Relaxed)
        };
        if needs_fold {
            self.fold().await?;
        }
        Ok(())
    }

    async fn finish(
        self: Box<Self>,
        deployment: Deployment,
        result: UpdateResult,
        resource_changes: BTreeMap<String, usize>,
    ) -> BackendResult<()> {
        let FileUpdateWriter {
            backend,
            stack,
            journal,
            history_path,
            mut info,
            token,
            ..
        } = *self;
        journal.into_inner().ok_or_else(closed_journal)?.close()?;
        // A cancelled update must not overwrite the state of the update after it.
        lock::check_token(&backend.lock_path(&stack), &stack.name, &token)?;
        backend.write_checkpoint(&stack, &deployment)?;
        // The checkpoint this update replaced is the state after the previous one.
        if info.version > 1 {
            backend.keep_version(&stack, info.version - 1)?;
        }
        let journal_path = backend.journal_path(&stack);
        fs_err::remove_file(&journal_path)
            .map_err(|error| io_error("removing", &journal_path, error))?;
        info.result = result;
        info.end_time = crate::files::unix_now();
        info.resource_changes = resource_changes;
        backend.write_history(&history_path, &info)?;
        Ok(())
    }
}

/// The error of a load that meets a journal damaged before its last line. Every command on the
/// stack stops here, so it says what `cairn state repair` keeps and what it sets aside.
fn damaged_journal(
    stack: &StackRef,
    path: &std::path::Path,
    damage: &journal_file::Damage,
    kept: &[JournalRecord],
) -> BackendError {
    BackendError::Corrupt {
        stack: stack.name.clone(),
        reason: format!(
            "{}: {}\nhelp: the journal of an interrupted update is damaged before its end, and Cairn does not guess what a damaged record said. Run `cairn state repair`: it keeps the {} intact records before the damage (operations they began and did not finish become pending operations, settled with `cairn refresh --clear-pending`) and moves the journal aside, naming what its damaged part mentions",
            damage.location(path),
            damage.reason,
            kept.len()
        ),
    }
}

/// A free name next to `path` for a damaged journal set aside: `<name>.damaged-<unix seconds>`.
fn aside_path(path: &std::path::Path) -> BackendResult<PathBuf> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let now = crate::files::unix_now();
    for attempt in 0..1000 {
        let suffix = if attempt == 0 {
            format!("{now}")
        } else {
            format!("{now}-{attempt}")
        };
        let candidate = path.with_file_name(format!("{name}.damaged-{suffix}"));
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(BackendError::format(format!(
        "no free name to set `{}` aside",
        path.display()
    )))
}

fn closed_journal() -> BackendError {
    BackendError::format("the update's journal is closed".to_owned())
}

impl FileUpdateWriter {
    /// Folds the journal into a new checkpoint. Operations still open move to the new journal,
    /// which is written (under a temporary name, naming the new checkpoint) before the
    /// checkpoint, and renamed into place after it: at every instant, loading finds either the
    /// old checkpoint and journal or the new ones.
    async fn fold(&self) -> BackendResult<()> {
        let mut guard = self.journal.write().await;
        let Some(journal) = guard.take() else {
            return Err(closed_journal());
        };
        if journal.length() <= self.fold_threshold.load(Ordering::Relaxed) {
            // Another step folded it while this one waited.
            *guard = Some(journal);
            return Ok(());
        }
        journal.close()?;
        let backend = &self.backend;
        let stack = &self.stack;
        lock::check_token(&backend.lock_path(stack), &stack.name, &self.token)?;
        let journal_path = backend.journal_path(stack);
        let checkpoint = backend
            .read_checkpoint(stack)?
            .ok_or_else(|| BackendError::StackNotFound(stack.name.clone()))?;
        let records = read_journal(&journal_path, &stack.name)?
            .filter(|journal| journal.base_checksum == checkpoint.checksum)
            .map(|journal| journal.records)
            .unwrap_or_default();
        let n_base_pending = checkpoint.deployment.pending_operations.len();
        let still_open = cairn_state::journal::open_begins(&records);
        let mut deployment = cairn_state::journal::replay(Some(checkpoint.deployment), &records);
        // The open operations live on in the new journal, not as pending operations.
        deployment.pending_operations.truncate(n_base_pending);
        let (text, checksum) = files::encode_checkpoint(&deployment)?;
        let next_path = backend.next_journal_path(stack);
        let next = JournalFile::create(
            &next_path,
            &checksum,
            &still_open,
            backend.bytes_written.clone(),
            backend.fence(stack, &self.token),
        )?;
        backend.write_checkpoint_text(stack, &text)?;
        fs_err::rename(&next_path, &journal_path)
            .map_err(|error| io_error("renaming into", &journal_path, error))?;
        if let Some(dir) = journal_path.parent() {
            files::sync_dir(dir)?;
        }
        self.fold_threshold
            .store(backend.fold_threshold_for(stack), Ordering::Relaxed);
        *guard = Some(next);
        Ok(())
    }
}

#[cfg(test)]
mod no_panic_tests;
#[cfg(test)]
mod tests;
