//! Tests of the mutual-information heatmap (crates/twotower-report/src/mi_heatmap.rs)
//! on the planted MI matrix of twotower's augment tests: PNG size and cell
//! colours, the SVG's labels and values, and the SVG beside the PNG being
//! [`mi_heatmap_svg`]'s document.

use twotower::augment::mutual_information;
use twotower::tower::FeatureColumn;
use twotower_report::{mi_heatmap_svg, write_mi_heatmap};

/// An owned single-valued CSR column.
struct Col {
    offsets: Vec<u32>,
    values: Vec<u32>,
}

impl Col {
    fn single(vals: &[u32]) -> Self {
        Col {
            offsets: (0..=vals.len() as u32).collect(),
            values: vals.to_vec(),
        }
    }
    fn view(&self) -> FeatureColumn<'_> {
        FeatureColumn {
            offsets: &self.offsets,
            values: &self.values,
            weights: &[],
        }
    }
}

/// Four features over 16 items (a, c) ∈ {1..4}²: A = B = a, C = D = c.
/// MI(A,B) = MI(C,D) = ln 4; MI(A,C) = MI(A,D) = MI(B,C) = MI(B,D) = 0 exactly.
/// (As `planted` in crates/twotower/tests/augment.rs.)
fn planted() -> Vec<Col> {
    let (mut a, mut c) = (Vec::new(), Vec::new());
    for x in 1..=4u32 {
        for y in 1..=4u32 {
            a.push(x);
            c.push(y + 10);
        }
    }
    vec![
        Col::single(&a),
        Col::single(&a),
        Col::single(&c),
        Col::single(&c),
    ]
}

#[test]
fn mi_heatmaps() {
    let cols = planted();
    let views: Vec<FeatureColumn<'_>> = cols.iter().map(Col::view).collect();
    let mi = mutual_information(&views, None).unwrap();
    let names: Vec<String> = ["genre", "genre_copy", "year", "year_copy"]
        .iter()
        .map(|s| s.to_string())
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let png_path = dir.path().join("mi.png");
    write_mi_heatmap(&png_path, &names, &mi).unwrap();
    let file = std::fs::File::open(&png_path).unwrap();
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    // 4 cells of 48 px + 2·8 px margin = 208.
    assert_eq!((info.width, info.height), (208, 208));
    let px = |x: usize, y: usize| &buf[(y * 208 + x) * 3..(y * 208 + x) * 3 + 3];
    // Cell (0,1) = max off-diagonal → dark blue (8,48,107); cell (0,2) = 0 → white;
    // cell (0,0) diagonal → grey 200.
    assert_eq!(px(8 + 48 + 20, 8 + 20), &[8, 48, 107]);
    assert_eq!(px(8 + 96 + 20, 8 + 20), &[255, 255, 255]);
    assert_eq!(px(8 + 20, 8 + 20), &[200, 200, 200]);
    let svg = std::fs::read_to_string(dir.path().join("mi.svg")).unwrap();
    assert!(
        svg.starts_with("<svg")
            && svg.contains("<text")
            && svg.contains("year_copy")
            && svg.contains("1.386")
    );
    assert_eq!(svg, mi_heatmap_svg(&names, &mi).unwrap());
}
