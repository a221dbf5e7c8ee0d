//! Serial numbers. rcgen's default serial is a hash of the public key, so a
//! re-issue repeats it, where RFC 5280 §4.1.2.2 wants it unique per CA;
//! certstrap's root serial was always 1. Every certificate here gets 128
//! random bits instead, well over the 64 bits of entropy that the CA/B
//! Forum Baseline Requirements (§7.1) and pkilint ask for.

use rcgen::SerialNumber;

/// A random positive serial of 16 bytes whose first byte is 0x01..=0x7f, so
/// its DER INTEGER is positive, minimal and exactly 16 bytes long.
pub fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the OS random source failed");
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

/// Colon-separated upper-case hex, as openssl prints serials.
pub fn hex(bytes: &[u8]) -> String {
    let trimmed = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &bytes[bytes.len().saturating_sub(1)..],
    };
    trimmed.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_distinct_and_long() {
        let a = random_serial().to_bytes();
        let b = random_serial().to_bytes();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a[0] >= 1 && a[0] <= 0x7f);
    }

    #[test]
    fn hex_drops_leading_zero_bytes() {
        assert_eq!(hex(&[0, 0x1a, 0x02]), "1A:02");
        assert_eq!(hex(&[0]), "00");
    }
}
