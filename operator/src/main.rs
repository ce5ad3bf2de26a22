//! barge: the Barge operator and command-line tool.
#![forbid(unsafe_code)]

fn main() {}
