//! `twotower serve-bench`: a load benchmark of the HTTP server (not a
//! timed test). Starts `serve` on a loopback port in this process, sends a
//! bounded number of `GET /recommend/{user}?k=K` requests for the run's
//! users (round robin) from `--concurrency` keep-alive clients, and reports
//! throughput and latency percentiles. Client and server share the
//! machine's cores: the figures are for both on one box.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use twotower_serve::http::serve;

/// Arguments of `twotower serve-bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Run directory written by `twotower train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Requests to send (after 5 % of them as warm-up, not counted).
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Concurrent clients (threads, one keep-alive connection each).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Items per answer.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Serve from an HNSW index (its recall@k against exact is printed).
    #[arg(long)]
    pub ann: bool,
    /// HNSW search breadth (ef) of --ann: larger gives higher recall and slower searches.
    #[arg(long, value_name = "N", requires = "ann", default_value_t = super::serve::DEFAULT_EF, value_parser = super::serve::parse_ef)]
    pub ef: usize,
    /// Server worker threads (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `twotower serve-bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.requests == 0 || args.concurrency == 0 || args.k == 0 {
        bail!("--requests, --concurrency and -k must be at least 1");
    }
    let state = super::serve::app_state(&args.run, None, args.ann, args.ef, args.k)?;
    let ids: Arc<Vec<String>> = Arc::new(state.served.run.dataset.users.ids.to_vec());
    if ids.is_empty() {
        bail!("the run has no users");
    }
    let n_items = state.catalog.len();
    let threads = super::serve::server_threads(args.threads);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = serve(
            state,
            "127.0.0.1:0".parse().expect("address"),
            threads,
            |a| {
                let _ = tx.send(a);
            },
        );
        if let Err(e) = r {
            eprintln!("server: {e}");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .context("the server did not start")?;
    let base = format!("http://{addr}");

    let warm = args.requests / 20;
    let total = warm + args.requests;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..args.concurrency {
        let (next, ids, base) = (next.clone(), ids.clone(), base.clone());
        let k = args.k;
        handles.push(std::thread::spawn(
            move || -> anyhow::Result<(Vec<f64>, Instant)> {
                let agent = ureq::AgentBuilder::new().build();
                let mut lat = Vec::new();
                let mut first_counted = None;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let url = format!("{base}/recommend/{}?k={k}", ids[n % ids.len()]);
                    let t = Instant::now();
                    let body = agent
                        .get(&url)
                        .call()
                        .with_context(|| url.clone())?
                        .into_string()?;
                    let dt = t.elapsed().as_secs_f64();
                    if !body.starts_with('{') {
                        bail!("{url}: unexpected answer {body:?}");
                    }
                    if n >= warm {
                        first_counted.get_or_insert(t);
                        lat.push(dt);
                    }
                }
                Ok((lat, first_counted.unwrap_or_else(Instant::now)))
            },
        ));
    }
    let mut lat = Vec::with_capacity(args.requests);
    let mut t0 = Instant::now();
    for h in handles {
        let (l, first) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client panicked"))??;
        lat.extend(l);
        t0 = t0.min(first);
    }
    let wall = t0.elapsed().as_secs_f64();
    let _ = start;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1] * 1e3;
    let rps = lat.len() as f64 / wall;
    let (p50, p99, max) = (
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(0.0) * 1e3,
    );
    println!(
        "GET /recommend/{{user}}?k={}: {} requests ({} clients, {} server threads, {} index over {n_items} items): \
         {rps:.0} requests/s, p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms",
        args.k,
        lat.len(),
        args.concurrency,
        threads,
        if args.ann { "HNSW" } else { "exact" },
    );
    if let Some(p) = &args.json {
        let v = serde_json::json!({
            "endpoint": "GET /recommend/{user}",
            "k": args.k, "requests": lat.len(), "concurrency": args.concurrency,
            "server_threads": threads, "index": if args.ann { "hnsw" } else { "exact" },
            "items": n_items, "requests_per_second": rps,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max,
        });
        std::fs::write(p, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
