//! One app's stored record, and every change to it as a pure function of the record and the
//! time, so that both backends apply the same rules: each reads the document under its own
//! lock (an `flock`, a row lock), calls one of these, and writes the result atomically (a
//! renamed file, a transaction). Releases are kept beside the document by each backend; the
//! document counts them.

use serde::{Deserialize, Serialize};

use crate::{App, AppError, AppLock, AppResult, NewRelease, Release, Unit, UnitStatus};

/// Who holds an app's lock, and until when (Unix milliseconds, the store's clock).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockHold {
    pub token: String,
    pub holder: String,
    pub expires_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDocument {
    pub app: App,
    #[serde(default)]
    pub units: Vec<Unit>,
    #[serde(default)]
    pub lock: Option<LockHold>,
    /// The highest release version given so far.
    #[serde(default)]
    pub last_release: u64,
}

fn millis(lease: std::time::Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

impl AppDocument {
    pub fn new(app: App) -> AppDocument {
        AppDocument {
            app,
            units: Vec::new(),
            lock: None,
            last_release: 0,
        }
    }

    /// Takes the lock for `holder` unless another holds it with time left. A lease that ran
    /// out is taken over: its writer's token no longer matches, so it writes nothing more.
    pub fn take_lock(
        &mut self,
        holder: &str,
        lease: std::time::Duration,
        now_ms: i64,
    ) -> AppResult<AppLock> {
        if let Some(hold) = &self.lock
            && hold.expires_ms > now_ms
        {
            return Err(AppError::Locked {
                app: self.app.name.clone(),
                holder: hold.holder.clone(),
                remaining_ms: hold.expires_ms - now_ms,
            });
        }
        let token = uuid::Uuid::new_v4().to_string();
        self.lock = Some(LockHold {
            token: token.clone(),
            holder: holder.to_owned(),
            expires_ms: now_ms.saturating_add(millis(lease)),
        });
        Ok(AppLock {
            app: self.app.name.clone(),
            token,
        })
    }

    /// Refuses unless `lock` is the app's current hold and its lease has time left.
    pub fn check_lock(&self, lock: &AppLock, now_ms: i64) -> AppResult<()> {
        match &self.lock {
            Some(hold) if hold.token == lock.token && hold.expires_ms > now_ms => Ok(()),
            _ => Err(AppError::LockLost(self.app.name.clone())),
        }
    }

    /// Extends the lease of a lock still held.
    pub fn renew_lock(
        &mut self,
        lock: &AppLock,
        lease: std::time::Duration,
        now_ms: i64,
    ) -> AppResult<()> {
        self.check_lock(lock, now_ms)?;
        if let Some(hold) = &mut self.lock {
            hold.expires_ms = now_ms.saturating_add(millis(lease));
        }
        Ok(())
    }

    /// Gives the lock up; whether it was still held. A lost lock is left to its new holder.
    pub fn release_lock(&mut self, lock: &AppLock) -> bool {
        let is_held = self
            .lock
            .as_ref()
            .is_some_and(|hold| hold.token == lock.token);
        if is_held {
            self.lock = None;
        }
        is_held
    }

    /// Ends the current hold, whoever has it; returns its holder.
    pub fn break_lock(&mut self) -> Option<String> {
        self.lock.take().map(|hold| hold.holder)
    }

    /// Makes the next release and makes it the app's current one.
    pub fn append_release(
        &mut self,
        lock: &AppLock,
        release: NewRelease,
        now_ms: i64,
    ) -> AppResult<Release> {
        self.check_lock(lock, now_ms)?;
        let release = Release {
            version: self.last_release + 1,
            image: release.image,
            env: release.env,
            processes: release.processes,
            encryption_salt: release.encryption_salt,
            created_ms: now_ms,
            reason: release.reason,
        };
        self.last_release = release.version;
        self.app.release = Some(release.version);
        self.app.image = release.image.clone();
        self.app.env = release.env.clone();
        self.app.processes = release.processes.clone();
        self.app.encryption_salt = release.encryption_salt.clone();
        Ok(release)
    }

    pub fn add_unit(&mut self, lock: &AppLock, unit: Unit, now_ms: i64) -> AppResult<()> {
        self.check_lock(lock, now_ms)?;
        if unit.app != self.app.name {
            return Err(AppError::Invalid(format!(
                "unit `{}` belongs to app `{}`, not `{}`",
                unit.id, unit.app, self.app.name
            )));
        }
        if self.units.iter().any(|existing| existing.id == unit.id) {
            return Err(AppError::UnitExists {
                app: self.app.name.clone(),
                unit: unit.id,
            });
        }
        self.units.push(unit);
        Ok(())
    }

    /// Adds a custom host name (already validated and normalized, and held by no other app:
    /// the store checks that across apps). Adding one the app has changes nothing.
    pub fn add_cname(&mut self, lock: &AppLock, cname: &str, now_ms: i64) -> AppResult<()> {
        self.check_lock(lock, now_ms)?;
        if !self.app.cnames.iter().any(|existing| existing == cname) {
            self.app.cnames.push(cname.to_owned());
        }
        Ok(())
    }

    /// Removes a custom host name; refused when the app does not have it.
    pub fn remove_cname(&mut self, lock: &AppLock, cname: &str, now_ms: i64) -> AppResult<()> {
        self.check_lock(lock, now_ms)?;
        let before = self.app.cnames.len();
        self.app.cnames.retain(|existing| existing != cname);
        if self.app.cnames.len() == before {
            return Err(AppError::Invalid(format!(
                "app `{}` has no host name `{cname}`",
                self.app.name
            )));
        }
        Ok(())
    }

    pub fn remove_unit(&mut self, lock: &AppLock, unit_id: &str, now_ms: i64) -> AppResult<Unit> {
        self.check_lock(lock, now_ms)?;
        let index = self.unit_index(unit_id)?;
        Ok(self.units.remove(index))
    }

    /// Moves a unit to `status` if tsuru's flow allows it; returns its status before. Needs no
    /// lock: statuses are reported by whoever watches the units (tsuru's `SetUnitStatus`).
    pub fn set_unit_status(&mut self, unit_id: &str, status: UnitStatus) -> AppResult<UnitStatus> {
        let index = self.unit_index(unit_id)?;
        let unit = &mut self.units[index];
        unit.status.check_transition(status)?;
        let before = unit.status;
        unit.status = status;
        Ok(before)
    }

    fn unit_index(&self, unit_id: &str) -> AppResult<usize> {
        self.units
            .iter()
            .position(|unit| unit.id == unit_id)
            .ok_or_else(|| AppError::UnitNotFound {
                app: self.app.name.clone(),
                unit: unit_id.to_owned(),
            })
    }
}
