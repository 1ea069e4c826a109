//! `cairn-bench --plugins`: the overhead of an out-of-process provider. The same `up` of 1,000
//! `fake` resources with the built-in provider in process, and with the same provider served
//! out of process over the plugin protocol (`cairn plugin serve fake`, a Rust plugin on
//! cairn-provider-sdk), found through the project's `plugins:`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

fn time_up(cairn: &Path, n_resources: usize, out_of_process: bool) -> anyhow::Result<f64> {
    let root = tempfile::tempdir()?;
    let project = root.path().join("project");
    std::fs::create_dir_all(&project)?;
    let scenario = crate::Scenario {
        shape: crate::Shape::Independent,
        n_resources,
        latency_ms: 0,
        parallel: 64,
    };
    let mut program = crate::generate(&scenario, 0);
    if out_of_process {
        let wrapper = root.path().join("cairn-provider-fake");
        std::fs::write(
            &wrapper,
            format!("#!/bin/sh\nexec {} plugin serve fake\n", cairn.display()),
        )?;
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        program = program.replacen(
            "resources:\n",
            &format!("plugins:\n  fake: {}\nresources:\n", wrapper.display()),
            1,
        );
    }
    std::fs::write(project.join("Cairn.yaml"), program)?;
    let run = |args: &[&str]| -> anyhow::Result<f64> {
        let started = Instant::now();
        let output = Command::new(cairn)
            .args(args)
            .current_dir(&project)
            .env("CAIRN_HOME", root.path().join("home"))
            .env("CAIRN_CONFIG_PASSPHRASE", "bench")
            .output()
            .context("running cairn")?;
        if !output.status.success() {
            bail!(
                "`cairn {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(started.elapsed().as_secs_f64())
    };
    run(&["stack", "init", "bench"])?;
    run(&["up", "--yes", "--skip-preview"])
}

pub fn run(cairn: &Path, quick: bool) -> anyhow::Result<()> {
    let n_resources = 1_000;
    let runs = if quick { 1 } else { 5 };
    let mut built_in = Vec::new();
    let mut plugin = Vec::new();
    // Interleaved, so a slow moment of the machine does not land on one side only.
    for _ in 0..runs {
        built_in.push(time_up(cairn, n_resources, false)?);
        plugin.push(time_up(cairn, n_resources, true)?);
    }
    let built_in = crate::backends::median(built_in);
    let plugin = crate::backends::median(plugin);
    println!(
        "up of {n_resources} fake resources: built-in {built_in:.3} s, out-of-process plugin {plugin:.3} s ({:.2}x)",
        plugin / built_in
    );
    println!(
        "{}",
        serde_json::json!({
            "resources": n_resources,
            "builtInSeconds": built_in,
            "pluginSeconds": plugin,
            "ratio": plugin / built_in,
        })
    );
    Ok(())
}
