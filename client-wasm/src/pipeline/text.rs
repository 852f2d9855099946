//! String helpers in place of `format!` (which would pull `core::fmt` and its Unicode tables into
//! the wasm): [`cat`], [`join`], [`decimal`], [`hex16`].

/// Joins string pieces into one `String` (the client's `format!`).
pub fn cat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// `items` joined by `separator`.
pub fn join(items: &[&str], separator: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(item);
    }
    out
}

/// `n` in decimal digits.
pub fn decimal(mut n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits[at..].iter().map(|&d| char::from(d)).collect()
}

/// `n` as 16 lowercase hex digits, zero-padded (storage keys sort by it).
pub fn hex16(n: u64) -> String {
    (0..16).rev().map(|i| hex_digit((n >> (i * 4)) as u8)).collect()
}

pub(super) fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}
