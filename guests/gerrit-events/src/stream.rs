//! The output of `gerrit stream-events` (over SSH): one JSON object per
//! line, forever. Reads end anywhere, so a line may arrive in pieces.
//!
//! [`LineSplitter`] takes chunks as they are read and yields one item per
//! complete line: an [`Event`], or a [`LineError`] for a line that is too
//! long (reported as soon as it passes the limit; the rest of that line
//! is skipped without being kept) or that is not a valid event (reported
//! and skipped). `\r\n` line ends are accepted and blank lines ignored.
//! [`EventReader`] drives a splitter from any [`Read`].

use std::collections::VecDeque;
use std::io::{self, Read};

use thiserror::Error;

use crate::event::{Event, EventError, route};

/// Default longest line accepted, in bytes (without its line end). Gerrit
/// events with long commit messages or comments reach tens of kilobytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// A line that was skipped. Lines are numbered from 1 in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// The line passed the length limit; it is skipped up to its newline.
    #[error("line {line}: longer than {limit} bytes, skipped")]
    TooLong {
        /// Line number.
        line: u64,
        /// The limit it passed.
        limit: usize,
    },
    /// The line is not a publishable event.
    #[error("line {line}: {error}")]
    Event {
        /// Line number.
        line: u64,
        /// What is wrong with it.
        error: EventError,
    },
}

/// Splits a byte stream into lines and routes each one.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    /// Inside a line that was reported too long: drop bytes to its newline.
    skipping: bool,
    /// Number of the line being read.
    line: u64,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl LineSplitter {
    /// A splitter that refuses lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            skipping: false,
            line: 1,
        }
    }

    /// Feeds the next chunk; returns the items for the lines it completed
    /// (and an error for a line that just passed the limit), in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<Result<Event, LineError>> {
        let mut out = Vec::new();
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            let (piece, rest) = match newline {
                Some(i) => (&chunk[..i], &chunk[i + 1..]),
                None => (chunk, &[][..]),
            };
            chunk = rest;
            if !self.skipping {
                self.buf.extend_from_slice(piece);
                // One byte of slack: a '\r' before a newline still to come.
                if self.buf.len() > self.max_line + 1 {
                    out.push(Err(self.too_long()));
                }
            }
            if newline.is_some() {
                if !self.skipping {
                    out.extend(self.finish_line());
                }
                self.skipping = false;
                self.line += 1;
            }
        }
        out
    }

    /// Ends the stream: routes a last line that had no newline, if any.
    pub fn finish(&mut self) -> Option<Result<Event, LineError>> {
        let item = if self.skipping {
            None
        } else {
            self.finish_line()
        };
        self.skipping = false;
        self.buf.clear();
        item
    }

    fn too_long(&mut self) -> LineError {
        self.buf = Vec::new();
        self.skipping = true;
        LineError::TooLong {
            line: self.line,
            limit: self.max_line,
        }
    }

    fn finish_line(&mut self) -> Option<Result<Event, LineError>> {
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if line.len() > self.max_line {
            return Some(Err(LineError::TooLong {
                line: self.line,
                limit: self.max_line,
            }));
        }
        Some(route(&line).map_err(|error| LineError::Event {
            line: self.line,
            error,
        }))
    }
}

/// An error from [`EventReader`]: a skipped line, or a failed read.
#[derive(Debug, Error)]
pub enum ReadError {
    /// One line was skipped; reading can go on.
    #[error(transparent)]
    Line(#[from] LineError),
    /// The read failed (a timeout, a closed connection, ...).
    #[error("reading the event stream: {0}")]
    Io(#[from] io::Error),
}

/// Events from a reader of `stream-events` output.
///
/// As an iterator it yields events and skipped lines until the reader
/// ends (a last line without a newline counts). A failed read is yielded
/// as [`ReadError::Io`]; the next call reads again, so the caller decides
/// whether an error (e.g. a read timeout) ends the stream.
#[derive(Debug)]
pub struct EventReader<R> {
    reader: R,
    splitter: LineSplitter,
    ready: VecDeque<Result<Event, LineError>>,
    ended: bool,
}

impl<R: Read> EventReader<R> {
    /// Reads events from `reader`, refusing lines over `max_line` bytes.
    pub fn new(reader: R, max_line: usize) -> Self {
        Self {
            reader,
            splitter: LineSplitter::new(max_line),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    /// The reader, e.g. to close it.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: Read> Iterator for EventReader<R> {
    type Item = Result<Event, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item.map_err(ReadError::from));
            }
            if self.ended {
                return None;
            }
            match self.reader.read(&mut chunk) {
                Ok(0) => {
                    self.ended = true;
                    self.ready.extend(self.splitter.finish());
                }
                Ok(n) => self.ready.extend(self.splitter.push(&chunk[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(ReadError::Io(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(items: Vec<Result<Event, LineError>>) -> Vec<Result<String, LineError>> {
        items.into_iter().map(|i| i.map(|e| e.topic)).collect()
    }

    #[test]
    fn partial_lines_crlf_and_blank_lines() {
        let mut s = LineSplitter::new(100);
        assert_eq!(topics(s.push(b"{\"type\":\"a\"")), vec![]);
        assert_eq!(
            topics(s.push(b"}\r\n\r\n  \n{\"type\"")),
            vec![Ok("gerrit/a".into())]
        );
        let items = s.push(b":\"b\"}\n");
        assert_eq!(
            items[0].as_ref().unwrap().payload,
            b"{\"type\":\"b\"}".to_vec()
        );
        assert_eq!(topics(s.push(b"{\"type\":\"c\"}")), vec![]);
        assert_eq!(
            s.finish().map(|i| i.unwrap().topic),
            Some("gerrit/c".into())
        );
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn invalid_lines_are_reported_with_their_number_and_skipped() {
        let mut s = LineSplitter::new(100);
        let items = topics(s.push(b"{\"type\":\"a\"}\nnot json\n\n[]\n{\"type\":\"b\"}\n"));
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], Ok("gerrit/a".into()));
        assert!(matches!(
            &items[1],
            Err(LineError::Event {
                line: 2,
                error: EventError::Json(_)
            })
        ));
        assert_eq!(
            items[2],
            Err(LineError::Event {
                line: 4,
                error: EventError::NotAnObject
            })
        );
        assert_eq!(items[3], Ok("gerrit/b".into()));
    }

    #[test]
    fn over_long_line_is_reported_once_and_skipped() {
        let mut s = LineSplitter::new(16);
        let mut items = s.push(b"{\"type\":\"a\"}\n{\"type\":\"");
        items.extend(s.push(&[b'x'; 40]));
        items.extend(s.push(&[b'y'; 40]));
        items.extend(s.push(b"\"}\r\n{\"type\":\"b\"}\r\n"));
        assert_eq!(
            topics(items),
            vec![
                Ok("gerrit/a".into()),
                Err(LineError::TooLong { line: 2, limit: 16 }),
                Ok("gerrit/b".into()),
            ]
        );
        assert_eq!(
            LineError::TooLong { line: 2, limit: 16 }.to_string(),
            "line 2: longer than 16 bytes, skipped"
        );
    }

    #[test]
    fn limit_counts_without_line_end() {
        let line = b"{\"type\":\"abcd\"}"; // 15 bytes
        let mut s = LineSplitter::new(15);
        let mut items = s.push(&line[..]);
        items.extend(s.push(b"\r"));
        items.extend(s.push(b"\n"));
        assert_eq!(topics(items), vec![Ok("gerrit/abcd".into())]);
        let mut s = LineSplitter::new(14);
        let mut items = s.push(&line[..]);
        items.extend(s.push(b"\r\n"));
        assert_eq!(
            topics(items),
            vec![Err(LineError::TooLong { line: 1, limit: 14 })]
        );
    }

    /// Reads in pieces of a few bytes, then fails once, then ends.
    struct Trickle<'a> {
        data: &'a [u8],
        failed: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() && !self.failed {
                self.failed = true;
                return Err(io::Error::new(io::ErrorKind::TimedOut, "quiet"));
            }
            let n = self.data.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn reader_yields_events_errors_and_io_failures() {
        let data = b"{\"type\":\"a\",\"change\":{\"project\":\"p/q\"}}\r\n{bad\n{\"type\":\"b\"}";
        let mut reader = EventReader::new(
            Trickle {
                data,
                failed: false,
            },
            1000,
        );
        assert_eq!(reader.next().unwrap().unwrap().topic, "gerrit/p/q/a");
        assert!(matches!(
            reader.next(),
            Some(Err(ReadError::Line(LineError::Event { line: 2, .. })))
        ));
        assert!(
            matches!(reader.next(), Some(Err(ReadError::Io(e))) if e.kind() == io::ErrorKind::TimedOut)
        );
        assert_eq!(reader.next().unwrap().unwrap().topic, "gerrit/b");
        assert!(reader.next().is_none());
        assert!(reader.next().is_none());
    }
}
