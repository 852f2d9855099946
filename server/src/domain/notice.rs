//! Room notices: a message an instructor posts to every page of one room (`POST
//! /api/rooms/{code}/notices`, `{message, minutes}`), which pages with `onNotice` receive
//! through the help channel until it expires. [`NoticeRequest::check`] holds the limits.

use serde::{Deserialize, Serialize};

/// Most characters of a notice's message.
pub const MESSAGE_CHARS: usize = 500;
/// The longest a notice stays (minutes): a working day.
pub const MAX_MINUTES: u32 = 600;
/// How long a notice stays by default (minutes).
pub const DEFAULT_MINUTES: u32 = 30;
/// Most notices a page is handed at once (the newest).
pub const MAX_CURRENT: u32 = 20;

/// One notice to a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// Its id (increasing in posting order).
    pub id: i64,
    /// The room's join code.
    pub room: String,
    /// What it says.
    pub message: String,
    /// Who posted it: a helper token's name, or `instructor` for a server-wide token.
    pub posted_by: String,
    /// When it was posted (ISO 8601 UTC with ms).
    pub posted_at: String,
    /// When pages stop showing it (ISO 8601 UTC with ms).
    pub expires_at: String,
}

/// `POST /api/rooms/{code}/notices`'s body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoticeRequest {
    /// What to tell the room: 1–500 characters (trimmed).
    #[schema(min_length = 1, max_length = 500)]
    pub message: String,
    /// How long pages show it: 1–600 whole minutes, default 30 (`30.0` is 30).
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 600)]
    pub minutes: Option<f64>,
}

/// Why a notice was refused: the field and the reason (the API answers 400 naming them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct NoticeError {
    /// `message` or `minutes`.
    pub field: &'static str,
    /// Why, e.g. `must be 1 to 500 characters, got 0`.
    pub reason: String,
}

impl NoticeRequest {
    /// The trimmed message and the minutes it lasts. Errors: [`NoticeError`] for an empty or
    /// over-long message, or minutes outside 1–600.
    pub fn check(&self) -> Result<(String, u32), NoticeError> {
        let message = self.message.trim();
        let chars = message.chars().count();
        if chars == 0 || chars > MESSAGE_CHARS {
            return Err(NoticeError {
                field: "message",
                reason: format!("must be 1 to {MESSAGE_CHARS} characters, got {chars}"),
            });
        }
        let minutes = self.minutes.unwrap_or(f64::from(DEFAULT_MINUTES));
        if minutes.fract() != 0.0 || !(1.0..=f64::from(MAX_MINUTES)).contains(&minutes) {
            return Err(NoticeError {
                field: "minutes",
                reason: format!("must be a whole number from 1 to {MAX_MINUTES}, got {minutes}"),
            });
        }
        Ok((message.to_owned(), minutes as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A notice's message is trimmed and its minutes default to 30; empty, over-long and
    // out-of-range ones are refused naming the field.
    #[test]
    fn notices_are_checked() {
        let ok = NoticeRequest { message: "  Twilio is down  ".into(), minutes: None };
        assert_eq!(ok.check(), Ok(("Twilio is down".to_owned(), DEFAULT_MINUTES)));
        let whole = NoticeRequest { message: "hi".into(), minutes: Some(45.0) };
        assert_eq!(whole.check(), Ok(("hi".to_owned(), 45)));
        let part = NoticeRequest { message: "hi".into(), minutes: Some(1.5) };
        assert_eq!(part.check().unwrap_err().field, "minutes");
        let empty = NoticeRequest { message: "   ".into(), minutes: Some(5.0) };
        assert_eq!(empty.check().unwrap_err().field, "message");
        let long = NoticeRequest { message: "x".repeat(MESSAGE_CHARS + 1), minutes: Some(5.0) };
        assert_eq!(long.check().unwrap_err().field, "message");
        let forever = NoticeRequest { message: "hi".into(), minutes: Some(f64::from(MAX_MINUTES + 1)) };
        assert_eq!(forever.check().unwrap_err().field, "minutes");
        let zero = NoticeRequest { message: "hi".into(), minutes: Some(0.0) };
        assert_eq!(zero.check().unwrap_err().field, "minutes");
    }
}
