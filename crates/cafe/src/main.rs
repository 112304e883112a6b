//! `cafe`: the one binary. `cafe up` runs the whole cafe in one process; `cafe serve` runs one
//! service. Parsing and wiring
//! live in their own modules; this file only reports how the process ended.

mod cli;
mod cluster;
mod serve;
mod services;
mod up;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Up(args) => up::run(args).await,
        cli::Command::Serve(args) => serve::run(args).await,
        cli::Command::Cluster(args) => cluster::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cafe: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
