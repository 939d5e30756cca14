//! `twotower generate`: write a synthetic long-tail dataset (CSV or Parquet)
//! and a ready-to-use `dataset.toml` describing it.

use std::path::PathBuf;
use std::time::Instant;

use twotower_data::{write_dataset_parts, OutFormat, SyntheticConfig};

/// Output format of the tables.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    /// Comma-separated text with a header.
    Csv,
    /// Apache Parquet (Snappy).
    Parquet,
}

/// Arguments of `twotower generate` (defaults = the built-in dataset of `twotower train`).
#[derive(clap::Args)]
pub struct Args {
    /// Output directory (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Table format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FormatArg,
    /// Number of users.
    #[arg(long, default_value_t = SyntheticConfig::default().users)]
    pub users: usize,
    /// Number of items.
    #[arg(long, default_value_t = SyntheticConfig::default().items)]
    pub items: usize,
    /// Number of interactions (streamed; memory does not grow with it).
    #[arg(long, default_value_t = SyntheticConfig::default().interactions)]
    pub interactions: usize,
    /// Zipf exponent of item popularity.
    #[arg(long, default_value_t = SyntheticConfig::default().zipf)]
    pub zipf: f64,
    /// Zipf exponent of user activity.
    #[arg(long, default_value_t = SyntheticConfig::default().user_zipf)]
    pub user_zipf: f64,
    /// Number of latent topics.
    #[arg(long, default_value_t = SyntheticConfig::default().topics)]
    pub topics: usize,
    /// Probability that an interaction's user shares the item's topic.
    #[arg(long, default_value_t = SyntheticConfig::default().affinity)]
    pub affinity: f64,
    /// Probability that a topic-revealing feature shows a random topic.
    #[arg(long, default_value_t = SyntheticConfig::default().noise)]
    pub noise: f64,
    /// Tags per topic.
    #[arg(long, default_value_t = SyntheticConfig::default().tags_per_topic)]
    pub tags_per_topic: usize,
    /// RNG seed.
    #[arg(long, default_value_t = SyntheticConfig::default().seed)]
    pub seed: u64,
    /// Write the interactions as this many part files in `OUT/interactions/`
    /// (`part-00000.<ext>`, …: the layout a Spark or DataFusion job writes),
    /// read back as one table; 1 = one file `interactions.<ext>`.
    #[arg(long, default_value_t = 1)]
    pub parts: usize,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    super::check_out_dir(&args.out)?;
    let cfg = SyntheticConfig {
        users: args.users,
        items: args.items,
        interactions: args.interactions,
        zipf: args.zipf,
        user_zipf: args.user_zipf,
        topics: args.topics,
        affinity: args.affinity,
        noise: args.noise,
        tags_per_topic: args.tags_per_topic,
        seed: args.seed,
    };
    let format = match args.format {
        FormatArg::Csv => OutFormat::Csv,
        FormatArg::Parquet => OutFormat::Parquet,
    };
    let t = Instant::now();
    let s = write_dataset_parts(&cfg, &args.out, format, args.parts).map_err(|e| match e {
        // the generator names its config keys; here they came from flags
        twotower_data::DataError::Config { field, message } => {
            match field.strip_prefix("data.synthetic.") {
                Some(key) => anyhow::anyhow!("--{}: {message}", key.replace('_', "-")),
                None => anyhow::anyhow!("{field}: {message}"),
            }
        }
        other => other.into(),
    })?;
    let secs = t.elapsed().as_secs_f64();
    let mut text = format!(
        "wrote {} users, {} items, {} interactions in {:.1} s\n",
        s.rows[0], s.rows[1], s.rows[2], secs
    );
    for f in &s.files {
        text += &format!("  {}\n", f.display());
    }
    text += &format!(
        "next: twotower stats --config {}\n",
        args.out.join("dataset.toml").display()
    );
    super::stats::print_out(&text)
}
