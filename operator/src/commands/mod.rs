//! One module per `barge` subcommand: each parses its arguments (clap) and does the I/O around
//! the pure logic it calls.

/// `barge demo` (the simulated cluster in-process): only with the `demo` feature (default), so
/// the image's binary (`--no-default-features`) carries no simulator.
#[cfg(feature = "demo")]
pub mod demo;
pub mod describe;
pub mod get;
pub mod import;
pub mod kube_cli;
pub mod logs;
pub mod operator;
pub mod queues;
pub mod submit;
pub mod terminate;
pub mod why;
