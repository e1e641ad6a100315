//! Rate limits as token buckets and Lambda's scaling rate as a ceiling over time.

use std::collections::VecDeque;

/// A token bucket. `reserve` serves FIFO by going into debt: the tokens are granted when the
/// debt is paid back, which is how a throttled client retrying behind others sees it.
pub(super) struct Bucket {
    pub(super) rate: f64,
    pub(super) burst: f64,
    pub(super) tokens: f64,
    pub(super) last: f64,
}

impl Bucket {
    pub(super) fn new(rate: f64, burst: f64) -> Self {
        Bucket { rate, burst, tokens: burst, last: 0.0 }
    }

    pub(super) fn refill(&mut self, now: f64) {
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last) * self.rate).min(self.burst);
            self.last = now;
        }
    }

    pub(super) fn set_rate(&mut self, now: f64, rate: f64, burst: f64) {
        self.refill(now);
        self.rate = rate;
        self.burst = burst;
    }

    /// When `n` tokens would be there, counting from `now` at today's rate (nothing taken).
    pub(super) fn when(&self, now: f64, n: f64) -> f64 {
        let dt = (now - self.last).max(0.0);
        let tokens = (self.tokens + dt * self.rate).min(self.burst.max(self.tokens));
        if tokens >= n { now } else { now + (n - tokens) / self.rate }
    }

    /// Takes `n` tokens at `now`; the time they are granted (`now` unless in debt).
    pub(super) fn reserve(&mut self, now: f64, n: f64) -> f64 {
        self.refill(now);
        self.tokens -= n;
        if self.tokens >= 0.0 { now } else { now - self.tokens / self.rate }
    }
}

/// A function's concurrency ceiling under the scaling rate: `step` more than it ran one
/// period ago.
pub(super) struct Scaling {
    pub(super) history: VecDeque<u32>,
    pub(super) len: usize,
}

impl Scaling {
    pub(super) fn new(period_steps: usize) -> Self {
        Scaling { history: VecDeque::from(vec![0; period_steps.max(1)]), len: period_steps.max(1) }
    }

    /// Records this step's concurrency; the ceiling one period later follows from it.
    pub(super) fn record(&mut self, in_flight: u32) {
        self.history.push_back(in_flight);
        while self.history.len() > self.len {
            self.history.pop_front();
        }
    }

    pub(super) fn ceiling(&self, step: u32) -> u32 {
        step.saturating_add(self.history.front().copied().unwrap_or(0))
    }
}
