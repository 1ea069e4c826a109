//! `cairn login`, `logout`, `whoami`.

use crate::cli::LoginArgs;
use crate::output;
use crate::workspace::{Workspace, open_backend};

pub fn login(workspace: &Workspace, args: LoginArgs) -> anyhow::Result<()> {
    let url = args
        .url
        .or_else(|| workspace.global.backend.clone())
        .unwrap_or_else(|| "file://~/.cairn".to_owned());
    // Opening the backend validates the URL and creates the directory.
    let backend = open_backend(&url, &workspace.home)?;
    workspace.store_login(Some(&url))?;
    output::line(&format!("Logged in to {}", backend.url()));
    Ok(())
}

pub fn logout(workspace: &Workspace) -> anyhow::Result<()> {
    let url = workspace.backend_url();
    workspace.store_login(None)?;
    // The stored URL may hold a PostgreSQL password.
    output::line(&format!(
        "Logged out of {}",
        cairn_backend_postgres::redact(&url)
    ));
    Ok(())
}

pub async fn whoami(workspace: &Workspace) -> anyhow::Result<()> {
    let backend = workspace.backend()?;
    let user = backend.current_user().await?;
    if workspace.global.json {
        output::json(&serde_json::json!({ "user": user, "url": backend.url() }));
    } else {
        output::line(&user);
    }
    Ok(())
}
