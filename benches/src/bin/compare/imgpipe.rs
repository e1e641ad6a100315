//! imgpipe itself: the kernel in process, and the whole local pipeline (`imgpipe process`).

use crate::command::{capture, run_visible};
use crate::job::{Job, Measurement, Setup, Workload};
use anyhow::{Context, Result, ensure};
use imgpipe_core::{Limits, PresetCatalog};
use processor::{Recipe, process};
use rayon::prelude::*;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// The recipe of `workload`'s preset.
pub fn workload_recipe(workload: Workload) -> Result<Recipe> {
    let (name, toml) = workload.preset();
    let catalog = match toml {
        Some(toml) => PresetCatalog::from_toml(toml).context("parsing the workload's preset")?,
        None => PresetCatalog::builtin(),
    };
    let preset = catalog.get(name).with_context(|| format!("the workload defines no preset {name:?}"))?;
    Recipe::text_only(preset.clone()).context("preparing the workload's recipe")
}

/// imgpipe: a rayon pool of `job.threads` threads, each image read from disk then processed;
/// the last rendition is the one kept.
pub fn run_imgpipe(recipe: &Recipe, job: &Job) -> Result<Measurement> {
    let pool =
        rayon::ThreadPoolBuilder::new().num_threads(job.threads).build().context("building the rayon thread pool")?;
    let one = || -> Result<Vec<u8>> {
        let bytes = fs::read(job.input).with_context(|| format!("reading {}", job.input.display()))?;
        let output = process(&bytes, recipe, &Limits::default()).context("imgpipe could not process the input")?;
        let rendition = output.renditions.into_iter().last().context("imgpipe made no rendition")?;
        Ok(rendition.bytes)
    };
    // `n` images in parallel on the pool; the result is one of the outputs.
    let batch = |n: usize| (0..n).into_par_iter().map(|_| one()).try_reduce_with(|_, last| Ok(last)).transpose();

    let (rounds_ms, last) = pool.install(|| -> Result<_> {
        batch(job.plan.warmup)?;
        let mut rounds_ms = Vec::with_capacity(job.plan.rounds);
        let mut last = None;
        for _ in 0..job.plan.rounds {
            let started = Instant::now();
            last = batch(job.plan.per_round)?;
            rounds_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok((rounds_ms, last))
    })?;
    let last = last.context("no image was processed")?;
    fs::write(job.image, last).with_context(|| format!("writing {}", job.image.display()))?;
    Ok(Measurement { rounds_ms, version: env!("CARGO_PKG_VERSION").to_owned(), per_round: None })
}

/// Images per round of the pipeline: enough that start-up and draining are amortised.
const PIPELINE_IMAGES: usize = 200;

/// The `imgpipe` binary, timed by its own report ("N images in S s"): from the first upload
/// to the last record DONE, renditions stored (process start-up and the export excluded).
pub struct Pipeline {
    /// `target/release/imgpipe`.
    program: PathBuf,
    /// The workload's preset, and the presets file that defines it (`None`: a built-in one).
    preset: &'static str,
    presets: Option<PathBuf>,
    /// The output kept, under each input's folder of `process --out`: the last rendition.
    kept: String,
    /// Its TMPDIR, which holds its throwaway data directory, and where its outputs go.
    tmp: PathBuf,
}

impl Pipeline {
    /// Builds the release binary (a no-op when it is up to date) and writes the presets file.
    pub fn build(setup: &Setup, recipe: &Recipe) -> Result<Self> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_visible(Command::new(cargo).args(["build", "--release", "--quiet", "-p", "imgpipe", "--bin", "imgpipe"]))?;
        // `target/compare/../release`: the directory must exist for the `..` to resolve (with
        // `--out` elsewhere, nothing else has made it yet).
        fs::create_dir_all(&setup.install_dir)?;
        let program = setup.install_dir.join("../release/imgpipe");
        ensure!(program.is_file(), "{} was not built", program.display());
        let (preset, toml) = setup.workload.preset();
        let presets = match toml {
            Some(toml) => {
                let path = setup.install_dir.join(format!("{preset}.toml"));
                fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let last = recipe.preset().renditions.last().context("the workload's preset has no rendition")?;
        Ok(Self {
            program,
            preset,
            presets,
            kept: format!("{}.{}", last.name, last.format.extension()),
            tmp: setup.pipeline_tmp.join(format!("imgpipe-compare-pipeline-{}", std::process::id())),
        })
    }

    /// One `imgpipe process` per round over [`PIPELINE_IMAGES`] links to the input.
    pub fn run(&self, job: &Job) -> Result<Measurement> {
        let inputs = job.scratch.join("pipeline-in");
        let outputs = self.tmp.join("pipeline-out");
        eprintln!("imgpipe-pipeline: data directories and outputs in {}", self.tmp.display());
        fs::create_dir_all(&inputs).with_context(|| format!("creating {}", inputs.display()))?;
        let extension = job.input.extension().and_then(|e| e.to_str()).unwrap_or("jpg");
        for i in 1..=PIPELINE_IMAGES {
            let link = inputs.join(format!("img{i:04}.{extension}"));
            if !link.exists() {
                std::os::unix::fs::symlink(job.input, &link).with_context(|| format!("linking {}", link.display()))?;
            }
        }
        let mut rounds_ms = Vec::with_capacity(job.plan.rounds);
        let mut version = String::new();
        // Each round writes its own folder, all removed at the end: deleting the last round's
        // files just before a round would charge it for them (on an ext4 without a journal, as
        // here, allocating an inode skips each one freed in the last seconds, one by one).
        let _ = fs::remove_dir_all(&self.tmp);
        fs::create_dir_all(&self.tmp).with_context(|| format!("creating {}", self.tmp.display()))?;
        for round in 0..job.plan.rounds {
            let out = outputs.join(format!("round-{round}"));
            let mut command = Command::new(&self.program);
            command.env("TMPDIR", &self.tmp).arg("process").arg(&inputs).arg("--out").arg(&out);
            if let Some(presets) = &self.presets {
                command.arg("--presets").arg(presets);
            }
            command.args(["--preset", self.preset, "--workers", &job.threads.to_string()]);
            let report = capture(&mut command)?;
            let seconds = report
                .split_once(" images in ")
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
                .with_context(|| format!("unexpected imgpipe report: {report}"))?;
            ensure!(report.contains(&format!("{PIPELINE_IMAGES} done")), "not every image was done: {report}");
            rounds_ms.push(seconds * 1e3);
            version = capture(Command::new(&self.program).arg("--version"))?;
        }
        let made = outputs
            .join(format!("round-{}", job.plan.rounds.saturating_sub(1)))
            .join(format!("img0001.{extension}"))
            .join(&self.kept);
        fs::copy(&made, job.image).with_context(|| format!("copying {} to {}", made.display(), job.image.display()))?;
        let _ = fs::remove_dir_all(&self.tmp);
        Ok(Measurement { rounds_ms, version, per_round: Some(PIPELINE_IMAGES) })
    }
}
