//! What the client captures by itself, decided without I/O: uncaught errors and unhandled
//! rejections (collapsed and rate-limited), the page's `fetch` and `XMLHttpRequest` calls, and
//! its route changes. The machine ([`crate::machine`]) owns one [`Capture`] and turns what it
//! decides into events and timers.

use crate::pipeline::{self, cat, EventKind};
use session_log_protocol::redact::contains;

/// Identical captured errors within this window make one event (ms).
pub const ERROR_WINDOW_MS: u32 = 2_000;
/// Captured errors of one `errorType` allowed in a burst (a token bucket of this size)...
pub const ERROR_BUCKET: f64 = 10.0;
/// ...refilled with one token this often (ms): PostHog's exception autocapture limits.
pub const ERROR_REFILL_MS: f64 = 10_000.0;

/// Captured errors with the same fingerprint, gathered over [`ERROR_WINDOW_MS`].
#[derive(Debug)]
pub struct Burst {
    fingerprint: String,
    /// The event: a `CapturedError` whose `count` says how many came.
    pub kind: EventKind,
    /// When the first came (ms).
    pub at_ms: f64,
}

/// What became of one captured error.
#[derive(Debug, PartialEq, Eq)]
pub enum ErrorCapture {
    /// It is gathered in the open window (or joined an identical error there, whose `count`
    /// grew), or it is session-log's own (its files, or inside the WebAssembly module) and is
    /// not logged.
    Gathered,
    /// It is the first of a window: gathered, and the window's timer must be set
    /// ([`ERROR_WINDOW_MS`]).
    OpensWindow,
    /// Its kind (`uncaught_error` or `unhandled_rejection`) is over its rate limit: not logged.
    Limited(&'static str),
}

/// The capture state of one page.
#[derive(Debug, Default)]
pub struct Capture {
    /// Captured errors waiting for their window to close.
    bursts: Vec<Burst>,
    /// Per error kind: tokens left and when they were counted (ms).
    error_buckets: Vec<(&'static str, f64, f64)>,
    /// The last path seen by history capture.
    last_path: Option<String>,
}

impl Capture {
    /// An uncaught error (`rejection` false: the window's `error` event, with `source` and its
    /// line and column) or an unhandled rejection, at `at_ms`. Identical errors within
    /// [`ERROR_WINDOW_MS`] become one event with a `count`; each kind is limited by a token
    /// bucket ([`ERROR_BUCKET`], one back every [`ERROR_REFILL_MS`]).
    #[inline]
    pub fn error(
        &mut self,
        rejection: bool,
        message: String,
        stack: Option<String>,
        source: Option<(String, u32, u32)>,
        at_ms: f64,
    ) -> ErrorCapture {
        let own = |text: &str| contains(text, "session_log") || contains(text, "wasm-function");
        if stack.as_deref().is_some_and(own) || source.as_ref().is_some_and(|(url, _, _)| own(url)) {
            return ErrorCapture::Gathered;
        }
        let error_type = if rejection { "unhandled_rejection" } else { "uncaught_error" };
        let fingerprint = cat(&[error_type, "\n", &message, "\n", stack.as_deref().unwrap_or("")]);
        if let Some(burst) = self.bursts.iter_mut().find(|b| b.fingerprint == fingerprint) {
            if let EventKind::CapturedError { count, .. } = &mut burst.kind {
                *count = count.saturating_add(1);
            }
            return ErrorCapture::Gathered;
        }
        if !self.take_error_token(error_type, at_ms) {
            return ErrorCapture::Limited(error_type);
        }
        let outcome = if self.bursts.is_empty() { ErrorCapture::OpensWindow } else { ErrorCapture::Gathered };
        let kind = EventKind::CapturedError { error_type, message, stack, source, count: 1 };
        self.bursts.push(Burst { fingerprint, kind, at_ms });
        outcome
    }

    #[inline]
    fn take_error_token(&mut self, error_type: &'static str, now_ms: f64) -> bool {
        let index = match self.error_buckets.iter().position(|(t, _, _)| *t == error_type) {
            Some(index) => index,
            None => {
                self.error_buckets.push((error_type, ERROR_BUCKET, now_ms));
                self.error_buckets.len() - 1
            }
        };
        let Some((_, tokens, counted_at)) = self.error_buckets.get_mut(index) else { return false };
        *tokens = (*tokens + (now_ms - *counted_at).max(0.0) / ERROR_REFILL_MS).min(ERROR_BUCKET);
        *counted_at = now_ms;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// The captured errors gathered so far, in order; the window closes.
    #[inline]
    pub fn take_errors(&mut self) -> Vec<Burst> {
        std::mem::take(&mut self.bursts)
    }

    /// The event of a `fetch` or `XMLHttpRequest` of the page that ended: `url` absolute,
    /// `status` 0 when it failed, after `duration_ms`; `page_origin` is the page's
    /// `location.origin`, `endpoint` the client's own (configured) endpoint, whose requests, and
    /// those below its path (the help channel's `<endpoint>/help`), are not logged (`None`).
    #[inline]
    pub fn request(
        endpoint: &str,
        method: &str,
        url: &str,
        status: f64,
        duration_ms: f64,
        page_origin: &str,
    ) -> Option<EventKind> {
        let (origin, host, path) = pipeline::url_parts(url)?;
        let own = match pipeline::url_parts(endpoint) {
            Some((endpoint_origin, _, endpoint_path)) => origin == endpoint_origin && path.starts_with(endpoint_path),
            None => origin == page_origin && path.starts_with(endpoint.split(['?', '#']).next().unwrap_or("")),
        };
        if own {
            return None;
        }
        let host = (origin != page_origin).then(|| host.to_owned());
        Some(EventKind::CapturedRequest { path: path.to_owned(), host, method: method.to_owned(), status, duration_ms })
    }

    /// The page's route changed to `url` (absolute; from `pushState`, `replaceState`,
    /// `popstate` or `hashchange`): a `page_view` with the path (and `#fragment` route, without
    /// the query) when it differs from the last one seen.
    #[inline]
    pub fn navigation(&mut self, url: &str) -> Option<EventKind> {
        let path = pipeline::route(url)?;
        if self.last_path.as_deref() == Some(path.as_str()) {
            return None;
        }
        let previous_path = self.last_path.replace(path.clone());
        Some(EventKind::PageView { path, previous_path })
    }

    /// The path the page had when history capture started (no event).
    #[inline]
    pub fn set_current_path(&mut self, url: &str) {
        if let Some(path) = pipeline::route(url) {
            self.last_path = Some(path);
        }
    }
}
