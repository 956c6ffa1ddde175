//! QR codes of otpauth URIs: in the terminal with half-block characters, and as a PNG.

use std::io::Write;
use std::path::Path;

use qrcode::QrCode;
use twofa_core::qr as core_qr;

use twofa_core::securefile::{self, FileError};

use crate::output::Failure;

fn encode(uri: &str) -> Result<QrCode, Failure> {
    core_qr::encode(uri).map_err(|e| Failure::new(e.to_string()))
}

fn dark(code: &QrCode, colors: &[qrcode::Color], x: isize, y: isize) -> bool {
    core_qr::dark(code, colors, x, y)
}

/// The code as text for the terminal.
pub fn terminal(uri: &str) -> Result<String, Failure> {
    core_qr::text(uri).map_err(|e| Failure::new(e.to_string()))
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
