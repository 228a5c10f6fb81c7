//! The realistic mails in `tests/data/launchpad/`: each `<name>.eml` with
//! a `<name>.expected.json` must give exactly that payload (compact JSON,
//! keys sorted) on the listed topic; the others must give the listed
//! outcome or error. The expected payloads were computed independently
//! with Python's `email` package (policy `default`) applying the same
//! rules (`tests/data/launchpad/reference.py`). Truncated and garbage
//! mail must never panic.

use std::path::PathBuf;

use launchpad_mail::{MailError, Outcome, parse};

const EVENTS: &[(&str, &str)] = &[
    ("new-bug", "launchpad/nova/bug/1704071"),
    ("comment", "launchpad/nova/bug/1704071"),
    ("status-change", "launchpad/nova/bug/1704071"),
    ("two-projects", "launchpad/nova/bug/1698822"),
    ("folded-headers", "launchpad/nova/bug/1712345"),
    ("qp-utf8", "launchpad/nova/bug/1723456"),
    ("base64-body", "launchpad/nova/bug/1723456"),
    ("multipart", "launchpad/nova/bug/1704071"),
    ("merge-proposal", "launchpad/lpmqtt/code-review"),
];

fn data(file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/launchpad")
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn event(name: &str) -> launchpad_mail::Event {
    match parse(&data(&format!("{name}.eml"))) {
        Ok(Outcome::Event(event)) => event,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_sample_gives_its_exact_topic_and_payload() {
    for (name, topic) in EVENTS {
        let event = event(name);
        assert_eq!(event.topic, *topic, "{name}");
        let expected = data(&format!("{name}.expected.json"));
        assert_eq!(
            String::from_utf8(event.payload).unwrap(),
            String::from_utf8(expected).unwrap().trim_end(),
            "{name}"
        );
    }
}

#[test]
fn new_bug_fields_as_lpmqtt_named_them() {
    let fields = event("new-bug").fields;
    let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "assignee",
            "body",
            "bug-modifier",
            "bug-number",
            "bug-reporter",
            "commenters",
            "event-type",
            "importance",
            "project",
            "status",
            "tags"
        ]
    );
    assert_eq!(fields["tags"], serde_json::json!(["compute", "resize"]));
    assert_eq!(fields["bug-reporter"], "Jane Doe (jdoe)");
    assert!(
        fields["body"]
            .as_str()
            .unwrap()
            .starts_with("Public bug reported:\n\nDescription\n===========\nResizing")
    );
}

#[test]
fn folded_and_encoded_headers_are_decoded() {
    let fields = event("folded-headers").fields;
    assert_eq!(fields["bug-reporter"], "Jörg Müller (jmueller)");
    assert_eq!(fields["importance"], "Undecided");
    assert_eq!(fields["bug-modifier"], serde_json::Value::Null);
    assert_eq!(fields["tags"], serde_json::json!([]));
    assert_eq!(fields["commenters"], serde_json::json!([]));
}

#[test]
fn first_of_two_projects_is_the_topic() {
    let fields = event("two-projects").fields;
    assert_eq!(fields["project"], "nova");
    assert_eq!(fields["status"], "Triaged");
}

#[test]
fn other_launchpad_mail_keeps_its_headers() {
    let fields = event("merge-proposal").fields;
    assert_eq!(
        fields["message-rationale"],
        serde_json::json!(["Subscriber", "Reviewer"])
    );
    assert_eq!(fields["branch"], "~jdoe/lpmqtt/unfold-headers");
    assert_eq!(fields["event-type"], "code-review");
}

#[test]
fn non_launchpad_and_broken_mail() {
    assert_eq!(parse(&data("non-launchpad.eml")), Ok(Outcome::NotLaunchpad));
    assert_eq!(
        parse(&data("broken-header.eml")).unwrap_err().to_string(),
        "header line 18 is not `Name: value`: \"X-Launchpad-Bug product=nova; status=New\""
    );
    assert_eq!(
        parse(&data("broken-no-bug-number.eml")).unwrap_err(),
        MailError::NoBugNumber {
            subject: "Re: Resize fails when the flavor has extra specs".into()
        }
    );
}

#[test]
fn launchpad_mail_missing_what_bug_mail_needs() {
    let base = "X-Generated-By: Launchpad (canonical.com)\nX-Launchpad-Notification-Type: bug\n";
    let mail = |rest: &str| format!("{base}{rest}\n\nbody\n").into_bytes();
    assert_eq!(
        parse(&mail("X-Launchpad-Bug: product=nova")),
        Err(MailError::MissingHeader("Subject"))
    );
    assert_eq!(
        parse(&mail("Subject: [Bug 7] x")),
        Err(MailError::MissingHeader("X-Launchpad-Bug"))
    );
    assert_eq!(
        parse(&mail(
            "Subject: [Bug 7] x\nX-Launchpad-Bug: product=nova; status"
        )),
        Err(MailError::BadBugField("status".into()))
    );
    assert_eq!(
        parse(&mail("Subject: [Bug 7] x\nX-Launchpad-Bug: status=New")),
        Err(MailError::NoProject("status=New".into()))
    );
    assert!(matches!(
        parse(&mail("Subject: [Bug 7] x\nX-Launchpad-Bug: product=gtk+")),
        Err(MailError::Topic {
            field: "project",
            ..
        })
    ));
    assert_eq!(
        parse(&mail(
            "Subject: =?utf-8?q?=FF?=\nX-Launchpad-Bug: product=nova"
        ))
        .unwrap_err()
        .to_string(),
        "header Subject: encoded word \"=?utf-8?q?=FF?=\": bytes not valid UTF-8"
    );
}

#[test]
fn a_distribution_bug_uses_the_distribution_as_project() {
    let mail = b"X-Generated-By: Launchpad (canonical.com)\r\nX-Launchpad-Notification-Type: bug\r\n\
Subject: [Bug 2001] [NEW] crash\r\nX-Launchpad-Bug: distribution=ubuntu; sourcepackage=nova; component=main; status=New; importance=Undecided; assignee=None;\r\n\r\nbody\r\n";
    let Ok(Outcome::Event(event)) = parse(mail) else {
        panic!()
    };
    assert_eq!(event.topic, "launchpad/ubuntu/bug/2001");
    assert_eq!(
        String::from_utf8(event.payload).unwrap(),
        r#"{"assignee":"None","body":"body\n","bug-modifier":null,"bug-number":"2001","bug-reporter":null,"commenters":[],"component":"main","distribution":"ubuntu","event-type":"bug","importance":"Undecided","project":"ubuntu","sourcepackage":"nova","status":"New","tags":[]}"#
    );
}

#[test]
fn other_mail_without_project_goes_to_the_root_topic() {
    let mail = b"X-Generated-By: Launchpad (canonical.com)\nX-Launchpad-Notification-Type: question\n\nhello";
    let Ok(Outcome::Event(event)) = parse(mail) else {
        panic!()
    };
    assert_eq!(event.topic, "launchpad");
    assert_eq!(
        String::from_utf8(event.payload).unwrap(),
        r#"{"body":"hello","event-type":"question","notification-type":"question"}"#
    );
}

/// A deterministic xorshift, so the "fuzz" input is the same on every run.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_garbage_mail_never_panics() {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let names = EVENTS.iter().map(|(n, _)| *n).chain([
        "non-launchpad",
        "broken-header",
        "broken-no-bug-number",
    ]);
    for name in names {
        let mail = data(&format!("{name}.eml"));
        for cut in (0..mail.len()).step_by(7) {
            let _ = parse(&mail[..cut]);
        }
        for _ in 0..300 {
            let mut mangled = mail.clone();
            for _ in 0..(xorshift(&mut rng) % 12 + 1) {
                let at = (xorshift(&mut rng) as usize) % mangled.len();
                // Favour the bytes that matter to the parsers.
                let bytes = b"=?:;\r\n \t-_[]BQ\xff\x80";
                mangled[at] = match xorshift(&mut rng) % 3 {
                    0 => bytes[(xorshift(&mut rng) as usize) % bytes.len()],
                    _ => xorshift(&mut rng) as u8,
                };
            }
            let _ = parse(&mangled);
        }
    }
}
