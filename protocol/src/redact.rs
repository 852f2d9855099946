//! Redaction of secrets in `eventData`, shared by the client (before an event is queued, so a
//! secret never reaches `localStorage`) and the server (at ingest, for events from any client).
//!
//! Three rules, on the JSON text of an `eventData` object (`docs/redaction.md` lists what each
//! catches and the look-alikes it leaves on purpose; `fixtures/redaction.json` is the test set):
//! - **Keys.** At any depth, the value of every key whose name contains one of the rule's key
//!   names (ASCII case-insensitively; by default [`DEFAULT_KEYS`]), or has one of
//!   [`DEFAULT_WORDS`] as a word of its own (`otpCode`, `x-auth`, `db_pass`), becomes
//!   `"[redacted]"`, whatever it was (a string, a number, an object). A two-element array
//!   `[name, value]` whose name is such a key (a header list) has its value redacted the same way.
//! - **Patterns in strings.** Inside every string value, the context fields included: vendor
//!   credentials by their documented shapes (OpenAI `sk-…`, Stripe `sk_live_…`/`rk_test_…`, AWS
//!   `AKIA…`/`ASIA…` key ids, GitHub `ghp_…`/`github_pat_…`, Slack `xox?-…`, Google `AIza…`,
//!   Twilio `AC…`/`SK…` SIDs and 32-hex auth tokens, AWS-style 40-character secrets), `Bearer`
//!   and `Basic` credentials, JSON Web Tokens, card numbers passing the Luhn check, PEM private
//!   key blocks, the password of a URL's user info (`postgres://user:[redacted]@host`), and the
//!   value after a sensitive key written as text (`?token=…`, `password: …`).
//!
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
    "privatekey",
    "accesskey",
    "access_key",
    "api-key",
    "passphrase",
    "pwd",
];

/// Short key names redacted by default (with the `text-rules` feature: the server) only as a
/// whole word of a key (split at `_`, `-`, `.` and
/// lower-to-upper case changes), so that `author`, `passenger` and `footprint` stay.
pub const DEFAULT_WORDS: &[&str] = &["auth", "pass", "otp"];

/// Deepest nesting scanned; deeper values are redacted whole (the server refuses more than 32).
const MAX_DEPTH: usize = 64;

/// Which rules apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Key names, lowercased; a key containing one of them is redacted.
    keys: Vec<String>,
    /// Whether [`DEFAULT_WORDS`] and the string patterns apply.
    patterns: bool,
}

impl Default for Rules {
    /// [`DEFAULT_KEYS`], [`DEFAULT_WORDS`] and the patterns.
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

    /// Whether a value under `key` is redacted whole: `key` contains one of the key names, or
    /// (with the defaults) has one of [`DEFAULT_WORDS`] as a word.
    pub fn redacts_key(&self, key: &str) -> bool {
        self.redacts_key_bytes(key.as_bytes())
    }

    fn redacts_key_bytes(&self, key: &[u8]) -> bool {
        self.keys.iter().any(|k| {
            let k = k.as_bytes();
            !k.is_empty() && key.windows(k.len()).any(|w| w.eq_ignore_ascii_case(k))
        }) || (cfg!(feature = "text-rules") && self.patterns && has_word(key))
    }

    /// Redacts the `eventData` object `json`: `None` when nothing matched, else the new JSON text
    /// and how many values or matches were redacted.
    pub fn redact_json(&self, json: &str) -> Option<(String, usize)> {
        if !self.is_active() {
            return None;
        }
        let mut scanner = Scanner { src: json.as_bytes(), text: json, pos: 0, out: String::new(), copied: 0, count: 0 };
        scanner.ws();
        if scanner.peek() != Some(b'{') || !scanner.value(self, 0) {
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
            redact_patterns(self, text)
        } else {
            None
        }
    }
}

/// Whether one word of `key` (split at non-alphanumerics and at lower-to-upper case changes) is
/// one of [`DEFAULT_WORDS`].
fn has_word(key: &[u8]) -> bool {
    let mut start = 0;
    for i in 0..=key.len() {
        let end = match key.get(i) {
            None => true,
            Some(b) if !b.is_ascii_alphanumeric() => true,
            Some(b) => b.is_ascii_uppercase() && i > 0 && key.get(i - 1).is_some_and(u8::is_ascii_lowercase),
        };
        if end {
            let word = key.get(start..i).unwrap_or(&[]);
            if DEFAULT_WORDS.iter().any(|w| w.as_bytes().eq_ignore_ascii_case(word)) {
                return true;
            }
            start = if key.get(i).is_some_and(u8::is_ascii_alphanumeric) { i } else { i + 1 };
        }
    }
    false
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

    /// Scans one value at `pos`, redacting inside it. Returns false on malformed input.
    fn value(&mut self, rules: &Rules, depth: usize) -> bool {
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
                    if rules.redacts_key(&key) {
                        let start = self.pos;
                        if !self.skip_value() {
                            return false;
                        }
                        self.replace(start, "\"[redacted]\"");
                    } else if !self.value(rules, depth + 1) {
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
                // `[name, value]` with a sensitive name (a header list): the value goes whole.
                #[cfg(feature = "text-rules")]
                if self.peek() == Some(b'"') {
                    let first = self.pos;
                    let sensitive = self.string().is_some_and(|name| rules.redacts_key(&name));
                    self.ws();
                    if sensitive && self.peek() == Some(b',') {
                        self.pos += 1;
                        self.ws();
                        let start = self.pos;
                        let pair = self.skip_value() && {
                            self.ws();
                            self.peek() == Some(b']')
                        };
                        if pair {
                            self.replace(start, "\"[redacted]\"");
                            self.pos += 1;
                            return true;
                        }
                    }
                    self.pos = first;
                }
                loop {
                    if !self.value(rules, depth + 1) {
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

/// The rarer vendor credentials, checked with the `text-rules` feature (the server) only.
#[cfg(feature = "text-rules")]
const PREFIXED_MORE: &[Prefixed] = &[
    (b"ASIA", b'u', 16),
    (b"github_pat_", b'k', 20),
    (b"rk_live_", b'a', 10),
    (b"rk_test_", b'a', 10),
    (b"whsec_", b'a', 10),
    (b"ghu_", b'a', 30),
    (b"ghr_", b'a', 30),
    (b"xoxa-", b'k', 10),
    (b"xoxr-", b'k', 10),
    (b"xoxs-", b'k', 10),
];
#[cfg(not(feature = "text-rules"))]
const PREFIXED_MORE: &[Prefixed] = &[];

/// A vendor credential's shape: its prefix, the class of the characters after it ([`in_class`]),
/// how many at least.
type Prefixed = (&'static [u8], u8, u8);

/// Whether `c` is of character class `class`: `k` key characters (`A-Za-z0-9_-`), `a`
/// alphanumerics, `u` upper case and digits, `h` lower-case hex. (A class code rather than a
/// function pointer keeps the wasm client's indirect-call table small.)
fn in_class(class: u8, c: u8) -> bool {
    match class {
        b'k' => is_key_char(c),
        b'a' => c.is_ascii_alphanumeric(),
        b'u' => c.is_ascii_uppercase() || c.is_ascii_digit(),
        _ => is_lower_hex(c),
    }
}

/// Vendor credentials by prefix: (prefix, the characters after it, how many at least). Sources:
/// each vendor's documented key formats (Stripe, AWS IAM, GitHub, Slack, Google Cloud, Twilio).
const PREFIXED: &[Prefixed] = &[
    (b"sk-", b'k', 20),
    (b"sk_live_", b'a', 10),
    (b"sk_test_", b'a', 10),
    (b"AKIA", b'u', 16),
    (b"ghp_", b'a', 30),
    (b"gho_", b'a', 30),
    (b"ghs_", b'a', 30),
    (b"xoxb-", b'k', 10),
    (b"xoxp-", b'k', 10),
    (b"AIza", b'k', 30),
    (b"AC", b'h', 32),
    (b"SK", b'h', 32),
];

fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

#[cfg(feature = "text-rules")]
fn is_base64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'/' || c == b'+'
}

/// Whether `rest` starts with `word`, ASCII case-insensitively.
fn starts_with_ci(rest: &[u8], word: &[u8]) -> bool {
    rest.get(..word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word))
}

/// Where `needle` first occurs in `haystack` at or after `from`.
#[cfg(feature = "text-rules")]
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| from + i)
}

/// The length of a secret starting at `at` (on a word boundary), if one does.
fn secret_at(bytes: &[u8], at: usize) -> Option<usize> {
    let rest = bytes.get(at..)?;
    for (prefix, class, min) in PREFIXED.iter().chain(PREFIXED_MORE) {
        if rest.starts_with(prefix) {
            let n =
                bytes.get(at + prefix.len()..).map_or(0, |r| r.iter().take_while(|b| in_class(*class, **b)).count());
            if n >= usize::from(*min) {
                return Some(prefix.len() + n);
            }
        }
    }
    // Bearer and (with `text-rules`) Basic credentials (RFC 6750, RFC 7617).
    let schemes: &[&[u8]] = if cfg!(feature = "text-rules") { &[b"bearer ", b"basic "] } else { &[b"bearer "] };
    for scheme in schemes {
        if starts_with_ci(rest, scheme) {
            let spaces = run(bytes, at + scheme.len(), |b| b == b' ');
            let n = run(bytes, at + scheme.len() + spaces, is_token_char);
            if n >= 8 {
                return Some(scheme.len() + spaces + n);
            }
        }
    }
    // PEM private keys (RFC 7468): the whole block, to its END line or the end of the text.
    #[cfg(feature = "text-rules")]
    if rest.starts_with(b"-----BEGIN ") {
        let header_end = find(bytes, at + 11, b"-----")?;
        if !bytes.get(at..header_end).is_some_and(|h| h.ends_with(b"PRIVATE KEY")) {
            return None;
        }
        let end = find(bytes, header_end + 5, b"-----END ")
            .and_then(|e| find(bytes, e + 9, b"-----").map(|f| f + 5))
            .unwrap_or(bytes.len());
        return Some(end - at);
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
    #[cfg(feature = "text-rules")]
    if let Some(len) = bare_secret_at(bytes, at) {
        return Some(len);
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
    }
    None
}

/// A bare random-looking secret at `at`: its length.
#[cfg(feature = "text-rules")]
fn bare_secret_at(bytes: &[u8], at: usize) -> Option<usize> {
    // AWS-style secret access keys: exactly 40 of base64's alphabet, mixing upper case, lower
    // case and digits (a git commit id is lower-case hex and stays).
    let n = run(bytes, at, is_base64);
    let span = bytes.get(at..at + n)?;
    if n == 40
        && span.iter().any(u8::is_ascii_uppercase)
        && span.iter().any(u8::is_ascii_lowercase)
        && span.iter().any(u8::is_ascii_digit)
        && bytes.get(at) != Some(&b'/')
    {
        return Some(40);
    }
    // Twilio auth tokens and other 32-hex secrets: exactly 32 lower-case hex digits (a UUID's
    // dashed form and a 40-hex commit id stay).
    (run(bytes, at, is_lower_hex) == 32 && span.iter().any(u8::is_ascii_digit) && n == 32).then_some(32)
}

/// The value after a sensitive key written as text, at `at` (just past the `=` or `:` that
/// follows the key ending at `at - 1`): `(start, len)` of the value, or `None`. `?token=abc`,
/// `password: hunter2`, `"x-api-key": "abc"` in a header dump. A value after `:` needs 6
/// characters, so prose like "token: see below" keeps its words.
#[cfg(feature = "text-rules")]
fn keyed_value(rules: &Rules, bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let sep = *bytes.get(at.checked_sub(1)?)?;
    let mut key_end = at - 1;
    if bytes.get(key_end.checked_sub(1)?) == Some(&b'"') {
        key_end -= 1;
    }
    let key_start = bytes.get(..key_end)?.iter().rposition(|b| !is_key_char(*b) && *b != b'.').map_or(0, |i| i + 1);
    let key = bytes.get(key_start..key_end)?;
    if key.is_empty() || !rules.redacts_key_bytes(key) {
        return None;
    }
    let mut start = at + run(bytes, at, |b| b == b' ');
    if bytes.get(start) == Some(&b'"') {
        start += 1;
    }
    // After `=` (a query string) the value also ends at `&` and `;`.
    let len = bytes.get(start..)?.iter().position(|b| {
        matches!(b, b' ' | b'"' | b'\'' | b',' | b'\n' | b'\r' | b'\t') || (sep == b'=' && matches!(b, b'&' | b';'))
    });
    let len = len.unwrap_or(bytes.len() - start);
    (len >= if sep == b':' { 6 } else { 1 }).then_some((start, len))
}

/// The password of a URL's user info at `at` (just past `://`): `(start, len)`, when the
/// authority has `user:password@`.
#[cfg(feature = "text-rules")]
fn url_password(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let authority = run(bytes, at, |b| !matches!(b, b'/' | b'?' | b'#' | b' ' | b'"' | b'\n'));
    let span = bytes.get(at..at + authority)?;
    let at_sign = span.iter().rposition(|b| *b == b'@')?;
    let colon = span.get(..at_sign)?.iter().position(|b| *b == b':')?;
    (at_sign > colon + 1).then_some((at + colon + 1, at_sign - colon - 1))
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

#[cfg_attr(not(feature = "text-rules"), allow(unused_variables))]
fn redact_patterns(rules: &Rules, text: &str) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    // Every pattern needs 8 bytes or more.
    if bytes.len() < 8 {
        return None;
    }
    let mut out = String::new();
    let (mut copied, mut at, mut count) = (0, 0, 0);
    while at < bytes.len() {
        // A secret starts on a word boundary: not inside a longer word or number.
        let prev = at.checked_sub(1).and_then(|i| bytes.get(i)).copied();
        #[allow(unused_mut)]
        let mut found = None;
        if !prev.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            found = secret_at(bytes, at)
                // A run continued by a letter or digit is not a card (nor a key cut short).
                .filter(|len| !bytes.get(at + len).is_some_and(u8::is_ascii_alphanumeric))
                .map(|len| (at, len));
        }
        #[cfg(feature = "text-rules")]
        let found = found.or_else(|| match prev {
            Some(b'=' | b':') => keyed_value(rules, bytes, at),
            Some(b'/') if at >= 3 && bytes.get(at - 3..at) == Some(b"://") => url_password(bytes, at),
            _ => None,
        });
        if let Some((start, len)) = found.filter(|f| f.1 > 0) {
            out.push_str(text.get(copied..start)?);
            out.push_str(REDACTED);
            copied = start + len;
            at = copied;
            count += 1;
            continue;
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
        let json = r#"{"userAgent":"Mozilla/5.0 (X11)","note":"é \"q\" \u00e9 😀","token":"t","n":-0.5}"#;
        let (out, n) = rules.redact_json(json).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            out,
            r#"{"userAgent":"Mozilla/5.0 (X11)","note":"é \"q\" \u00e9 😀","token":"[redacted]","n":-0.5}"#
        );
        // The context fields are scanned like any other string.
        let (out, _) =
            redacted(&rules, json!({"stepName": "Paste sk-abcdefghijklmnopqrstuvwxyz here", "currentStep": 2}));
        assert_eq!(out, json!({"stepName": "Paste [redacted] here", "currentStep": 2}));
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

    /// The fixture of secrets, look-alikes and key names (`fixtures/redaction.json`).
    fn fixture() -> Value {
        serde_json::from_str(include_str!("../fixtures/redaction.json")).expect("the fixture is JSON")
    }

    // Every secret of the fixture is gone from its text, and the words around it stay.
    #[test]
    fn the_fixtures_secrets_are_redacted() {
        let rules = Rules::default();
        for sample in fixture()["secrets"].as_array().unwrap() {
            let (name, text) = (sample["name"].as_str().unwrap(), sample["text"].as_str().unwrap());
            let (out, n) = redacted(&rules, json!({"errorMessage": text}));
            if sample["textRule"] == true && !cfg!(feature = "text-rules") {
                // Caught by the server's text rules; the client leaves it (not a bigger change).
                let out = out["errorMessage"].as_str().unwrap();
                assert!(n == 0 || out.len() < text.len(), "{name}: {out}");
                continue;
            }
            let out = out["errorMessage"].as_str().unwrap().to_owned();
            assert!(n >= 1 && out.contains(REDACTED), "{name}: {out}");
            for secret in sample["secret"].as_array().unwrap() {
                assert!(!out.contains(secret.as_str().unwrap()), "{name}: {out}");
            }
            // What came before the first redaction is kept as it was, and so is the end.
            let before = &out[..out.find(REDACTED).unwrap()];
            assert!(text.starts_with(before), "{name}: {out}");
            let last_word = text.rsplit([' ', '\n']).next().unwrap();
            if !sample["secret"].as_array().unwrap().iter().any(|s| last_word.contains(s.as_str().unwrap())) {
                assert!(out.ends_with(last_word), "{name}: {out}");
            }
        }
    }

    // The look-alikes of the fixture stay exactly as they are.
    #[test]
    fn the_fixtures_look_alikes_stay() {
        let rules = Rules::default();
        for text in fixture()["kept"].as_array().unwrap() {
            let text = text.as_str().unwrap();
            assert_eq!(rules.redact_text(text), None, "{text}");
        }
    }

    // Key names: the fixture's sensitive names are redacted whole, the others stay.
    #[test]
    fn the_fixtures_key_names() {
        let rules = Rules::default();
        let keys = &fixture()["keys"];
        for key in keys["redacted"].as_array().unwrap() {
            assert!(rules.redacts_key(key.as_str().unwrap()), "{key}");
        }
        for key in keys["redactedAsWords"].as_array().unwrap() {
            assert_eq!(rules.redacts_key(key.as_str().unwrap()), cfg!(feature = "text-rules"), "{key}");
        }
        for key in keys["kept"].as_array().unwrap() {
            assert!(!rules.redacts_key(key.as_str().unwrap()), "{key}");
        }
    }

    // A header list of [name, value] pairs loses the values of sensitive names only.
    #[cfg(feature = "text-rules")]
    #[test]
    fn header_pairs_lose_sensitive_values() {
        let rules = Rules::default();
        let (out, n) = redacted(
            &rules,
            json!({"headers": [["Authorization", "Bearer abcdefgh1234"], ["Accept", "*/*"], ["x-api-key", 12345]],
                   "tags": ["password", "reset", "help"]}),
        );
        assert_eq!(
            out,
            json!({"headers": [["Authorization", "[redacted]"], ["Accept", "*/*"], ["x-api-key", "[redacted]"]],
                   "tags": ["password", "reset", "help"]})
        );
        assert_eq!(n, 2);
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
