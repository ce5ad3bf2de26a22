//! End-to-end benchmark: the real `barge operator` binary against barge-sim with the scripted
//! kubelet (zero-length containers), phase by phase, each on a fresh cluster with a fresh
//! operator process (the phases and what they share: `phases/mod.rs`; the throughput phases
//! `singles`, `array`, `n_to_n`, `gangs`, `fair_share`: `phases/throughput.rs`).
//!
//! Printed: the load average (`/proc/loadavg`) at the start and at the end, each phase's
//! figures as it ends, the comparisons between phases of the run, and one summary table of
//! every figure of issue 14's target table that the selected phases measured, with its target
//! and pass or fail.
//!
//! `cargo bench -p barge-operator --bench end_to_end` (N = 10,000, G = 50);
//! `BARGE_BENCH_JOBS=2000` for a shorter run; `BARGE_BENCH_PHASES=gangs` (a comma-separated list
//! of phase names, see `Phase::key`) runs only those phases; `BARGE_BENCH_GANGS` and
//! `BARGE_BENCH_GANG_NODES` size the gang phase. `BARGE_BENCH_BASELINE_BIN=<path to an older
//! barge binary>` runs the selected phases that use the operator a second time, in the same run,
//! with that binary (same sim, same kubelet: only the operator differs), and prints the new/old
//! ratio of every figure. `BARGE_BENCH_OPERATOR_ARGS` and `BARGE_BENCH_BASELINE_ARGS` add flags
//! to the new and the baseline operator (with this build's binary as the baseline, one run
//! compares two settings of a flag). `BARGE_BENCH_OPERATOR_BIN` runs another `barge` binary as
//! the new one. A throughput run starts with an unmeasured array (`BARGE_BENCH_WARMUP=0`: not).

mod phases;

/// The bench process runs barge-sim's API server and scripted kubelet in-process: the same
/// allocator as the `barge-sim` and `barge` binaries (glibc's malloc/free were ~30 % of the
/// server's CPU on pod writes), so the in-process cluster costs what the real binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use phases::{Bench, Phase};

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let bench = Bench::from_env();
    let wanted = std::env::var("BARGE_BENCH_PHASES").unwrap_or_default();
    let selected: Vec<Phase> = Phase::ALL
        .iter()
        .copied()
        .filter(|p| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == p.key()))
        .collect();
    let baseline = std::env::var_os("BARGE_BENCH_BASELINE_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if let Some(path) = &baseline {
        assert!(
            path.is_file(),
            "BARGE_BENCH_BASELINE_BIN: no file {}",
            path.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "== load average at the start: {} (phases: {})",
        phases::load_average(),
        selected
            .iter()
            .map(|p| p.key())
            .collect::<Vec<_>>()
            .join(", ")
    );
    runtime.block_on(async {
        // The first phase a bench process runs is slower than the same phase later (an array
        // of 10,000: 611 vs 735 children/s for one binary, whichever binary ran first): the
        // in-process cluster's allocator grows its heap from the kernel then. Unmeasured
        // warm-up first, so neither binary pays it (`BARGE_BENCH_WARMUP=0`: none).
        let throughput = [Phase::Singles, Phase::Array, Phase::ArrayLatency];
        if phases::env_number("BARGE_BENCH_WARMUP", 1) > 0
            && selected.iter().any(|p| throughput.contains(p))
        {
            println!(
                "== warm-up (not measured): an array of {} children",
                bench.jobs
            );
            phases::run_all(&bench, &[Phase::Array]).await;
            println!("== warm-up done");
        }
        let new = phases::run_all(&bench, &selected).await;
        phases::throughput::compare(&new);
        let old = match &baseline {
            Some(path) => {
                println!("== baseline binary: {}", path.display());
                let old_bench = Bench {
                    operator_bin: path.clone(),
                    baseline: true,
                    ..Bench::from_env()
                };
                let with_operator: Vec<Phase> = selected
                    .iter()
                    .copied()
                    .filter(|p| p.uses_operator())
                    .collect();
                let old = phases::run_all(&old_bench, &with_operator).await;
                phases::print_ratios(&new, &old);
                Some(old)
            }
            None => None,
        };
        println!("== load average at the end: {}", phases::load_average());
        phases::print_summary(&new, old.as_deref());
    });
}
