//! Measuring: whether other processes competed for the CPU during a run, and the median.

use std::fs;
use std::time::Instant;

/// Cores' worth of CPU used by other processes during a run above which its timing is suspect.
pub const BUSY: f64 = 0.2;

/// Clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

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
        let own = fs::read_to_string("/proc/self/stat").ok()?;
        // After the parenthesised name: state is field 3, utime stime cutime cstime fields 14 to 17.
        let (_, fields) = own.rsplit_once(')')?;
        let ours =
            fields.split_whitespace().skip(11).take(4).map(|ticks| ticks.parse::<u64>().ok()).sum::<Option<u64>>()?;
        Some(Self { at: Instant::now(), machine, ours })
    }

    /// How many cores' worth of CPU other processes used since this sample.
    pub fn others_since(self) -> Option<f64> {
        let now = Self::now()?;
        let others = (now.machine - self.machine).saturating_sub(now.ours - self.ours);
        Some(others as f64 / USER_HZ / now.at.duration_since(self.at).as_secs_f64())
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}
