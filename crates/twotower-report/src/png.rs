//! PNG files written atomically: the charts and the MI heatmap are drawn
//! into an RGB buffer by plotters' bitmap backend and encoded here (plotters'
//! own encoder writes the file in place, not atomically).

use std::io;
use std::path::Path;

use twotower::util::atomic_write;

/// Writes an 8-bit RGB image (`rgb`: `width × height × 3` bytes, row-major)
/// as a PNG, atomically (see [`atomic_write`]).
///
/// # Errors
/// The I/O error, or the encoder's error wrapped as [`io::Error::other`].
pub fn atomic_write_rgb_png(path: &Path, width: u32, height: u32, rgb: &[u8]) -> io::Result<()> {
    atomic_write(path, |wr| {
        let mut enc = ::png::Encoder::new(wr, width, height);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(io::Error::other)?;
        writer.write_image_data(rgb).map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)
    })
}
