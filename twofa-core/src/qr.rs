//! QR codes of otpauth URIs as text: two modules per character cell.

use qrcode::{Color, EcLevel, QrCode};

/// Why a QR code could not be made (the data is too long for any QR version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrError(pub String);

impl std::fmt::Display for QrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not make a QR code: {}", self.0)
    }
}

impl std::error::Error for QrError {}

/// The QR code of `data` at error-correction level M.
pub fn encode(data: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))
}

/// Whether the module at (x, y) is dark; outside the code (the quiet zone) it is light.
pub fn dark(code: &QrCode, colors: &[Color], x: isize, y: isize) -> bool {
    let w = code.width() as isize;
    if x < 0 || y < 0 || x >= w || y >= w {
        return false;
    }
    colors.get((y * w + x) as usize) == Some(&Color::Dark)
}

/// The code as text, two modules per character cell. Light modules are drawn (in the
/// terminal's foreground colour) and dark ones left blank, which reads right on the usual
/// light-on-dark terminal (and scanners read the inverse too); a 2-module quiet zone surrounds it.
pub fn text(data: &str) -> Result<String, QrError> {
    let code = encode(data)?;
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
                (true, true) => '\u{2588}',
                (true, false) => '\u{2580}',
                (false, true) => '\u{2584}',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uri_becomes_a_square_block_of_text() -> Result<(), QrError> {
        let t = text("otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP")?;
        let lines: Vec<&str> = t.lines().collect();
        let width = lines.first().map(|l| l.chars().count()).unwrap_or(0);
        assert!(width >= 25);
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        Ok(())
    }
}
