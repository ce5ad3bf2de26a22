//! `barge operator`: runs the operator (see `barge_operator::run`) on a multi-threaded tokio
//! runtime until SIGTERM/SIGINT. Exit code 0 after a graceful stop, 1 on an error (including a
//! lost leader lease, so that the replica restarts clean).

use std::process::ExitCode;

use barge_operator::run::{self, OperatorArgs};

pub fn run(args: OperatorArgs) -> ExitCode {
    run::init_tracing(&args.log_level, args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("barge operator: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "the operator stopped");
            eprintln!("barge operator: {err}");
            ExitCode::FAILURE
        }
    }
}
