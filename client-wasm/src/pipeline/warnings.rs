//! The console warnings' dedup: each distinct warning once per page, at most [`MAX_WARNINGS`].

/// Distinct warnings shown at most: past this the console stays quiet (a page that logs a bad
/// event in a loop must not flood it).
pub const MAX_WARNINGS: usize = 64;

/// The warnings already shown: each distinct text once per page, at most [`MAX_WARNINGS`].
#[derive(Debug, Default)]
pub struct Warnings(Vec<String>);

impl Warnings {
    /// No warning shown yet.
    pub const fn new() -> Self {
        Warnings(Vec::new())
    }

    /// Whether `message` should be shown now (first time, and under the cap); records it.
    pub fn first(&mut self, message: &str) -> bool {
        if self.0.len() >= MAX_WARNINGS || self.0.iter().any(|m| m == message) {
            return false;
        }
        self.0.push(message.to_owned());
        true
    }
}
