//! The client against scripted byte exchanges: every byte it writes is
//! checked against the script in order, and it may read only when the
//! script says it is the server's turn (a read out of turn fails the
//! test). Server bytes are delivered in chunks of a chosen size, down to
//! one byte, to exercise responses split across reads.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Duration;

use imap_client::{Client, Config, Error, Flag, IdleOutcome, Mailbox, Transport};

#[derive(Debug)]
enum Step {
    /// What the client must write next.
    Client(Vec<u8>),
    /// What the server sends next.
    Server(Vec<u8>),
    /// The next read times out.
    Timeout,
}

use Step::{Client as C, Server as S};

fn c(s: &str) -> Step {
    C(s.as_bytes().to_vec())
}

fn s(s: &str) -> Step {
    S(s.as_bytes().to_vec())
}

#[derive(Debug)]
struct Script {
    steps: VecDeque<Step>,
    chunk: usize,
    timeouts: Vec<Option<Duration>>,
}

impl Script {
    fn new(steps: Vec<Step>, chunk: usize) -> Self {
        Self {
            steps: steps.into(),
            chunk,
            timeouts: Vec::new(),
        }
    }

    fn assert_done(&self) {
        assert!(
            self.steps.is_empty(),
            "script not finished: {:?}",
            self.steps
        );
    }
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.steps.front_mut() {
            None => Ok(0),
            Some(Step::Timeout) => {
                self.steps.pop_front();
                Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "scripted timeout",
                ))
            }
            Some(Step::Client(expected)) => panic!(
                "client read while it should have sent {:?}",
                shown(expected)
            ),
            Some(Step::Server(bytes)) => {
                let n = bytes.len().min(buf.len()).min(self.chunk);
                buf[..n].copy_from_slice(&bytes[..n]);
                bytes.drain(..n);
                if bytes.is_empty() {
                    self.steps.pop_front();
                }
                Ok(n)
            }
        }
    }
}

impl Write for Script {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let Some(Step::Client(expected)) = self.steps.front_mut() else {
                panic!(
                    "client sent {:?} but the script expected {:?}",
                    shown(rest),
                    self.steps.front()
                );
            };
            let n = rest.len().min(expected.len());
            assert_eq!(
                shown(&rest[..n]),
                shown(&expected[..n]),
                "client sent something else"
            );
            expected.drain(..n);
            if expected.is_empty() {
                self.steps.pop_front();
            }
            rest = &rest[n..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Script {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.timeouts.push(timeout);
        Ok(())
    }
}

const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE AUTH=PLAIN] Dovecot (Debian) ready.\r\n";
const MAIL: &str =
    "From: a@example.org\r\nSubject: (test) {3}\r\n\r\nbody with ) and \"quotes\"\r\n";

fn session() -> Vec<Step> {
    vec![
        s(GREETING),
        c("a1 LOGIN \"lpmqtt\" \"s3cr\\\"t \\\\pass\"\r\n"),
        s("a1 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT LITERAL+ UIDPLUS] Logged in\r\n"),
        c("a2 SELECT \"INBOX\"\r\n"),
        s("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
           * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n\
           * 3 EXISTS\r\n* 1 RECENT\r\n* OK [UNSEEN 2] First unseen.\r\n\
           * OK [UIDVALIDITY 1764288000] UIDs valid\r\n* OK [UIDNEXT 12] Predicted next UID\r\n\
           a2 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"),
        c("a3 UID SEARCH UNSEEN\r\n"),
        s("* SEARCH 11 9\r\na3 OK Search completed (0.001 + 0.000 secs).\r\n"),
        c("a4 UID FETCH 9 BODY.PEEK[]\r\n"),
        S(format!("* 2 FETCH (UID 9 BODY[] {{{}}}\r\n{MAIL})\r\na4 OK Fetch completed (0.002 + 0.000 secs).\r\n", MAIL.len()).into_bytes()),
        c("a5 UID STORE 9 +FLAGS (\\Seen)\r\n"),
        s("* 2 FETCH (UID 9 FLAGS (\\Seen))\r\na5 OK Store completed.\r\n"),
        c("a6 UID FETCH 10 BODY.PEEK[]\r\n"),
        s("a6 OK Fetch completed.\r\n"),
        c("a7 LOGOUT\r\n"),
        s("* BYE Logging out\r\na7 OK Logout completed (0.001 + 0.000 secs).\r\n"),
    ]
}

#[test]
fn a_whole_session_in_any_chunking() {
    for chunk in [1, 2, 3, 7, 64, 100_000] {
        let mut imap = Client::connect(Script::new(session(), chunk)).unwrap();
        assert!(imap.has_capability("idle"));
        imap.login("lpmqtt", "s3cr\"t \\pass").unwrap();
        assert!(
            imap.has_capability("UIDPLUS"),
            "capabilities from LOGIN's OK"
        );
        assert_eq!(
            imap.select("INBOX").unwrap(),
            Mailbox {
                exists: 3,
                recent: 1,
                uid_validity: Some(1_764_288_000),
                uid_next: Some(12),
                read_only: false
            }
        );
        assert_eq!(imap.uid_search_unseen().unwrap(), vec![9, 11]);
        assert_eq!(
            imap.uid_fetch_body(9).unwrap().as_deref(),
            Some(MAIL.as_bytes())
        );
        imap.uid_store_flags(9, &[Flag::Seen]).unwrap();
        assert_eq!(imap.uid_fetch_body(10).unwrap(), None, "expunged meanwhile");
        let script = imap.logout().unwrap();
        script.assert_done();
        assert_eq!(
            script.timeouts,
            vec![Some(Duration::from_secs(120))],
            "set once, not per read"
        );
    }
}

#[test]
fn starttls_hands_back_the_transport_and_takes_a_new_one() {
    let plain = Script::new(
        vec![
            s("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready.\r\n"),
            c("a1 STARTTLS\r\n"),
            s("a1 OK Begin TLS negotiation now.\r\n"),
        ],
        5,
    );
    let imap = Client::connect(plain).unwrap();
    let (plain, resume) = imap.starttls().unwrap();
    plain.assert_done();
    let tls = Script::new(
        vec![
            c("a2 CAPABILITY\r\n"),
            s(
                "* CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN\r\na2 OK Pre-login capabilities listed, post-login capabilities have more.\r\n",
            ),
            c("a3 LOGIN \"lpmqtt\" \"pw\"\r\n"),
            s("a3 OK Logged in\r\n"),
        ],
        100,
    );
    let mut imap = resume.resume(tls);
    assert!(
        imap.capabilities().is_empty(),
        "capabilities are forgotten after STARTTLS"
    );
    assert_eq!(
        imap.capability().unwrap(),
        ["IMAP4rev1", "IDLE", "AUTH=PLAIN"]
    );
    imap.login("lpmqtt", "pw").unwrap();
}

#[test]
fn login_disabled_before_starttls_sends_nothing() {
    let script = Script::new(
        vec![s(
            "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready.\r\n",
        )],
        100,
    );
    let mut imap = Client::connect(script).unwrap();
    assert_eq!(
        imap.login("u", "pw").unwrap_err().to_string(),
        "the server does not support LOGIN here (LOGINDISABLED: use STARTTLS first)"
    );
}

#[test]
fn data_after_starttls_ok_is_refused() {
    let script = Script::new(
        vec![
            s("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready.\r\n"),
            c("a1 STARTTLS\r\n"),
            s(
                "a1 OK Begin TLS negotiation now.\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n",
            ),
        ],
        1000,
    );
    let err = Client::connect(script).unwrap().starttls().unwrap_err();
    assert!(err.to_string().contains("possible injection"), "{err}");
    let script = Script::new(vec![s("* OK [CAPABILITY IMAP4rev1] ready.\r\n")], 1000);
    assert!(matches!(
        Client::connect(script).unwrap().starttls(),
        Err(Error::Unsupported("STARTTLS"))
    ));
}

#[test]
fn failed_login_never_shows_the_password() {
    let script = Script::new(
        vec![
            s(GREETING),
            c("a1 LOGIN \"lpmqtt\" \"hunter2-secret\"\r\n"),
            s("a1 NO [AUTHENTICATIONFAILED] Authentication failed for hunter2-secret.\r\n"),
        ],
        100,
    );
    let mut imap = Client::connect(script).unwrap();
    let err = imap.login("lpmqtt", "hunter2-secret").unwrap_err();
    assert_eq!(
        err.to_string(),
        "LOGIN failed: [AUTHENTICATIONFAILED] Authentication failed for <password>."
    );
    assert!(!format!("{err:?}").contains("hunter2"));
    assert!(!format!("{imap:?}").contains("hunter2"));
}

#[test]
fn passwords_with_8bit_or_newlines_go_as_literals() {
    let script = Script::new(
        vec![
            s(GREETING),
            c("a1 LOGIN \"lpmqtt\" {10}\r\n"),
            s("+ OK\r\n"),
            C("pässwört".as_bytes().to_vec()),
            c("\r\n"),
            s("a1 OK Logged in\r\n"),
        ],
        100,
    );
    Client::connect(script)
        .unwrap()
        .login("lpmqtt", "pässwört")
        .unwrap();

    let with_literal_plus = Script::new(
        vec![
            s("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"),
            c("a1 LOGIN {3+}\r\na\nb \"pw\"\r\n"),
            s("a1 OK Logged in\r\n"),
        ],
        100,
    );
    Client::connect(with_literal_plus)
        .unwrap()
        .login("a\nb", "pw")
        .unwrap();

    let refused = Script::new(
        vec![
            s(GREETING),
            c("a1 LOGIN \"u\" {10}\r\n"),
            s("a1 BAD literal too big\r\n"),
        ],
        100,
    );
    let err = Client::connect(refused)
        .unwrap()
        .login("u", "pässwört")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "LOGIN refused as invalid by the server: literal too big"
    );

    let mut imap = Client::connect(Script::new(vec![s(GREETING)], 100)).unwrap();
    assert_eq!(
        imap.login("u", "a\0b").unwrap_err().to_string(),
        "password cannot be sent: it contains NUL"
    );
}

fn selected(mut more: Vec<Step>) -> Vec<Step> {
    let mut steps = vec![
        s(GREETING),
        c("a1 SELECT \"INBOX\"\r\n"),
        s("* 2 EXISTS\r\n* 0 RECENT\r\na1 OK [READ-WRITE] Select completed.\r\n"),
    ];
    steps.append(&mut more);
    steps
}

#[test]
fn idle_returns_on_exists_and_ends_with_done() {
    let script = Script::new(
        selected(vec![
            c("a2 IDLE\r\n"),
            s("+ idling\r\n"),
            s("* 1 FETCH (FLAGS (\\Seen))\r\n"),
            s("* 3 EXISTS\r\n"),
            c("DONE\r\n"),
            s("* 1 RECENT\r\na2 OK Idle completed (0.001 + 1.532 + 1.531 secs).\r\n"),
        ]),
        4,
    );
    let mut imap = Client::connect(script).unwrap();
    imap.select("INBOX").unwrap();
    assert_eq!(
        imap.idle(Duration::from_secs(29 * 60)).unwrap(),
        IdleOutcome::NewMail
    );
    assert!(imap.has_new_mail());
}

#[test]
fn idle_times_out_then_ends_cleanly() {
    let script = Script::new(
        selected(vec![
            c("a2 IDLE\r\n"),
            s("+ idling\r\n* OK Still here\r\n"),
            Step::Timeout,
            c("DONE\r\n"),
            s("a2 OK Idle completed.\r\n"),
            c("a3 NOOP\r\n"),
            s("* 3 EXISTS\r\na3 OK NOOP completed.\r\n"),
        ]),
        1000,
    );
    let mut imap = Client::connect(script).unwrap();
    imap.select("INBOX").unwrap();
    assert_eq!(
        imap.idle(Duration::from_secs(5)).unwrap(),
        IdleOutcome::TimedOut
    );
    assert!(imap.noop().unwrap(), "NOOP polls for new mail");
}

#[test]
fn mail_announced_during_another_command_skips_idle() {
    let script = Script::new(
        selected(vec![
            c("a2 UID STORE 5 +FLAGS (\\Seen \\Deleted)\r\n"),
            s("* 3 EXISTS\r\na2 OK Store completed.\r\n"),
            c("a3 EXPUNGE\r\n"),
            s("* 1 EXPUNGE\r\na3 OK Expunge completed.\r\n"),
            c("a4 UID SEARCH UNSEEN\r\n"),
            s("* SEARCH 7\r\na4 OK Search completed.\r\n"),
            c("a5 IDLE\r\n"),
            s("+ idling\r\n* 2 EXISTS\r\n"),
            Step::Timeout,
            c("DONE\r\n"),
            s("a5 OK Idle completed.\r\n"),
        ]),
        1000,
    );
    let mut imap = Client::connect(script).unwrap();
    imap.select("INBOX").unwrap();
    imap.uid_store_flags(5, &[Flag::Seen, Flag::Deleted])
        .unwrap();
    imap.expunge().unwrap();
    assert_eq!(
        imap.idle(Duration::from_secs(60)).unwrap(),
        IdleOutcome::NewMail,
        "no IDLE sent"
    );
    assert_eq!(imap.uid_search_unseen().unwrap(), vec![7]);
    assert!(!imap.has_new_mail());
    // 2 EXISTS after an expunge back to 2 messages is not new mail.
    assert_eq!(
        imap.idle(Duration::from_secs(60)).unwrap(),
        IdleOutcome::TimedOut
    );
}

#[test]
fn idle_needs_the_capability_and_handles_server_ending_it() {
    let script = Script::new(vec![s("* OK [CAPABILITY IMAP4rev1] ready\r\n")], 100);
    let mut imap = Client::connect(script).unwrap();
    assert!(matches!(
        imap.idle(Duration::from_secs(1)),
        Err(Error::Unsupported("IDLE"))
    ));

    let script = Script::new(
        selected(vec![
            c("a2 IDLE\r\n"),
            s("+ idling\r\n* BYE Disconnected for inactivity.\r\n"),
        ]),
        100,
    );
    let mut imap = Client::connect(script).unwrap();
    imap.select("INBOX").unwrap();
    assert_eq!(
        imap.idle(Duration::from_secs(60)).unwrap_err().to_string(),
        "the server closed the connection: Disconnected for inactivity."
    );
}

#[test]
fn failures_name_the_command() {
    let script = Script::new(
        vec![
            s(GREETING),
            c("a1 SELECT \"Nope\"\r\n"),
            s("a1 NO [NONEXISTENT] Mailbox doesn't exist: Nope\r\n"),
            c("a2 SELECT \"INBOX\"\r\n"),
            s("a2 BAD Error in IMAP command SELECT: bad args\r\n"),
            c("a3 NOOP\r\n"),
            Step::Timeout,
        ],
        100,
    );
    let mut imap = Client::connect(script).unwrap();
    assert_eq!(
        imap.select("Nope").unwrap_err().to_string(),
        "SELECT failed: [NONEXISTENT] Mailbox doesn't exist: Nope"
    );
    assert_eq!(
        imap.select("INBOX").unwrap_err().to_string(),
        "SELECT refused as invalid by the server: Error in IMAP command SELECT: bad args"
    );
    assert_eq!(
        imap.noop().unwrap_err().to_string(),
        "NOOP: no answer from the server in time"
    );
    assert_eq!(
        imap.select("Entwürfe").unwrap_err().to_string(),
        "mailbox cannot be sent: only printable ASCII names are supported"
    );
}

#[test]
fn greeting_problems() {
    let bye = Script::new(vec![s("* BYE Too many connections\r\n")], 100);
    assert_eq!(
        Client::connect(bye).unwrap_err().to_string(),
        "the server refused the connection: Too many connections"
    );
    let http = Script::new(vec![s("HTTP/1.1 400 Bad Request\r\n")], 100);
    assert!(matches!(Client::connect(http), Err(Error::Protocol(_))));
    let closed = Script::new(vec![], 100);
    assert_eq!(
        Client::connect(closed).unwrap_err().to_string(),
        "the server closed the connection"
    );
    let preauth = Script::new(
        vec![s("* PREAUTH [CAPABILITY IMAP4rev1 IDLE] welcome\r\n")],
        100,
    );
    assert!(Client::connect(preauth).unwrap().has_capability("IDLE"));
}

#[test]
fn oversized_literals_are_refused_before_allocation() {
    let script = Script::new(
        vec![
            s(GREETING),
            c("a1 UID FETCH 1 BODY.PEEK[]\r\n"),
            s("* 1 FETCH (UID 1 BODY[] {4294967296}\r\n"),
        ],
        100,
    );
    let config = Config {
        max_literal: 1 << 20,
        ..Config::default()
    };
    let mut imap = Client::connect_with(script, config).unwrap();
    assert_eq!(
        imap.uid_fetch_body(1).unwrap_err().to_string(),
        "a literal of 4294967296 bytes is larger than the limit of 1048576"
    );
}

/// A deterministic xorshift, so the "fuzz" input is the same on every run.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A transport that answers anything with the given bytes, then EOF.
struct Garbage(Vec<u8>);

impl Read for Garbage {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(13);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        Ok(n)
    }
}

impl Write for Garbage {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Garbage {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn truncated_and_garbage_responses_never_panic() {
    let replies: Vec<Vec<u8>> = session()
        .into_iter()
        .filter_map(|s| if let S(b) = s { Some(b) } else { None })
        .collect();
    let whole: Vec<u8> = replies.concat();
    let mut rng = 0xD1B5_4A32_D192_ED03u64;
    let exercise = |bytes: Vec<u8>| {
        let config = Config {
            max_line: 256,
            max_literal: 4096,
            ..Config::default()
        };
        let Ok(mut imap) = Client::connect_with(Garbage(bytes), config) else {
            return;
        };
        let _ = imap.login("u", "p");
        let _ = imap.select("INBOX");
        let _ = imap.uid_search_unseen();
        let _ = imap.uid_fetch_body(9);
        let _ = imap.uid_store_flags(9, &[Flag::Seen]);
        let _ = imap.idle(Duration::from_millis(1));
        let _ = imap.logout();
    };
    for cut in 0..whole.len() {
        exercise(whole[..cut].to_vec());
    }
    for _ in 0..2000 {
        let mut mangled = whole.clone();
        for _ in 0..(xorshift(&mut rng) % 10 + 1) {
            let at = (xorshift(&mut rng) as usize) % mangled.len();
            let specials = b"{}()[]\"\\*+ \r\n0123456789";
            mangled[at] = match xorshift(&mut rng) % 2 {
                0 => specials[(xorshift(&mut rng) as usize) % specials.len()],
                _ => xorshift(&mut rng) as u8,
            };
        }
        exercise(mangled);
    }
}
