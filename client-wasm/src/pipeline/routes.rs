//! Routes: the parts of a URL the automatic captures record (`url_parts`) and a route change's
//! path without query or fragment (`route`).

use super::cat;

/// `eventType` of a route change seen by auto-capture.
pub const PAGE_VIEW: &str = "page_view";

/// An absolute URL's origin (`scheme://host[:port]`), host, and path without query or fragment;
/// `None` for a URL that is not absolute.
pub fn url_parts(url: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = url.find(':')?;
    if url.get(scheme_end..scheme_end + 3) != Some("://") {
        return None;
    }
    let rest = url.get(scheme_end + 3..)?;
    let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest.get(..host_len)?;
    let origin = url.get(..scheme_end + 3 + host_len)?;
    let after = rest.get(host_len..)?;
    let path = after.get(..after.find(['?', '#']).unwrap_or(after.len()))?;
    Some((origin, host, if path.is_empty() { "/" } else { path }))
}

/// The route of an absolute URL, as history capture reports it: the path and its `#fragment`
/// (the route of hash-routed pages), without the query; `None` for a URL that is not absolute.
pub fn route(url: &str) -> Option<String> {
    let (_, _, path) = url_parts(url)?;
    let fragment = url.find('#').and_then(|at| url.get(at..)).filter(|f| f.len() > 1).unwrap_or("");
    Some(cat(&[path, fragment]))
}
