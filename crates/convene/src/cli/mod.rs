//! The command-line subcommands beyond `serve`: each module owns its flags
//! (a clap `Args` struct) and its `run`, which returns the process's exit
//! code. `main.rs` only dispatches.

pub mod backup;
pub mod erase;
pub mod export;
pub mod import;
pub mod users;
