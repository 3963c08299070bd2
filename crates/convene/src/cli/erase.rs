//! `convene erase` (being written).

use std::process::ExitCode;

/// Flags of `convene erase`.
#[derive(Debug, clap::Args)]
pub struct EraseArgs {}

/// Runs `convene erase`.
pub async fn run(_args: EraseArgs) -> ExitCode {
    eprintln!("convene erase: not built yet");
    ExitCode::FAILURE
}
