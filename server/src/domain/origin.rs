//! The origins allowed to send events and call the API from a browser (`--allowed-origin`):
//! checked once, before the server binds, so a bad value is an error at start and never a
//! worker that dies after "listening on".

/// `--allowed-origin` values, checked: `Ok(vec![])` allows any origin (no value, or `*`), else
/// each origin as `scheme://host[:port]` (RFC 6454: `http` or `https`, no path, no query, no
/// trailing slash), lowercased. Errors: a message naming the first value that is not an origin.
pub fn parse_allowed_origins(values: &[String]) -> Result<Vec<String>, String> {
    let values: Vec<&str> = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
    if values.contains(&"*") {
        if values.len() > 1 {
            return Err("--allowed-origin '*' allows every origin; give it alone".to_owned());
        }
        return Ok(Vec::new());
    }
    values
        .into_iter()
        .map(|value| {
            let bad = |why: &str| format!("--allowed-origin {value:?} is not an origin ({why}); write scheme://host[:port], e.g. https://workshop.example.com");
            let lower = value.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"))
                .ok_or_else(|| bad("it must start with http:// or https://"))?;
            let (host, port) = match rest.strip_prefix('[') {
                // An IPv6 literal: [addr] or [addr]:port.
                Some(v6) => {
                    let (addr, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed [ in the host"))?;
                    if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                        return Err(bad("an IPv6 host is hex digits and colons"));
                    }
                    match after {
                        "" => ("v6", None),
                        _ => ("v6", Some(after.strip_prefix(':').ok_or_else(|| bad("no path after the host"))?)),
                    }
                }
                None => match rest.split_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (rest, None),
                },
            };
            if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
                return Err(bad("no path, query or other character after the host"));
            }
            if let Some(port) = port {
                port.parse::<u16>().map_err(|_| bad("the port must be a number up to 65535"))?;
            }
            Ok(lower)
        })
        .collect()
}

/// Whether a request's `Origin` header value may send with `allowed` (from
/// [`parse_allowed_origins`]; empty allows any).
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<Vec<String>, String> {
        parse_allowed_origins(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
    }

    // `*` and nothing allow any origin; origins are lowercased; anything else is refused with a
    // message naming it.
    #[test]
    fn allowed_origins_are_checked_before_binding() {
        assert_eq!(parse(&["*"]), Ok(vec![]));
        assert_eq!(parse(&[]), Ok(vec![]));
        assert_eq!(
            parse(&["https://Workshop.example.com", "http://127.0.0.1:8080", "http://[::1]:3000"]),
            Ok(vec!["https://workshop.example.com".into(), "http://127.0.0.1:8080".into(), "http://[::1]:3000".into()])
        );
        for bad in [
            "workshop.example.com",
            "https://example.com/",
            "https://example.com/path",
            "ftp://x",
            "https://x:99999",
            "https://",
        ] {
            let error = parse(&[bad]).unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
        assert!(parse(&["*", "https://a.example"]).is_err());
        assert!(origin_allowed(&[], "https://anything.example"));
        assert!(origin_allowed(&["https://a.example".into()], "https://A.example"));
        assert!(!origin_allowed(&["https://a.example".into()], "https://b.example"));
    }
}
