//! `gerrit-events`: the logic of the gerrit source, as plain Rust without
//! any WASI API, so it runs natively in tests and inside the component.
//!
//! A Gerrit event (one JSON object, as `gerrit stream-events` prints it or
//! the webhooks plugin POSTs it) becomes one MQTT message, as germqtt
//! published it: topic `gerrit/<project>/<type>` (`gerrit/<type>` for an
//! event without a project), payload the event JSON byte for byte.
//!
//! The rooms:
//! - [`event`]: one event's JSON to an [`Event`] (topic + payload).
//! - [`topic`]: building the topic and refusing what is not a valid MQTT
//!   topic name (wildcards, NUL, too long).
//! - [`stream`]: the newline-delimited `stream-events` output, split into
//!   events across arbitrary reads ([`LineSplitter`] for pushed chunks,
//!   [`EventReader`] over any [`std::io::Read`]).
//! - [`webhook`]: the body of a webhooks-plugin HTTP POST.

pub mod event;
pub mod stream;
pub mod topic;
pub mod webhook;

pub use event::{Event, EventError, route};
pub use stream::{DEFAULT_MAX_LINE_BYTES, EventReader, LineError, LineSplitter};
pub use topic::{TOPIC_ROOT, TopicError};
pub use webhook::parse_webhook_body;
