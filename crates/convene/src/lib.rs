//! The convene server: configuration, the HTTP application (native API,
//! operations endpoints, OpenAPI) and the command-line entry points.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use convene::app::Application;
//! use convene::config::ServeConfig;
//!
//! let config = ServeConfig::for_tests(std::path::Path::new("/tmp/convene-demo"), "a-master-key-of-16+bytes");
//! let app = Application::build(config).await?;
//! println!("listening on {}", app.local_addr());
//! app.run_until(std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod dialects;
pub mod healthcheck;
pub mod http;
pub mod ingest;
pub mod state;
