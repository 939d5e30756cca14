//! The generated tables in memory ([`generate_raw`]): the same rows as the
//! written files, as the raw tables the loader encodes for
//! `source = "synthetic"`.

use crate::config::{ColumnRef, SyntheticConfig};
use crate::error::DataError;
use crate::hash::FxHashMap;
use crate::raw::{RawColumn, RawData, RawEntityTable, RawInteractions};

use super::{tags_text, Generator};

/// Column builder interning string values.
struct Col {
    name: &'static str,
    map: FxHashMap<String, u32>,
    dict: Vec<String>,
    codes: Vec<u32>,
}

impl Col {
    fn new(name: &'static str) -> Col {
        Col {
            name,
            map: FxHashMap::default(),
            dict: Vec::new(),
            codes: Vec::new(),
        }
    }
    fn push(&mut self, v: &str) {
        let c = match self.map.get(v) {
            Some(&c) => c,
            None => {
                let c = self.dict.len() as u32;
                self.map.insert(v.to_string(), c);
                self.dict.push(v.to_string());
                c
            }
        };
        self.codes.push(c);
    }
    fn finish(self) -> RawColumn {
        RawColumn {
            col: Some(ColumnRef::Name(self.name.into())),
            name: self.name.into(),
            dict: self.dict,
            codes: self.codes,
        }
    }
}

/// Generates the raw tables in memory.
pub(crate) fn generate_raw(cfg: &SyntheticConfig) -> Result<RawData, DataError> {
    let g = Generator::new(cfg)?;
    let ukeys: Vec<String> = (0..cfg.users).map(|u| u.to_string()).collect();
    let ikeys: Vec<String> = (0..cfg.items).map(|i| i.to_string()).collect();
    let (mut gender, mut age, mut region, mut interest) = (
        Col::new("gender"),
        Col::new("age"),
        Col::new("region"),
        Col::new("interest"),
    );
    g.for_each_user(|_, r| {
        gender.push(r.gender);
        age.push(&r.age.to_string());
        region.push(&format!("r{}", r.region));
        interest.push(&format!("t{}", r.interest));
        Ok(())
    })?;
    let (mut category, mut tags, mut year) =
        (Col::new("category"), Col::new("tags"), Col::new("year"));
    let mut buf = String::new();
    g.for_each_item(|_, r| {
        category.push(&format!("c{}", r.category));
        tags_text(&r.tags, &mut buf);
        tags.push(&buf);
        year.push(&r.year.to_string());
        Ok(())
    })?;
    let mut inter = RawInteractions {
        user_keys: ukeys.clone(),
        item_keys: ikeys.clone(),
        ..Default::default()
    };
    inter.user.reserve(cfg.interactions);
    inter.item.reserve(cfg.interactions);
    inter.timestamp.reserve(cfg.interactions);
    g.for_each_interaction(|u, i, t| {
        inter.user.push(u);
        inter.item.push(i);
        inter.timestamp.push(t);
        Ok(())
    })?;
    Ok(RawData {
        interactions: inter,
        user_key_refs: vec![ColumnRef::Name("user".into())],
        item_key_refs: vec![ColumnRef::Name("item".into())],
        labels: [None, None],
        users: Some(RawEntityTable {
            keys: ukeys,
            columns: vec![
                gender.finish(),
                age.finish(),
                region.finish(),
                interest.finish(),
            ],
            duplicate_rows: 0,
            rows_read: cfg.users,
        }),
        items: Some(RawEntityTable {
            keys: ikeys,
            columns: vec![category.finish(), tags.finish(), year.finish()],
            duplicate_rows: 0,
            rows_read: cfg.items,
        }),
        long: Default::default(),
        skipped_rows: 0,
    })
}
