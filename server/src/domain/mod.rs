//! The server's rules, free of HTTP and of storage: what a valid event is ([`validate`],
//! [`event`]), what a session's summary is (the fold in [`summary`]), the room's report
//! ([`report`]), the export formats ([`export`]), the opaque cursors ([`cursor`]), the alert
//! rules ([`alerts`]), workshops, rooms and write keys ([`workshop`]), helper tokens and what a
//! token reads ([`helper`]), room notices ([`notice`]), and the rows storage fills ([`rows`]). Tested natively; the HTTP handlers
//! and the storage backends call them and only translate. Nothing here imports `http`,
//! `storage`, `state`, `tasks` or `config`.

pub mod alerts;
pub mod auth_throttle;
pub mod client_addr;
pub mod clock;
pub mod cursor;
pub mod early_calls;
pub mod event;
pub mod export;
pub mod facts;
pub mod helper;
pub mod notice;
pub mod origin;
pub mod report;
pub mod rows;
pub mod student;
pub mod summary;
pub mod validate;
pub mod webhook_target;
pub mod workshop;
