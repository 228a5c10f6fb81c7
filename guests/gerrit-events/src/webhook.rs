//! The body of an HTTP POST from Gerrit's webhooks plugin: the same event
//! JSON as `stream-events` prints, sent with
//! `Content-Type: application/json`, possibly followed by a newline.
//!
//! Whitespace around the JSON value (and a UTF-8 byte order mark) is not
//! part of the event and is trimmed; the rest is the payload byte for byte.

use crate::event::{Event, EventError, route};

/// Routes a webhook body.
pub fn parse_webhook_body(body: &[u8]) -> Result<Event, EventError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let end = body
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    route(&body[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_printed_body_with_newline_is_routed_and_trimmed() {
        let body = b"\xEF\xBB\xBF{\n  \"type\": \"change-merged\",\n  \"change\": {\"project\": \"p\"}\n}\r\n";
        let event = parse_webhook_body(body).unwrap();
        assert_eq!(event.topic, "gerrit/p/change-merged");
        assert_eq!(event.payload, body[3..body.len() - 2].to_vec());
    }

    #[test]
    fn empty_body_is_an_error() {
        assert!(matches!(
            parse_webhook_body(b" \r\n"),
            Err(EventError::Json(_))
        ));
    }
}
