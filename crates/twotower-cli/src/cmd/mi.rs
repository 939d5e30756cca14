//! `twotower mi`: mutual information between item features (the statistic
//! behind correlated feature masking), as a table and a heatmap.

use std::path::PathBuf;

use twotower::augment::{mi_table, mutual_information, AugmentConfig, Augmenter, MaskingPattern};
use twotower::config::Config;
use twotower::train::columns;
use twotower_report::write_mi_heatmap;

/// Arguments of `twotower mi`.
#[derive(clap::Args)]
pub struct Args {
    /// Dataset config (TOML). Without it: the built-in synthetic data.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Override any config key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Heatmap PNG (an SVG with labels is written beside it).
    #[arg(long, default_value = "runs/mi.png")]
    pub out: PathBuf,
    /// Weight each item by its train clicks instead of counting it once.
    #[arg(long)]
    pub clicks: bool,
}

/// Runs `twotower mi`.
pub fn run(args: Args) -> anyhow::Result<()> {
    // checked before the work: the SVG goes beside the PNG (same stem), so a
    // non-.png name would be overwritten by the SVG
    let is_png = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        anyhow::bail!(
            "--out {}: must name a .png file (the labelled SVG is written beside it, same stem)",
            args.out.display()
        );
    }
    if args.out.is_dir() {
        anyhow::bail!(
            "--out {}: is a directory, expected a .png file name",
            args.out.display()
        );
    }
    super::check_out_file_parent(&args.out)?;
    let cfg = Config::load(args.config.as_deref(), &args.set)?;
    let ds = super::load_data(&cfg, false)?;
    let feats = &ds.items.features;
    let cols = columns(feats);
    let weights = args
        .clicks
        .then(|| twotower::train::train_item_counts(&ds, &ds.train));
    let mi = mutual_information(&cols, weights.as_deref())?;
    let names: Vec<String> = feats.iter().map(|f| f.name.clone()).collect();
    println!(
        "mutual information between item features (nats; diagonal = entropy; {} over {} items)",
        if args.clicks {
            "click-weighted"
        } else {
            "one count per item"
        },
        ds.items.ids.len()
    );
    println!("{}", mi_table(&names, &mi));
    // the groups training would use, with this config's ssl.mask_id and
    // ssl.cfm_id_partner
    let s = &cfg.raw.ssl;
    let aug = Augmenter::new(
        AugmentConfig {
            pattern: MaskingPattern::Correlated,
            mask_id_feature: s.mask_id,
            cfm_id_partner: s.cfm_id_partner,
            ..AugmentConfig::default()
        },
        feats
            .iter()
            .map(|f| matches!(f.kind, twotower_data::FeatureKind::MultiCategorical))
            .collect(),
        feats.iter().map(|f| f.is_id).collect(),
        Some(&mi),
    )?;
    println!(
        "correlated-masking groups (seed first; ssl.mask_id={}, ssl.cfm_id_partner={}):",
        s.mask_id, s.cfm_id_partner
    );
    for g in aug.cfm_groups() {
        let n: Vec<&str> = g.iter().map(|&i| names[i].as_str()).collect();
        println!("  {}", n.join(", "));
    }
    write_mi_heatmap(&args.out, &names, &mi)?;
    println!(
        "heatmap: {} (labelled: {})",
        args.out.display(),
        args.out.with_extension("svg").display()
    );
    Ok(())
}
