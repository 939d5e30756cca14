//! `twotower serve`: the HTTP/JSON server over a run's artifact
//! ([`twotower_serve::http`] lists the endpoints).

use std::net::SocketAddr;
use std::path::PathBuf;

use twotower_serve::http::serve;

/// Arguments of `twotower serve`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train` (its artifact: the data
    /// files are not read).
    #[arg(long)]
    pub run: PathBuf,
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Search an HNSW index (its recall@10 against exact is printed at start) instead of exact scoring.
    #[arg(long)]
    pub ann: bool,
    /// HNSW search breadth (ef) of --ann: larger gives higher recall and slower searches.
    #[arg(long, value_name = "N", requires = "ann", default_value_t = super::serve::DEFAULT_EF, value_parser = super::serve::parse_ef)]
    pub ef: usize,
    /// Serve the items of this table instead of the run's (the layout of
    /// the config's `[data.items]`): new items are scored from their features.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Worker threads of the server (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Runs `twotower serve`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let state = super::serve::app_state(&args.run, args.catalog.as_deref(), args.ann, args.ef, 10)?;
    let (n_users, n_items) = (state.served.run.dataset.users.len(), state.catalog.len());
    let threads = super::serve::server_threads(args.threads);
    serve(state, args.addr, threads, |bound| {
        eprintln!(
            "serving {} ({n_users} users, {n_items} items) on http://{bound} — Ctrl-C or SIGTERM stops",
            args.run.display()
        );
    })?;
    eprintln!("server stopped");
    Ok(())
}
