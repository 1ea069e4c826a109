//! `cairn:compute:Group` in a program: `up` converges the group, a size change scales it, an
//! instance lost outside is noticed by `refresh` and replaced by the next `up`, and `destroy`
//! removes every member. The `fake` driver keeps its instances in a file the test can read.

use crate::support::TestContext;

fn program(size: usize, fleet: &std::path::Path) -> String {
    format!(
        r#"name: fleet
runtime: yaml
resources:
  web:
    type: cairn:compute:Group
    properties:
      id: web
      driver:
        name: fake
        settings:
          path: {}
      properties:
        image: web
        version: 1
      size: {size}
      health:
        command: ["true"]
outputs:
  members: ${{web.instances}}
"#,
        fleet.display()
    )
}

fn members(fleet: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(fleet).unwrap_or_else(|_| "{}".to_owned());
    serde_json::from_str::<serde_json::Value>(&text)
        .unwrap()
        .as_object()
        .map_or(0, |instances| instances.len())
}

#[test]
fn a_group_in_a_program_converges_scales_recovers_and_is_destroyed() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    context.write_program(&program(3, &fleet));
    context.cairn(&["stack", "init", "dev"]).success();
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(members(&fleet), 3);
    assert_eq!(
        context.resource("web")["outputs"]["instances"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    context.write_program(&program(5, &fleet));
    let scaled = context.cairn(&["up", "--yes"]).success();
    assert!(scaled.stdout.contains("1 updated"), "{}", scaled.stdout);
    assert_eq!(members(&fleet), 5);

    // An instance removed outside Cairn: refresh sees it gone, up brings the group back.
    let mut instances: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&fleet).unwrap()).unwrap();
    let victim = instances.keys().next().unwrap().clone();
    instances.remove(&victim);
    std::fs::write(&fleet, serde_json::to_string(&instances).unwrap()).unwrap();
    context.cairn(&["refresh", "--yes"]).success();
    assert_eq!(
        context.resource("web")["outputs"]["instances"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    context.cairn(&["up", "--yes"]).success();
    assert_eq!(members(&fleet), 5);

    context.cairn(&["destroy", "--yes"]).success();
    assert_eq!(members(&fleet), 0);
}

#[test]
fn a_bad_group_spec_is_refused_before_anything_runs() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    context.write_program(&program(3, &fleet).replace("      size: 3\n", ""));
    context.cairn(&["stack", "init", "dev"]).success();
    let refused = context.cairn(&["up", "--yes"]).expect_code(1);
    let all = format!("{}{}", refused.stdout, refused.stderr);
    assert!(all.contains("`size`"), "{all}");
    assert_eq!(members(&fleet), 0);
}

fn spec(size: usize, fleet: &std::path::Path) -> String {
    format!(
        "id: web\ndriver:\n  name: fake\n  settings:\n    path: {}\nproperties:\n  image: web\nsize: {size}\nhealth:\n  command: [\"true\"]\n",
        fleet.display()
    )
}

#[test]
fn groups_are_committed_described_scaled_and_destroyed_from_the_cli() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let file = context.project().join("web.yaml");
    std::fs::write(&file, spec(3, &fleet)).unwrap();
    let file = file.to_str().unwrap();
    context.cairn(&["group", "commit", file, "--yes"]).success();
    assert_eq!(members(&fleet), 3);
    // The groups' program is made in memory: no program file is written for it.
    let groups_dir = context.home().join("groups/default");
    assert!(groups_dir.is_dir());
    assert!(!groups_dir.join("Cairn.yaml").exists());

    // --pretend shows the plan and changes nothing, not even the committed spec.
    std::fs::write(file, spec(5, &fleet)).unwrap();
    let pretend = context
        .cairn(&["group", "commit", file, "--pretend"])
        .success();
    assert!(pretend.stdout.contains("update"), "{}", pretend.stdout);
    assert_eq!(members(&fleet), 3);
    let described = context
        .cairn(&["group", "describe", "web", "--json"])
        .success();
    let described: serde_json::Value = serde_json::from_str(&described.stdout).unwrap();
    assert_eq!(described["spec"]["size"], 3);

    context.cairn(&["group", "commit", file, "--yes"]).success();
    assert_eq!(members(&fleet), 5);
    let described = context
        .cairn(&["group", "describe", "web", "--json"])
        .success();
    let described: serde_json::Value = serde_json::from_str(&described.stdout).unwrap();
    let instances = described["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 5);
    assert!(
        instances
            .iter()
            .all(|instance| instance["tags"]["cairn.config.hash"] == described["fingerprint"])
    );
    assert_eq!(
        context.cairn(&["group", "ls"]).success().stdout.trim(),
        "web"
    );

    let bad = context.project().join("bad.yaml");
    std::fs::write(&bad, spec(3, &fleet).replace("size: 3\n", "")).unwrap();
    let refused = context
        .cairn(&["group", "commit", bad.to_str().unwrap(), "--yes"])
        .expect_code(2);
    assert!(refused.stderr.contains("`size`"), "{}", refused.stderr);
    assert_eq!(members(&fleet), 5);

    context
        .cairn(&["group", "destroy", "web", "--yes"])
        .success();
    assert_eq!(members(&fleet), 0);
    assert!(
        context
            .cairn(&["group", "ls"])
            .success()
            .stdout
            .trim()
            .is_empty()
    );

    // Free: Cairn forgets the group; its instances keep running, and committing it again
    // adopts them instead of making new ones.
    std::fs::write(file, spec(2, &fleet)).unwrap();
    context.cairn(&["group", "commit", file, "--yes"]).success();
    // With `--json`, what was freed is one JSON object, nothing else.
    let freed = context
        .cairn(&["group", "free", "web", "--yes", "--json"])
        .success();
    let freed: serde_json::Value = serde_json::from_str(&freed.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", freed.stdout));
    assert_eq!(freed["group"], "web");
    assert_eq!(freed["freed"], true);
    assert!(
        freed["urn"].as_str().unwrap().ends_with("::g_web"),
        "{freed}"
    );
    assert_eq!(members(&fleet), 2);
    assert!(
        context
            .cairn(&["group", "ls"])
            .success()
            .stdout
            .trim()
            .is_empty()
    );
    let adopted = context.cairn(&["group", "commit", file, "--yes"]).success();
    assert!(adopted.stdout.contains("1 created"), "{}", adopted.stdout);
    assert_eq!(members(&fleet), 2);
}

#[test]
fn instances_are_provisioned_listed_labelled_and_destroyed_through_a_driver() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let driver = format!("fake:{}", fleet.display());
    let file = context.project().join("instance.yaml");
    std::fs::write(&file, "properties:\n  image: web\ntags:\n  role: web\n").unwrap();
    let id = context
        .cairn(&[
            "instance",
            "provision",
            "--driver",
            &driver,
            file.to_str().unwrap(),
        ])
        .success()
        .stdout
        .trim()
        .to_owned();
    context
        .cairn(&["instance", "label", "--driver", &driver, &id, "owner=me"])
        .success();
    let listed = context
        .cairn(&[
            "instance", "ls", "--driver", &driver, "--tag", "owner=me", "--json",
        ])
        .success();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["tags"]["role"], "web");
    context
        .cairn(&["instance", "destroy", "--driver", &driver, &id])
        .success();
    assert_eq!(members(&fleet), 0);
    let drivers = context.cairn(&["instance", "drivers"]).success();
    for name in ["docker", "process", "fake"] {
        assert!(drivers.stdout.contains(name), "{}", drivers.stdout);
    }
}

/// The README's own group spec, with the fake driver in place of Docker, commits as written.
#[test]
fn the_readme_group_spec_commits() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let spec: String = readme
        .lines()
        .skip_while(|line| *line != "cat > web.yaml <<'YAML'")
        .skip(1)
        .take_while(|line| *line != "YAML")
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(spec.contains("rollingUpdate"), "{spec}");
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let spec = spec.replace(
        "  name: docker",
        &format!(
            "  name: fake\n  settings: {{path: {}}}\n  # was:",
            fleet.display()
        ),
    );
    let file = context.project().join("web.yaml");
    std::fs::write(&file, &spec).unwrap();
    let file = file.to_str().unwrap();
    context.cairn(&["group", "commit", file, "--yes"]).success();
    assert_eq!(members(&fleet), 3);
    // A spec the CLI refuses is refused at the user's file, not at a generated one.
    std::fs::write(file, spec.replace("size: 3", "sizes: 3")).unwrap();
    let refused = context
        .cairn(&["group", "commit", file, "--yes"])
        .expect_code(2);
    assert!(
        refused.stderr.contains("web.yaml") && refused.stderr.contains("sizes"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("groups/"), "{}", refused.stderr);
}

/// The arguments (after `cairn`, with `--yes`) of the command a `help:` hint in `stderr` names
/// in backquotes, starting with `prefix`.
#[track_caller]
fn hinted_command(stderr: &str, prefix: &str) -> Vec<String> {
    let hint = stderr
        .lines()
        .find_map(|line| {
            line.split('`')
                .nth(1)
                .filter(|text| text.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no `{prefix}` hint: {stderr}"));
    hint.split_whitespace()
        .skip(1)
        .chain(["--yes"])
        .map(str::to_owned)
        .collect()
}

/// After a killed `group commit`, the hints name commands that work from where the user is.
#[test]
fn the_hints_after_a_killed_group_commit_work() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let file = context.project().join("web.yaml");
    std::fs::write(
        &file,
        spec(2, &fleet).replace("  settings:\n", "  settings:\n    startupLatencyMs: 4000\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let mut commit = context
        .command(&["group", "commit", file, "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = context
        .home()
        .join(".pulumi/stacks/cairn-groups/default.journal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&journal).is_ok_and(|text| text.contains("cairn:compute:Group"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the commit never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    commit.kill().unwrap();
    commit.wait().unwrap();
    let blocked = context
        .cairn(&["group", "commit", file, "--yes"])
        .expect_code(1);
    let hint = hinted_command(&blocked.stderr, "cairn cancel");
    context
        .cairn(&hint.iter().map(String::as_str).collect::<Vec<_>>())
        .success();
    // What the killed commit had in flight is settled first: the retry is refused, naming how.
    let retried = context
        .cairn(&["group", "commit", file, "--yes"])
        .expect_code(1);
    let clear = hinted_command(&retried.stderr, "cairn refresh --clear-pending");
    context
        .cairn(&clear.iter().map(String::as_str).collect::<Vec<_>>())
        .success();
    context.cairn(&["group", "commit", file, "--yes"]).success();
    assert_eq!(members(&fleet), 2);
}

/// Ids that would share a resource key or name a path, and sizes no machine could plan, are
/// refused before anything changes: committing `a-b` must not touch the members of `a b`.
#[test]
fn group_ids_that_collide_and_absurd_sizes_are_refused() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let file = context.project().join("group.yaml");
    let file_name = file.to_str().unwrap();
    std::fs::write(&file, spec(2, &fleet).replace("id: web", "id: a-b")).unwrap();
    context
        .cairn(&["group", "commit", file_name, "--yes"])
        .success();
    assert_eq!(members(&fleet), 2);
    for id in ["\"a b\"", "a_b", "..", "-a"] {
        std::fs::write(
            &file,
            spec(2, &fleet).replace("id: web", &format!("id: {id}")),
        )
        .unwrap();
        let refused = context
            .cairn(&["group", "commit", file_name, "--yes"])
            .expect_code(2);
        assert!(
            refused.stderr.contains("is not a group id"),
            "{}",
            refused.stderr
        );
    }
    std::fs::write(
        &file,
        spec(2, &fleet)
            .replace("size: 2", "size: 99999999999")
            .replace("id: web", "id: big"),
    )
    .unwrap();
    let refused = context
        .cairn(&["group", "commit", file_name, "--yes"])
        .expect_code(2);
    assert!(
        refused.stderr.contains("at most 10000 members"),
        "{}",
        refused.stderr
    );
    assert_eq!(members(&fleet), 2);
}

/// A group whose driver changes is replaced under the same id. The old group goes first: its
/// members are found by their `cairn.group` tag, so removing it after the new group had
/// converged removed the new members too and left the group empty.
#[test]
fn a_group_whose_driver_changes_keeps_its_size() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let file = context.project().join("web.yaml");
    let file_name = file.to_str().unwrap();
    std::fs::write(&file, spec(3, &fleet)).unwrap();
    context
        .cairn(&["group", "commit", file_name, "--yes"])
        .success();
    assert_eq!(members(&fleet), 3);

    // The same place, other settings.
    let slower = spec(3, &fleet).replace("  settings:\n", "  settings:\n    startupLatencyMs: 1\n");
    std::fs::write(&file, slower).unwrap();
    context
        .cairn(&["group", "commit", file_name, "--yes"])
        .success();
    assert_eq!(members(&fleet), 3);
    let described = context
        .cairn(&["group", "describe", "web", "--json"])
        .success();
    let described: serde_json::Value = serde_json::from_str(&described.stdout).unwrap();
    assert_eq!(described["instances"].as_array().unwrap().len(), 3);

    // Another place: the members move; none stays behind in the old one.
    let elsewhere = context.root.path().join("elsewhere.json");
    std::fs::write(&file, spec(3, &elsewhere)).unwrap();
    context
        .cairn(&["group", "commit", file_name, "--yes"])
        .success();
    assert_eq!(members(&fleet), 0);
    assert_eq!(members(&elsewhere), 3);
}

/// A driver no one knows and keys no policy has are errors of the spec (exit 2), found before
/// anything runs.
#[test]
fn unknown_drivers_and_policy_keys_are_refused() {
    let context = TestContext::new();
    let fleet = context.root.path().join("fleet.json");
    let file = context.project().join("web.yaml");
    let file_name = file.to_str().unwrap();
    for (bad, says) in [
        (
            spec(2, &fleet).replace("name: fake", "name: fakee"),
            "fakee",
        ),
        (
            spec(2, &fleet).replace(
                "  command: [\"true\"]\n",
                "  command: [\"true\"]\n  retries: 3\n",
            ),
            "retries",
        ),
        (
            format!("{}rollingUpdate:\n  batchSise: 2\n", spec(2, &fleet)),
            "batchSise",
        ),
    ] {
        std::fs::write(&file, bad).unwrap();
        let refused = context
            .cairn(&["group", "commit", file_name, "--yes"])
            .expect_code(2);
        assert!(refused.stderr.contains(says), "{says}: {}", refused.stderr);
        assert_eq!(members(&fleet), 0);
    }
}
