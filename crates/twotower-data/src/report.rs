//! The ingest report: what loading handled rather than rejected (skipped
//! rows, duplicates, entities without feature rows, per-feature figures)
//! and the warnings drawn from it.

use serde::{Deserialize, Serialize};

use crate::config::{FeatureKind, Side};

/// Per-feature ingest figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureReport {
    /// Feature name.
    pub name: String,
    /// Its tower.
    pub side: Side,
    /// Its kind.
    pub kind: FeatureKind,
    /// True for an id feature.
    pub is_id: bool,
    /// Vocabulary size including index 0.
    pub vocab_len: usize,
    /// Entities whose value is 0 (single-valued) or whose bag is empty
    /// (multi): `empty + no_row`.
    pub missing: usize,
    /// Of `missing`, entities with a row in the feature's table but no
    /// usable value there (an empty cell, or values unparsable or out of
    /// vocabulary); for an id feature or a long table, all of `missing`.
    #[serde(default)]
    pub empty: usize,
    /// Of `missing`, entities without a row in the side's feature table
    /// (0 for an id feature or a long table).
    #[serde(default)]
    pub no_row: usize,
    /// Non-empty raw values that a numeric transform / flag could not parse (→ 0).
    pub unparsable: usize,
}

/// What happened while reading: counts of everything handled rather than rejected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Interaction rows kept.
    pub interaction_rows: usize,
    /// Bad rows skipped in all tables (`on_bad_row = "skip"`; 0 otherwise).
    pub skipped_rows: usize,
    /// Interaction rows repeating an earlier (user, item) pair (kept, per EVALUATION.md).
    pub duplicate_interactions: usize,
    /// Data rows of the user table (0 without one).
    pub user_table_rows: usize,
    /// Data rows of the item table (0 without one).
    pub item_table_rows: usize,
    /// Feature-table rows repeating a key with identical values (ignored).
    pub duplicate_feature_rows: usize,
    /// Users without a user-table row (0 when there is no user table).
    pub users_without_feature_row: usize,
    /// Items without an item-table row (0 when there is no item table).
    pub items_without_feature_row: usize,
    /// Users of the user table with no interaction.
    pub users_without_interactions: usize,
    /// Catalog items with no interaction at all (train or test).
    pub items_without_interactions: usize,
    /// Long-table rows whose key is neither a user nor an item of that side (ignored).
    pub orphan_long_rows: usize,
    /// Per-feature figures, users' features first.
    pub features: Vec<FeatureReport>,
}

impl IngestReport {
    /// Problems worth a warning even when loading succeeded, one sentence
    /// each: a feature with no value for any entity of its side (it carries
    /// no information: wrong column, transform or type?), values that could
    /// not be parsed, entities without a feature row (a key mismatch between
    /// tables, e.g. `1` vs `1.0`), and skipped bad rows. `n_users`,
    /// `n_items`: the dataset's entity counts.
    pub fn warnings(&self, n_users: usize, n_items: usize) -> Vec<String> {
        let mut w = Vec::new();
        for f in &self.features {
            let (n, side) = match f.side {
                Side::User => (n_users, "user"),
                Side::Item => (n_items, "item"),
            };
            if !f.is_id && n > 0 && f.missing >= n {
                w.push(format!(
                    "feature {}: no {side} has a value ({} unparsable): it carries no \
                     information; check its column, transform and type",
                    f.name, f.unparsable
                ));
            } else if f.unparsable > 0 {
                w.push(format!(
                    "feature {}: {} values could not be parsed and count as missing",
                    f.name, f.unparsable
                ));
            }
        }
        for (rows, without, unused, n, side) in [
            (
                self.user_table_rows,
                self.users_without_feature_row,
                self.users_without_interactions,
                n_users,
                "users",
            ),
            (
                self.item_table_rows,
                self.items_without_feature_row,
                self.items_without_interactions,
                n_items,
                "items",
            ),
        ] {
            let table = side;
            if rows > 0 && without > 0 {
                // every table row unused by the interactions: the keys never meet
                let all = if unused >= rows {
                    " — none matches a key of the table: do the key columns agree (type, format)?"
                } else {
                    ""
                };
                w.push(format!(
                    "{without} of {n} {side} have no row in the {table} table (their features \
                     count as missing){all}"
                ));
            }
        }
        if self.orphan_long_rows > 0 {
            w.push(format!(
                "{} rows of long (key, value) feature tables name no user or item of their side (ignored)",
                self.orphan_long_rows
            ));
        }
        if self.skipped_rows > 0 {
            w.push(format!(
                "{} bad rows were skipped (on_bad_row = \"skip\")",
                self.skipped_rows
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_warnings_name_unusable_features_and_unmatched_keys() {
        let feat = |name: &str, side, is_id, missing, unparsable| FeatureReport {
            name: name.into(),
            side,
            kind: FeatureKind::Categorical,
            is_id,
            vocab_len: 3,
            missing,
            empty: missing,
            no_row: 0,
            unparsable,
        };
        let mut r = IngestReport {
            user_table_rows: 10,
            users_without_feature_row: 4,
            users_without_interactions: 2,
            features: vec![
                feat("user_id", Side::User, true, 14, 0),
                feat("age", Side::User, false, 14, 10),
                feat("gender", Side::User, false, 5, 3),
                feat("genre", Side::Item, false, 0, 0),
            ],
            ..IngestReport::default()
        };
        let w = r.warnings(14, 7);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with("feature age: no user has a value (10 unparsable)"),
            "{w:?}"
        );
        assert_eq!(
            w[1],
            "feature gender: 3 values could not be parsed and count as missing"
        );
        assert!(
            w[2].starts_with("4 of 14 users have no row in the users table"),
            "{w:?}"
        );
        assert!(!w[2].contains("none matches"), "{w:?}");
        // no table row is used by an interaction: the keys never meet
        r.users_without_interactions = 10;
        assert!(r.warnings(14, 7)[2].contains("none matches a key of the table"));
        r.orphan_long_rows = 5;
        assert!(r
            .warnings(14, 7)
            .last()
            .unwrap()
            .starts_with("5 rows of long (key, value) feature tables name no user or item"));
        // a clean report says nothing
        assert!(IngestReport::default().warnings(14, 7).is_empty());
    }
}
