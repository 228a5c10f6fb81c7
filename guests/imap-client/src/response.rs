//! Parsing one framed response ([`RawResponse`]) into a [`Response`]:
//! a continuation request (`+ ...`), a tagged completion
//! (`a1 OK|NO|BAD [code] text`), or untagged data (`* ...`): status
//! responses (`OK`/`NO`/`BAD`/`BYE`/`PREAUTH` with their response code),
//! `CAPABILITY`, `SEARCH`, `n EXISTS`, `n RECENT`, `n EXPUNGE` and
//! `n FETCH (...)` with its items as [`Value`]s. Untagged responses the
//! client has no use for are kept as [`Untagged::Other`].

use crate::error::{Error, Result};
use crate::reader::RawResponse;

/// The status of a status response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`
    Ok,
    /// `NO`
    No,
    /// `BAD`
    Bad,
    /// `BYE` (untagged only)
    Bye,
    /// `PREAUTH` (greeting only)
    PreAuth,
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `+ text`: the server waits for the rest of the command.
    Continuation(String),
    /// The completion of the command with this tag.
    Tagged {
        /// The command's tag.
        tag: String,
        /// `OK`, `NO` or `BAD`.
        status: Status,
        /// The response code between brackets, if any (`CAPABILITY ...`).
        code: Option<String>,
        /// The human-readable text.
        text: String,
    },
    /// Untagged data.
    Untagged(Untagged),
}

/// Untagged data (`* ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    /// `* OK|NO|BAD|BYE|PREAUTH [code] text`
    Status {
        /// The status.
        status: Status,
        /// The response code, if any (`UIDVALIDITY 3857529045`).
        code: Option<String>,
        /// The text.
        text: String,
    },
    /// `* CAPABILITY ...`
    Capability(Vec<String>),
    /// `* SEARCH n ...`
    Search(Vec<u32>),
    /// `* n EXISTS`
    Exists(u32),
    /// `* n RECENT`
    Recent(u32),
    /// `* n EXPUNGE`
    Expunge(u32),
    /// `* n FETCH (name value ...)`, names uppercased.
    Fetch {
        /// Message sequence number.
        seq: u32,
        /// The data items.
        items: Vec<(String, Value)>,
    },
    /// Anything else (`FLAGS`, `LIST`, ...), as text.
    Other(String),
}

/// A value in a FETCH response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `NIL`
    Nil,
    /// A number.
    Number(u64),
    /// An atom (flags like `\Seen` included).
    Atom(String),
    /// A quoted string or a literal.
    String(Vec<u8>),
    /// A parenthesized list.
    List(Vec<Value>),
}

/// Parses one response.
pub fn parse(raw: &RawResponse) -> Result<Response> {
    let mut c = Cursor {
        text: &raw.text,
        pos: 0,
        literals: &raw.literals,
        next_literal: 0,
    };
    let tag = c.word();
    match tag.as_str() {
        "+" => Ok(Response::Continuation(c.rest())),
        "*" => parse_untagged(&mut c).map(Response::Untagged),
        "" => Err(protocol("an empty response line", raw)),
        _ => {
            let status = match c.word().to_ascii_uppercase().as_str() {
                "OK" => Status::Ok,
                "NO" => Status::No,
                "BAD" => Status::Bad,
                _ => return Err(protocol("a tagged response that is not OK, NO or BAD", raw)),
            };
            let (code, text) = c.code_and_text();
            Ok(Response::Tagged {
                tag,
                status,
                code,
                text,
            })
        }
    }
}

fn parse_untagged(c: &mut Cursor<'_>) -> Result<Untagged> {
    let word = c.word();
    if let Ok(n) = word.parse::<u32>() {
        let kind = c.word().to_ascii_uppercase();
        return Ok(match kind.as_str() {
            "EXISTS" => Untagged::Exists(n),
            "RECENT" => Untagged::Recent(n),
            "EXPUNGE" => Untagged::Expunge(n),
            "FETCH" => Untagged::Fetch {
                seq: n,
                items: c.fetch_items()?,
            },
            _ => Untagged::Other(format!("{n} {kind} {}", c.rest())),
        });
    }
    let upper = word.to_ascii_uppercase();
    let status = match upper.as_str() {
        "OK" => Some(Status::Ok),
        "NO" => Some(Status::No),
        "BAD" => Some(Status::Bad),
        "BYE" => Some(Status::Bye),
        "PREAUTH" => Some(Status::PreAuth),
        _ => None,
    };
    if let Some(status) = status {
        let (code, text) = c.code_and_text();
        return Ok(Untagged::Status { status, code, text });
    }
    Ok(match upper.as_str() {
        "CAPABILITY" => {
            Untagged::Capability(c.rest().split_whitespace().map(str::to_owned).collect())
        }
        // Numbers only: ignore extensions' extra data such as `(MODSEQ n)`.
        "SEARCH" => Untagged::Search(
            c.rest()
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect(),
        ),
        _ => Untagged::Other(format!("{word} {}", c.rest())),
    })
}

fn protocol(what: &str, raw: &RawResponse) -> Error {
    let text = String::from_utf8_lossy(&raw.text[..raw.text.len().min(100)]).into_owned();
    Error::Protocol(format!("{what}: {text:?}"))
}

/// Capabilities from a `CAPABILITY ...` response code, if it is one.
pub fn code_capabilities(code: &str) -> Option<Vec<String>> {
    let (name, rest) = code.split_once(' ').unwrap_or((code, ""));
    name.eq_ignore_ascii_case("CAPABILITY")
        .then(|| rest.split_whitespace().map(str::to_owned).collect())
}

struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
    literals: &'a [Vec<u8>],
    next_literal: usize,
}

impl Cursor<'_> {
    fn skip_spaces(&mut self) {
        while self.text.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    /// The next space-delimited word.
    fn word(&mut self) -> String {
        self.skip_spaces();
        let start = self.pos;
        while self.pos < self.text.len() && self.text[self.pos] != b' ' {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.pos]).into_owned()
    }

    fn rest(&mut self) -> String {
        self.skip_spaces();
        let rest = String::from_utf8_lossy(&self.text[self.pos..]).into_owned();
        self.pos = self.text.len();
        rest
    }

    /// `[code] text` or `text`.
    fn code_and_text(&mut self) -> (Option<String>, String) {
        self.skip_spaces();
        let mut code = None;
        if self.text.get(self.pos) == Some(&b'[') {
            if let Some(close) = self.text[self.pos..].iter().position(|&b| b == b']') {
                code = Some(
                    String::from_utf8_lossy(&self.text[self.pos + 1..self.pos + close])
                        .into_owned(),
                );
                self.pos += close + 1;
            }
        }
        (code, self.rest())
    }

    fn fetch_items(&mut self) -> Result<Vec<(String, Value)>> {
        let Value::List(values) = self.value()? else {
            return Err(self.error("FETCH data is not a list"));
        };
        let mut items = Vec::new();
        let mut values = values.into_iter();
        while let Some(name) = values.next() {
            let Value::Atom(name) = name else {
                return Err(self.error("a FETCH item name is not an atom"));
            };
            let value = values
                .next()
                .ok_or_else(|| self.error("a FETCH item has no value"))?;
            items.push((name.to_ascii_uppercase(), value));
        }
        Ok(items)
    }

    fn error(&self, what: &str) -> Error {
        let text = String::from_utf8_lossy(&self.text[..self.text.len().min(100)]).into_owned();
        Error::Protocol(format!("{what}: {text:?}"))
    }

    fn value(&mut self) -> Result<Value> {
        self.skip_spaces();
        match self.text.get(self.pos) {
            None => Err(self.error("the line ends where a value was expected")),
            Some(b'(') => {
                self.pos += 1;
                let mut list = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.text.get(self.pos) {
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Value::List(list));
                        }
                        None => return Err(self.error("an unclosed list")),
                        _ => list.push(self.value()?),
                    }
                }
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b')') => Err(self.error("an unexpected ')'")),
            Some(_) => Ok(self.atom()),
        }
    }

    fn quoted(&mut self) -> Result<Value> {
        let mut out = Vec::new();
        self.pos += 1;
        loop {
            match self.text.get(self.pos) {
                None => return Err(self.error("an unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::String(out));
                }
                Some(b'\\') => {
                    let escaped = *self
                        .text
                        .get(self.pos + 1)
                        .ok_or_else(|| self.error("an unterminated quoted string"))?;
                    out.push(escaped);
                    self.pos += 2;
                }
                Some(&b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Value> {
        let close = self.text[self.pos..]
            .iter()
            .position(|&b| b == b'}')
            .ok_or_else(|| self.error("a bad literal marker"))?;
        self.pos += close + 1;
        let literal = self
            .literals
            .get(self.next_literal)
            .ok_or_else(|| self.error("a literal marker inside the line"))?;
        self.next_literal += 1;
        Ok(Value::String(literal.clone()))
    }

    /// An atom, a number or NIL. A `[...]` section (which may contain
    /// spaces and parentheses, as in `BODY[HEADER.FIELDS (SUBJECT)]`)
    /// belongs to the atom, as does a following `<origin>`.
    fn atom(&mut self) -> Value {
        let start = self.pos;
        while let Some(&b) = self.text.get(self.pos) {
            match b {
                b' ' | b'(' | b')' => break,
                b'[' => match self.text[self.pos..].iter().position(|&b| b == b']') {
                    Some(close) => self.pos += close + 1,
                    None => self.pos = self.text.len(),
                },
                _ => self.pos += 1,
            }
        }
        let atom = String::from_utf8_lossy(&self.text[start..self.pos]).into_owned();
        if atom.eq_ignore_ascii_case("NIL") {
            Value::Nil
        } else if let Ok(n) = atom.parse() {
            Value::Number(n)
        } else {
            Value::Atom(atom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str, literals: &[&[u8]]) -> Result<Response> {
        parse(&RawResponse {
            text: text.as_bytes().to_vec(),
            literals: literals.iter().map(|l| l.to_vec()).collect(),
        })
    }

    fn untagged(text: &str) -> Untagged {
        match parse_text(text, &[]).unwrap() {
            Response::Untagged(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_responses_with_codes() {
        assert_eq!(
            parse_text(
                "a7 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).",
                &[]
            )
            .unwrap(),
            Response::Tagged {
                tag: "a7".into(),
                status: Status::Ok,
                code: Some("READ-WRITE".into()),
                text: "Select completed (0.001 + 0.000 secs).".into()
            }
        );
        assert_eq!(
            untagged("* OK [UIDVALIDITY 1700000000] UIDs valid"),
            Untagged::Status {
                status: Status::Ok,
                code: Some("UIDVALIDITY 1700000000".into()),
                text: "UIDs valid".into()
            }
        );
        assert_eq!(
            untagged("* BYE Logging out"),
            Untagged::Status {
                status: Status::Bye,
                code: None,
                text: "Logging out".into()
            }
        );
        assert_eq!(
            parse_text("+ idling", &[]).unwrap(),
            Response::Continuation("idling".into())
        );
        assert_eq!(
            parse_text("+", &[]).unwrap(),
            Response::Continuation(String::new())
        );
    }

    #[test]
    fn data_responses() {
        assert_eq!(
            untagged("* CAPABILITY IMAP4rev1 IDLE STARTTLS"),
            Untagged::Capability(vec!["IMAP4rev1".into(), "IDLE".into(), "STARTTLS".into()])
        );
        assert_eq!(
            untagged("* SEARCH 3 17 42"),
            Untagged::Search(vec![3, 17, 42])
        );
        assert_eq!(untagged("* SEARCH"), Untagged::Search(vec![]));
        assert_eq!(untagged("* 4 EXISTS"), Untagged::Exists(4));
        assert_eq!(untagged("* 0 recent"), Untagged::Recent(0));
        assert_eq!(untagged("* 2 EXPUNGE"), Untagged::Expunge(2));
        assert_eq!(
            untagged("* FLAGS (\\Seen \\Deleted)"),
            Untagged::Other("FLAGS (\\Seen \\Deleted)".into())
        );
        assert_eq!(
            code_capabilities("CAPABILITY IMAP4rev1 IDLE"),
            Some(vec!["IMAP4rev1".into(), "IDLE".into()])
        );
        assert_eq!(code_capabilities("UIDNEXT 5"), None);
    }

    #[test]
    fn fetch_items_with_literals_quoted_and_sections() {
        let r = parse_text("* 3 FETCH (UID 9 FLAGS (\\Seen) BODY[] {5} BODY[HEADER.FIELDS (SUBJECT)] \"a\\\"b\" X NIL)", &[b"hello"]).unwrap();
        assert_eq!(
            r,
            Response::Untagged(Untagged::Fetch {
                seq: 3,
                items: vec![
                    ("UID".into(), Value::Number(9)),
                    (
                        "FLAGS".into(),
                        Value::List(vec![Value::Atom("\\Seen".into())])
                    ),
                    ("BODY[]".into(), Value::String(b"hello".to_vec())),
                    (
                        "BODY[HEADER.FIELDS (SUBJECT)]".into(),
                        Value::String(b"a\"b".to_vec())
                    ),
                    ("X".into(), Value::Nil),
                ]
            })
        );
    }

    #[test]
    fn malformed_responses_are_protocol_errors() {
        for text in [
            "",
            "a1 MAYBE",
            "* 1 FETCH (UID",
            "* 1 FETCH UID 3",
            "* 1 FETCH (UID)",
            "* 1 FETCH (\"x\" 1)",
            "* 1 FETCH (A {3})",
            "* 1 FETCH (A \"x)",
        ] {
            assert!(
                matches!(parse_text(text, &[]), Err(Error::Protocol(_))),
                "{text:?}"
            );
        }
    }
}
