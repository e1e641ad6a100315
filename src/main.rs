//! The `imgpipe` command: parses its arguments and runs the command (see the library, `imgpipe`).

use clap::Parser;
use imgpipe::cli::{Cli, Command};
use imgpipe::telemetry::{self, Profile};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    telemetry::init(match command {
        Command::Serve(_) => Profile::Serve,
        Command::Process(_) => Profile::Process,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve(args) => imgpipe::serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Process(args) => imgpipe::process::run(&args)
                .await
                .map(|summary| if summary.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
