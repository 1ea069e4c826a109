//! Crash torture: `kill -9` the real binary at seeded random instants during `up`, updates and
//! `destroy` of a few hundred `fake` resources, and check against the fake's ledger (the ground
//! truth of what exists) that no resource is ever lost or unknown, and that recovery
//! (`cancel`, `refresh --clear-pending`, then the command again) leaves ledger and state in exact agreement
//! with nothing created twice.
//!
//! Size: `CAIRN_TORTURE_KILLS` (default 200) and `CAIRN_TORTURE_RESOURCES` (default 300);
//! `CAIRN_TORTURE_SEED` picks the instants. Journals fold every 64 KiB here, so kills also land
//! in the middle of folds.
//!
//! Two more phases run on both backends (`file://` and `postgres://`), `CAIRN_TORTURE_ROUNDS`
//! rounds each (default 12): `cairn cancel` of an update that is still alive (it must write
//! nothing more, so recovery finds ledger and state in agreement), and `kill -9` while
//! `command:local:Command`s run (a half-run command is never recorded as created: after
//! recovery every command has run to completion and printed its output).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cairn_backend_postgres::test_cluster::TestCluster;

use crate::support::TestContext;

/// A small, seeded generator (xorshift64*): the same seed gives the same kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Version 1 and 2 of the program: 2 changes a third of the values (updates) and a fifth of the
/// zones (replacements); every tenth resource depends on the one before it.
fn program(n_resources: u64, version: u64, rng_seed: u64) -> String {
    let mut rng = Rng(rng_seed | 1);
    let mut text = String::from("name: torture\nruntime: yaml\nresources:\n");
    for index in 0..n_resources {
        let value = if version == 2 && index % 3 == 0 { 2 } else { 1 };
        let zone = if version == 2 && index % 5 == 0 {
            "b"
        } else {
            "a"
        };
        text.push_str(&format!(
            "  r{index}:\n    type: fake:Resource\n    properties:\n      latencyMs: {}\n      value: {value}\n      zone: {zone}\n      replaceOn: [zone]\n",
            rng.below(51)
        ));
        if index % 10 != 0 {
            text.push_str(&format!("      after: ${{r{}.value}}\n", index - 1));
        }
    }
    text
}

/// Round `index` of a torture: the three operations in turn, so each is interrupted a third of
/// the time. Returns the command, the program version and how many resources it leaves.
fn round_of(index: u64, n_resources: u64) -> (&'static [&'static str], u64, usize) {
    match index % 3 {
        0 => (&["up", "--yes", "--skip-preview"], 1, n_resources as usize),
        1 => (&["up", "--yes", "--skip-preview"], 2, n_resources as usize),
        _ => (&["destroy", "--yes", "--skip-preview"], 1, 0),
    }
}

/// `cairn ARGS` with the fake's ledger, folding the journal often, so that interruptions also
/// land in the middle of folds.
fn torture_command(context: &TestContext, args: &[&str], ledger: &Path) -> std::process::Command {
    let mut command = context.command(args);
    command
        .env("CAIRN_FAKE_LEDGER", ledger)
        .env("CAIRN_JOURNAL_FOLD_BYTES", "65536");
    command
}

/// What the ledger says exists: ID → URN.
fn ledger_live(ledger: &Path) -> BTreeMap<String, String> {
    let mut live = BTreeMap::new();
    let text = std::fs::read_to_string(ledger).unwrap_or_default();
    for line in text.split_inclusive('\n') {
        // A line without its newline was cut by the kill: that write never completed.
        let Some(line) = line.strip_suffix('\n') else {
            continue;
        };
        if line.is_empty() {
            continue;
        }
        let entry: serde_json::Value =
            serde_json::from_str(line).expect("the ledger holds JSON lines");
        let id = entry["id"].as_str().unwrap().to_owned();
        match entry["op"].as_str().unwrap() {
            "delete" => {
                live.remove(&id);
            }
            _ => {
                live.insert(id, entry["urn"].as_str().unwrap().to_owned());
            }
        }
    }
    live
}

/// Resources by ID → URN.
type ById = BTreeMap<String, String>;

/// Pending operations as (kind, URN, ID).
type Pending = Vec<(String, String, String)>;

/// The state's fake resources and its pending operations.
fn state_of(context: &TestContext) -> (ById, Pending) {
    let export = context.export();
    let resources = export["deployment"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|resource| resource["type"] == "fake:index:Resource")
        .map(|resource| {
            (
                resource["id"].as_str().unwrap().to_owned(),
                resource["urn"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pending = export["deployment"]["pending_operations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|operation| {
            (
                operation["type"].as_str().unwrap().to_owned(),
                operation["resource"]["urn"].as_str().unwrap().to_owned(),
                operation["resource"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    (resources, pending)
}

/// After a crash: every live resource is in the state or covered by a pending create of its
/// URN, and every resource in the state is live or covered by a pending delete.
#[track_caller]
fn check_nothing_lost(context: &TestContext, ledger: &Path, what: &str) {
    let live = ledger_live(ledger);
    let (state, pending) = state_of(context);
    let mut pending_creates: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, urn, _) in &pending {
        if kind == "creating" {
            *pending_creates.entry(urn.as_str()).or_default() += 1;
        }
    }
    for (id, urn) in &live {
        if state.contains_key(id) {
            continue;
        }
        let covering = pending_creates.get_mut(urn.as_str());
        match covering {
            Some(count) if *count > 0 => *count -= 1,
            _ => panic!(
                "{what}: live resource {id} ({urn}) is neither in the state nor a pending create"
            ),
        }
    }
    for (id, urn) in &state {
        let is_pending_delete = pending.iter().any(|(kind, pending_urn, pending_id)| {
            kind == "deleting" && pending_urn == urn && pending_id == id
        });
        assert!(
            live.contains_key(id) || is_pending_delete,
            "{what}: the state has {id} ({urn}), which the ledger says does not exist"
        );
    }
}

/// After recovery: ledger and state agree exactly, one live resource per URN.
#[track_caller]
fn check_exact_agreement(context: &TestContext, ledger: &Path, expected_count: usize, what: &str) {
    let live = ledger_live(ledger);
    let (state, pending) = state_of(context);
    assert!(
        pending.is_empty(),
        "{what}: pending operations remain: {pending:?}"
    );
    let only_live: Vec<_> = live
        .iter()
        .filter(|(id, _)| !state.contains_key(*id))
        .collect();
    let only_state: Vec<_> = state
        .iter()
        .filter(|(id, _)| !live.contains_key(*id))
        .collect();
    assert!(
        only_live.is_empty() && only_state.is_empty(),
        "{what}: ledger and state disagree: live but not in the state {only_live:?}, in the state but not live {only_state:?}"
    );
    let urns: BTreeSet<&String> = live.values().collect();
    assert_eq!(
        urns.len(),
        live.len(),
        "{what}: a URN has two live resources (created twice)"
    );
    assert_eq!(live.len(), expected_count, "{what}");
}

#[test]
fn kill_9_at_random_instants_loses_nothing() {
    let n_kills = env_number("CAIRN_TORTURE_KILLS", 200);
    let n_resources = env_number("CAIRN_TORTURE_RESOURCES", 300);
    let seed = env_number("CAIRN_TORTURE_SEED", 0x5eed);
    let mut rng = Rng(seed | 1);
    let context = TestContext::with_program(&program(n_resources, 1, seed));
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    let mut counts = BTreeMap::<&str, u64>::new();
    for kill in 0..n_kills {
        let (args, version, expected) = round_of(kill, n_resources);
        context.write_program(&program(n_resources, version, seed));
        let mut child = torture_command(&context, args, &ledger)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(600)));
        let was_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        *counts
            .entry(if was_running {
                "killed mid-run"
            } else {
                "finished first"
            })
            .or_default() += 1;
        let what = format!("kill {kill} ({})", args[0]);
        check_nothing_lost(&context, &ledger, &what);
        let (_, pending) = state_of(&context);
        *counts.entry("pending operations left").or_default() += pending.len() as u64;

        // Recover: release the dead process's lock, resolve what it left pending, then finish
        // the interrupted command.
        context.cairn(&["cancel", "--yes"]).success();
        context
            .cairn_with(
                &["refresh", "--yes", "--skip-preview", "--clear-pending"],
                &env,
            )
            .success();
        context.cairn_with(args, &env).success();
        check_exact_agreement(&context, &ledger, expected, &what);
    }
    let creates = std::fs::read_to_string(&ledger)
        .unwrap()
        .lines()
        .filter(|line| line.contains("\"op\":\"create\""))
        .count();
    // Printed so a run shows what it exercised (`cargo test -- --nocapture`).
    println!(
        "torture: {n_kills} kills of {n_resources} resources: {counts:?}, {creates} creates in the ledger"
    );
    assert!(
        counts.get("killed mid-run").copied().unwrap_or(0) > n_kills / 2,
        "{counts:?}"
    );
}

/// Where a phase runs: the default `file://` backend, or a fresh database of a test cluster.
enum Backend {
    File,
    Postgres(TestCluster),
}

impl Backend {
    fn postgres() -> Backend {
        Backend::Postgres(TestCluster::start().unwrap_or_else(|error| {
            panic!("these tests need PostgreSQL and it could not start: {error}")
        }))
    }

    fn context(&self, program: &str) -> TestContext {
        match self {
            Backend::File => TestContext::with_program(program),
            Backend::Postgres(cluster) => {
                let url = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(cluster.new_database())
                    .unwrap();
                TestContext::with_program_on(program, &url)
            }
        }
    }
}

/// `cairn cancel` of an update that is still running, at a random instant. The cancelled update
/// stops starting steps and writes nothing more: what it had begun stays pending, so nothing it
/// made is lost, and recovery brings ledger and state into exact agreement.
fn cancel_while_alive(backend: &Backend) {
    let rounds = env_number("CAIRN_TORTURE_ROUNDS", 12);
    let n_resources = 60;
    let seed = env_number("CAIRN_TORTURE_SEED", 0x5eed);
    let mut rng = Rng(seed | 1);
    let context = backend.context(&program(n_resources, 1, seed));
    let ledger = context.root.path().join("ledger.jsonl");
    let env = [("CAIRN_FAKE_LEDGER", ledger.as_path())];
    let mut cancelled_alive = 0;
    for round in 0..rounds {
        let (args, version, expected) = round_of(round, n_resources);
        context.write_program(&program(n_resources, version, seed));
        let child = torture_command(&context, args, &ledger)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
        context.cairn(&["cancel", "--yes"]).success();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            assert!(
                stderr.contains("no longer holds the lock"),
                "round {round}: {stderr}"
            );
            cancelled_alive += 1;
        }
        let what = format!("cancel while alive, round {round} ({})", args[0]);
        check_nothing_lost(&context, &ledger, &what);
        context
            .cairn_with(
                &["refresh", "--yes", "--skip-preview", "--clear-pending"],
                &env,
            )
            .success();
        context.cairn_with(args, &env).success();
        check_exact_agreement(&context, &ledger, expected, &what);
    }
    assert!(
        cancelled_alive > rounds / 2,
        "{cancelled_alive} of {rounds}"
    );
}

/// A program of commands that each take a moment and print their name.
fn commands_program(n_commands: u64) -> String {
    let mut text = String::from("name: torture\nruntime: yaml\nresources:\n");
    for index in 0..n_commands {
        text.push_str(&format!(
            "  c{index}:\n    type: command:local:Command\n    properties:\n      create: \"sleep 0.{}; echo c{index}\"\n      delete: \"sleep 0.0{}\"\n",
            index % 4,
            index % 10
        ));
    }
    text
}

/// `kill -9` while commands run: a command whose create was cut short is never recorded as
/// created; after recovery every command has completed and its output is in the state.
fn kill_during_commands(backend: &Backend) {
    let rounds = env_number("CAIRN_TORTURE_ROUNDS", 12);
    let n_commands = 40;
    let seed = env_number("CAIRN_TORTURE_SEED", 0x5eed);
    let mut rng = Rng(seed | 1);
    let context = backend.context(&commands_program(n_commands));
    let mut killed_mid_run = 0;
    for round in 0..rounds {
        let args: &[&str] = if round % 2 == 0 {
            &["up", "--yes", "--skip-preview", "--parallel", "4"]
        } else {
            &["destroy", "--yes", "--skip-preview"]
        };
        let mut child = context
            .command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(700)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        context.cairn(&["cancel", "--yes"]).success();
        context
            .cairn(&["refresh", "--yes", "--skip-preview", "--clear-pending"])
            .success();
        context.cairn(args).success();
        let export = context.export();
        let what = format!("commands, round {round} ({})", args[0]);
        assert!(
            export["deployment"]["pending_operations"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "{what}: {export}"
        );
        let commands: Vec<&serde_json::Value> = export["deployment"]["resources"]
            .as_array()
            .map(|resources| {
                resources
                    .iter()
                    .filter(|resource| resource["type"] == "command:local:Command")
                    .collect()
            })
            .unwrap_or_default();
        let expected = if args[0] == "up" {
            n_commands as usize
        } else {
            0
        };
        assert_eq!(commands.len(), expected, "{what}");
        for command in commands {
            let name = command["urn"]
                .as_str()
                .unwrap()
                .rsplit("::")
                .next()
                .unwrap();
            assert_eq!(command["outputs"]["stdout"], name, "{what}: {command}");
        }
    }
    assert!(killed_mid_run > rounds / 2, "{killed_mid_run} of {rounds}");
}

#[test]
fn torture_cancel_while_alive_on_file() {
    cancel_while_alive(&Backend::File);
}

#[test]
fn torture_cancel_while_alive_on_postgres() {
    cancel_while_alive(&Backend::postgres());
}

#[test]
fn torture_kill_during_commands_on_file() {
    kill_during_commands(&Backend::File);
}

#[test]
fn torture_kill_during_commands_on_postgres() {
    kill_during_commands(&Backend::postgres());
}
