//! The app operations a front end calls, each whole: names checked before the store is
//! touched, the app's lock taken for a change and given up however it ends, secret values
//! sealed before they leave this module. The CLI parses and renders; this decides.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_secrets::{Crypter, PassphraseCrypter};

use crate::names::{validate_env_name, validate_new_app, validate_pool_name};
use crate::{
    App, AppError, AppLock, AppResult, AppStore, DEFAULT_POOL, EnvValue, NewApp, NewRelease, Pool,
    Release,
};

/// How long a writer's hold on an app lasts unless renewed. `with_lock` renews it every third
/// of that while the change runs, so a change may take as long as it needs, and the lock of a
/// writer that was killed runs out within this much: the next writer, which waits for it,
/// goes through.
pub const LOCK_LEASE: Duration = Duration::from_secs(5);

/// The pool a new app goes to: the one asked for; else the pool marked default; else the
/// implicit `default` pool while no pool exists (or one named `default` when some do).
pub fn choose_pool(pools: &[Pool], requested: Option<&str>) -> AppResult<String> {
    if let Some(pool) = requested {
        validate_pool_name(pool)?;
        return Ok(pool.to_owned());
    }
    if let Some(pool) = pools.iter().find(|pool| pool.is_default) {
        return Ok(pool.name.clone());
    }
    if pools.is_empty() || pools.iter().any(|pool| pool.name == DEFAULT_POOL) {
        return Ok(DEFAULT_POOL.to_owned());
    }
    Err(AppError::Invalid(
        "no pool is the default: pass `--pool NAME`, or make one the default with \
         `cairn pool default NAME`"
            .to_owned(),
    ))
}

/// Creates an app (no release yet) in the pool `choose_pool` picks.
pub async fn create_app(
    store: &dyn AppStore,
    name: &str,
    pool: Option<&str>,
    processes: Vec<crate::Process>,
) -> AppResult<App> {
    let pools = store.list_pools().await?;
    let app = NewApp {
        name: name.to_owned(),
        pool: choose_pool(&pools, pool)?,
        processes,
    };
    validate_new_app(&app)?;
    store.create_app(app).await
}

/// How long a change waits for another writer's lock before it gives up: longer than a
/// lease, so the lock of a writer that was killed is taken over rather than reported.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting change tries the lock again.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// Runs `change` under the app's lock (waiting up to `LOCK_WAIT` for another writer's),
/// renewing it while `change` runs and giving it up however it ends.
pub async fn with_lock<T>(
    store: &dyn AppStore,
    app: &str,
    holder: &str,
    change: impl AsyncFnOnce(&AppLock) -> AppResult<T>,
) -> AppResult<T> {
    with_lock_leased(store, app, holder, LOCK_LEASE, change).await
}

/// `with_lock` with a lease of `lease` (tests shorten it).
pub async fn with_lock_leased<T>(
    store: &dyn AppStore,
    app: &str,
    holder: &str,
    lease: Duration,
    change: impl AsyncFnOnce(&AppLock) -> AppResult<T>,
) -> AppResult<T> {
    crate::names::validate_app_name(app)?;
    let started = tokio::time::Instant::now();
    let lock = loop {
        match store.lock_app(app, holder, lease).await {
            Err(AppError::Locked { .. }) if started.elapsed() < LOCK_WAIT.max(lease * 2) => {
                tokio::time::sleep(LOCK_RETRY).await;
            }
            other => break other?,
        }
    };
    let renewing = async {
        loop {
            tokio::time::sleep(lease / 3).await;
            if store.renew_lock(&lock, lease).await.is_err() {
                // Lost (or the store failed): stop renewing. The change's next write is
                // refused by the store's fencing, which is what the change reports.
                return std::future::pending::<std::convert::Infallible>().await;
            }
        }
    };
    let result = tokio::select! {
        result = change(&lock) => result,
        never = renewing => match never {},
    };
    // A failure to unlock leaves a lock whose lease runs out; the change's own result is
    // what the caller needs to hear.
    let _ = store.unlock_app(&lock).await;
    result
}

/// Removes an app, its releases and its units' records.
pub async fn remove_app(store: &dyn AppStore, app: &str, holder: &str) -> AppResult<()> {
    with_lock(store, app, holder, async |lock| {
        store.remove_app(lock).await
    })
    .await
}

/// What `env set` / `env unset` change.
pub enum EnvChange {
    /// Values to set; with `secret`, sealed with the app's passphrase crypter.
    Set {
        values: Vec<(String, String)>,
        secret: bool,
    },
    Unset(Vec<String>),
}

/// Changes the app's environment as a new release (same image and processes). `passphrase`
/// is asked for only when a secret is set: the first makes the app's salt.
pub async fn change_env(
    store: &dyn AppStore,
    app: &str,
    holder: &str,
    change: EnvChange,
    passphrase: &(dyn Fn() -> Result<String, String> + Sync),
) -> AppResult<Release> {
    // Every name is checked before the store is touched: bad input changes nothing.
    let names: Vec<&str> = match &change {
        EnvChange::Set { values, .. } => values.iter().map(|(name, _)| name.as_str()).collect(),
        EnvChange::Unset(names) => names.iter().map(String::as_str).collect(),
    };
    if names.is_empty() {
        return Err(AppError::Invalid("no variable given".to_owned()));
    }
    for (index, name) in names.iter().enumerate() {
        validate_env_name(name)?;
        if names[..index].contains(name) {
            return Err(AppError::Invalid(format!(
                "`{name}` is given twice; give each variable once"
            )));
        }
    }
    let reason = match &change {
        EnvChange::Set { .. } => format!("env set {}", names.join(" ")),
        EnvChange::Unset(_) => format!("env unset {}", names.join(" ")),
    };
    with_lock(store, app, holder, async |lock| {
        let current = store
            .app(app)
            .await?
            .ok_or_else(|| AppError::AppNotFound(app.to_owned()))?;
        let mut env = current.env.clone();
        let mut encryption_salt = current.encryption_salt.clone();
        match change {
            EnvChange::Set { values, secret } => {
                let crypter = if secret {
                    let (crypter, salt) = app_crypter(encryption_salt.as_deref(), passphrase)?;
                    encryption_salt = Some(salt);
                    Some(crypter)
                } else {
                    None
                };
                for (name, value) in values {
                    let value = match &crypter {
                        Some(crypter) => EnvValue::Secret(crypter.encrypt(&value)?),
                        None => EnvValue::Plain(value),
                    };
                    env.insert(name, value);
                }
            }
            EnvChange::Unset(names) => {
                // An unset that changes nothing makes no release.
                if let Some(missing) = names.iter().find(|name| !env.contains_key(*name)) {
                    return Err(AppError::Invalid(format!(
                        "app `{app}` has no variable `{missing}`"
                    )));
                }
                for name in names {
                    env.remove(&name);
                }
            }
        }
        let release = NewRelease {
            image: current.image.clone(),
            env,
            processes: current.processes.clone(),
            encryption_salt,
            reason,
        };
        store.append_release(lock, release).await
    })
    .await
}

/// The app's crypter and its salt line: from the salt it has (checking the passphrase), or
/// a new salt.
fn app_crypter(
    salt: Option<&str>,
    passphrase: &(dyn Fn() -> Result<String, String> + Sync),
) -> AppResult<(Box<dyn Crypter>, String)> {
    let passphrase = passphrase().map_err(cairn_secrets::SecretsError::Unavailable)?;
    match salt {
        Some(salt) => match cairn_secrets::crypter_for_salt(&passphrase, salt) {
            Ok(crypter) => Ok((crypter, salt.to_owned())),
            Err(cairn_secrets::SecretsError::WrongPassphrase) => Err(AppError::Invalid(
                "incorrect passphrase: the app's secrets cannot be decrypted with it".to_owned(),
            )),
            Err(error) => Err(error.into()),
        },
        None => {
            let crypter = PassphraseCrypter::new(&passphrase, &cairn_secrets::new_salt())?;
            let salt = crypter.encryption_salt();
            Ok((Box::new(crypter), salt))
        }
    }
}

/// An environment as a front end shows it: secret values as `[secret]`.
pub fn displayed_env(env: &BTreeMap<String, EnvValue>) -> BTreeMap<String, String> {
    env.iter()
        .map(|(name, value)| {
            let shown = match value {
                EnvValue::Plain(value) => value.clone(),
                EnvValue::Secret(_) => "[secret]".to_owned(),
            };
            (name.clone(), shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, is_default: bool) -> Pool {
        Pool {
            name: name.to_owned(),
            provisioner: "docker".to_owned(),
            is_default,
        }
    }

    #[test]
    fn the_pool_is_the_one_asked_for_else_the_default() {
        assert_eq!(choose_pool(&[], None).unwrap(), "default");
        assert_eq!(choose_pool(&[], Some("eu")).unwrap(), "eu");
        let pools = [pool("eu", false), pool("us", true)];
        assert_eq!(choose_pool(&pools, None).unwrap(), "us");
        assert_eq!(
            choose_pool(&[pool("eu", false), pool("default", false)], None).unwrap(),
            "default"
        );
        let error = choose_pool(&[pool("eu", false)], None).unwrap_err();
        assert!(error.is_bad_input());
        assert!(error.to_string().starts_with("no pool is the default"));
        assert!(choose_pool(&pools, Some("Bad Pool")).is_err());
    }

    #[test]
    fn secrets_are_displayed_masked() {
        let env = BTreeMap::from([
            ("A".to_owned(), EnvValue::Plain("1".to_owned())),
            ("B".to_owned(), EnvValue::Secret("v1:xx:yy".to_owned())),
        ]);
        let shown = displayed_env(&env);
        assert_eq!(shown["A"], "1");
        assert_eq!(shown["B"], "[secret]");
        assert_eq!(format!("{:?}", env["B"]), "[secret]");
    }
}
