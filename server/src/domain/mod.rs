//! The server's rules, free of HTTP: what a valid event is ([`validate`], [`event`]), what a
//! session's summary is (the fold in [`summary`]), the room's report ([`report`]), the export
//! formats ([`export`]) and the opaque cursors ([`cursor`]). Tested natively; the HTTP handlers
//! and the storage backends call them and only translate.

pub mod alerts;
pub mod client_addr;
pub mod cursor;
pub mod event;
pub mod export;
pub mod report;
pub mod student;
pub mod summary;
pub mod validate;
