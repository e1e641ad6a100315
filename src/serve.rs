//! `imgpipe serve`: the upload API on a listener, over a local stack, until SIGINT/SIGTERM.

use crate::cli::ServeArgs;
use crate::stack::Stack;
use anyhow::{Context, Result, bail};
use ingest::IngestConfig;
use std::time::Duration;

/// Serves the API and runs the pipeline until a shutdown signal, then finishes in-flight work
/// for up to `--shutdown-seconds` (what is left stays queued for the next start).
pub async fn run(args: ServeArgs) -> Result<()> {
    if !args.addr.ip().is_loopback() && args.api_key.is_none() {
        bail!("refusing to listen on {} without an API key: pass --api-key (or IMGPIPE_API_KEY)", args.addr);
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {} (is another imgpipe running? try --addr)", args.addr))?;
    let addr = listener.local_addr()?;
    let ingest = IngestConfig {
        api_key: args.api_key.clone(),
        max_upload_bytes: args.common.max_bytes(),
        ..IngestConfig::default()
    };
    let mut config = args.common.stack_config(args.data.clone(), ingest, format!("http://{addr}"))?;
    config.lease = Duration::from_secs(args.lease_seconds.max(1));
    config.process = !args.ingest_only;
    let stack = Stack::start(config).await?;
    let mode = if args.ingest_only { ", ingest only: uploads are queued, not processed" } else { "" };
    say(format_args!("imgpipe listening on http://{addr} (data in {}{mode})", args.data.display()));
    axum::serve(listener, ingest::router(stack.state.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the server failed")?;
    say(format_args!("shutting down: finishing in-flight work (up to {} s)", args.shutdown_seconds));
    let idle = stack.shutdown(Duration::from_secs(args.shutdown_seconds)).await;
    if !idle {
        say(format_args!("unfinished work stays queued and resumes on the next start"));
    }
    Ok(())
}

/// Prints a status line; a closed stdout (`imgpipe serve | head`) must not stop the server.
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Resolves on SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or(());
}
