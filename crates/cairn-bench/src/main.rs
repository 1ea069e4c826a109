//! `cairn-bench`: generates programs of N `fake` resources (independent, chains, fan-out trees),
//! runs the real `cairn` binary on them in a temporary `CAIRN_HOME`, and prints, as a table and
//! as JSON, the time of `up` from empty, a no-op `preview`, `up` after changing 1%, `destroy`,
//! peak RSS (through `/usr/bin/time`) and bytes written to the backend. Each scenario runs three
//! times (once with `--quick`); times are medians, RSS the largest seen.
//!
//! `--scale` runs 10,000, 30,000 and 100,000 resources of every shape (once each; `--sizes
//! 10000,50000` picks other sizes) and prints, per shape, the ratio of the largest size's times
//! to the smallest's: linear scaling gives the ratio of the sizes (10 for 100k/10k).
//!
//! It measures whole commands, as a user sees them; it does not time anything inside a test.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

mod backends;
mod compute;
mod jobs;
mod plugins;
mod router;

/// The shape of a generated program.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// No resource depends on another.
    Independent,
    /// Chains of ten resources, each depending on the previous one.
    Chains,
    /// One root, 100 children of it, the rest spread under those.
    FanOut,
    /// A binary tree of output references (resource i uses `${r<i/2>.id}`), with the
    /// properties of the shared bench folder's `genprog.py`, which the scale figures of issue 15
    /// were measured on: an interpolated ID per resource makes it the slowest shape.
    Tree,
}

const SHAPES: [Shape; 4] = [
    Shape::Independent,
    Shape::Chains,
    Shape::FanOut,
    Shape::Tree,
];

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Independent => "independent",
            Shape::Chains => "chains",
            Shape::FanOut => "fan-out",
            Shape::Tree => "tree",
        }
    }
}

struct Scenario {
    shape: Shape,
    n_resources: usize,
    latency_ms: u64,
    parallel: usize,
}

fn generate(scenario: &Scenario, generation: usize) -> String {
    let mut program = String::from("name: bench\nruntime: yaml\nresources:\n");
    // `generation` changes 1% of the resources (every 100th) between runs.
    for index in 0..scenario.n_resources {
        let value = if index % 100 == 0 { generation } else { 0 };
        if let Shape::Tree = scenario.shape {
            let _ = write!(
                program,
                "  r{index}:\n    type: fake:Resource\n    properties:\n      index: {index}\n      payload: value-{index}-{value}\n"
            );
            if scenario.latency_ms > 0 {
                let _ = writeln!(program, "      latencyMs: {}", scenario.latency_ms);
            }
            if index > 0 {
                let _ = writeln!(program, "      parentId: ${{r{}.id}}", index / 2);
            }
            continue;
        }
        let _ = write!(
            program,
            "  r{index}:\n    type: fake:Resource\n    properties:\n      value: {value}\n"
        );
        if scenario.latency_ms > 0 {
            let _ = writeln!(program, "      latencyMs: {}", scenario.latency_ms);
        }
        let parent = match scenario.shape {
            Shape::Independent => None,
            Shape::Chains => (index % 10 != 0).then(|| index - 1),
            Shape::FanOut => match index {
                0 => None,
                1..=100 => Some(0),
                _ => Some(1 + index % 100),
            },
            // Written above, with its reference.
            Shape::Tree => None,
        };
        if let Some(parent) = parent {
            let _ = writeln!(program, "      after: ${{r{parent}.value}}");
        }
    }
    program
}

struct Measured {
    seconds: f64,
    peak_rss_kib: u64,
    bytes_written: u64,
}

fn run_cairn(cairn: &Path, project: &Path, home: &Path, args: &[&str]) -> anyhow::Result<Measured> {
    let rss_file = home.join("rss.txt");
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(cairn)
        .args(args)
        .current_dir(project)
        .env("CAIRN_HOME", home)
        .env("CAIRN_CONFIG_PASSPHRASE", "bench")
        .output()
        .context("running /usr/bin/time (install Debian's `time` package)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "`cairn {}` failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let peak_rss_kib = std::fs::read_to_string(&rss_file)?
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(0);
    let bytes_written = serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .ok()
        .and_then(|json| json["backendBytesWritten"].as_u64())
        .unwrap_or(0);
    Ok(Measured {
        seconds,
        peak_rss_kib,
        bytes_written,
    })
}

/// Runs a scenario `runs` times and keeps, per figure, the median time and the largest RSS:
/// one run on a shared 2-core machine can be off by half.
fn run_scenario_median(
    cairn: &Path,
    scenario: &Scenario,
    runs: usize,
) -> anyhow::Result<serde_json::Value> {
    let results: Vec<serde_json::Value> = (0..runs)
        .map(|_| run_scenario(cairn, scenario))
        .collect::<anyhow::Result<_>>()?;
    let mut combined = results[0].clone();
    for key in [
        "upSeconds",
        "noopPreviewSeconds",
        "updateOnePercentSeconds",
        "destroySeconds",
    ] {
        let mut values: Vec<f64> = results
            .iter()
            .filter_map(|result| result[key].as_f64())
            .collect();
        values.sort_by(f64::total_cmp);
        combined[key] = serde_json::json!(values[values.len() / 2]);
    }
    let peak = results
        .iter()
        .filter_map(|result| result["peakRssMiB"].as_f64())
        .fold(0.0, f64::max);
    combined["peakRssMiB"] = serde_json::json!(peak);
    combined["runs"] = serde_json::json!(runs);
    Ok(combined)
}

fn run_scenario(cairn: &Path, scenario: &Scenario) -> anyhow::Result<serde_json::Value> {
    let root = tempfile::tempdir()?;
    let project = root.path().join("project");
    let home = root.path().join("home");
    std::fs::create_dir_all(&project)?;
    std::fs::create_dir_all(&home)?;
    std::fs::write(project.join("Cairn.yaml"), generate(scenario, 0))?;
    run_cairn(cairn, &project, &home, &["stack", "init", "bench"])?;
    let parallel = scenario.parallel.to_string();
    let up_args = [
        "up",
        "--yes",
        "--skip-preview",
        "--json",
        "--parallel",
        &parallel,
    ];
    let up = run_cairn(cairn, &project, &home, &up_args)?;
    let preview = run_cairn(cairn, &project, &home, &["preview", "--json"])?;
    std::fs::write(project.join("Cairn.yaml"), generate(scenario, 1))?;
    let update = run_cairn(cairn, &project, &home, &up_args)?;
    let checkpoint_bytes = std::fs::metadata(home.join(".pulumi/stacks/bench/bench.json"))
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    let destroy = run_cairn(
        cairn,
        &project,
        &home,
        &[
            "destroy",
            "--yes",
            "--skip-preview",
            "--json",
            "--parallel",
            &parallel,
        ],
    )?;
    let peak_rss_kib = [&up, &preview, &update, &destroy]
        .iter()
        .map(|measured| measured.peak_rss_kib)
        .max()
        .unwrap_or(0);
    Ok(serde_json::json!({
        "shape": scenario.shape.name(),
        "resources": scenario.n_resources,
        "latencyMs": scenario.latency_ms,
        "parallel": scenario.parallel,
        "upSeconds": up.seconds,
        "noopPreviewSeconds": preview.seconds,
        "updateOnePercentSeconds": update.seconds,
        "destroySeconds": destroy.seconds,
        "peakRssMiB": peak_rss_kib as f64 / 1024.0,
        "upBytesWritten": up.bytes_written,
        "checkpointBytes": checkpoint_bytes,
    }))
}

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let cairn = arguments
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/cairn"));
    let quick = arguments.iter().any(|argument| argument == "--quick");
    // The job queue is measured in this process, through the library: no binary needed.
    if arguments.iter().any(|argument| argument == "--jobs") {
        return jobs::run(quick);
    }
    // So is the router, through the library, against a unit in this process.
    if arguments.iter().any(|argument| argument == "--router") {
        return router::run(quick);
    }
    let runs = if quick { 1 } else { 3 };
    let cairn = std::fs::canonicalize(&cairn)
        .with_context(|| format!("no cairn binary at `{}`", cairn.display()))?;
    if arguments.iter().any(|argument| argument == "--backends") {
        return backends::run(&cairn, quick);
    }
    if arguments.iter().any(|argument| argument == "--plugins") {
        return plugins::run(&cairn, quick);
    }
    if arguments.iter().any(|argument| argument == "--compute") {
        return compute::run(&cairn, quick);
    }
    let scale = arguments.iter().any(|argument| argument == "--scale");
    let sizes: Vec<usize> = match arguments.iter().position(|argument| argument == "--sizes") {
        Some(position) => parse_sizes(arguments.get(position + 1).map(String::as_str))?,
        None if scale => vec![10_000, 30_000, 100_000],
        None if quick => vec![1_000],
        None => vec![10_000, 20_000],
    };
    // A scale run takes minutes per 100,000-resource scenario: once each.
    let runs = if scale { 1 } else { runs };
    let mut scenarios = Vec::new();
    for &n_resources in &sizes {
        for shape in SHAPES {
            scenarios.push(Scenario {
                shape,
                n_resources,
                latency_ms: 0,
                parallel: 64,
            });
        }
    }
    if !scale {
        scenarios.push(Scenario {
            shape: Shape::Independent,
            n_resources: 1_000,
            latency_ms: 100,
            parallel: 50,
        });
    }
    let mut results = Vec::new();
    println!(
        "{:<12} {:>7} {:>7} {:>5} {:>8} {:>9} {:>9} {:>9} {:>8} {:>12} {:>11}",
        "shape",
        "N",
        "latency",
        "par",
        "up s",
        "preview s",
        "update s",
        "destroy s",
        "RSS MiB",
        "up bytes",
        "checkpoint"
    );
    for scenario in &scenarios {
        let result = run_scenario_median(&cairn, scenario, runs)?;
        println!(
            "{:<12} {:>7} {:>7} {:>5} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>8.1} {:>12} {:>11}",
            scenario.shape.name(),
            scenario.n_resources,
            scenario.latency_ms,
            scenario.parallel,
            result["upSeconds"].as_f64().unwrap_or(0.0),
            result["noopPreviewSeconds"].as_f64().unwrap_or(0.0),
            result["updateOnePercentSeconds"].as_f64().unwrap_or(0.0),
            result["destroySeconds"].as_f64().unwrap_or(0.0),
            result["peakRssMiB"].as_f64().unwrap_or(0.0),
            result["upBytesWritten"].as_u64().unwrap_or(0),
            result["checkpointBytes"].as_u64().unwrap_or(0),
        );
        results.push(result);
    }
    if let (Some(&smallest), Some(&largest)) = (sizes.iter().min(), sizes.iter().max())
        && largest > smallest
    {
        print_ratios(&results, smallest, largest);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Array(results))?
    );
    Ok(())
}

fn parse_sizes(text: Option<&str>) -> anyhow::Result<Vec<usize>> {
    let text = text.context("`--sizes` takes a list such as `10000,30000,100000`")?;
    text.split(',')
        .map(|size| {
            size.trim()
                .parse::<usize>()
                .ok()
                .filter(|&size| size > 0)
                .with_context(|| format!("`{size}` in `--sizes` is not a number of resources"))
        })
        .collect()
}

/// Per shape, the times at the largest size divided by those at the smallest: a run that scales
/// linearly gives `largest / smallest`.
fn print_ratios(results: &[serde_json::Value], smallest: usize, largest: usize) {
    let find = |shape: Shape, n_resources: usize| {
        results.iter().find(|result| {
            result["shape"] == shape.name()
                && result["resources"] == n_resources
                && result["latencyMs"] == 0
        })
    };
    println!(
        "\n{largest}/{smallest} time ratio (linear: {:.1})",
        largest as f64 / smallest as f64
    );
    println!(
        "{:<12} {:>8} {:>9} {:>9} {:>9}",
        "shape", "up", "preview", "update", "destroy"
    );
    for shape in SHAPES {
        let (Some(small), Some(large)) = (find(shape, smallest), find(shape, largest)) else {
            continue;
        };
        let ratio = |key: &str| {
            let small = small[key].as_f64().unwrap_or(0.0);
            let large = large[key].as_f64().unwrap_or(0.0);
            if small > 0.0 { large / small } else { 0.0 }
        };
        println!(
            "{:<12} {:>8.1} {:>9.1} {:>9.1} {:>9.1}",
            shape.name(),
            ratio("upSeconds"),
            ratio("noopPreviewSeconds"),
            ratio("updateOnePercentSeconds"),
            ratio("destroySeconds"),
        );
    }
}
