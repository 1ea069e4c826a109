//! Out-of-process provider plugins: the Python and Rust examples through the whole lifecycle,
//! a built-in provider run in process and out of process with the same results, discovery and
//! `plugin ls`, and plugins that crash, hang, print garbage or speak another protocol.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::TestContext;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_plugin() -> PathBuf {
    repo_root().join("examples/plugins/python-files/cairn-provider-files")
}

/// The Rust example plugin, built beside `cairn` (the workspace build makes it; built here
/// when a narrower build did not).
fn rust_plugin() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_cairn")).with_file_name("cairn-provider-files");
    if !path.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "cairn-example-provider-files"])
            .current_dir(repo_root())
            .status()
            .unwrap();
        assert!(status.success(), "building the Rust example plugin");
    }
    path
}

fn files_program(plugins: &str, content: &str, path: &str) -> String {
    format!(
        r#"name: files
runtime: yaml
{plugins}resources:
  note:
    type: files:index:File
    properties:
      path: {path}
      content: {content}
variables:
  seed:
    fn::invoke:
      function: files:index:readFile
      arguments:
        path: seed.txt
outputs:
  size: ${{note.size}}
  seed: ${{seed.content}}
"#
    )
}

/// Create, update, replace, refresh, invoke and delete through one plugin.
fn lifecycle(context: &TestContext, plugins: &str) {
    std::fs::write(context.project().join("seed.txt"), "from the seed").unwrap();
    context.write_program(&files_program(plugins, "hello", "a.txt"));
    context.cairn(&["stack", "init", "dev"]).success();
    let up = context.cairn(&["up", "--yes"]).success();
    assert!(up.stdout.contains("size: 5"), "{}", up.stdout);
    assert!(
        up.stdout.contains("seed: \"from the seed\""),
        "{}",
        up.stdout
    );
    assert_eq!(context.read("a.txt"), "hello");
    let note = context.resource("note");
    assert_eq!(note["id"], "a.txt");
    assert_eq!(note["outputs"]["sha256"].as_str().unwrap().len(), 64);
    let logs = context.cairn(&["logs"]).success();
    assert!(
        logs.stdout.contains("wrote 5 bytes to a.txt"),
        "{}",
        logs.stdout
    );

    context.write_program(&files_program(plugins, "changed", "a.txt"));
    let update = context.cairn(&["up", "--yes"]).success();
    assert!(update.stdout.contains("1 updated"), "{}", update.stdout);
    assert_eq!(context.read("a.txt"), "changed");

    context.write_program(&files_program(plugins, "changed", "b.txt"));
    let replace = context.cairn(&["up", "--yes"]).success();
    assert!(replace.stdout.contains("1 replaced"), "{}", replace.stdout);
    assert_eq!(context.read("b.txt"), "changed");
    assert!(!context.project().join("a.txt").exists());

    // Drift: the file changed outside Cairn; refresh records it, and up puts it back.
    std::fs::write(context.project().join("b.txt"), "tampered").unwrap();
    context.cairn(&["refresh", "--yes"]).success();
    assert_eq!(context.resource("note")["outputs"]["content"], "tampered");
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.read("b.txt"), "changed");

    context.cairn(&["destroy", "--yes"]).success();
    assert!(!context.project().join("b.txt").exists());
}

#[test]
fn the_python_example_plugin_does_the_whole_lifecycle() {
    let context = TestContext::new();
    let plugins = format!("plugins:\n  files: {}\n", python_plugin().display());
    lifecycle(&context, &plugins);
}

#[test]
fn the_rust_example_plugin_does_the_whole_lifecycle_found_in_cairn_home() {
    let context = TestContext::new();
    let plugins_dir = context.home().join("plugins");
    std::fs::create_dir_all(&plugins_dir).unwrap();
    std::os::unix::fs::symlink(rust_plugin(), plugins_dir.join("cairn-provider-files")).unwrap();
    lifecycle(&context, "");
    let listed = context.cairn(&["plugin", "ls", "--json"]).success();
    let plugins: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let files = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["name"] == "files")
        .unwrap_or_else(|| panic!("{plugins}"));
    assert_eq!(files["source"], "CAIRN_HOME");
    assert_eq!(files["version"], "0.1.0");
    assert!(
        plugins
            .as_array()
            .unwrap()
            .iter()
            .any(|plugin| plugin["name"] == "random" && plugin["source"] == "built-in")
    );
}

const FAKES: &str = r#"name: both
runtime: yaml
{plugins}resources:
  first:
    type: fake:Resource
    properties:
      size: 1
      replaceOn: [zone]
      zone: a
  second:
    type: fake:Resource
    properties:
      fromFirst: ${first.size}
      tags: [x, y]
variables:
  echoed:
    fn::invoke:
      function: fake:index:echo
      arguments:
        said: ${second.fromFirst}
outputs:
  echoed: ${echoed.said}
"#;

/// The state without what differs between any two runs (IDs, times).
fn comparable(context: &TestContext) -> Vec<serde_json::Value> {
    context
        .resources()
        .into_iter()
        .map(|mut resource| {
            let object = resource.as_object_mut().unwrap();
            for key in ["id", "created", "modified", "provider"] {
                object.remove(key);
            }
            resource
        })
        .collect()
}

#[test]
fn a_built_in_provider_behaves_the_same_in_process_and_out_of_process() {
    let in_process = TestContext::new();
    in_process.write_program(&FAKES.replace("{plugins}", ""));
    let out_of_process = TestContext::new();
    let wrapper = out_of_process.root.path().join("fake-plugin");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} plugin serve fake\n",
            env!("CARGO_BIN_EXE_cairn")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    out_of_process.write_program(&FAKES.replace(
        "{plugins}",
        &format!("plugins:\n  fake: {}\n", wrapper.display()),
    ));
    for context in [&in_process, &out_of_process] {
        context.cairn(&["stack", "init", "dev"]).success();
        let up = context.cairn(&["up", "--yes"]).success();
        assert!(up.stdout.contains("echoed: 1"), "{}", up.stdout);
        context.write_program(&context.read("Cairn.yaml").replace("zone: a", "zone: b"));
        let replaced = context.cairn(&["up", "--yes"]).success();
        assert!(
            replaced.stdout.contains("1 replaced"),
            "{}",
            replaced.stdout
        );
    }
    assert_eq!(comparable(&in_process), comparable(&out_of_process));
    for context in [&in_process, &out_of_process] {
        context.cairn(&["destroy", "--yes"]).success();
        assert!(context.resources().is_empty());
    }
}

fn misbehaving(mode: &str, extra: &str) -> (TestContext, crate::support::Run, Duration) {
    let context = TestContext::new();
    let plugin = repo_root().join("crates/cairn-cli/tests/fixtures/misbehaving-plugin");
    context.write_program(&format!(
        "name: bad\nruntime: yaml\nplugins:\n  bad: {}\nresources:\n  thing:\n    type: bad:index:Thing\n    properties:\n      size: 1\n{extra}",
        plugin.display()
    ));
    context.cairn(&["stack", "init", "dev"]).success();
    let started = Instant::now();
    let run = context
        .command(&["up", "--yes"])
        .env("MISBEHAVE", mode)
        .output()
        .unwrap();
    let run = crate::support::Run {
        code: run.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&run.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
    };
    (context, run, started.elapsed())
}

fn all(run: &crate::support::Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

#[test]
fn a_plugin_that_crashes_mid_create_fails_the_step_naming_it_and_leaves_state_consistent() {
    let (context, run, _) = misbehaving("crash", "");
    assert_eq!(run.code, 1, "{}", all(&run));
    let text = all(&run);
    assert!(text.contains("plugin `bad`"), "{text}");
    assert!(text.contains("failed `create`"), "{text}");
    assert!(text.contains("exited"), "{text}");
    assert!(text.contains("out of cheese"), "{text}");
    assert!(context.resources().is_empty());
    assert!(
        context.export()["deployment"]["pending_operations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The stack is usable afterwards.
    context.cairn(&["preview"]).success();
}

#[test]
fn an_unknown_a_plugin_returns_outside_a_preview_reaches_neither_state_nor_another_provider() {
    let (context, run, _) = misbehaving("unknown", "outputs:\n  token: ${thing.token}\n");
    let text = all(&run);
    assert!(text.contains("as unknown outside a preview"), "{text}");
    // The output that would have carried it is an error, not the unknown sentinel.
    assert_eq!(run.code, 2, "{text}");
    let export = context.export().to_string();
    assert!(!export.contains("04da6b54"), "{export}");
    assert_eq!(context.resource_names(), ["thing"]);
    assert!(context.resource("thing")["outputs"].get("token").is_none());
}

/// A plugin whose package appears only in the program that `main:` points at is started too.
#[test]
fn a_plugin_used_only_in_the_main_program_is_started() {
    let context = TestContext::new();
    let plugin = repo_root().join("crates/cairn-cli/tests/fixtures/misbehaving-plugin");
    context.write_program(&format!(
        "name: viamain\nruntime: yaml\nmain: app\nplugins:\n  bad: {}\n",
        plugin.display()
    ));
    std::fs::create_dir_all(context.project().join("app")).unwrap();
    std::fs::write(
        context.project().join("app/Main.json"),
        r#"{"resources": {"thing": {"type": "bad:index:Thing", "properties": {"size": 2}}}}"#,
    )
    .unwrap();
    context.cairn(&["stack", "init", "dev"]).success();
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(context.resource("thing")["outputs"]["size"], 2);
}

#[test]
fn a_plugin_with_a_malformed_schema_is_named() {
    let (context, run, _) = misbehaving("schema", "");
    assert_eq!(run.code, 1, "{}", all(&run));
    let text = all(&run);
    assert!(
        text.contains("plugin `bad`") && text.contains("`resources` must be an object"),
        "{text}"
    );
    assert!(!text.contains("unknown resource type"), "{text}");
    assert!(context.resources().is_empty());
}

#[test]
fn a_plugin_error_that_quotes_a_secret_is_masked_everywhere() {
    let (context, run, _) = misbehaving(
        "leak",
        "      note: ${wrapped}\nvariables:\n  wrapped:\n    fn::secret: plugin-secret-93ad\n",
    );
    assert_eq!(run.code, 1, "{}", all(&run));
    let text = all(&run);
    assert!(text.contains("bad plugin rejects"), "{text}");
    assert!(text.contains("[secret]"), "{text}");
    let logs = context.cairn(&["logs", "--json"]).success();
    assert!(
        logs.stdout.contains("bad plugin rejects"),
        "{}",
        logs.stdout
    );
    for output in [text, logs.stdout] {
        assert!(!output.contains("plugin-secret-93ad"), "{output}");
    }
    for file in crate::support::files_under(&context.home()) {
        let stored = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !stored.contains("plugin-secret-93ad"),
            "plaintext in {}",
            file.display()
        );
    }
}

#[test]
fn a_plugin_that_logs_the_secret_output_it_makes_is_masked() {
    let (context, run, _) = misbehaving("tell", "outputs:\n  token: ${thing.token}\n");
    assert_eq!(run.code, 0, "{}", all(&run));
    let token = context
        .cairn(&["stack", "output", "token", "--show-secrets"])
        .success()
        .stdout
        .trim()
        .to_owned();
    assert!(token.starts_with("told-"), "{token}");
    let logs = context.cairn(&["logs"]).success();
    // The line was logged before the engine saw the output its schema marks secret.
    assert!(
        logs.stdout.contains("[thing] made token [secret]"),
        "{}",
        logs.stdout
    );
    for output in [all(&run), logs.stdout] {
        assert!(!output.contains(&token), "{output}");
    }
    for file in crate::support::files_under(&context.home()) {
        let stored = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!stored.contains(&token), "plaintext in {}", file.display());
    }
}

#[test]
fn a_plugin_that_hangs_is_stopped_by_the_custom_timeout_and_killed() {
    let (context, run, took) = misbehaving(
        "hang",
        "    options:\n      customTimeouts:\n        create: 2s\n",
    );
    assert_eq!(run.code, 1, "{}", all(&run));
    assert!(
        all(&run).contains("did not finish within its custom timeout"),
        "{}",
        all(&run)
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(context.resources().is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let survivors = std::process::Command::new("pgrep")
        .args(["-f", "misbehaving-plugin"])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&survivors.stdout);
    // Other tests may run the fixture at the same time; none of ours may be left hanging.
    for pid in pids.lines() {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !(environ.contains("MISBEHAVE=hang")
                && environ.contains(&context.home().display().to_string())),
            "the hanging plugin was not killed"
        );
    }
}

#[test]
fn a_plugin_that_prints_garbage_or_speaks_another_protocol_is_a_clear_error() {
    let (context, run, _) = misbehaving("garbage", "");
    assert_eq!(run.code, 1, "{}", all(&run));
    assert!(
        all(&run).contains("not a protocol message"),
        "{}",
        all(&run)
    );
    assert!(
        all(&run).contains("hello from a print statement"),
        "{}",
        all(&run)
    );
    assert!(context.resources().is_empty());

    let (context, run, _) = misbehaving("version", "");
    assert_ne!(run.code, 0);
    assert!(all(&run).contains("protocol version 99"), "{}", all(&run));
    assert!(all(&run).contains("bad"), "{}", all(&run));
    assert!(context.resources().is_empty());
}
