//! The `twotower` command-line tool: thin dispatch to one module per subcommand.

mod cmd;

use clap::{Parser, Subcommand};

/// Train, evaluate and serve two-tower retrieval models.
#[derive(Parser)]
#[command(name = "twotower", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a two-tower model (built-in synthetic data without --config), then evaluate it.
    Train(cmd::train::Args),
    /// Evaluate a trained run per EVALUATION.md.
    Eval(cmd::eval::Args),
    /// Dataset statistics of the train split: counts, density, popularity concentration.
    Stats(cmd::stats::Args),
    /// Generate a synthetic long-tail dataset (CSV or Parquet) with a planted preference structure.
    Generate(cmd::generate::Args),
    /// Top-K items for a user (exact, or HNSW with --ann).
    Recommend(cmd::recommend::Args),
    /// Nearest items of an item.
    Similar(cmd::similar::Args),
    /// Export user and item vectors (.npy, safetensors, ids, manifest).
    Export(cmd::export::Args),
    /// Write a run's self-contained serving artifact (runs from before it existed).
    Artifact(cmd::artifact::Args),
    /// HTTP/JSON server: recommendations for known and new users, similar items.
    Serve(cmd::server::Args),
    /// Build and save a run's HNSW index (usearch), with its recall against exact.
    Index(cmd::index::Args),
    /// Load benchmark of the HTTP server on loopback: requests/s, p50/p99 latency.
    ServeBench(cmd::serve_bench::Args),
    /// Mutual information between item features (table + heatmap).
    Mi(cmd::mi::Args),
    /// Train config variants over several seeds and write a comparison report (mean ± std, plots).
    Compare(cmd::compare::Args),
    /// Measure training throughput (per-phase split, memory, allocations), evaluation vs GEMM, ingestion.
    Bench(cmd::bench::Args),
    /// One size end to end (generate → train 1 epoch → eval → export), each phase a child process: time and peak RSS per phase.
    Scale(cmd::scale::Args),
}

/// Counts heap allocations (one relaxed atomic add each) so that `twotower
/// bench` can show the steady-state training step allocates nothing; only
/// in a build with `--features alloc-count`, never in the default binary.
#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOC: twotower::bench::CountingAlloc = twotower::bench::CountingAlloc;

fn main() {
    // Die quietly on a closed pipe (`twotower eval ... | head`) like other CLI tools,
    // instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Stats(a) => cmd::stats::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Recommend(a) => cmd::recommend::run(a),
        Command::Similar(a) => cmd::similar::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Artifact(a) => cmd::artifact::run(a),
        Command::Serve(a) => cmd::server::run(a),
        Command::Index(a) => cmd::index::run(a),
        Command::ServeBench(a) => cmd::serve_bench::run(a),
        Command::Mi(a) => cmd::mi::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Scale(a) => cmd::scale::run(a),
    };
    if let Err(e) = result {
        // Ctrl-C during training is a deliberate stop, not a failure: no
        // "error:", the conventional exit status 128 + SIGINT
        let interrupted = matches!(
            e.downcast_ref::<twotower::train::TrainError>(),
            Some(twotower::train::TrainError::Interrupted { .. })
        );
        if interrupted {
            eprintln!("{e}");
            std::process::exit(130);
        }
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined by ": ", skipping a cause whose text
/// the message already ends with (errors that print their source too).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let m = cause.to_string();
        if out.ends_with(&m) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&m);
    }
    out
}
