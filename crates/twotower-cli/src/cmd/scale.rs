//! `twotower scale`: the whole job at one size, phase by phase — generate
//! a synthetic dataset, train one epoch, evaluate a sample of users
//! (exact or through the HNSW index), export the vectors — each phase a
//! child process of this binary, with its wall time, CPU time and peak
//! resident size (the child's `ru_maxrss` from `wait4(2)`, so one phase's
//! peak is not hidden by an earlier one's). Prints a table and writes a
//! JSON report. BENCHMARKS.md, "How to run".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;

/// Arguments of `twotower scale`.
#[derive(clap::Args)]
pub struct Args {
    /// Synthetic users (a count: 200000, 200k, 1.5M).
    #[arg(long, default_value_t = 200_000, value_parser = super::bench::parse_count)]
    pub users: usize,
    /// Synthetic items (the catalog).
    #[arg(long, default_value_t = 1_000_000, value_parser = super::bench::parse_count)]
    pub items: usize,
    /// Synthetic interactions.
    #[arg(long, default_value_t = 10_000_000, value_parser = super::bench::parse_count)]
    pub interactions: usize,
    /// Interaction part files (`generate --parts`): with more than 1 the
    /// interactions are a directory of Parquet parts, as a Spark job writes.
    #[arg(long, default_value_t = 1)]
    pub parts: usize,
    /// Embedding and tower output dimension (`model.embedding_dim`).
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    /// Training batch size (`train.batch_size`).
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Test users evaluated (`eval.max_users`, a seeded sample; 0 = all; a count such as 10k).
    #[arg(long, default_value_t = 10_000, value_parser = super::bench::parse_count)]
    pub eval_users: usize,
    /// How the evaluation ranks the catalog (`eval.retrieval`): exact or hnsw.
    #[arg(long, default_value = "exact")]
    pub retrieval: String,
    /// HNSW search breadth (`eval.ann_ef`), with `--retrieval hnsw`.
    #[arg(long, default_value_t = 256)]
    pub ef: usize,
    /// Training and evaluation threads (`train.threads`; 0 = all cores).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Working directory for the data, the run and the export (kept);
    /// without it, a temporary directory removed at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "runs/scale.json")]
    pub out: PathBuf,
    /// Extra `--set KEY=VALUE` for the train phase (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// One measured phase.
#[derive(Debug, Serialize)]
struct Phase {
    name: &'static str,
    /// The child's arguments (after the binary).
    args: Vec<String>,
    seconds: f64,
    /// The child's peak resident set size (`ru_maxrss`), bytes.
    peak_rss_bytes: u64,
    user_seconds: f64,
    system_seconds: f64,
}

#[derive(Serialize)]
struct Machine {
    cpu: String,
    logical_cpus: usize,
    mem_total_bytes: Option<u64>,
    load_average_at_start: Option<String>,
}

#[derive(Serialize)]
struct Report {
    twotower_version: String,
    date_unix: u64,
    machine: Machine,
    users: usize,
    items: usize,
    interactions: usize,
    parts: usize,
    dim: usize,
    batch_size: usize,
    eval_users: usize,
    retrieval: String,
    ann_ef: Option<usize>,
    threads: usize,
    phases: Vec<Phase>,
    /// metrics.json of the eval phase.
    metrics: serde_json::Value,
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpu = read("/proc/cpuinfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|x| x.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_total_bytes = read("/proc/meminfo").and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .map(|k| k * 1024)
    });
    Machine {
        cpu,
        logical_cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        mem_total_bytes,
        load_average_at_start: read("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
    }
}

/// Runs this binary with `args` as a child (its output into `log`) and
/// measures it: wall time, and from `wait4(2)` its CPU times and peak RSS.
/// Runs one phase; `keep_log`: the log outlives the run (`--dir`), so a
/// failure names it.
fn run_phase(
    name: &'static str,
    args: Vec<String>,
    log: &Path,
    keep_log: bool,
) -> anyhow::Result<Phase> {
    let exe = std::env::current_exe().context("locating the twotower binary")?;
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let t = Instant::now();
    let child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting the {name} phase"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet waited for (`child` is
        // never waited on by std); status and usage point to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).with_context(|| format!("waiting for the {name} phase"));
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    drop(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let how = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit status {}", libc::WEXITSTATUS(status))
        };
        let whose = if keep_log {
            format!("its output ({}) ends", log.display())
        } else {
            "its output ends".to_string()
        };
        bail!(
            "the {name} phase (twotower {}) failed ({how}); {whose}:\n{}",
            args.join(" "),
            tail.join("\n")
        );
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    Ok(Phase {
        name,
        args,
        seconds,
        // Linux reports ru_maxrss in KiB
        peak_rss_bytes: (usage.ru_maxrss.max(0) as u64) * 1024,
        user_seconds: secs(usage.ru_utime),
        system_seconds: secs(usage.ru_stime),
    })
}

fn gib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0 * 1024.0)
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// Runs `twotower scale`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let retrieval = match args.retrieval.as_str() {
        "exact" | "hnsw" => args.retrieval.clone(),
        other => bail!("--retrieval {other}: expected exact or hnsw (eval.retrieval)"),
    };
    if !(1..=twotower::config::MAX_ANN_EF).contains(&args.ef) {
        bail!(
            "--ef {}: the HNSW search breadth (eval.ann_ef) must be in 1..={}",
            args.ef,
            twotower::config::MAX_ANN_EF
        );
    }
    // the --set overrides go to the train phase: check them now, before
    // minutes of generating data (keys and values, against the defaults)
    twotower::config::Config::load(None, &args.set)
        .context("a --set of twotower scale (passed to its train phase)")?;
    for (flag, v) in [
        ("--users", args.users),
        ("--items", args.items),
        ("--interactions", args.interactions),
        ("--parts", args.parts),
        ("--dim", args.dim),
        ("--batch-size", args.batch_size),
    ] {
        if v == 0 {
            bail!("{flag} 0: must be at least 1");
        }
    }
    super::check_out_file_parent(&args.out)?;
    let start_machine = machine();
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            super::check_dir_flag("--dir", d)?;
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("twotower-scale")
                .tempdir()
                .context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let data = dir.join("data");
    let run_dir = dir.join("run");
    let export = dir.join("export");
    let p = |x: &Path| x.display().to_string();

    let mut phases = Vec::new();
    let generate = vec![
        s("generate"),
        s("--format"),
        s("parquet"),
        s("--out"),
        p(&data),
        s("--users"),
        s(args.users),
        s("--items"),
        s(args.items),
        s("--interactions"),
        s(args.interactions),
        s("--parts"),
        s(args.parts),
    ];
    let mut train = vec![
        s("train"),
        s("--quiet"),
        s("--force"),
        s("--config"),
        p(&data.join("dataset.toml")),
        s("--out"),
        p(&run_dir),
    ];
    let sets = [
        s("train.epochs=1"),
        s("train.validation=false"),
        format!("train.batch_size={}", args.batch_size),
        format!("train.threads={}", args.threads),
        format!("model.embedding_dim={}", args.dim),
        // the evaluation is its own phase: train's final one is cut to 1 user
        s("eval.max_users=1"),
    ];
    for x in sets.iter().chain(&args.set) {
        train.push(s("--set"));
        train.push(x.clone());
    }
    let mut eval = vec![s("eval"), s("--run"), p(&run_dir)];
    for x in [
        format!("eval.max_users={}", args.eval_users),
        format!("eval.retrieval={retrieval}"),
        format!("eval.ann_ef={}", args.ef),
    ] {
        eval.push(s("--set"));
        eval.push(x);
    }
    let export_args = vec![s("export"), s("--run"), p(&run_dir), s("--out"), p(&export)];
    for (name, a) in [
        ("generate", generate),
        ("train", train),
        ("eval", eval),
        ("export", export_args),
    ] {
        eprintln!("scale: {name}...");
        let ph = run_phase(
            name,
            a,
            &dir.join(format!("{name}.log")),
            args.dir.is_some(),
        )?;
        eprintln!(
            "scale: {name} {:.1}s, peak RSS {:.2} GiB",
            ph.seconds,
            gib(ph.peak_rss_bytes)
        );
        phases.push(ph);
    }
    let metrics_path = run_dir.join(twotower::run::METRICS_FILE);
    let metrics: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&metrics_path)
            .with_context(|| format!("reading {}", metrics_path.display()))?,
    )
    .with_context(|| format!("parsing {}", metrics_path.display()))?;

    let report = Report {
        twotower_version: env!("CARGO_PKG_VERSION").into(),
        date_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        machine: start_machine,
        users: args.users,
        items: args.items,
        interactions: args.interactions,
        parts: args.parts,
        dim: args.dim,
        batch_size: args.batch_size,
        eval_users: args.eval_users,
        ann_ef: (retrieval == "hnsw").then_some(args.ef),
        retrieval,
        threads: args.threads,
        phases,
        metrics,
    };
    print_report(&report);
    twotower::run::write_json(&args.out, &report)?;
    println!("report: {}", args.out.display());
    Ok(())
}

fn print_report(r: &Report) {
    println!(
        "scale: {} users, {} items, {} interactions ({} part file{}), dim {}, batch {}, {} threads; eval {} users, {}{}",
        r.users,
        r.items,
        r.interactions,
        r.parts,
        if r.parts == 1 { "" } else { "s" },
        r.dim,
        r.batch_size,
        r.threads,
        r.eval_users,
        r.retrieval,
        r.ann_ef.map(|e| format!(" (ef {e})")).unwrap_or_default()
    );
    println!(
        "machine: {} ({} logical CPUs, {:.1} GiB), load at start {}",
        r.machine.cpu,
        r.machine.logical_cpus,
        r.machine.mem_total_bytes.map(gib).unwrap_or(0.0),
        r.machine.load_average_at_start.as_deref().unwrap_or("?")
    );
    println!(
        "{:<10} {:>10} {:>14} {:>10} {:>10}",
        "phase", "seconds", "peak RSS GiB", "user s", "system s"
    );
    for p in &r.phases {
        println!(
            "{:<10} {:>10.1} {:>14.2} {:>10.1} {:>10.1}",
            p.name,
            p.seconds,
            gib(p.peak_rss_bytes),
            p.user_seconds,
            p.system_seconds
        );
    }
    let m = &r.metrics;
    let get = |k: &str| m.get(k).and_then(|v| v.as_f64());
    let approx = m.get("approximate").and_then(|v| v.as_bool()) == Some(true);
    if let Some(x) = get("recall@50").or_else(|| get("recall@10")) {
        let key = if get("recall@50").is_some() {
            "recall@50"
        } else {
            "recall@10"
        };
        println!(
            "{key} {x:.4}{}",
            if approx {
                " (APPROXIMATE: ranked through the HNSW index)"
            } else {
                " (exact)"
            }
        );
    }
    if let Some(r) = m
        .get("ann")
        .and_then(|a| a.get("recall_vs_exact"))
        .and_then(|r| r.as_object())
    {
        let list: Vec<String> = r
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|v| (super::k_of(k), format!("{k} {v:.4}"))))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        println!("index recall against exact top-K: {}", list.join(", "));
    }
}
