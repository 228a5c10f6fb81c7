//! MQTT packets and their wire format, for MQTT 3.1, 3.1.1 and 5.0.
//!
//! The rooms of this crate:
//! - [`packet`]: every control packet as plain data, with MQTT 5 properties.
//! - [`decode`]: bytes -> packets, strictly: every "Malformed Packet" and
//!   "Protocol Error" the specifications name that can be seen in one packet
//!   is reported as a [`DecodeError`] carrying the reason code to send.
//!   It never allocates what a header merely claims.
//! - [`encode`](mod@encode): packets -> bytes.
//! - [`topic`]: topic name and topic filter rules (validity, matching,
//!   shared subscriptions).
//! - [`reason`]: the MQTT 5 reason codes and 3.x return codes by name.
//!
//! The crate knows nothing about sessions, sockets or routing: the broker
//! (`firehose`) and the load generator (`firehose-bench`) both build on it.

pub mod decode;
pub mod encode;
pub mod packet;
pub mod reason;
pub mod topic;

pub use decode::{DecodeError, Decoder};
pub use encode::encode;
pub use packet::*;
