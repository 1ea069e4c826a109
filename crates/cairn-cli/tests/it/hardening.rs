//! Regressions from running Cairn as a careless or hostile user would: names that reach outside
//! the backend, `cancel` of an update that is still alive, `stack rm` under a running update.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{TestContext, files_under, wait_until};

/// Starts `up` of `SLOW_THEN_MORE` and waits until it holds the stack's lock.
fn start_slow_update(context: &TestContext) -> (std::process::Child, PathBuf) {
    let up = context.spawn(&["up", "--yes", "--skip-preview"]);
    let lock = context.home().join(".pulumi/locks/fenced/dev.json");
    wait_until("the update taking the lock", || lock.exists());
    (up, lock)
}

#[test]
fn stack_names_that_escape_the_backend_are_refused_and_nothing_is_removed() {
    let context = TestContext::with_program(
        "name: victim\nruntime: yaml\nresources:\n  thing:\n    type: fake:Resource\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let before = files_under(&context.home());
    for name in [
        "..",
        "../..",
        ".",
        "../../..",
        "organization/../dev",
        "a/b/c/d",
    ] {
        for args in [
            vec!["stack", "rm", name, "--yes", "--force"],
            vec!["stack", "init", name],
            vec!["stack", "select", name],
            vec!["up", "--yes", "--stack", name],
            vec!["cancel", "--yes", "--stack", name],
        ] {
            let run = context.cairn(&args).expect_code(2);
            assert!(
                run.stderr.contains("not a valid") || run.stderr.contains("not a stack name"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    assert_eq!(
        files_under(&context.home()),
        before,
        "a refused name changed files"
    );
    assert_eq!(context.resource_names(), ["thing"]);
    context.cairn(&["preview"]).success();
}

#[test]
fn a_project_name_that_escapes_the_backend_is_refused() {
    let context = TestContext::new();
    for name in ["..", "\"../x\"", "\"a/b\""] {
        context.write_program(&format!("name: {name}\nruntime: yaml\n"));
        let run = context.cairn(&["stack", "init", "dev"]).expect_code(2);
        assert!(
            run.stderr.contains("project name"),
            "{name}: {}",
            run.stderr
        );
    }
    assert!(
        !context.home().join(".pulumi/stacks/dev.json").exists()
            && !context.root.path().join("x").exists()
    );
}

#[test]
fn two_part_stack_names_are_organization_and_stack() {
    let context = TestContext::with_program("name: web\nruntime: yaml\n");
    // A directory backend has one organization, as Pulumi's self-managed backends do.
    let run = context
        .cairn(&["stack", "init", "team/prod"])
        .expect_code(2);
    assert!(
        run.stderr.contains("must be `organization`"),
        "{}",
        run.stderr
    );
    context
        .cairn(&["stack", "init", "organization/prod"])
        .success();
    let listed = context.cairn(&["stack", "ls"]).success();
    assert!(listed.stdout.contains("prod"), "{}", listed.stdout);
    context.cairn(&["up", "--yes"]).success();
    assert!(context.home().join(".pulumi/stacks/web/prod.json").exists());
}

const SLOW_THEN_MORE: &str = "name: fenced\nruntime: yaml\nresources:\n  slow:\n    type: fake:Resource\n    properties:\n      latencyMs: 6000\n  later:\n    type: fake:Resource\n    options:\n      dependsOn: [\"${slow}\"]\n";

#[test]
fn an_update_cancelled_while_alive_writes_nothing_more() {
    let context = TestContext::with_program(SLOW_THEN_MORE);
    let (first, lock) = start_slow_update(&context);
    // Let the first update journal the start of `slow`.
    std::thread::sleep(Duration::from_millis(500));
    // On this host, cancel waits for the process to stop (it starts no new step), so what it
    // leaves pending is final before anyone settles it.
    let cancelled = context.cairn(&["cancel", "--yes"]).success();
    assert!(
        cancelled.stdout.contains("has stopped"),
        "{}",
        cancelled.stdout
    );
    let at_cancel = context.export();

    // Nothing else may run while what it began is unsettled: a new `up` would make a second
    // copy of `slow`, which settling could no longer tell apart from the first.
    let refused = context
        .cairn(&["up", "--yes", "--skip-preview"])
        .expect_code(1);
    assert!(
        refused.stderr.contains("did not finish") && refused.stderr.contains("::slow"),
        "{}",
        refused.stderr
    );

    let output = first.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no longer holds the lock"), "{stderr}");
    // It wrote nothing after the cancel, and started nothing: `later` never ran.
    assert_eq!(context.export(), at_cancel);
    let pending = at_cancel["deployment"]["pending_operations"]
        .as_array()
        .unwrap();
    assert_eq!(pending.len(), 1, "{at_cancel}");
    assert!(
        pending[0]["resource"]["urn"]
            .as_str()
            .unwrap()
            .ends_with("::slow")
    );
    assert!(!lock.exists());
    // The fake without a ledger cannot look up what it made, so settling drops the create
    // and the next update makes both.
    context
        .cairn(&["refresh", "--clear-pending", "--yes"])
        .success();
    assert!(context.resource_names().is_empty());
    context.cairn(&["up", "--yes", "--skip-preview"]).success();
    assert_eq!(context.resource_names(), ["slow", "later"]);
}

#[test]
fn stack_rm_is_refused_while_an_update_runs() {
    let context = TestContext::with_program(SLOW_THEN_MORE);
    let (first, _lock) = start_slow_update(&context);
    let refused = context
        .cairn(&["stack", "rm", "dev", "--yes", "--force"])
        .expect_code(1);
    assert!(
        refused.stderr.contains("is locked by"),
        "{}",
        refused.stderr
    );
    let output = first.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(context.resource_names(), ["slow", "later"]);
    let history: serde_json::Value = serde_json::from_str(
        &context
            .cairn(&["stack", "history", "--json"])
            .success()
            .stdout,
    )
    .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    // Once the update is done, removal is allowed again (and refused without --force).
    context
        .cairn(&["stack", "rm", "dev", "--yes"])
        .expect_code(1);
    context
        .cairn(&["stack", "rm", "dev", "--yes", "--force"])
        .success();
}

const SLOW_COMMAND: &str = "name: cmd\nruntime: yaml\nresources:\n  slow:\n    type: command:local:Command\n    properties:\n      create: \"sleep 3; echo done\"\n";

/// Starts `up` of `SLOW_COMMAND`, kills it (-9) while the command runs, and cancels its lock.
fn kill_during_the_command(context: &TestContext) {
    let mut up = context
        .command(&["up", "--yes", "--skip-preview"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = context.home().join(".pulumi/stacks/cmd/dev.journal");
    wait_until("the command starting", || {
        std::fs::read_to_string(&journal).is_ok_and(|text| text.contains("command:local:Command"))
    });
    up.kill().unwrap();
    up.wait().unwrap();
    context.cairn(&["cancel", "--yes"]).success();
    let export = context.export();
    assert_eq!(
        export["deployment"]["pending_operations"][0]["type"], "creating",
        "{export}"
    );
}

fn stdout_of_slow(context: &TestContext) -> serde_json::Value {
    context.resource("slow")["outputs"]["stdout"].clone()
}

#[test]
fn clear_pending_drops_an_interrupted_command_so_it_runs_again() {
    let context = TestContext::with_program(SLOW_COMMAND);
    kill_during_the_command(&context);
    let refreshed = context
        .cairn(&["refresh", "--clear-pending", "--yes"])
        .success();
    assert!(
        refreshed
            .stderr
            .contains("cannot tell whether the interrupted create"),
        "{}",
        refreshed.stderr
    );
    assert!(
        context.resource_names().is_empty(),
        "{:?}",
        context.resource_names()
    );
    assert!(
        context.export()["deployment"]["pending_operations"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    context.cairn(&["up", "--yes", "--skip-preview"]).success();
    assert_eq!(stdout_of_slow(&context), "done");
}

#[test]
fn an_update_is_refused_until_an_interrupted_command_is_settled() {
    let context = TestContext::with_program(SLOW_COMMAND);
    kill_during_the_command(&context);
    let refused = context
        .cairn(&["up", "--yes", "--skip-preview"])
        .expect_code(1);
    assert!(
        refused
            .stderr
            .contains("creating urn:pulumi:dev::cmd::command:local:Command::slow")
            && refused.stderr.contains("refresh --clear-pending"),
        "{}",
        refused.stderr
    );
    context
        .cairn(&["destroy", "--yes", "--skip-preview"])
        .expect_code(1);
    // A preview only looks, and says what to do.
    let preview = context.cairn(&["preview"]).success();
    assert!(
        preview.stderr.contains("did not finish"),
        "{}",
        preview.stderr
    );
    assert!(context.resource_names().is_empty());
}

#[test]
fn a_target_that_uses_an_untargeted_resource_not_yet_created_is_refused() {
    let context = TestContext::with_program(
        "name: targets\nruntime: yaml\nresources:\n  a:\n    type: fake:Resource\n  b:\n    type: fake:Resource\n    properties:\n      label: ${a.id}\n",
    );
    let b = "urn:pulumi:dev::targets::fake:index:Resource::b";
    let a = "urn:pulumi:dev::targets::fake:index:Resource::a";
    let refused = context
        .cairn(&["up", "--yes", "--target", b])
        .expect_code(1);
    assert!(
        refused.stderr.contains(&format!("uses outputs of `{a}`"))
            && refused.stderr.contains("--target"),
        "{}",
        refused.stderr
    );
    assert!(context.resource_names().is_empty());
    assert!(!context.export().to_string().contains("04da6b54"));
    // With both targeted, B gets A's real ID.
    context
        .cairn(&["up", "--yes", "--target", a, "--target", b])
        .success();
    let a_id = context.resource("a")["id"].clone();
    assert_eq!(context.resource("b")["outputs"]["label"], a_id);
}

#[test]
fn a_bad_reference_in_outputs_is_an_error_at_its_place() {
    let context = TestContext::with_program(
        "name: outs\nruntime: yaml\nresources:\n  r:\n    type: fake:Resource\n    properties:\n      name: x\noutputs:\n  good: ${r.name}\n  bad: ${r.nmae}\n",
    );
    for args in [vec!["up", "--yes"], vec!["up", "--yes", "--skip-preview"]] {
        let run = context.cairn(&args).expect_code(2);
        let shown = format!("{}{}", run.stdout, run.stderr);
        assert!(
            shown.contains("Cairn.yaml:10:8") && shown.contains("no property `nmae`"),
            "{args:?}: {shown}"
        );
    }
}

#[test]
fn a_missing_stack_file_gets_its_salt_back_from_the_state() {
    let context = TestContext::with_program(
        "name: salted\nruntime: yaml\nresources:\n  pw:\n    type: random:RandomPassword\n    properties:\n      length: 20\noutputs:\n  pw: ${pw.result}\n",
    );
    context.cairn(&["up", "--yes"]).success();
    let shown = context
        .cairn(&["stack", "output", "pw", "--show-secrets"])
        .success()
        .stdout;
    let stack_file = context.project().join("Cairn.dev.yaml");
    let salt = std::fs::read_to_string(&stack_file).unwrap();
    // A fresh clone on another machine: the stack file is not there.
    std::fs::remove_file(&stack_file).unwrap();
    let run = context.cairn(&["up", "--yes"]).success();
    assert!(
        run.stderr.contains("restored from the state"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&stack_file).unwrap(), salt);
    assert_eq!(
        context
            .cairn(&["stack", "output", "pw", "--show-secrets"])
            .success()
            .stdout,
        shown
    );
}

#[test]
fn empty_config_keys_and_integers_beyond_2_pow_53_are_refused() {
    let context = TestContext::with_program(
        "name: cfg\nruntime: yaml\nconfig:\n  big:\n    type: integer\noutputs:\n  big: ${big}\n",
    );
    let stack_file = context.project().join("Cairn.dev.yaml");
    let before = std::fs::read_to_string(&stack_file).unwrap();
    for key in ["", "cfg:", ":big", ":"] {
        let run = context.cairn(&["config", "set", key, "x"]).expect_code(2);
        assert!(
            run.stderr.contains("is not a configuration key"),
            "{key}: {}",
            run.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(&stack_file).unwrap(), before);
    context
        .cairn(&["config", "set", "big", "9007199254740993"])
        .success();
    let run = context.cairn(&["up", "--yes"]).expect_code(2);
    assert!(run.stderr.contains("2^53"), "{}", run.stderr);
    assert!(context.resource_names().is_empty());
    context
        .cairn(&["config", "set", "big", "9007199254740992"])
        .success();
    context.cairn(&["up", "--yes"]).success();
}

#[test]
fn a_program_that_is_not_utf8_is_bad_input() {
    let context = TestContext::new();
    std::fs::write(
        context.project().join("Cairn.yaml"),
        b"name: bytes\nruntime: yaml\ndescription: \"\xff\xfe\"\n",
    )
    .unwrap();
    let run = context.cairn(&["stack", "init", "dev"]).expect_code(2);
    assert!(run.stderr.contains("not UTF-8"), "{}", run.stderr);
    // Said once, not once per cause.
    assert_eq!(run.stderr.matches("UTF-8").count(), 2, "{}", run.stderr);
}

#[test]
fn an_update_whose_lock_file_is_deleted_stops_writing() {
    let context = TestContext::with_program(SLOW_THEN_MORE);
    let (up, lock) = start_slow_update(&context);
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(&lock).unwrap();
    let output = up.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no longer holds the lock"), "{stderr}");
    // `slow` finished, but its outcome was not written: it is a pending create; `later` never
    // started.
    assert!(context.resource_names().is_empty());
    let export = context.export();
    let pending = export["deployment"]["pending_operations"]
        .as_array()
        .unwrap();
    assert_eq!(pending.len(), 1, "{export}");
    assert!(!lock.exists(), "the lock was recreated");
}

#[test]
fn an_update_without_the_passphrase_stops_before_its_first_step() {
    let context = TestContext::with_program(
        "name: pp\nruntime: yaml\nresources:\n  pw:\n    type: random:RandomPassword\n    properties:\n      length: 12\n",
    );
    let output = context
        .command(&["up", "--yes"])
        .env_remove("CAIRN_CONFIG_PASSPHRASE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CAIRN_CONFIG_PASSPHRASE"), "{stderr}");
    let export = context.export();
    assert!(context.resource_names().is_empty(), "{export}");
    assert!(
        export["deployment"]["pending_operations"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{export}"
    );
    context.cairn(&["up", "--yes"]).success();
}

/// A variable that fails before an independent resource does: the Diagnostics block shows each
/// error once (it used to drop the variable's and show the step's twice).
#[test]
fn diagnostics_show_a_failed_variable_and_a_failed_step_once_each() {
    let context = TestContext::with_program(
        "name: mix\nruntime: yaml\nvariables:\n  bad:\n    fn::join: [\",\", [a, {x: 1}]]\nresources:\n  r:\n    type: fake:Resource\n    properties:\n      failOn: create\n  later:\n    type: fake:Resource\n    options:\n      dependsOn: [\"${r}\"]\n",
    );
    let run = context
        .cairn(&["up", "--yes", "--skip-preview"])
        .expect_code(2);
    let diagnostics = run
        .stdout
        .split("Diagnostics:")
        .nth(1)
        .unwrap_or_else(|| panic!("no diagnostics: {}", run.stdout));
    assert_eq!(
        diagnostics.matches("asked to fail on create").count(),
        1,
        "{diagnostics}"
    );
    assert_eq!(
        diagnostics.matches("cannot join an object").count(),
        1,
        "{diagnostics}"
    );
    // `--json` gives each failure as a value: the step's resource, operation and cause, and
    // the program's own error with no resource.
    let json = context
        .cairn(&["--json", "up", "--yes", "--skip-preview"])
        .expect_code(2);
    let outcome: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let diagnostics = outcome["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 3, "{outcome:#}");
    // What the failed step kept from running: `later`, which depends on it.
    let blocked = diagnostics
        .iter()
        .find(|failure| failure["cause"] == "blocked")
        .unwrap_or_else(|| panic!("no blocked resource: {outcome:#}"));
    assert!(
        blocked["urn"].as_str().unwrap().ends_with("::later"),
        "{blocked}"
    );
    assert!(blocked.get("operation").is_none(), "{blocked}");
    let step = diagnostics
        .iter()
        .find(|failure| failure["urn"].is_string())
        .unwrap();
    assert!(step["urn"].as_str().unwrap().ends_with("::r"), "{step}");
    assert_eq!(step["operation"], "create");
    assert_eq!(step["cause"], "provider");
    let program = diagnostics
        .iter()
        .find(|failure| failure["urn"].is_null())
        .unwrap();
    assert_eq!(program["cause"], "program");
    assert!(
        program["message"]
            .as_str()
            .unwrap()
            .contains("cannot join an object")
    );
}

#[test]
fn rename_and_rm_respect_running_updates_pending_operations_and_other_stacks() {
    let context = TestContext::with_program(SLOW_THEN_MORE);
    let (up, _lock) = start_slow_update(&context);
    let refused = context.cairn(&["stack", "rename", "moved"]).expect_code(1);
    assert!(
        refused.stderr.contains("is locked by"),
        "{}",
        refused.stderr
    );
    std::thread::sleep(Duration::from_millis(500));
    context.cairn(&["cancel", "--yes"]).success();
    up.wait_with_output().unwrap();
    // What the cancelled update began may exist: `rm` counts it as a resource.
    let kept = context.cairn(&["stack", "rm", "--yes"]).expect_code(1);
    assert!(
        kept.stderr.contains("resources or pending operations"),
        "{}",
        kept.stderr
    );
    assert!(context.project().join("Cairn.dev.yaml").exists());

    // Renaming onto a name whose stack file exists would overwrite that stack's settings.
    let other = context.project().join("Cairn.other.yaml");
    std::fs::write(&other, "config:\n  fenced:keep: \"me\"\n").unwrap();
    let clobber = context.cairn(&["stack", "rename", "other"]).expect_code(2);
    assert!(
        clobber.stderr.contains("already exists"),
        "{}",
        clobber.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        "config:\n  fenced:keep: \"me\"\n"
    );
}

/// A failed command whose output the program declares secret: its output never shows, neither
/// in the error nor in the log lines, since a failed create has no outputs to learn it from.
#[test]
fn a_failing_command_never_shows_output_declared_secret() {
    let context = TestContext::with_program(
        "name: failsecret\nruntime: yaml\nresources:\n  cmd:\n    type: command:local:Command\n    properties:\n      create: \"echo token=GENERATED-2002; echo err GENERATED-3003 >&2; exit 1\"\n    options:\n      additionalSecretOutputs: [stdout, stderr]\n",
    );
    let mut shown = String::new();
    for args in [
        vec!["up", "--yes", "--skip-preview"],
        vec!["up", "--yes", "--skip-preview", "--json"],
    ] {
        let run = context.cairn(&args).expect_code(1);
        assert!(run.stdout.contains("exited with code 1"), "{}", run.stdout);
        shown.push_str(&run.stdout);
        shown.push_str(&run.stderr);
    }
    for args in [vec!["logs"], vec!["logs", "--json"]] {
        let run = context.cairn(&args).success();
        shown.push_str(&run.stdout);
    }
    assert!(shown.contains("[secret]"), "{shown}");
    for secret in ["GENERATED-2002", "GENERATED-3003"] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        // The program holds the command's text; everything Cairn wrote is under its home.
        for file in files_under(&context.home()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "{secret} in {}",
                file.display()
            );
        }
    }
}

#[test]
fn files_named_on_the_command_line_are_read_within_bounds() {
    let context = TestContext::with_program("name: inputs\nruntime: yaml\n");
    let started = std::time::Instant::now();
    for args in [
        vec!["stack", "import", "--file", "/dev/zero"],
        vec!["group", "commit", "/dev/zero", "--yes"],
    ] {
        let run = context.cairn(&args).expect_code(2);
        assert!(
            run.stderr.contains("/dev/zero") && run.stderr.contains("character device"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // A pipe (`--file <(...)`) is still read: an export through one imports.
    context.cairn(&["up", "--yes"]).success();
    let export = context.cairn(&["stack", "export"]).success().stdout;
    let mut import = context
        .command(&["stack", "import", "--file", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut import.stdin.take().unwrap(), export.as_bytes()).unwrap();
    let output = import.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A stack of another project, with secret outputs: read with that stack's own salt (from its
/// state), not the consumer's stack file, which is left alone.
#[test]
fn a_stack_reference_opens_another_projects_secrets() {
    let context = TestContext::with_program(
        "name: producer\nruntime: yaml\noutputs:\n  token:\n    fn::secret: s3cr3t-value\n  plain: visible\n",
    );
    context.cairn(&["stack", "init", "prod"]).success();
    context.cairn(&["up", "--yes"]).success();
    let consumer = context.root.path().join("consumer");
    std::fs::create_dir_all(&consumer).unwrap();
    std::fs::write(
        consumer.join("Cairn.yaml"),
        "name: consumer\nruntime: yaml\nresources:\n  ref:\n    type: pulumi:pulumi:StackReference\n    properties:\n      name: organization/producer/prod\noutputs:\n  token: ${ref.outputs[\"token\"]}\n  plain: ${ref.outputs[\"plain\"]}\n",
    )
    .unwrap();
    let cwd = consumer.to_str().unwrap();
    context
        .cairn(&["stack", "init", "prod", "--cwd", cwd])
        .success();
    let consumer_file = consumer.join("Cairn.prod.yaml");
    let before = std::fs::read_to_string(&consumer_file).unwrap();
    context.cairn(&["up", "--yes", "--cwd", cwd]).success();
    let token = context
        .cairn(&["stack", "output", "token", "--show-secrets", "--cwd", cwd])
        .success();
    assert_eq!(token.stdout.trim(), "s3cr3t-value");
    let masked = context
        .cairn(&["stack", "output", "token", "--cwd", cwd])
        .success();
    assert!(!masked.stdout.contains("s3cr3t-value"), "{}", masked.stdout);
    assert_eq!(std::fs::read_to_string(&consumer_file).unwrap(), before);
}

#[test]
fn a_key_the_project_declares_secret_is_sealed_even_without_secret() {
    let context = TestContext::with_program(
        "name: decl\nruntime: yaml\nconfig:\n  token:\n    type: string\n    secret: true\noutputs:\n  token: ${token}\n",
    );
    context
        .cairn(&["config", "set", "token", "DECLSECRET-9"])
        .success();
    let file = context.read("Cairn.dev.yaml");
    assert!(!file.contains("DECLSECRET-9"), "{file}");
    assert!(file.contains("secure:"), "{file}");
    let listed = context.cairn(&["config"]).success();
    assert!(!listed.stdout.contains("DECLSECRET-9"), "{}", listed.stdout);
    context.cairn(&["up", "--yes"]).success();
    let shown = context
        .cairn(&["stack", "output", "token", "--show-secrets"])
        .success();
    assert_eq!(shown.stdout.trim(), "DECLSECRET-9");
    // A key as long as YAML cannot read back is refused before it reaches the file.
    let long = "k".repeat(300);
    context.cairn(&["config", "set", &long, "v"]).expect_code(2);
    context.cairn(&["config"]).success();
}

#[test]
fn bad_input_that_changes_nothing_exits_2() {
    let context = TestContext::with_program(
        "name: codes\nruntime: yaml\noutputs:\n  s:\n    fn::secret: abc\n",
    );
    context.cairn(&["up", "--yes"]).success();
    context
        .cairn(&["stack", "rm", "nope", "--yes"])
        .expect_code(2);
    let wrong = context
        .command(&["stack", "output", "--show-secrets"])
        .env("CAIRN_CONFIG_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("incorrect passphrase"));
    // A stack file that is not text is named.
    let stack_file = context.project().join("Cairn.dev.yaml");
    let saved = std::fs::read(&stack_file).unwrap();
    std::fs::write(&stack_file, b"config:\n  codes:x: \"\xff\xfe\"\n").unwrap();
    let binary = context.cairn(&["config"]).expect_code(2);
    assert!(
        binary.stderr.contains("Cairn.dev.yaml") && binary.stderr.contains("not UTF-8"),
        "{}",
        binary.stderr
    );
    std::fs::write(&stack_file, saved).unwrap();
    // `new` checks the names it was given before it writes anything.
    context
        .cairn(&["new", "random-yaml", "--name", "..", "--dir", "w"])
        .expect_code(2);
    assert!(!context.project().join("w").exists());
}

#[test]
fn of_stack_inits_at_once_exactly_one_creates() {
    let context = TestContext::new();
    context.write_program("name: race\nruntime: yaml\n");
    let children: Vec<_> = (0..8)
        .map(|_| context.spawn(&["stack", "init", "dev"]))
        .collect();
    let created = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .filter(|output| output.status.success())
        .count();
    assert_eq!(created, 1);
}

#[test]
fn a_secret_that_is_not_base64_is_not_described_character_by_character() {
    let context = TestContext::with_program(
        "name: b64\nruntime: yaml\nconfig:\n  blob:\n    type: string\n    secret: true\noutputs:\n  decoded:\n    fn::fromBase64: ${blob}\n",
    );
    context
        .cairn(&["config", "set", "--secret", "blob", "{secret-not-base64"])
        .success();
    let run = context.cairn(&["up", "--yes"]).expect_code(2);
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(shown.contains("not valid base64"), "{shown}");
    assert!(
        !shown.contains("symbol") && !shown.contains("123"),
        "{shown}"
    );
}

#[test]
fn a_secret_value_that_starts_with_dashes_is_a_value_not_a_flag() {
    let context = TestContext::with_program("name: pem\nruntime: yaml\n");
    let pem = "-----BEGIN KEY-----\nPEMSECRET-77\n-----END KEY-----";
    let run = context
        .cairn(&["config", "set", "--secret", "key", pem])
        .success();
    assert!(!run.stderr.contains("PEMSECRET-77") && !run.stdout.contains("PEMSECRET-77"));
    assert!(!context.read("Cairn.dev.yaml").contains("PEMSECRET-77"));
    let got = context.cairn(&["config", "get", "key"]).success();
    assert_eq!(got.stdout.trim_end(), pem);
}
