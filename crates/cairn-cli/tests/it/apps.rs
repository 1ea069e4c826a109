//! `cairn app`, `cairn pool` and `cairn node` on a `file://` backend: a whole session as a user
//! reads it (an insta snapshot, timestamps normalised), bad input refused with exit 2 and
//! nothing changed, and a secret environment value that reaches neither a file under the
//! backend's directory nor any output. The same commands on `postgres://` are in
//! `postgres.rs`.

use crate::support::{TestContext, files_under};

const SECRET: &str = "hunter2-very-secret";

/// Runs each command and renders the session: command, exit code, stdout, stderr. No output
/// may hold `SECRET`; the commands that give it show it as `[SECRET]`.
fn session(context: &TestContext, commands: &[&[&str]]) -> String {
    let mut text = String::new();
    for args in commands {
        let run = context.cairn(args);
        for output in [&run.stdout, &run.stderr] {
            assert!(!output.contains(SECRET), "a secret was printed:\n{output}");
        }
        text.push_str(&format!(
            "$ cairn {}\nexit code: {}\n--- stdout ---\n{}--- stderr ---\n{}\n",
            args.join(" ").replace(SECRET, "[SECRET]"),
            run.code,
            run.stdout,
            run.stderr
        ));
    }
    text.replace(&context.root.path().display().to_string(), "[tmp]")
}

macro_rules! assert_session {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[time]"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

fn json_of(context: &TestContext, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let run = context.cairn(&args).success();
    serde_json::from_str(&run.stdout).expect("--json prints JSON")
}

#[test]
fn an_app_from_creation_to_removal() {
    let context = TestContext::new();
    let secret = format!("TOKEN={SECRET}");
    let text = session(
        &context,
        &[
            &[
                "app",
                "create",
                "shop",
                "--process",
                "web=./server --port $PORT",
                "--process",
                "worker=./work",
            ],
            &["app", "ls"],
            &["app", "env", "set", "shop", "GREETING=hello", "MODE=prod"],
            &["app", "env", "set", "shop", &secret, "--secret"],
            &["app", "env", "unset", "shop", "MODE"],
            &["app", "info", "shop"],
            &["app", "info", "shop", "--json"],
            &["app", "releases", "shop"],
            &["app", "remove", "shop", "--yes"],
            &["app", "ls", "--json"],
        ],
    );
    assert_session!("app_lifecycle", text);
}

#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let context = TestContext::new();
    context.cairn(&["app", "create", "shop"]).success();
    let text = session(
        &context,
        &[
            &["app", "create", "Shop"],
            &["app", "create", "../etc"],
            &["app", "create", "shop"],
            &["app", "create", "blog", "--process", "web"],
            &["app", "create", "blog", "--process", "a b=x"],
            &["app", "create", "blog", "--pool", "eu"],
            &["app", "info", "nope"],
            &["app", "env", "set", "shop", "1BAD=x"],
            &["app", "env", "set", "shop", "PORT=80"],
            &["app", "env", "set", "shop", "NOVALUE"],
            &["app", "env", "set", "nope", "A=1"],
            &["app", "env", "set", "shop", "A=1", "A=2"],
            &["app", "env", "unset", "shop", "NEVER_SET"],
            &["app", "create", "blog", "--process", "web=run\nexit"],
            &["app", "remove", "shop"],
            &["node", "add", "/var/run/docker.sock", "--pool", "default"],
            &["node", "add", "tcp://10.0.0.1:2375", "--pool", "nope"],
            &["pool", "add", "Bad Pool"],
        ],
    );
    assert_session!("app_bad_input", text);
    // Nothing was changed by any of them.
    let apps = json_of(&context, &["app", "ls"]);
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    assert_eq!(apps[0]["name"], "shop");
    assert_eq!(apps[0]["release"], serde_json::Value::Null);
    assert_eq!(
        json_of(&context, &["app", "releases", "shop"]),
        serde_json::json!([])
    );
    assert_eq!(json_of(&context, &["pool", "ls"]), serde_json::json!([]));
    assert_eq!(json_of(&context, &["node", "ls"]), serde_json::json!([]));
}

#[test]
fn a_secret_reaches_no_file_and_no_output() {
    let context = TestContext::new();
    context.cairn(&["app", "create", "vault"]).success();
    let secret = format!("TOKEN={SECRET}");
    let mut outputs = Vec::new();
    for args in [
        vec!["app", "env", "set", "vault", &secret, "--secret"],
        vec!["app", "env", "set", "vault", "PLAIN=visible"],
        vec!["app", "info", "vault"],
        vec!["app", "info", "vault", "--json"],
        vec!["app", "ls", "--json"],
        vec!["app", "releases", "vault"],
        vec!["app", "releases", "vault", "--json"],
    ] {
        let run = context.cairn(&args).success();
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    for output in &outputs {
        assert!(!output.contains(SECRET), "a secret was printed:\n{output}");
    }
    let info = json_of(&context, &["app", "info", "vault"]);
    assert_eq!(info["env"]["TOKEN"], "[secret]");
    assert_eq!(info["env"]["PLAIN"], "visible");
    // The plain value is stored, so the search below would find a secret stored the same way.
    let files = files_under(&context.home());
    let stored: Vec<String> = files
        .iter()
        .map(|path| String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned())
        .collect();
    assert!(stored.iter().any(|text| text.contains("visible")));
    for (path, text) in files.iter().zip(&stored) {
        assert!(
            !text.contains(SECRET),
            "{} holds the secret in plaintext",
            path.display()
        );
    }

    // Another passphrase cannot add to the app's secrets, and changes nothing.
    let run = context
        .command(&["app", "env", "set", "vault", "OTHER=x", "--secret"])
        .env("CAIRN_CONFIG_PASSPHRASE", "not-the-passphrase")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        stderr,
        "error: incorrect passphrase: the app's secrets cannot be decrypted with it\n"
    );
    let releases = json_of(&context, &["app", "releases", "vault"]);
    assert_eq!(releases.as_array().map(Vec::len), Some(2));
}

#[test]
fn pools_and_nodes() {
    let context = TestContext::new();
    let text = session(
        &context,
        &[
            &["pool", "ls"],
            &["pool", "add", "eu", "--default"],
            &["pool", "add", "us", "--provisioner", "swarm"],
            &["pool", "default", "us"],
            &["pool", "default", "eu"],
            &["pool", "default", "nope"],
            &["pool", "ls"],
            &[
                "node",
                "add",
                "unix:///var/run/docker.sock",
                "--pool",
                "eu",
                "--meta",
                "zone=a",
            ],
            &["node", "add", "tcp://10.0.0.2:2375", "--pool", "us"],
            &[
                "node",
                "add",
                "tcp://10.0.0.3:2375",
                "--pool",
                "us",
                "--meta",
                "sp ace=1",
            ],
            &[
                "node",
                "update",
                "tcp://10.0.0.2:2375",
                "--meta",
                "b=1",
                "--remove-meta",
                "b",
            ],
            &[
                "node",
                "update",
                "tcp://10.0.0.2:2375",
                "--pool",
                "eu",
                "--disable",
                "--meta",
                "disk=ssd",
            ],
            &["node", "ls"],
            &["app", "create", "shop"],
            &["pool", "rm", "eu"],
            &["node", "rm", "tcp://10.0.0.2:2375"],
            &["pool", "rm", "us"],
            &["pool", "ls", "--json"],
            &["node", "ls", "--json"],
        ],
    );
    assert_session!("pools_and_nodes", text);
}

#[test]
fn processes_come_from_a_procfile() {
    let context = TestContext::new();
    std::fs::write(
        context.project().join("Procfile"),
        "# served on $PORT\nweb: ./server\nworker: ./work --queue default\n",
    )
    .unwrap();
    context
        .cairn(&["app", "create", "shop", "--procfile", "Procfile"])
        .success();
    let info = json_of(&context, &["app", "info", "shop"]);
    assert_eq!(
        info["processes"],
        serde_json::json!([
            {"name": "web", "command": "./server"},
            {"name": "worker", "command": "./work --queue default"},
        ])
    );
    std::fs::write(context.project().join("Procfile"), "web: a\nweb b\n").unwrap();
    let run = context
        .cairn(&["app", "create", "blog", "--procfile", "Procfile"])
        .expect_code(2);
    assert_eq!(
        run.stderr
            .replace(&context.project().display().to_string(), "[project]"),
        "error: [project]/Procfile:2: expected `name: command`, found `web b`\n"
    );
}

/// Commands changing one app at once take turns on its lock: each makes its own release, none
/// is lost or refused, and the history is numbered without a gap.
#[test]
fn concurrent_env_changes_each_make_a_release() {
    let context = TestContext::new();
    context.cairn(&["app", "create", "busy"]).success();
    let assignments: Vec<String> = (0..6).map(|index| format!("VAR_{index}={index}")).collect();
    let children: Vec<_> = assignments
        .iter()
        .map(|assignment| context.spawn(&["app", "env", "set", "busy", assignment]))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let releases = json_of(&context, &["app", "releases", "busy"]);
    let versions: Vec<u64> = releases
        .as_array()
        .unwrap()
        .iter()
        .map(|release| release["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let info = json_of(&context, &["app", "info", "busy"]);
    let expected: serde_json::Map<String, serde_json::Value> = (0..6)
        .map(|index| (format!("VAR_{index}"), serde_json::json!(index.to_string())))
        .collect();
    assert_eq!(info["env"], serde_json::Value::Object(expected));
}

/// A lock left by a writer that is stuck or gone (here held through the store, as a killed
/// `cairn` leaves it) is ended by `app unlock`: the next change goes through, and the old
/// holder can write nothing more.
#[test]
fn unlock_ends_a_stuck_writers_hold() {
    use cairn_app::AppStore;
    let context = TestContext::new();
    context.cairn(&["app", "create", "stuck"]).success();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = cairn_backend_file::FileAppStore::open(&context.home()).unwrap();
    let lease = std::time::Duration::from_secs(3600);
    let stuck = runtime
        .block_on(store.lock_app("stuck", "a frozen deploy", lease))
        .unwrap();
    let text = session(
        &context,
        &[
            &["app", "unlock", "stuck"],
            &["app", "env", "set", "stuck", "A=1"],
            &["app", "unlock", "stuck"],
        ],
    );
    assert_eq!(
        text,
        "$ cairn app unlock stuck\nexit code: 0\n--- stdout ---\nunlocked app `stuck` (held by a frozen deploy)\n--- stderr ---\n\n\
         $ cairn app env set stuck A=1\nexit code: 0\n--- stdout ---\napp `stuck`: release 1 (env set A)\n--- stderr ---\n\n\
         $ cairn app unlock stuck\nexit code: 0\n--- stdout ---\napp `stuck` was not locked\n--- stderr ---\n\n"
    );
    let late = cairn_app::NewRelease {
        image: None,
        env: Default::default(),
        processes: Vec::new(),
        encryption_salt: None,
        reason: "late".to_owned(),
    };
    assert!(matches!(
        runtime.block_on(store.append_release(&stuck, late)),
        Err(cairn_app::AppError::LockLost(_))
    ));
}

/// `app env set` killed (SIGKILL) at spread-out instants, over and over: every record stays
/// whole and the history consistent (versions without a gap, the app at its last release with
/// that release's environment), whatever instant each kill hit.
#[test]
fn env_changes_killed_at_any_instant_leave_whole_records() {
    let context = TestContext::new();
    context.cairn(&["app", "create", "crashy"]).success();
    for round in 0..24u64 {
        let assignment = format!("ROUND_{round}={round}");
        let mut child = context.spawn(&["app", "env", "set", "crashy", &assignment]);
        // From at once to well after the change: startup, lock, write, rename, unlock.
        std::thread::sleep(std::time::Duration::from_millis(round * 3 % 70));
        child.kill().unwrap();
        child.wait().unwrap();
        // A killed writer's lock is ended here, as `app unlock` is for users.
        context.cairn(&["app", "unlock", "crashy"]).success();
    }
    let releases = json_of(&context, &["app", "releases", "crashy"]);
    let releases = releases.as_array().unwrap();
    let versions: Vec<u64> = releases
        .iter()
        .map(|release| release["version"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=releases.len() as u64).collect();
    assert_eq!(versions, expected);
    let info = json_of(&context, &["app", "info", "crashy"]);
    match releases.last() {
        Some(last) => {
            assert_eq!(info["release"], last["version"]);
            assert_eq!(info["env"], last["env"]);
        }
        None => assert_eq!(info["release"], serde_json::Value::Null),
    }
    // The store still takes changes.
    context
        .cairn(&["app", "env", "set", "crashy", "AFTER=1"])
        .success();
}

/// Units recorded by a provisioner (here written through the store, as one will) and their
/// statuses, as `app units`, `app info` and `app ls --json` show them.
#[test]
fn units_and_their_statuses_are_shown() {
    use cairn_app::{AppStore, Unit, UnitStatus};
    let context = TestContext::new();
    context
        .cairn(&[
            "app",
            "create",
            "shop",
            "--process",
            "web=./server",
            "--process",
            "worker=./work",
        ])
        .success();
    let text = session(&context, &[&["app", "units", "shop"]]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = cairn_backend_file::FileAppStore::open(&context.home()).unwrap();
    runtime.block_on(async {
        let lock = store
            .lock_app("shop", "provisioner", std::time::Duration::from_secs(60))
            .await
            .unwrap();
        for (id, process) in [("c0ffee01", "web"), ("c0ffee02", "worker")] {
            let unit = Unit {
                id: id.to_owned(),
                name: format!("shop-{process}-1"),
                app: "shop".to_owned(),
                process: process.to_owned(),
                node: Some("unix:///var/run/docker.sock".to_owned()),
                address: (process == "web").then(|| "172.17.0.5:8888".to_owned()),
                status: UnitStatus::Created,
            };
            store.add_unit(&lock, unit).await.unwrap();
        }
        store.unlock_app(&lock).await.unwrap();
        for status in [
            UnitStatus::Building,
            UnitStatus::Starting,
            UnitStatus::Started,
        ] {
            store
                .set_unit_status("shop", "c0ffee01", status)
                .await
                .unwrap();
        }
        for status in [UnitStatus::Starting, UnitStatus::Error] {
            store
                .set_unit_status("shop", "c0ffee02", status)
                .await
                .unwrap();
        }
    });
    let text = text
        + &session(
            &context,
            &[
                &["app", "units", "shop"],
                &["app", "units", "shop", "--json"],
                &["app", "info", "shop"],
                &["app", "units", "nope"],
            ],
        );
    assert_session!("app_units", text);
    let listed = json_of(&context, &["app", "ls"]);
    let statuses: Vec<&str> = listed[0]["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|unit| unit["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["started", "error"]);
}
