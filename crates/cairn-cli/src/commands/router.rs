//! `cairn router run`: the router (`cairn-router`) on an address, following this backend's
//! app store. One line when it listens (a JSON object with `--json`), a line per change of
//! its routes and per refresh problem; SIGTERM or Ctrl-C drains, then it exits 0.

use std::sync::Arc;

use cairn_router::{Drained, Router, RouterEvent, RouterOptions};
use tokio_util::sync::CancellationToken;

use crate::cli::{RouterCommand, RouterRunArgs};
use crate::workspace::Workspace;
use crate::{bad_input, output};

pub async fn run(workspace: &Workspace, command: RouterCommand) -> anyhow::Result<()> {
    match command {
        RouterCommand::Run(args) => serve(workspace, args).await,
    }
}

async fn serve(workspace: &Workspace, args: RouterRunArgs) -> anyhow::Result<()> {
    let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
    check_domain(&domain)?;
    let listen: std::net::SocketAddr = args.listen.parse().map_err(|_| {
        bad_input(format!(
            "`{}` is not an address to listen on: give an IP and a port (`127.0.0.1:8080`)",
            args.listen
        ))
    })?;
    let refresh: std::time::Duration = args.refresh.into();
    if refresh.is_zero() {
        return Err(bad_input("`--refresh` must be longer than 0s"));
    }
    let store = workspace.app_store()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| anyhow::anyhow!("listening on {listen}: {error}"))?;
    let address = listener.local_addr()?;
    let json = workspace.global.json;
    if json {
        output::json_line(&serde_json::json!({
            "event": "listening",
            "address": address.to_string(),
            "domain": domain,
        }));
    } else {
        output::line(&format!(
            "router listening on http://{address}, serving APP.{domain} (SIGTERM or Ctrl-C drains)"
        ));
    }
    let options = RouterOptions {
        domain: domain.clone(),
        refresh,
        drain_timeout: args.drain_timeout.into(),
    };
    let shutdown = CancellationToken::new();
    let signals = watch_signals(shutdown.clone())?;
    let events: cairn_router::EventSink = Arc::new(move |event| report(json, &event));
    let router = Arc::new(Router::new(&domain));
    let drained = cairn_router::serve(listener, router, store, options, shutdown, events).await;
    signals.abort();
    match drained {
        Drained::Completed => report_line(json, "drained", "drained: every request finished"),
        Drained::TimedOut => report_line(
            json,
            "drainTimedOut",
            "drain timeout reached: requests still in flight were cut",
        ),
    }
    Ok(())
}

/// A DNS name: labels of letters, digits and `-`, joined by dots.
fn check_domain(domain: &str) -> anyhow::Result<()> {
    let is_valid = !domain.is_empty()
        && domain.len() <= 200
        && domain.split('.').all(cairn_app::names::is_dns_label);
    if is_valid {
        Ok(())
    } else {
        Err(bad_input(format!(
            "`{domain}` is not a domain: use labels of letters, digits and `-`, joined by dots (`cairn.localhost`)"
        )))
    }
}

fn report(json: bool, event: &RouterEvent) {
    match event {
        RouterEvent::TableChanged { apps, units } => {
            if json {
                output::json_line(&serde_json::json!({
                    "event": "routes", "apps": apps, "units": units,
                }));
            } else {
                output::progress(&format!(
                    "routes: {apps} apps, {units} units taking traffic"
                ));
            }
        }
        RouterEvent::RefreshFailed(error) => {
            if json {
                output::json_line(&serde_json::json!({
                    "event": "refreshFailed", "message": error,
                }));
            } else {
                output::warning(&format!(
                    "reading the routes failed, the last ones stay: {error}"
                ));
            }
        }
        RouterEvent::RefreshRecovered => {
            report_line(json, "refreshRecovered", "reading the routes works again")
        }
        RouterEvent::Draining => report_line(
            json,
            "draining",
            "draining: no new connections, requests in flight finish",
        ),
    }
}

fn report_line(json: bool, event: &str, text: &str) {
    if json {
        output::json_line(&serde_json::json!({ "event": event }));
    } else {
        output::progress(text);
    }
}

/// SIGTERM or Ctrl-C starts the drain.
fn watch_signals(shutdown: CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terminations = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = interrupts.recv() => {}
            _ = terminations.recv() => {}
        }
        shutdown.cancel();
    }))
}
