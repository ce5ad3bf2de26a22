//! One module per `barge` subcommand: each parses its arguments (clap) and does the I/O around
//! the pure logic it calls.

pub mod demo;
pub mod import;
pub mod operator;
pub mod why;
