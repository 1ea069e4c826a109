//! A team on one PostgreSQL backend: the whole CLI against `postgres://` (a throwaway cluster
//! started by the test), two machines (two `CAIRN_HOME`s) updating one stack, and a `kill -9`
//! mid-update recovered with `cancel` and `refresh --clear-pending`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_backend_postgres::test_cluster::TestCluster;

use crate::support::TestContext;

fn cluster() -> TestCluster {
    TestCluster::start().unwrap_or_else(|error| {
        panic!("these tests need PostgreSQL and it could not start: {error}")
    })
}

fn database(cluster: &TestCluster) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(cluster.new_database())
        .unwrap()
}

const PROGRAM: &str = r#"
name: team
runtime: yaml
config:
  token:
    type: string
    secret: true
resources:
  pet:
    type: random:RandomPet
  thing:
    type: fake:Resource
    properties:
      name: ${pet.id}
      token: ${token}
outputs:
  name: ${pet.id}
"#;

#[test]
fn the_whole_cli_works_on_a_postgres_backend() {
    let cluster = cluster();
    let url = database(&cluster);
    let context = TestContext::new();
    context.write_program(PROGRAM);
    let login = context.cairn(&["login", &url]).success();
    assert!(
        login.stdout.contains("Logged in to postgres://"),
        "{}",
        login.stdout
    );
    assert_eq!(
        context.cairn(&["whoami"]).success().stdout.trim(),
        "postgres"
    );
    context.cairn(&["stack", "init", "dev"]).success();
    context
        .cairn(&["config", "set", "--secret", "token", "pg-s3cret"])
        .success();
    context.cairn(&["up", "--yes"]).success();
    let preview = context.cairn(&["preview"]).success();
    assert!(preview.stdout.contains("3 unchanged"), "{}", preview.stdout);
    let listed = context.cairn(&["stack", "ls", "--json"]).success();
    assert!(listed.stdout.contains("\"dev\""), "{}", listed.stdout);
    let history = context.cairn(&["stack", "history", "--json"]).success();
    assert!(history.stdout.contains("succeeded"), "{}", history.stdout);
    context
        .cairn(&["stack", "tag", "set", "team", "infra"])
        .success();
    assert_eq!(
        context
            .cairn(&["stack", "tag", "get", "team"])
            .success()
            .stdout
            .trim(),
        "infra"
    );
    // Secrets are sealed in the database too.
    let export = context.cairn(&["stack", "export"]).success();
    assert!(!export.stdout.contains("pg-s3cret"));
    context.cairn(&["destroy", "--yes"]).success();
    context.cairn(&["stack", "rm", "dev", "--yes"]).success();
    assert!(
        !context
            .cairn(&["stack", "ls"])
            .success()
            .stdout
            .contains("dev")
    );
}

const SLOW: &str = "name: shared\nruntime: yaml\nresources:\n  slow:\n    type: fake:Resource\n    properties:\n      latencyMs: 2500\n";

/// The README's `cairn stack init team/dev`: two parts are `org/stack`, as in Pulumi.
#[test]
fn a_two_part_stack_name_is_an_organization_and_a_stack() {
    let cluster = cluster();
    let url = database(&cluster);
    let context = TestContext::new();
    context.write_program(
        "name: team\nruntime: yaml\nresources:\n  thing:\n    type: fake:Resource\noutputs:\n  org: ${pulumi.organization}\n",
    );
    context.cairn(&["login", &url]).success();
    context.cairn(&["stack", "init", "team/dev"]).success();
    let listed: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["stack", "ls", "--all", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(listed[0]["name"], "team/team/dev", "{listed}");
    assert_eq!(listed[0]["current"], true, "{listed}");
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource_names(), ["thing"]);
    let org = context.cairn(&["stack", "output", "org"]).success();
    assert_eq!(org.stdout.trim(), "team");
    // Another organization's stack of the same name is another stack, and is listed apart.
    context.cairn(&["stack", "init", "other/dev"]).success();
    assert!(context.resource_names().is_empty());
    let listed: serde_json::Value =
        serde_json::from_str(&context.cairn(&["stack", "ls", "--json"]).success().stdout).unwrap();
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|stack| stack["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["other/dev", "team/dev"]);
}

#[test]
fn of_two_machines_updating_one_stack_exactly_one_runs() {
    let cluster = cluster();
    let url = database(&cluster);
    let machine_a = TestContext::with_program_on(SLOW, &url);
    let machine_b = TestContext::new();
    machine_b.write_program(SLOW);
    machine_b.cairn(&["login", &url]).success();
    machine_b.cairn(&["stack", "select", "dev"]).success();

    let first = machine_a
        .command(&["up", "--yes", "--skip-preview"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = machine_b
        .command(&["up", "--yes", "--skip-preview"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let succeeded = outputs
        .iter()
        .filter(|output| output.status.success())
        .count();
    assert_eq!(succeeded, 1, "{outputs:?}");
    let loser = outputs
        .iter()
        .find(|output| !output.status.success())
        .unwrap();
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(stderr.contains("is locked by `cairn up"), "{stderr}");
    assert_eq!(machine_b.resources().len(), 1);
}

/// (URN → live IDs) according to the fake provider's ledger.
fn live_by_urn(ledger: &Path) -> BTreeMap<String, Vec<String>> {
    let mut live: BTreeMap<String, bool> = BTreeMap::new();
    let mut urn_of: BTreeMap<String, String> = BTreeMap::new();
    for line in std::fs::read_to_string(ledger).unwrap_or_default().lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let id = entry["id"].as_str().unwrap().to_owned();
        if entry["op"] == "create" {
            urn_of.insert(id.clone(), entry["urn"].as_str().unwrap().to_owned());
        }
        live.insert(id, entry["op"] != "delete");
    }
    let mut by_urn: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, is_live) in live {
        if is_live && let Some(urn) = urn_of.get(&id) {
            by_urn.entry(urn.clone()).or_default().push(id);
        }
    }
    by_urn
}

#[test]
fn a_killed_update_on_postgres_is_recovered_with_cancel_and_clear_pending() {
    let cluster = cluster();
    let url = database(&cluster);
    let mut program = String::from("name: crashy\nruntime: yaml\nresources:\n");
    for index in 0..40 {
        program.push_str(&format!(
            "  r{index}:\n    type: fake:Resource\n    properties:\n      latencyMs: 150\n"
        ));
    }
    let context = TestContext::with_program_on(&program, &url);
    let ledger = context.root.path().join("ledger.jsonl");
    let mut up = context
        .command(&["up", "--yes", "--skip-preview", "--parallel", "4"])
        .env("CAIRN_FAKE_LEDGER", &ledger)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some resources exist and others are in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while live_by_urn(&ledger).len() < 6 {
        assert!(Instant::now() < deadline, "the update never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    up.kill().unwrap();
    up.wait().unwrap();

    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    let locked = context.cairn_with(&["up", "--yes"], &env).expect_code(1);
    assert!(locked.stderr.contains("is locked by"), "{}", locked.stderr);
    // Its process ran on this host and is gone: said at once, not after heartbeats go stale.
    assert!(
        locked.stderr.contains("that process is gone"),
        "{}",
        locked.stderr
    );
    context.cairn_with(&["cancel", "--yes"], &env).success();
    context
        .cairn_with(&["refresh", "--clear-pending", "--yes"], &env)
        .success();
    context.cairn_with(&["up", "--yes"], &env).success();

    // Every resource exists exactly once, and the state holds exactly those.
    let live = live_by_urn(&ledger);
    assert_eq!(live.len(), 40);
    assert!(live.values().all(|ids| ids.len() == 1), "{live:?}");
    let resources = context.resources();
    assert_eq!(resources.len(), 40);
    for resource in resources {
        let urn = resource["urn"].as_str().unwrap();
        assert_eq!(live[urn], vec![resource["id"].as_str().unwrap().to_owned()]);
    }
    let history = context.cairn(&["stack", "history", "--json"]).success();
    assert!(history.stdout.contains("cancelled"), "{}", history.stdout);
}

const DB_PASSWORD: &str = "pg-pass-4e1b7c";

/// `cairn login` with a password in the URL: the credentials file is its owner's alone (even one
/// an older Cairn left readable by all), and no command prints the password.
#[test]
fn login_keeps_a_url_password_private() {
    use std::os::unix::fs::PermissionsExt;

    let cluster = cluster();
    // The test cluster trusts every local connection, so any password is accepted.
    let url =
        database(&cluster).replacen("://postgres@", &format!("://postgres:{DB_PASSWORD}@"), 1);
    assert!(url.contains(DB_PASSWORD), "{url}");
    let context = TestContext::new();
    let credentials = context.home().join("credentials.json");
    std::fs::write(&credentials, "{}\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();

    let login = context.cairn(&["login", &url]).success();
    assert!(
        login
            .stdout
            .contains("Logged in to postgres://postgres:***@"),
        "{}",
        login.stdout
    );
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&credentials), 0o600);
    // The file keeps the URL whole: later commands connect with it.
    let stored = std::fs::read_to_string(&credentials).unwrap();
    assert!(stored.contains(DB_PASSWORD), "{stored}");
    let whoami = context.cairn(&["whoami"]).success();
    assert_eq!(whoami.stdout.trim(), "postgres");
    let whoami_json = context.cairn(&["whoami", "--json"]).success();
    assert!(
        whoami_json.stdout.contains("postgres:***@"),
        "{}",
        whoami_json.stdout
    );
    let logout = context.cairn(&["logout"]).success();
    assert!(
        logout
            .stdout
            .contains("Logged out of postgres://postgres:***@"),
        "{}",
        logout.stdout
    );
    assert_eq!(mode(&credentials), 0o600);
    // No temporary file is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(context.home())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for run in [&login, &whoami, &whoami_json, &logout] {
        assert!(
            !run.stdout.contains(DB_PASSWORD) && !run.stderr.contains(DB_PASSWORD),
            "{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// A server that cannot be reached: the error names the URL with its password hidden, whole
/// even when the password holds a raw `@`.
#[test]
fn a_failed_login_does_not_print_the_password() {
    let context = TestContext::new();
    // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    let url = format!("postgres://postgres:at@{DB_PASSWORD}@127.0.0.1:1/cairn");
    let login = context.cairn(&["login", &url]);
    assert_ne!(login.code, 0);
    assert!(
        login
            .stderr
            .contains("postgres://postgres:***@127.0.0.1:1/cairn"),
        "{}",
        login.stderr
    );
    assert!(
        !login.stdout.contains(DB_PASSWORD) && !login.stderr.contains(DB_PASSWORD),
        "{}\n{}",
        login.stdout,
        login.stderr
    );
    assert!(!context.home().join("credentials.json").exists());
}

/// `cairn app`, `pool` and `node` on `postgres://`: the same commands as on `file://`, two
/// machines seeing one app, and a secret value stored only sealed.
#[test]
fn apps_pools_and_nodes_on_a_postgres_backend() {
    let cluster = cluster();
    let url = database(&cluster);
    let first = TestContext::new();
    let second = TestContext::new();
    for machine in [&first, &second] {
        machine.cairn(&["login", &url]).success();
    }
    first.cairn(&["pool", "add", "eu", "--default"]).success();
    first
        .cairn(&["node", "add", "tcp://10.0.0.2:2375", "--pool", "eu"])
        .success();
    first
        .cairn(&["app", "create", "shop", "--process", "web=./server"])
        .success();
    second
        .cairn(&[
            "app",
            "env",
            "set",
            "shop",
            "TOKEN=pg-secret-value",
            "--secret",
        ])
        .success();
    first
        .cairn(&["app", "env", "set", "shop", "MODE=prod"])
        .success();
    let info = second.cairn(&["app", "info", "shop", "--json"]).success();
    let info: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(info["pool"], "eu");
    assert_eq!(info["release"], 2);
    assert_eq!(
        info["env"],
        serde_json::json!({"MODE": "prod", "TOKEN": "[secret]"})
    );
    let releases = first
        .cairn(&["app", "releases", "shop", "--json"])
        .success();
    let releases: serde_json::Value = serde_json::from_str(&releases.stdout).unwrap();
    let reasons: Vec<&str> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|release| release["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["env set TOKEN", "env set MODE"]);
    let refused = first.cairn(&["pool", "rm", "eu"]).expect_code(2);
    assert_eq!(
        refused.stderr,
        "error: pool `eu` is in use: node `tcp://10.0.0.2:2375` is in it\n"
    );

    // Every text column of every app table, searched for the plaintext.
    let stored: Vec<String> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            let mut stored = Vec::new();
            for query in [
                "SELECT document FROM cairn_apps",
                "SELECT release FROM cairn_app_releases",
            ] {
                for row in client.query(query, &[]).await.unwrap() {
                    stored.push(row.get::<_, String>(0));
                }
            }
            stored
        });
    assert_eq!(stored.len(), 3, "one app and two releases");
    assert!(stored.iter().any(|text| text.contains("prod")));
    for text in &stored {
        assert!(
            !text.contains("pg-secret-value"),
            "stored in plaintext: {text}"
        );
    }

    first.cairn(&["app", "remove", "shop", "--yes"]).success();
    let apps = second.cairn(&["app", "ls", "--json"]).success();
    assert_eq!(apps.stdout.trim(), "[]");
}
