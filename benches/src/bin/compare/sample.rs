//! Measuring: whether other processes competed for the CPU during a run.

use benches::procfs::{USER_HZ, cpu_ticks};
use std::fs;
use std::time::Instant;

/// Cores' worth of CPU used by other processes during a run above which its timing is suspect.
pub const BUSY: f64 = 0.2;

/// CPU time used so far, from `/proc` (Linux only): to tell whether other work on the machine
/// competed with a run, which on a small machine skews its timings.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// When it was taken.
    at: Instant,
    /// Ticks every CPU spent busy (user, nice, system, irq, softirq, steal).
    machine: u64,
    /// Ticks used by this process and its waited-for children.
    ours: u64,
}

impl CpuSample {
    /// Reads `/proc/stat` and `/proc/self/stat`; `None` where they are unavailable.
    pub fn now() -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.split_whitespace().skip(1).take(8);
        let busy = cpu.enumerate().filter(|&(i, _)| !matches!(i, 3 | 4)).map(|(_, ticks)| ticks.parse::<u64>().ok());
        let machine = busy.sum::<Option<u64>>()?;
        let ours = cpu_ticks(&fs::read_to_string("/proc/self/stat").ok()?)?.iter().sum();
        Some(Self { at: Instant::now(), machine, ours })
    }

    /// How many cores' worth of CPU other processes used since this sample.
    pub fn others_since(self) -> Option<f64> {
        let now = Self::now()?;
        let others = (now.machine - self.machine).saturating_sub(now.ours - self.ours);
        Some(others as f64 / USER_HZ / now.at.duration_since(self.at).as_secs_f64())
    }
}
