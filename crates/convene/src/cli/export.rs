//! `convene export` (being written).

use std::process::ExitCode;

/// Flags of `convene export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {}

/// Runs `convene export`.
pub async fn run(_args: ExportArgs) -> ExitCode {
    eprintln!("convene export: not built yet");
    ExitCode::FAILURE
}
