//! The tools compared, made ready to run, and the loop that runs each one at each thread count.

use crate::imgpipe::{Pipeline, run_imgpipe, workload_recipe};
use crate::job::{Job, Measurement, Plan, Setup, Tool};
use crate::peers::{ScriptPeer, Vipsthumbnail};
use crate::report::{Row, Skipped};
use crate::sample::{BUSY, CpuSample};
use anyhow::{Result, ensure};
use processor::Recipe;
use std::path::Path;

/// A tool made ready to run.
enum Runner {
    /// imgpipe's kernel with the workload's recipe.
    Imgpipe(Recipe),
    /// A runner script in `benches/peers/`.
    Script(ScriptPeer),
    /// The `vipsthumbnail` command.
    Vips(Vipsthumbnail),
    /// The `imgpipe process` command.
    Pipeline(Pipeline),
}

impl Runner {
    /// Makes `tool` ready, installing it first if allowed.
    pub fn prepare(tool: Tool, setup: &Setup) -> Result<Self> {
        ensure!(setup.workload.tools().contains(&tool), "{tool} does not run the {:?} workload", setup.workload);
        Ok(match tool {
            Tool::Imgpipe => Runner::Imgpipe(workload_recipe(setup.workload)?),
            Tool::ImgpipePipeline => Runner::Pipeline(Pipeline::build(setup, &workload_recipe(setup.workload)?)?),
            Tool::Sharp => Runner::Script(ScriptPeer::sharp(setup)?),
            Tool::Vipsthumbnail => Runner::Vips(Vipsthumbnail::find(setup)?),
            Tool::Pillow => Runner::Script(ScriptPeer::pillow(setup)?),
        })
    }

    /// Runs `job`, leaving one output image at `job.image`.
    pub fn run(&self, job: &Job) -> Result<Measurement> {
        match self {
            Runner::Imgpipe(recipe) => run_imgpipe(recipe, job),
            Runner::Script(peer) => peer.run(job),
            Runner::Vips(vips) => vips.run(job),
            Runner::Pipeline(pipeline) => pipeline.run(job),
        }
    }
}

/// Runs every tool in `tools` at every thread count, one output image per tool in `out_dir`;
/// `passes` times over, the tools taking turns at each thread count so that a machine that
/// speeds up or slows down during the run moves every tool alike. Each (tool, threads) row holds
/// the rounds of every pass.
///
/// A peer that cannot be prepared or run is recorded as skipped; only imgpipe's failure is an error.
#[allow(clippy::too_many_arguments)]
pub fn run_all(
    tools: &[Tool],
    thread_counts: &[usize],
    plan: Plan,
    passes: usize,
    setup: &Setup,
    input: &Path,
    out_dir: &Path,
    scratch: &Path,
) -> Result<(Vec<Row>, Vec<Skipped>)> {
    let mut results: Vec<Row> = Vec::new();
    let mut skipped = Vec::new();
    let mut runners = Vec::new();
    for &tool in tools {
        match Runner::prepare(tool, setup) {
            Ok(runner) => runners.push((tool, runner)),
            Err(e) if tool == Tool::Imgpipe => return Err(e),
            Err(e) => {
                eprintln!("{tool}: unavailable: {e:#}");
                skipped.extend(thread_counts.iter().map(|&threads| Skipped {
                    tool,
                    threads,
                    reason: format!("{e:#}"),
                }));
            }
        }
    }
    for pass in 1..=passes {
        for &threads in thread_counts {
            for (tool, runner) in &runners {
                let tool = *tool;
                if skipped.iter().any(|s| s.tool == tool && s.threads == threads) {
                    continue;
                }
                eprintln!(
                    "{tool}, {threads} thread(s), pass {pass} of {passes}: {} warm-up + {} × {} images",
                    plan.warmup, plan.rounds, plan.per_round
                );
                let image = out_dir.join(format!("{tool}.{}", setup.workload.extension()));
                let job = Job { input, threads, plan, image: &image, scratch };
                let before = CpuSample::now();
                let measured = runner.run(&job);
                match measured.and_then(|measured| Row::new(tool, threads, plan, measured, &image)) {
                    Ok(row) => {
                        let others = before.and_then(CpuSample::others_since);
                        if let Some(others) = others.filter(|&others| others > BUSY) {
                            eprintln!("warning: other processes used {others:.2} cores during this run");
                        }
                        let row = Row { other_cpu: others, ..row };
                        match results.iter_mut().find(|r| r.tool == tool && r.threads == threads) {
                            Some(earlier) => earlier.merge(row),
                            None => results.push(row),
                        }
                    }
                    Err(e) if tool == Tool::Imgpipe => {
                        return Err(e.context(format!("imgpipe failed ({threads} threads)")));
                    }
                    Err(e) => {
                        eprintln!("{tool}, {threads} thread(s): failed: {e:#}");
                        results.retain(|r| !(r.tool == tool && r.threads == threads));
                        skipped.push(Skipped { tool, threads, reason: format!("{e:#}") });
                    }
                }
            }
        }
    }

    Ok((results, skipped))
}
