//! convene's HTTP integration suite: one test binary (fast linking); each
//! test starts the real server on port 0 with a fresh data directory and
//! speaks HTTP to it.

mod support;

mod auth;
mod bad_input;
mod cli;
mod companies;
mod console;
mod console_browser;
mod console_reports;
mod contacts;
mod conversations;
mod conversion;
mod converz;
mod conveyour;
mod convot;
mod crash;
mod crash_matrix;
mod disk_full;
mod erasure;
mod exports;
mod fields;
mod imports;
mod ingest;
mod ingest_support;
mod keys;
mod log_secrets;
mod multinode;
mod openapi;
mod ops;
mod ratelimit;
mod reps;
mod scopes;
mod segment;
mod segment_sdk;
