//! `cairn-bench --compute`: a group of 50 containers from empty to all running
//! (`cairn group commit` on the docker driver), against 50 `docker run -d` of the same image
//! started in parallel, in the same run; and `cairn run` of a one-line script on the docker
//! driver against `docker run --rm` of the same script, one after another. The image is built
//! from Debian's static busybox.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

const IMAGE: &str = "cairn-bench-busybox:latest";
const LABEL: &str = "cairn.bench=1";

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker")
        .args(args)
        .output()
        .context("running docker (the baseline)")?;
    if !output.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn build_image(dir: &Path) -> anyhow::Result<()> {
    let context = dir.join("image");
    std::fs::create_dir_all(context.join("bin"))?;
    std::fs::copy("/bin/busybox", context.join("bin/busybox"))
        .context("copying /bin/busybox (run scripts/ensure-busybox.sh)")?;
    for applet in ["sh", "sleep", "cat", "echo", "test", "kill"] {
        std::os::unix::fs::symlink("busybox", context.join("bin").join(applet))?;
    }
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nCOPY bin /bin\n")?;
    docker(&[
        "build",
        // The engine's cache can take another busybox image's layer (other links) for this.
        "--no-cache",
        "-q",
        "--label",
        LABEL,
        "-t",
        IMAGE,
        &context.display().to_string(),
    ])?;
    Ok(())
}

fn remove_bench_containers() -> anyhow::Result<()> {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        docker(&args)?;
    }
    Ok(())
}

fn docker_run_baseline(n: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new("docker")
                .args(["run", "-d", "--label", LABEL, IMAGE, "sleep", "300"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!("docker run: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

fn cairn_group(cairn: &Path, dir: &Path, n: usize) -> anyhow::Result<f64> {
    let spec = dir.join("group.yaml");
    std::fs::write(
        &spec,
        format!(
            "id: bench\ndriver:\n  name: docker\nproperties:\n  image: {IMAGE}\n  command: [sleep, \"300\"]\nsize: {n}\n"
        ),
    )?;
    let run = |args: &[&str]| -> anyhow::Result<f64> {
        let started = Instant::now();
        let output = Command::new(cairn)
            .args(args)
            .env("CAIRN_HOME", dir.join("home"))
            .env("CAIRN_CONFIG_PASSPHRASE", "bench")
            .output()?;
        if !output.status.success() {
            bail!(
                "cairn {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let spec = spec.display().to_string();
    // The commit includes its preview, as a user runs it.
    let seconds = run(&["group", "commit", &spec, "--yes"])?;
    let running = docker(&["ps", "-q", "--filter", "label=cairn.group=bench"])?;
    let count = running.split_whitespace().count();
    if count != n {
        bail!("the group has {count} running containers, not {n}");
    }
    run(&["group", "destroy", "bench", "--yes"])?;
    Ok(seconds)
}

/// Times one command; fails unless it exits 0 and prints `hi`.
fn time_script_run(command: &mut Command) -> anyhow::Result<f64> {
    let started = Instant::now();
    let output = command.output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() || String::from_utf8_lossy(&output.stdout) != "hi\n" {
        bail!(
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}

/// Medians of `cairn run` and of `docker run --rm`, each running `echo hi`, `n` times each.
fn script_runs(cairn: &Path, dir: &Path, n: usize) -> anyhow::Result<(f64, f64)> {
    let script = dir.join("hi.sh");
    std::fs::write(&script, "echo hi\n")?;
    let (mut baseline, mut runs) = (Vec::new(), Vec::new());
    for _ in 0..n {
        baseline.push(time_script_run(Command::new("docker").args([
            "run", "--rm", "--label", LABEL, IMAGE, "sh", "-c", "echo hi",
        ]))?);
        runs.push(time_script_run(
            Command::new(cairn)
                .args(["run", &script.display().to_string(), "--driver", "docker"])
                .args(["--image", IMAGE])
                .env("CAIRN_HOME", dir.join("home")),
        )?);
    }
    Ok((
        crate::backends::median(baseline),
        crate::backends::median(runs),
    ))
}

pub fn run(cairn: &Path, quick: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    build_image(dir.path())?;
    let (docker_run, cairn_run) = script_runs(cairn, dir.path(), if quick { 3 } else { 11 })?;
    println!(
        "a one-line script: `docker run --rm` {:.0} ms, `cairn run --driver docker` {:.0} ms (overhead {:+.0} ms)",
        docker_run * 1000.0,
        cairn_run * 1000.0,
        (cairn_run - docker_run) * 1000.0
    );
    println!(
        "{}",
        serde_json::json!({ "dockerRunRmSeconds": docker_run, "cairnRunSeconds": cairn_run, "overheadMs": (cairn_run - docker_run) * 1000.0 })
    );
    let n = if quick { 10 } else { 50 };
    let runs = if quick { 1 } else { 3 };
    let mut baseline = Vec::new();
    let mut group = Vec::new();
    for run in 0..runs {
        baseline.push(docker_run_baseline(n)?);
        remove_bench_containers()?;
        let home = dir.path().join(format!("run{run}"));
        std::fs::create_dir_all(&home)?;
        group.push(cairn_group(cairn, &home, n)?);
        remove_bench_containers()?;
    }
    let _ = docker(&["rmi", IMAGE]);
    let baseline = crate::backends::median(baseline);
    let group = crate::backends::median(group);
    println!(
        "{n} containers to running: {n} parallel `docker run -d` {baseline:.2} s, `cairn group commit` {group:.2} s ({:.2}x)",
        group / baseline
    );
    println!(
        "{}",
        serde_json::json!({ "containers": n, "dockerRunSeconds": baseline, "groupSeconds": group, "ratio": group / baseline })
    );
    Ok(())
}
