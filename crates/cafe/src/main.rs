//! `cafe`: the one binary. `cafe up` runs the whole cafe in one process; `cafe serve` runs one
//! service; `cafe cluster` runs every service as its own process. Parsing and wiring live in
//! the library; this file only reports how the process ended.

use cafe::cli;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Up(args) => cafe::up::run(args).await,
        cli::Command::Serve(args) => cafe::serve::run(args).await,
        cli::Command::Cluster(args) => cafe::cluster::run(args).await,
        cli::Command::User(command) => cafe::user::run(command).await,
        cli::Command::DeadLetters(args) => cafe::admin::run(args).await,
        cli::Command::Openapi(args) => cafe::print_description(args.service),
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
