//! Metrics on Lambda: what `imgpipe_core::metrics` records, written as CloudWatch Embedded
//! Metric Format (EMF) log lines, which CloudWatch Logs turns into metrics.
//!
//! No API call and no permission beyond the function's log group: a function writes one JSON
//! document per label set to stdout after each invocation, and Lambda ships stdout to its log
//! group as it does every log line. Namespace [`NAMESPACE`]; every metric has the dimension
//! [`FUNCTION_DIMENSION`] (the function's name, so two stacks in one account stay apart) plus
//! its own labels (`stage`, `kind`, `reason`): few, bounded dimension sets.

use super::{Env, MissingVar};
use metrics_cloudwatch_embedded::{Builder, Collector};
use std::future::Future;
use std::io::Write;

/// The CloudWatch namespace of imgpipe's metrics.
pub const NAMESPACE: &str = "imgpipe";
/// The dimension every metric carries: the name of the function that recorded it.
pub const FUNCTION_DIMENSION: &str = "function";
/// The EMF property that ties a metric document to its invocation's log lines.
pub const REQUEST_ID_PROPERTY: &str = "request_id";
/// The function's name, which Lambda sets in every function's environment.
const FUNCTION_NAME_VAR: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// The EMF recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum EmfError {
    /// Outside Lambda, the function's name is not in the environment.
    #[error(transparent)]
    FunctionName(#[from] MissingVar),
    /// Another `metrics` recorder was installed first in this process.
    #[error("the EMF metrics recorder could not be installed: {0}")]
    Install(String),
}

/// A function's EMF recorder: installed once at cold start, flushed after every invocation.
#[derive(Clone, Copy)]
pub struct EmfMetrics {
    collector: &'static Collector,
}

impl std::fmt::Debug for EmfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfMetrics").field("namespace", &NAMESPACE).finish_non_exhaustive()
    }
}

impl EmfMetrics {
    /// Installs the process's global `metrics` recorder, every metric dimensioned by this
    /// function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub fn for_this_function() -> Result<Self, EmfError> {
        Self::install(&Env.require(FUNCTION_NAME_VAR)?)
    }

    /// Installs the process's global `metrics` recorder, every metric dimensioned by
    /// `function`.
    pub fn install(function: &str) -> Result<Self, EmfError> {
        let collector = Builder::new()
            .cloudwatch_namespace(NAMESPACE)
            .with_dimension(FUNCTION_DIMENSION, function.to_owned())
            .init()
            .map_err(|e| EmfError::Install(e.to_string()))?;
        imgpipe_core::metrics::describe();
        Ok(Self { collector })
    }

    /// Runs one invocation, then writes what it recorded to `out` (stdout on Lambda), tagged
    /// with its request id. A failed write is logged, never the invocation's failure: losing
    /// one invocation's metrics must not fail its images.
    pub async fn around<F: Future>(&self, request_id: &str, invocation: F, out: &mut impl Write) -> F::Output {
        let output = invocation.await;
        self.collector.set_property(REQUEST_ID_PROPERTY, request_id);
        if let Err(e) = self.flush_to(out) {
            tracing::warn!(error = %e, "the invocation's metrics could not be written");
        }
        output
    }

    /// Writes every metric recorded since the last flush to `out`, one EMF document per line,
    /// in a single write: on stdout no log line of another thread lands inside a document.
    /// Counters are reset; counters without news and histograms without samples are left out.
    pub fn flush_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut documents = Vec::new();
        self.collector.flush(&mut documents)?;
        if documents.is_empty() {
            return Ok(());
        }
        out.write_all(&documents)?;
        out.flush()
    }
}
