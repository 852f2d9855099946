//! Redaction of secrets in `eventData`, shared by the client (before an event is queued, so a
//! secret never reaches `localStorage`) and the server (at ingest, for events from any client).
//!
//! Two rules, on the JSON text of an `eventData` object:
//! - **Keys.** At any depth, the value of every key whose name contains one of the rule's key
//!   names (ASCII case-insensitively; by default [`DEFAULT_KEYS`]) becomes `"[redacted]"`,
//!   whatever it was (a string, a number, an object).
//! - **Patterns in strings.** Inside every string value: OpenAI-style keys (`sk-` and at least 20
//!   of `A-Za-z0-9_-`), `Bearer` credentials, JSON Web Tokens (`eyJ…` in three dot-separated
//!   base64url parts) and card numbers (13–19 digits, single spaces or dashes allowed between
//!   them, passing the Luhn check) are replaced by `[redacted]`.
//!
//! The context fields the client adds at the top level ([`CONTEXT_KEYS`]) are left as they are.
//! The scanner copies the text it does not change, so the output differs from the input only
//! where something was redacted. It never panics: input that is not a JSON object is returned
//! unchanged (both callers only pass JSON they have already validated or produced).
//!
//! Nothing here uses `format!`, float parsing or `serde`, so the wasm client links little of it.

/// What replaces a redacted value or match.
pub const REDACTED: &str = "[redacted]";

/// Key names redacted by default (matched as ASCII case-insensitive substrings of a key).
pub const DEFAULT_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "authorization",
    "cookie",
    "credential",
    "private_key",
];

/// The context fields every client event carries at the top level of `eventData`; never redacted.
pub const CONTEXT_KEYS: &[&str] = &["currentStep", "stepName", "demoMode", "userAgent", "timestamp"];

/// Deepest nesting scanned; deeper values are redacted whole (the server refuses more than 32).
const MAX_DEPTH: usize = 64;

/// Which rules apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Key names, lowercased; a key containing one of them is redacted.
    keys: Vec<String>,
    /// Whether the string patterns apply.
    patterns: bool,
}

impl Default for Rules {
    /// [`DEFAULT_KEYS`] and the patterns.
    fn default() -> Self {
        Rules::new(true, &[])
    }
}

impl Rules {
    /// The default rules when `defaults` (else none), plus `extra_keys` (any case).
    pub fn new(defaults: bool, extra_keys: &[String]) -> Rules {
        let mut keys: Vec<String> =
            if defaults { DEFAULT_KEYS.iter().map(|k| (*k).to_owned()).collect() } else { Vec::new() };
        keys.extend(extra_keys.iter().filter(|k| !k.is_empty()).map(|k| k.to_ascii_lowercase()));
        Rules { keys, patterns: defaults }
    }

    /// Whether these rules can change anything.
    pub fn is_active(&self) -> bool {
        self.patterns || !self.keys.is_empty()
    }

    /// Whether a value under `key` is redacted whole.
    pub fn redacts_key(&self, key: &str) -> bool {
        let key = key.as_bytes();
        self.keys.iter().any(|k| {
            let k = k.as_bytes();
            !k.is_empty() && key.windows(k.len()).any(|w| w.eq_ignore_ascii_case(k))
        })
    }

    /// Redacts the `eventData` object `json`: `None` when nothing matched, else the new JSON text
    /// and how many values or matches were redacted.
    pub fn redact_json(&self, json: &str) -> Option<(String, usize)> {
        if !self.is_active() {
            return None;
        }
        let mut scanner = Scanner { src: json.as_bytes(), text: json, pos: 0, out: String::new(), copied: 0, count: 0 };
        scanner.ws();
        if scanner.peek() != Some(b'{') || !scanner.value(self, 0, true) {
            return None;
        }
        if scanner.count == 0 {
            return None;
        }
        let rest = scanner.text.get(scanner.copied..).unwrap_or("");
        scanner.out.push_str(rest);
        Some((scanner.out, scanner.count))
    }

    /// Redacts the patterns in one string: `None` when nothing matched.
    pub fn redact_text(&self, text: &str) -> Option<(String, usize)> {
        if self.patterns {
            redact_patterns(text)
        } else {
            None
        }
    }
}

struct Scanner<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    out: String,
    /// `text[..copied]` is already in `out` (or replaced there).
    copied: usize,
    count: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Replaces `text[start..self.pos]` by `with` in the output.
    fn replace(&mut self, start: usize, with: &str) {
        self.out.push_str(self.text.get(self.copied..start).unwrap_or(""));
        self.out.push_str(with);
        self.copied = self.pos;
        self.count += 1;
    }

    /// Scans one value at `pos`, redacting inside it. `top` marks the `eventData` object itself
    /// (whose context keys are left alone). Returns false on malformed input.
    fn value(&mut self, rules: &Rules, depth: usize, top: bool) -> bool {
        self.ws();
        match self.peek() {
            Some(b'{') | Some(b'[') if depth >= MAX_DEPTH => {
                let start = self.pos;
                if !self.skip_value() {
                    return false;
                }
                self.replace(start, "\"[redacted]\"");
                true
            }
            Some(b'{') => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return true;
                }
                loop {
                    self.ws();
                    let Some(key) = self.string() else { return false };
                    self.ws();
                    if self.peek() != Some(b':') {
                        return false;
                    }
                    self.pos += 1;
                    self.ws();
                    let context = top && CONTEXT_KEYS.contains(&&*key);
                    if !context && rules.redacts_key(&key) {
                        let start = self.pos;
                        if !self.skip_value() {
                            return false;
                        }
                        self.replace(start, "\"[redacted]\"");
                    } else if context {
                        if !self.skip_value() {
                            return false;
                        }
                    } else if !self.value(rules, depth + 1, false) {
                        return false;
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return true;
                }
                loop {
                    if !self.value(rules, depth + 1, false) {
                        return false;
                    }
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            Some(b'"') => {
                let start = self.pos;
                let Some(text) = self.string() else { return false };
                if let Some((redacted, n)) = rules.redact_text(&text) {
                    let mut encoded = String::with_capacity(redacted.len() + 2);
                    crate::push_json_string(&mut encoded, &redacted);
                    self.replace(start, &encoded);
                    self.count += n - 1;
                }
                true
            }
            Some(_) => self.skip_scalar(),
            None => false,
        }
    }

    /// A number, `true`, `false` or `null`.
    fn skip_scalar(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Skips any value without looking inside (iteratively: no recursion however deep).
    fn skip_value(&mut self) -> bool {
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().is_some(),
            Some(b'{') | Some(b'[') => {
                let mut depth = 0usize;
                while let Some(byte) = self.peek() {
                    match byte {
                        b'"' => {
                            if self.string().is_none() {
                                return false;
                            }
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return true;
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                false
            }
            Some(_) => self.skip_scalar(),
            None => false,
        }
    }

    /// Reads a JSON string at `pos` (which must be `"`), decoding its escapes; borrowed from the
    /// input when it has none (the usual case).
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let start = self.pos;
        let plain = self.src.get(start..)?.iter().position(|b| *b == b'"' || *b == b'\\')?;
        if self.src.get(start + plain) == Some(&b'"') {
            self.pos = start + plain + 1;
            return Some(std::borrow::Cow::Borrowed(self.text.get(start..start + plain)?));
        }
        let mut out = String::new();
        loop {
            let start = self.pos;
            while !matches!(self.peek()?, b'"' | b'\\') {
                self.pos += 1;
            }
            out.push_str(self.text.get(start..self.pos)?);
            if self.peek()? == b'"' {
                self.pos += 1;
                return Some(std::borrow::Cow::Owned(out));
            }
            self.pos += 1;
            let escape = self.peek()?;
            self.pos += 1;
            match escape {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let first = self.hex4()?;
                    let code =
                        if (0xd800..0xdc00).contains(&first) && self.src.get(self.pos..self.pos + 2) == Some(b"\\u") {
                            self.pos += 2;
                            let second = self.hex4()?;
                            0x10000 + ((first - 0xd800) << 10) + (second.wrapping_sub(0xdc00) & 0x3ff)
                        } else {
                            first
                        };
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.src.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        digits.iter().try_fold(0u32, |n, d| Some(n * 16 + char::from(*d).to_digit(16)?))
    }
}

/// Whether `needle` occurs in `haystack` (byte comparison: small in the wasm, where `str`'s
/// substring search links kilobytes).
pub fn contains(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty() || haystack.as_bytes().windows(needle.len()).any(|w| w == needle)
}

fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
}

/// Length of the run of bytes from `at` that satisfy `ok`.
fn run(bytes: &[u8], at: usize, ok: fn(u8) -> bool) -> usize {
    bytes.get(at..).map_or(0, |rest| rest.iter().take_while(|b| ok(**b)).count())
}

/// The length of a secret starting at `at` (on a word boundary), if one does.
fn secret_at(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = bytes.get(at..)?;
    // OpenAI-style keys: sk-… (also sk-proj-…).
    if rest.starts_with(b"sk-") {
        let n = run(bytes, at + 3, is_key_char);
        if n >= 20 {
            return Some(3 + n);
        }
    }
    // Bearer credentials.
    if rest.len() > 7 && rest.get(..6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer")) && rest.get(6) == Some(&b' ')
    {
        let spaces = run(bytes, at + 6, |b| b == b' ');
        let n = run(bytes, at + 6 + spaces, is_token_char);
        if n >= 8 {
            return Some(6 + spaces + n);
        }
    }
    // JSON Web Tokens: header.payload.signature, base64url, the header starting {" (eyJ).
    if rest.starts_with(b"eyJ") {
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        let header = run(bytes, at, b64);
        if header >= 10 && bytes.get(at + header) == Some(&b'.') {
            let payload = run(bytes, at + header + 1, b64);
            if payload >= 10 && bytes.get(at + header + 1 + payload) == Some(&b'.') {
                let signature = run(bytes, at + header + 2 + payload, b64);
                return Some(header + payload + signature + 2);
            }
        }
    }
    // Card numbers: 13–19 digits, single spaces or dashes between them, Luhn-valid.
    if rest.first().is_some_and(u8::is_ascii_digit) {
        let (mut len, mut digits, mut count) = (0, [0u8; 19], 0);
        while let Some(&b) = bytes.get(at + len) {
            if b.is_ascii_digit() {
                if count == digits.len() {
                    return None;
                }
                digits[count] = b - b'0';
                count += 1;
                len += 1;
            } else if (b == b' ' || b == b'-') && bytes.get(at + len + 1).is_some_and(u8::is_ascii_digit) && len > 0 {
                len += 1;
            } else {
                break;
            }
        }
        if count >= 13 && luhn(&digits[..count]) {
            return Some(len);
        }
        return None;
    }
    None
}

/// The Luhn check (ISO/IEC 7812-1) over decimal digits, most significant first.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum % 10 == 0
}

fn redact_patterns(text: &str) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    // Every pattern needs 13 bytes or more, and each starts with one of these.
    if bytes.len() < 13 || !bytes.iter().any(|b| matches!(b, b's' | b'b' | b'B' | b'e' | b'0'..=b'9')) {
        return None;
    }
    let mut out = String::new();
    let (mut copied, mut at, mut count) = (0, 0, 0);
    while at < bytes.len() {
        // A secret starts on a word boundary: not inside a longer word or number.
        let boundary = at == 0 || bytes.get(at - 1).is_some_and(|b| !b.is_ascii_alphanumeric());
        if boundary {
            if let Some(len) = secret_at(bytes, at) {
                let end = at + len;
                // A run of digits continued by a letter or digit is not a card (nor a key cut short).
                if !bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
                    out.push_str(text.get(copied..at)?);
                    out.push_str(REDACTED);
                    copied = end;
                    at = end;
                    count += 1;
                    continue;
                }
            }
        }
        at += 1;
        while at < bytes.len() && !text.is_char_boundary(at) {
            at += 1;
        }
    }
    if count == 0 {
        return None;
    }
    out.push_str(text.get(copied..)?);
    Some((out, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn redacted(rules: &Rules, data: Value) -> (Value, usize) {
        let json = data.to_string();
        match rules.redact_json(&json) {
            Some((out, n)) => (serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")), n),
            None => (data, 0),
        }
    }

    // Keys are matched at any depth, in any case, and their whole value goes.
    #[test]
    fn sensitive_keys_at_any_depth() {
        let rules = Rules::default();
        let (out, n) = redacted(
            &rules,
            json!({"apiKey": "x", "nested": {"Password": {"deep": 1}, "list": [{"authToken": 42}]},
                   "AUTHORIZATION": null, "keep": "fine", "private_key_pem": ["a"]}),
        );
        assert_eq!(
            out,
            json!({"apiKey": "[redacted]", "nested": {"Password": "[redacted]", "list": [{"authToken": "[redacted]"}]},
                   "AUTHORIZATION": "[redacted]", "keep": "fine", "private_key_pem": "[redacted]"})
        );
        assert_eq!(n, 5);
    }

    // Secrets inside free text are replaced, and the rest of the text stays.
    #[test]
    fn patterns_in_free_text() {
        let rules = Rules::default();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let text = format!(
            "key sk-proj-abcdefghijklmnopqrstuvwx failed; header Bearer abc.def-123456 sent; jwt {jwt}; card 4111 1111 1111 1111, task-abcdefghijklmnopqrstuvwxyz ok"
        );
        let (out, n) = redacted(&rules, json!({"errorMessage": text}));
        assert_eq!(
            out["errorMessage"],
            "key [redacted] failed; header [redacted] sent; jwt [redacted]; card [redacted], task-abcdefghijklmnopqrstuvwxyz ok"
        );
        assert_eq!(n, 4);
    }

    // The Luhn check decides what is a card: phone numbers, ids and invalid numbers stay.
    #[test]
    fn cards_need_the_luhn_check() {
        assert!(luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
        let rules = Rules::default();
        for kept in ["+15555551234", "4111111111111112", "order 12345678", "5555-5555-5555-4445"] {
            assert_eq!(rules.redact_text(kept), None, "{kept}");
        }
        for card in ["5555-5555-5555-4444", "378282246310005", "4111111111111111"] {
            assert_eq!(rules.redact_text(card), Some((REDACTED.to_owned(), 1)), "{card}");
        }
    }

    // The context fields and other values are untouched; unchanged input gives None; escapes
    // and non-ASCII text survive a redaction elsewhere in the object.
    #[test]
    fn untouched_text_is_copied_exactly() {
        let rules = Rules::default();
        assert_eq!(rules.redact_json(r#"{"a": 1, "b": "two", "c": [true, null, -1.5e3]}"#), None);
        let json =
            r#"{"userAgent":"Mozilla sk-abcdefghijklmnopqrstuvwxyz","note":"é \"q\" \u00e9 😀","token":"t","n":-0.5}"#;
        let (out, n) = rules.redact_json(json).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            out,
            r#"{"userAgent":"Mozilla sk-abcdefghijklmnopqrstuvwxyz","note":"é \"q\" \u00e9 😀","token":"[redacted]","n":-0.5}"#
        );
        // Inside a nested object the same names are ordinary keys.
        let (out, _) = redacted(&rules, json!({"details": {"timestamp": "Bearer abcdefgh12345"}}));
        assert_eq!(out["details"]["timestamp"], "[redacted]");
    }

    // Extra keys add to the defaults; turning the defaults off leaves only the extra keys.
    #[test]
    fn extra_keys_and_defaults_off() {
        let extra = vec!["PhoneNumber".to_owned()];
        let rules = Rules::new(true, &extra);
        let (out, _) = redacted(&rules, json!({"phoneNumber": "+15555551234", "password": "p"}));
        assert_eq!(out, json!({"phoneNumber": "[redacted]", "password": "[redacted]"}));
        let only = Rules::new(false, &extra);
        let (out, _) =
            redacted(&only, json!({"phoneNumber": "+1555", "password": "p", "m": "sk-abcdefghijklmnopqrstuvwxyz"}));
        assert_eq!(out, json!({"phoneNumber": "[redacted]", "password": "p", "m": "sk-abcdefghijklmnopqrstuvwxyz"}));
        assert!(!Rules::new(false, &[]).is_active());
    }

    // Malformed input is returned unchanged, never a panic; very deep values are redacted whole.
    #[test]
    fn malformed_or_deep_input() {
        let rules = Rules::default();
        for bad in ["", "[1]", "{", r#"{"a":"#, r#"{"a" 1}"#, r#"{"a":"\u12"}"#, r#"{"password":"#] {
            assert_eq!(rules.redact_json(bad), None, "{bad:?}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        let (out, n) = rules.redact_json(&deep).unwrap();
        assert_eq!(n, 1);
        assert!(serde_json::from_str::<Value>(&out).is_ok(), "{out}");
    }
}
