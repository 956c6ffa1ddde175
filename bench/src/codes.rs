//! Codes, secrets, names and clocks: what every process of the bench computes alike.

use std::process::Command;

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use twofa_core::hex;

pub(crate) const PERIOD: u64 = 30;

/// The bench users' UIDs start here (far above any real account; they exist only in the
/// bench's private /etc/passwd).
pub(crate) const UID_BASE: u64 = 3_000_000;

/// RFC 4226 HOTP with HMAC-SHA1, 6 digits.
pub(crate) fn hotp(key: &[u8], counter: u64) -> Result<u32, String> {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).map_err(|e| e.to_string())?;
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[19] & 0x0f);
    let v = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    Ok(v % 1_000_000)
}

/// User `i`'s 160-bit secret (deterministic, so every process can compute it).
pub(crate) fn secret(i: usize) -> Vec<u8> {
    Sha1::digest(format!("twofa-bench secret {i}").as_bytes()).to_vec()
}

pub(crate) fn user_name(i: usize) -> String {
    format!("twofa-e2e-b{i:05}")
}

pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every worker process.
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for pam_oath's users file.
pub(crate) fn iso8601(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Checks our RFC 6238 codes against oathtool's once (a few users, now).
pub(crate) fn check_codes_with_oathtool() -> Result<String, String> {
    let now = unix_now();
    for i in [0usize, 1, 12_345] {
        let key = secret(i);
        let out = Command::new("oathtool")
            .args(["--totp", "-d", "6", "-s", "30s", "-N"])
            .arg(format!("@{now}"))
            .arg(hex::encode(&key))
            .output()
            .map_err(|e| format!("oathtool: {e} (apt-get install oathtool)"))?;
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = format!("{:06}", hotp(&key, now / PERIOD)?);
        if theirs != ours {
            return Err(format!(
                "code mismatch for user {i}: oathtool {theirs}, ours {ours}"
            ));
        }
    }
    Ok("codes agree with oathtool".into())
}
