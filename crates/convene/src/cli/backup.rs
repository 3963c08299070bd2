//! `convene backup` (being written).

use std::process::ExitCode;

/// Flags of `convene backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {}

/// Runs `convene backup`.
pub async fn run(_args: BackupArgs) -> ExitCode {
    eprintln!("convene backup: not built yet");
    ExitCode::FAILURE
}

/// Flags of `convene restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {}

/// Runs `convene restore`.
pub async fn restore(_args: RestoreArgs) -> ExitCode {
    eprintln!("convene restore: not built yet");
    ExitCode::FAILURE
}
