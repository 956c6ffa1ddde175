//! QR codes of otpauth URIs: in the terminal with half-block characters, and as a PNG.

use std::io::Write;
use std::path::Path;

use qrcode::{Color, EcLevel, QrCode};

use twofa_core::securefile::{self, FileError};

use crate::output::Failure;

fn encode(uri: &str) -> Result<QrCode, Failure> {
    QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| Failure::new(format!("could not make a QR code: {e}")))
}

fn dark(code: &QrCode, colors: &[Color], x: isize, y: isize) -> bool {
    let w = code.width() as isize;
    if x < 0 || y < 0 || x >= w || y >= w {
        return false;
    }
    colors.get((y * w + x) as usize) == Some(&Color::Dark)
}

/// The code as text, two modules per character cell. Light modules are drawn (in the
/// terminal's foreground colour) and dark ones left blank, which reads right on the usual
/// light-on-dark terminal; a 2-module quiet zone surrounds it.
pub fn terminal(uri: &str) -> Result<String, Failure> {
    let code = encode(uri)?;
    let colors = code.to_colors();
    let w = code.width() as isize;
    let q = 2;
    let mut out = String::new();
    let mut y = -q;
    while y < w + q {
        for x in -q..w + q {
            let top = !dark(&code, &colors, x, y);
            let bottom = y + 1 < w + q && !dark(&code, &colors, x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

/// Writes the code as a black-on-white PNG, 8 pixels a module, 4-module quiet zone, mode
/// 0600 (it holds the secret). Refuses to replace an existing file unless `force`.
pub fn write_png(uri: &str, path: &Path, force: bool) -> Result<(), Failure> {
    let code = encode(uri)?;
    let colors = code.to_colors();
    let scale = 8usize;
    let quiet = 4isize;
    let side = (code.width() + 2 * quiet as usize) * scale;
    let mut pixels = Vec::with_capacity(side * side);
    for py in 0..side {
        for px in 0..side {
            let x = (px / scale) as isize - quiet;
            let y = (py / scale) as isize - quiet;
            pixels.push(if dark(&code, &colors, x, y) {
                0u8
            } else {
                255u8
            });
        }
    }
    let file = securefile::create_private(path, force).map_err(|e| {
        let f = Failure::new(e.to_string());
        match e {
            FileError::Io(_, ref io) if io.kind() == std::io::ErrorKind::AlreadyExists => {
                f.hint("choose another file, or add --force to replace it")
            }
            _ => f,
        }
    })?;
    let side32 = u32::try_from(side).map_err(|_| Failure::new("QR code too large"))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    let mut inner = writer
        .into_stream_writer()
        .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    inner
        .flush()
        .map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    Ok(())
}
