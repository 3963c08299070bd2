//! `convene import` (being written).

use std::process::ExitCode;

/// Flags of `convene import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {}

/// Runs `convene import`.
pub async fn run(_args: ImportArgs) -> ExitCode {
    eprintln!("convene import: not built yet");
    ExitCode::FAILURE
}
