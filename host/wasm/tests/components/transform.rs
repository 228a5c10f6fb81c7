//! The shipped transforms, redact and topic-rewrite, reshape messages as
//! their config says.

use firehose_wasm::{Message, Outcome, Qos, World};
use serde_json::Value;

use crate::common::{init_tracing, spec, transform};

/// A patchset-created event as Gerrit's stream-events prints it.
const PATCHSET_CREATED: &str = r#"{
  "uploader": {"name": "Jane Developer", "email": "jane@example.org", "username": "jane"},
  "patchSet": {
    "number": 3,
    "revision": "4a1bc2f8d09e6f3b7c2d1e0f9a8b7c6d5e4f3a2b",
    "parents": ["9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"],
    "ref": "refs/changes/45/12345/3",
    "uploader": {"name": "Jane Developer", "email": "jane@example.org", "username": "jane"},
    "createdOn": 1700000000,
    "author": {"name": "Jane Developer", "email": "jane@example.org", "username": "jane"},
    "kind": "REWORK",
    "sizeInsertions": 120,
    "sizeDeletions": -7
  },
  "change": {
    "project": "openstack-infra/germqtt",
    "branch": "master",
    "id": "I8b1f2c3d4e5f60718293a4b5c6d7e8f901234567",
    "number": 12345,
    "subject": "Publish \"ref-updated\" events\n\nwith a body",
    "owner": {"name": "Jane Developer", "email": "jane@example.org", "username": "jane"},
    "url": "https://review.example.org/c/openstack-infra/germqtt/+/12345",
    "commitMessage": "Publish ref-updated events\n\nChange-Id: I8b1f2c3d\n",
    "createdOn": 1699990000,
    "status": "NEW"
  },
  "project": "openstack-infra/germqtt",
  "refName": "refs/heads/master",
  "changeKey": {"id": "I8b1f2c3d4e5f60718293a4b5c6d7e8f901234567"},
  "type": "patchset-created",
  "eventCreatedOn": 1700000001
}"#;

fn strip_emails(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("email");
            map.values_mut().for_each(strip_emails);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_emails),
        _ => {}
    }
}

#[tokio::test]
async fn redact_removes_emails_from_a_gerrit_event_and_keeps_everything_else() {
    init_tracing();
    let policy = transform(spec("redact")).await;
    assert_eq!(policy.info().world, World::TransformPolicy);
    let mut message = Message::new(
        "gerrit/openstack-infra/germqtt/patchset-created",
        PATCHSET_CREATED,
    );
    message.qos = Qos::AtLeastOnce;
    message.retain = true;
    message.content_type = Some("application/json".into());
    message.user_properties = vec![("origin".into(), "gerrit".into())];

    let Outcome::Replace(out) = policy.apply(&message).await.unwrap() else {
        panic!("expected the payload to be replaced");
    };
    assert_eq!(out.len(), 1);
    let out = &out[0];
    let text = std::str::from_utf8(&out.payload).unwrap();
    assert!(
        !text.contains("email") && !text.contains("jane@example.org"),
        "{text}"
    );
    let mut expected: Value = serde_json::from_str(PATCHSET_CREATED).unwrap();
    strip_emails(&mut expected);
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), expected);
    assert_eq!(
        Message {
            payload: message.payload.clone(),
            ..out.clone()
        },
        message,
        "everything but the payload is kept"
    );
}

#[tokio::test]
async fn redact_passes_payloads_without_the_fields() {
    init_tracing();
    let policy = transform(spec("redact")).await;
    for payload in [
        r#"{"type":"ref-updated","refUpdate":{"project":"x"}}"#,
        "not json",
        "",
    ] {
        assert_eq!(
            policy
                .apply(&Message::new("gerrit/x", payload))
                .await
                .unwrap(),
            Outcome::Pass,
            "{payload:?}"
        );
    }
}

#[tokio::test]
async fn topic_rewrite_renames_then_prefixes() {
    init_tracing();
    let policy = transform(
        spec("topic-rewrite")
            .with_config("rename", r#"{"review/":"gerrit/"}"#)
            .with_config("prefix", "mirror/"),
    )
    .await;
    let message = Message::new("review/nova/change-merged", "{}");
    let Outcome::Replace(out) = policy.apply(&message).await.unwrap() else {
        panic!("expected a new topic");
    };
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].topic, "mirror/gerrit/nova/change-merged");
    assert_eq!(out[0].payload, message.payload);

    let Outcome::Replace(out) = policy
        .apply(&Message::new("launchpad/nova/bug/1", "{}"))
        .await
        .unwrap()
    else {
        panic!("expected a new topic");
    };
    assert_eq!(out[0].topic, "mirror/launchpad/nova/bug/1");
}
