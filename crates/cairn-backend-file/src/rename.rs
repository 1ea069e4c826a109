//! Renaming a stack, crash-atomically. A rename moves several files and directories (checkpoint,
//! kept versions, history, tags, logs), which no single system call can do. So the renamer first
//! writes an intent marker, `.pulumi/stacks/<project>/.<old>.renaming`, naming both names and the
//! fencing token of the lock it holds; then moves everything, each step idempotent; and removes
//! the marker last. While the marker is there, every access to either name settles it: while the
//! renamer still holds its lock, the stack is busy (`BackendError::Locked`, naming it); once its
//! lock is gone (`cairn cancel`) or its holder is gone from this host (a `kill -9`, a crash), the
//! access finishes the rename itself, under the old name's lock. A rename is never undone: after
//! a crash at any step, the stack ends up whole under the new name.

use std::path::{Path, PathBuf};

use cairn_state::backend::BackendResult;
use cairn_state::{BackendError, LockOwner, StackLock, StackRef};
use serde::{Deserialize, Serialize};

use crate::files::{self, io_error};
use crate::{FileBackend, lock};

/// The marker of a rename in flight.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RenameIntent {
    from: String,
    to: String,
    /// The fencing token of the renamer's lock on `from`.
    token: String,
    /// The checksum the new name's checkpoint has once written: tells the rename's own
    /// checkpoint from another stack's that took the name.
    checksum: String,
}

/// One idempotent step of a rename; done again after a crash, it changes nothing more.
#[derive(Clone, Debug)]
enum Step {
    /// The new name's checkpoint, its URNs rewritten (first, so a rename cannot take over a
    /// stack that took the name meanwhile: nothing else has moved when that is found).
    Checkpoint,
    /// A kept version, its URNs rewritten.
    Backup(u64),
    /// One history record (named after the stack; its contents carry no URNs).
    History(String),
    /// A damaged journal that `cairn state repair` set aside (`<stack>.journal.damaged-*`).
    SetAside(String),
    Tags,
    Logs,
    RemoveOldBackups,
    RemoveOldHistory,
    RemoveOldCheckpoint,
    /// The old name's lock guards nothing any more; released here rather than when its holder
    /// drops it, so that a renamer killed just after the rename leaves no stale lock behind.
    ReleaseOldLock,
    /// Last: until it is gone, every access to either name settles the rename. Not fenced:
    /// the lock it would check was released by the step before.
    RemoveMarker,
}

const MARKER_SUFFIX: &str = ".renaming";

impl FileBackend {
    fn marker_path(&self, project: &str, from: &str) -> PathBuf {
        self.stacks_dir()
            .join(project)
            .join(format!(".{from}{MARKER_SUFFIX}"))
    }

    /// The renames in flight in `project`.
    fn rename_intents(&self, project: &str) -> BackendResult<Vec<RenameIntent>> {
        let dir = self.stacks_dir().join(project);
        let entries = match fs_err::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("listing", &dir, error)),
        };
        let mut intents = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(from) = name
                .strip_prefix('.')
                .and_then(|rest| rest.strip_suffix(MARKER_SUFFIX))
            else {
                continue;
            };
            let path = entry.path();
            let text = match fs_err::read_to_string(&path) {
                Ok(text) => text,
                // Removed by a rename that just finished.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io_error("reading", &path, error)),
            };
            // Written atomically, so a marker that does not parse was damaged afterwards.
            let intent: RenameIntent =
                serde_json::from_str(&text).map_err(|error| BackendError::Corrupt {
                    stack: from.to_owned(),
                    reason: format!(
                        "{}: the marker of a rename in flight is not readable ({error})",
                        path.display()
                    ),
                })?;
            intents.push(intent);
        }
        Ok(intents)
    }

    /// The stack whose lock guards `stack`: during a rename into `stack`, the old name's.
    pub(crate) fn guarding(&self, stack: &StackRef) -> BackendResult<StackRef> {
        let intents = self.rename_intents(&stack.project)?;
        Ok(intents
            .into_iter()
            .find(|intent| intent.to == stack.name)
            .map(|intent| named(stack, &intent.from))
            .unwrap_or_else(|| stack.clone()))
    }

    /// Settles a rename in flight to or from `stack`: finishes it when its renamer is gone,
    /// and fails with `Locked` (naming the renamer) while it runs.
    pub(crate) fn settle_rename(&self, stack: &StackRef) -> BackendResult<()> {
        for intent in self.rename_intents(&stack.project)? {
            if intent.from == stack.name || intent.to == stack.name {
                self.finish_rename(&stack.project, &intent)?;
            }
        }
        Ok(())
    }

    /// Settles every rename in flight in `project`; returns the renames still running, as
    /// (old name, new name).
    pub(crate) fn settle_renames_in(&self, project: &str) -> BackendResult<Vec<(String, String)>> {
        let mut arriving = Vec::new();
        for intent in self.rename_intents(project)? {
            match self.finish_rename(project, &intent) {
                Ok(()) => {}
                Err(BackendError::Locked { .. }) => {
                    arriving.push((intent.from.clone(), intent.to.clone()))
                }
                Err(error) => return Err(error),
            }
        }
        Ok(arriving)
    }

    /// Finishes the rename `intent` of a renamer that is gone, under the old name's lock.
    fn finish_rename(&self, project: &str, intent: &RenameIntent) -> BackendResult<()> {
        let template = StackRef {
            organization: cairn_state::stack_ref::DEFAULT_ORGANIZATION.to_owned(),
            project: project.to_owned(),
            name: intent.from.clone(),
        };
        let from = template.clone();
        let lock_path = self.lock_path(&from);
        if let Some(holder) = lock::holder(&lock_path) {
            let is_renamers = lock::token(&lock_path).as_deref() == Some(intent.token.as_str());
            if !(is_renamers && holder.is_stale) {
                return Err(BackendError::Locked {
                    stack: from.name.clone(),
                    holder,
                });
            }
            // The renamer died holding the lock. Finishing its rename is finishing its own
            // work, with nothing for anyone to decide (a rename is refused while an update's
            // journal is unsettled), so its lock goes with it rather than waiting for
            // `cairn cancel`.
            lock::remove_if_token(&lock_path, &intent.token)?;
        }
        let now = unix_now();
        let owner = LockOwner {
            pid: std::process::id(),
            host: cairn_state::backend::local_host(),
            user: self.user.clone(),
            command: format!(
                "cairn (finishing the rename of stack `{}` to `{}`)",
                from.name, intent.to
            ),
            started: now,
            heartbeat: now,
            is_stale: false,
        };
        // Another access may be finishing it now: then this one sees the stack locked.
        let held = lock::acquire(&lock_path, &from.name, owner)?;
        // Read again under the lock: the rename may have been finished while this access
        // looked (and the name even renamed again since).
        let Some(intent) = self
            .rename_intents(project)?
            .into_iter()
            .find(|current| current.from == from.name)
        else {
            return Ok(());
        };
        let to = named(&template, &intent.to);
        let result = self.run_rename(&from, &to, &intent, held.token(), None);
        drop(held);
        match result {
            Ok(_) => Ok(()),
            // Another stack took the new name before the rename's checkpoint was written: the
            // rename was abandoned whole, and the stack stays under its old name.
            Err(BackendError::StackAlreadyExists(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Starts renaming `stack` to `new` under the lock holding `token`: writes the marker (the
    /// rename is then certain to finish) and returns it. The caller has checked both names.
    pub(crate) fn start_rename(
        &self,
        stack: &StackRef,
        new: &StackRef,
        token: &str,
    ) -> BackendResult<RenameIntent> {
        let Some(checkpoint) = self.read_checkpoint(stack)? else {
            return Err(BackendError::StackNotFound(stack.name.clone()));
        };
        let renamed =
            cairn_state::backend::rename_in_deployment(&checkpoint.deployment, stack, &new.name)?;
        let (_, checksum) = files::encode_checkpoint(&renamed)?;
        let intent = RenameIntent {
            from: stack.name.clone(),
            to: new.name.clone(),
            token: token.to_owned(),
            checksum,
        };
        let text = serde_json::to_string_pretty(&intent)
            .map_err(|error| BackendError::format_from(error.to_string(), error))?;
        lock::check_token(&self.lock_path(stack), &stack.name, token)?;
        files::write_atomically(
            &self.marker_path(&stack.project, &stack.name),
            text.as_bytes(),
        )?;
        Ok(intent)
    }

    /// Runs the rename's steps (the first `limit` only, when given: a test's crash), each after
    /// checking that `token` still holds the old name's lock. Returns how many steps there were.
    pub(crate) fn run_rename(
        &self,
        from: &StackRef,
        to: &StackRef,
        intent: &RenameIntent,
        token: &str,
        limit: Option<usize>,
    ) -> BackendResult<usize> {
        let steps = self.rename_steps(from)?;
        for (done, step) in steps.iter().enumerate() {
            if limit == Some(done) {
                return Ok(steps.len());
            }
            if !matches!(step, Step::RemoveMarker) {
                lock::check_token(&self.lock_path(from), &from.name, token)?;
            }
            match self.rename_step(from, to, intent, step, token) {
                Ok(()) => {}
                // Nothing has moved before the checkpoint: the rename is abandoned whole.
                Err(error @ BackendError::StackAlreadyExists(_)) => {
                    remove_file_if_present(&self.marker_path(&from.project, &from.name))?;
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(steps.len())
    }

    /// The steps of renaming `from`, as things are on disk now.
    fn rename_steps(&self, from: &StackRef) -> BackendResult<Vec<Step>> {
        let mut steps = vec![Step::Checkpoint];
        steps.extend(self.backup_versions(from)?.into_iter().map(Step::Backup));
        let history = self.history_dir(from);
        match fs_err::read_dir(&history) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                steps.extend(names.into_iter().map(Step::History));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("listing", &history, error)),
        }
        let dir = self.stack_dir(from);
        let prefix = format!("{}.journal.damaged-", from.name);
        let mut set_aside: Vec<String> = fs_err::read_dir(&dir)
            .map_err(|error| io_error("listing", &dir, error))?
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&prefix))
            .collect();
        set_aside.sort();
        steps.extend(set_aside.into_iter().map(Step::SetAside));
        steps.extend([
            Step::Tags,
            Step::Logs,
            Step::RemoveOldBackups,
            Step::RemoveOldHistory,
            Step::RemoveOldCheckpoint,
            Step::ReleaseOldLock,
            Step::RemoveMarker,
        ]);
        Ok(steps)
    }

    fn rename_step(
        &self,
        from: &StackRef,
        to: &StackRef,
        intent: &RenameIntent,
        step: &Step,
        token: &str,
    ) -> BackendResult<()> {
        match step {
            Step::Checkpoint => self.rename_checkpoint(from, to, intent),
            Step::Backup(version) => {
                let old_path = self.backup_path(from, *version);
                let new_path = self.backup_path(to, *version);
                create_parent(&new_path)?;
                match files::read_checkpoint(&old_path, &from.name) {
                    Ok(Some(checkpoint)) => {
                        // Rewritten too, so `stack export --version N` of the renamed stack
                        // can be imported back into it.
                        let renamed = cairn_state::backend::rename_in_deployment(
                            &checkpoint.deployment,
                            from,
                            &to.name,
                        )?;
                        let (text, _) = files::encode_checkpoint(&renamed)?;
                        files::write_atomically(&new_path, text.as_bytes())
                    }
                    // Removed by a step after this one, before a crash.
                    Ok(None) => Ok(()),
                    // A damaged kept version goes along as it is, not lost and not in the way.
                    Err(BackendError::Corrupt { .. }) => {
                        fs_err::copy(&old_path, &new_path)
                            .map_err(|error| io_error("copying", &old_path, error))?;
                        files::sync_dir(parent(&new_path))
                    }
                    Err(error) => Err(error),
                }
            }
            Step::History(name) => {
                let new_name = match name.strip_prefix(&format!("{}-", from.name)) {
                    Some(rest) => format!("{}-{rest}", to.name),
                    None => name.clone(),
                };
                move_if_present(
                    &self.history_dir(from).join(name),
                    &self.history_dir(to).join(new_name),
                )
            }
            Step::SetAside(name) => {
                let rest = name.strip_prefix(&from.name).unwrap_or(name);
                move_if_present(
                    &self.stack_dir(from).join(name),
                    &self.stack_dir(to).join(format!("{}{rest}", to.name)),
                )
            }
            Step::Tags => move_if_present(&self.tags_path(from), &self.tags_path(to)),
            Step::Logs => move_if_present(&self.logs_path(from), &self.logs_path(to)),
            Step::RemoveOldBackups => remove_dir_if_present(&self.backups_dir(from)),
            Step::RemoveOldHistory => remove_dir_if_present(&self.history_dir(from)),
            Step::RemoveOldCheckpoint => {
                let checkpoint = self.checkpoint_path(from);
                remove_file_if_present(&checkpoint.with_extension("json.bak"))?;
                remove_file_if_present(&checkpoint)?;
                files::sync_dir(parent(&checkpoint))
            }
            Step::ReleaseOldLock => lock::remove_if_token(&self.lock_path(from), token),
            Step::RemoveMarker => {
                let marker = self.marker_path(&from.project, &from.name);
                remove_file_if_present(&marker)?;
                files::sync_dir(parent(&marker))
            }
        }
    }

    fn rename_checkpoint(
        &self,
        from: &StackRef,
        to: &StackRef,
        intent: &RenameIntent,
    ) -> BackendResult<()> {
        let new_path = self.checkpoint_path(to);
        if let Some(existing) = files::read_checkpoint(&new_path, &to.name)? {
            return if existing.checksum == intent.checksum {
                Ok(())
            } else {
                Err(BackendError::StackAlreadyExists(to.name.clone()))
            };
        }
        let Some(checkpoint) = self.read_checkpoint(from)? else {
            return Err(BackendError::Corrupt {
                stack: from.name.clone(),
                reason: format!(
                    "its rename to `{}` found neither checkpoint (`{}`, `{}`)",
                    to.name,
                    self.checkpoint_path(from).display(),
                    new_path.display()
                ),
            });
        };
        let renamed =
            cairn_state::backend::rename_in_deployment(&checkpoint.deployment, from, &to.name)?;
        let (text, checksum) = files::encode_checkpoint(&renamed)?;
        if checksum != intent.checksum {
            return Err(BackendError::Corrupt {
                stack: from.name.clone(),
                reason: "its checkpoint changed during its rename".to_owned(),
            });
        }
        create_parent(&new_path)?;
        if !files::create_exclusively(&new_path, text.as_bytes())? {
            return Err(BackendError::StackAlreadyExists(to.name.clone()));
        }
        Ok(())
    }
}

fn named(stack: &StackRef, name: &str) -> StackRef {
    StackRef {
        name: name.to_owned(),
        ..stack.clone()
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn create_parent(path: &Path) -> BackendResult<()> {
    let dir = parent(path);
    fs_err::create_dir_all(dir).map_err(|error| io_error("creating", dir, error))
}

/// Moves `from` to `to`, durably (both directories synced); nothing to do once it was moved.
fn move_if_present(from: &Path, to: &Path) -> BackendResult<()> {
    if !from.exists() {
        return Ok(());
    }
    create_parent(to)?;
    match fs_err::rename(from, to) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(io_error("moving", from, error)),
    }
    files::sync_dir(parent(to))?;
    files::sync_dir(parent(from))
}

fn remove_file_if_present(path: &Path) -> BackendResult<()> {
    match fs_err::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("removing", path, error)),
    }
}

fn remove_dir_if_present(path: &Path) -> BackendResult<()> {
    match fs_err::remove_dir_all(path) {
        Ok(()) => files::sync_dir(parent(path)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("removing", path, error)),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|duration| duration.as_secs() as i64)
        .unwrap_or(0)
}
