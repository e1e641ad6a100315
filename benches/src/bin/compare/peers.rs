//! The peers: sharp and Pillow through their runner scripts in `benches/peers/`, and libvips'
//! `vipsthumbnail`; each installed on first use when allowed.

use crate::command::{capture, find_on_path, is_root, run_visible};
use crate::job::{Job, Measurement, Plan, Setup};
use anyhow::{Context, Result, ensure};
use serde::Deserialize;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The sharp release compared against (npm).
const SHARP_VERSION: &str = "0.35.5";
/// The Pillow release compared against (PyPI).
const PILLOW_VERSION: &str = "12.2.0";
/// Output width of the workload.
const WIDTH: u32 = 720;
/// Output height of the workload.
const HEIGHT: u32 = 588;
/// JPEG quality of the workload.
const QUALITY: u32 = 80;

/// A peer whose runner is a script in `benches/peers/`, started once per run.
///
/// The script takes `INPUT THREADS WARMUP ROUNDS PER_ROUND OUTPUT` and prints one line of JSON
/// with at least `rounds_ms` and `version`.
pub struct ScriptPeer {
    /// The interpreter.
    program: PathBuf,
    /// The runner script.
    script: PathBuf,
    /// Environment for every run.
    env: Vec<(&'static str, OsString)>,
    /// An environment variable set to the run's thread count.
    threads_env: Option<&'static str>,
}

impl ScriptPeer {
    /// sharp under Node.js, installed with npm into `target/compare/node`.
    pub fn sharp(setup: &Setup) -> Result<Self> {
        let node = find_on_path("node").context("node is not on PATH (install Node.js >= 20.9)")?;
        let prefix = setup.install_dir.join("node");
        let installed = installed_npm_version(&prefix.join("node_modules/sharp/package.json"));
        if installed.as_deref() == Some(SHARP_VERSION) {
            eprintln!("sharp {SHARP_VERSION} is installed in {}", prefix.display());
        } else {
            ensure!(
                setup.install,
                "sharp@{SHARP_VERSION} is not installed in {} (run without --no-install)",
                prefix.display()
            );
            let npm = find_on_path("npm").context("npm is not on PATH (install Node.js >= 20.9 with npm)")?;
            eprintln!("installing sharp@{SHARP_VERSION} into {}", prefix.display());
            run_visible(
                Command::new(npm)
                    .args(["install", "--save-exact", "--no-audit", "--no-fund", "--prefix"])
                    .arg(&prefix)
                    .arg(format!("sharp@{SHARP_VERSION}")),
            )?;
        }
        Ok(Self {
            program: node,
            script: setup.peers_dir.join(setup.workload.sharp_script()),
            env: vec![("IMGPIPE_NODE_PREFIX", prefix.into_os_string())],
            threads_env: Some("UV_THREADPOOL_SIZE"),
        })
    }

    /// Pillow in a venv at `target/compare/venv`.
    pub fn pillow(setup: &Setup) -> Result<Self> {
        let venv = setup.install_dir.join("venv");
        let python = venv.join("bin/python");
        if pillow_version(&python).as_deref() == Some(PILLOW_VERSION) {
            eprintln!("Pillow {PILLOW_VERSION} is installed in {}", venv.display());
        } else {
            ensure!(
                setup.install,
                "pillow=={PILLOW_VERSION} is not installed in {} (run without --no-install)",
                venv.display()
            );
            if !python.is_file() {
                let python3 = find_on_path("python3").context("python3 is not on PATH")?;
                eprintln!("creating a venv in {}", venv.display());
                run_visible(Command::new(python3).args(["-m", "venv"]).arg(&venv))?;
            }
            eprintln!("installing pillow=={PILLOW_VERSION} into {}", venv.display());
            run_visible(
                Command::new(venv.join("bin/pip"))
                    .args(["install", "--disable-pip-version-check", "--quiet"])
                    .arg(format!("pillow=={PILLOW_VERSION}")),
            )?;
        }
        Ok(Self { program: python, script: setup.peers_dir.join("pillow.py"), env: Vec::new(), threads_env: None })
    }

    /// Runs the script on `job` and parses the line of JSON it prints.
    pub fn run(&self, job: &Job) -> Result<Measurement> {
        let Plan { warmup, rounds, per_round } = job.plan;
        let mut command = Command::new(&self.program);
        command
            .arg(&self.script)
            .arg(job.input)
            .args([job.threads, warmup, rounds, per_round].map(|n| n.to_string()))
            .arg(job.image)
            .envs(self.env.iter().map(|(key, value)| (*key, value)));
        if let Some(key) = self.threads_env {
            command.env(key, job.threads.to_string());
        }
        let stdout = capture(&mut command)?;
        let line = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .with_context(|| format!("{} printed no result", self.script.display()))?;
        serde_json::from_str(line)
            .with_context(|| format!("{} printed {line:?}, not the expected JSON", self.script.display()))
    }
}

/// The version in an installed npm package's `package.json`, if it is there and readable.
fn installed_npm_version(manifest: &Path) -> Option<String> {
    /// The part of `package.json` we read.
    #[derive(Deserialize)]
    struct Package {
        /// The package's version.
        version: String,
    }
    let text = fs::read_to_string(manifest).ok()?;
    serde_json::from_str::<Package>(&text).ok().map(|package| package.version)
}

/// Pillow's version as `python` imports it, if it does.
fn pillow_version(python: &Path) -> Option<String> {
    if !python.is_file() {
        return None;
    }
    capture(Command::new(python).args(["-c", "import PIL; print(PIL.__version__)"])).ok()
}

/// libvips' `vipsthumbnail`, run as `threads` processes in parallel, each over its share of files.
pub struct Vipsthumbnail {
    /// The executable.
    program: PathBuf,
    /// `vipsthumbnail --vips-version`.
    version: String,
}

impl Vipsthumbnail {
    /// Finds `vipsthumbnail` on PATH, installing `libvips-tools` with apt-get if allowed and root.
    pub fn find(setup: &Setup) -> Result<Self> {
        let program = match find_on_path("vipsthumbnail") {
            Some(program) => program,
            None => {
                ensure!(setup.install, "vipsthumbnail is not on PATH (install it: apt-get install libvips-tools)");
                ensure!(is_root(), "vipsthumbnail is not on PATH (install it: sudo apt-get install libvips-tools)");
                eprintln!("installing libvips-tools with apt-get");
                let install = || {
                    run_visible(
                        Command::new("apt-get")
                            .args(["install", "-y", "libvips-tools"])
                            .env("DEBIAN_FRONTEND", "noninteractive"),
                    )
                };
                if install().is_err() {
                    run_visible(Command::new("apt-get").arg("update"))?;
                    install()?;
                }
                find_on_path("vipsthumbnail")
                    .context("vipsthumbnail is still not on PATH after installing libvips-tools")?
            }
        };
        let version = capture(Command::new(&program).arg("--vips-version"))?;
        Ok(Self { program, version })
    }

    /// Times `job`: the input is symlinked under many names, so that each process start-up is
    /// shared by many images, and each round's images are split between `job.threads` processes.
    pub fn run(&self, job: &Job) -> Result<Measurement> {
        let inputs = job.scratch.join("vips-in");
        let outputs = job.scratch.join("vips-out");
        for dir in [&inputs, &outputs] {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let links = (1..=job.plan.per_round.max(job.plan.warmup))
            .map(|i| {
                let link = inputs.join(format!("img{i:04}.jpg"));
                if !link.exists() {
                    std::os::unix::fs::symlink(job.input, &link)
                        .with_context(|| format!("linking {} to the input", link.display()))?;
                }
                Ok(link)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut pattern = outputs.join("%s.jpg").into_os_string();
        pattern.push(format!("[Q={QUALITY}]"));

        let batch = |files: &[PathBuf]| -> Result<()> {
            if files.is_empty() {
                return Ok(());
            }
            let children = files
                .chunks(files.len().div_ceil(job.threads))
                .map(|share| {
                    Command::new(&self.program)
                        .env("VIPS_CONCURRENCY", "1")
                        .arg("--size")
                        .arg(format!("{WIDTH}x{HEIGHT}"))
                        .arg("-o")
                        .arg(&pattern)
                        .args(share)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .with_context(|| format!("starting {}", self.program.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            for child in children {
                let output = child.wait_with_output().context("waiting for vipsthumbnail")?;
                ensure!(
                    output.status.success(),
                    "vipsthumbnail failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            Ok(())
        };

        batch(&links[..job.plan.warmup])?;
        let mut rounds_ms = Vec::with_capacity(job.plan.rounds);
        for _ in 0..job.plan.rounds {
            let started = Instant::now();
            batch(&links[..job.plan.per_round])?;
            rounds_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let made = outputs.join("img0001.jpg");
        fs::copy(&made, job.image).with_context(|| format!("copying {} to {}", made.display(), job.image.display()))?;
        Ok(Measurement { rounds_ms, version: self.version.clone(), per_round: None })
    }
}
