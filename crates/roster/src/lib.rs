//! The `roster` program as a library: configuration, telemetry, tenant provisioning and the server
//! start-up sequence. `main.rs` is only the CLI on top; the test harness starts servers through the
//! same [`server::run`] the binary uses.

pub mod config;
pub mod provision;
pub mod server;
pub mod telemetry;
