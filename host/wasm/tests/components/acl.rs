//! The shipped ACL policies, public-read and deny-topics, answer as their
//! config says.

use firehose_wasm::{AclPolicy, CacheHints, Client, Decision, Message, TransformPolicy, World};

use crate::common::{acl, init_tracing, spec, test_limits};

fn anonymous() -> Client {
    Client::anonymous("sub-1", "mqtt", "127.0.0.1:50000")
}

fn user(name: &str) -> Client {
    Client {
        username: Some(name.to_string()),
        ..Client::anonymous("pub-1", "mqtts", "[::1]:40000")
    }
}

fn denied(d: Decision) -> String {
    match d {
        Decision::Deny(reason) => reason,
        Decision::Allow => panic!("expected a denial, got allow"),
    }
}

#[tokio::test]
async fn public_read_lets_anyone_read_and_no_anonymous_client_write() {
    init_tracing();
    let policy = acl(spec("public-read")).await;
    assert_eq!(policy.info().world, World::AclPolicy);
    assert_eq!(
        policy.cache_hints(),
        CacheHints {
            subscribe: true,
            publish: true
        }
    );
    let anon = anonymous();
    assert_eq!(policy.check_connect(&anon).await.unwrap(), Decision::Allow);
    assert_eq!(
        policy.check_subscribe(&anon, "#").await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        policy
            .check_subscribe(&anon, "gerrit/+/comment-added")
            .await
            .unwrap(),
        Decision::Allow
    );
    let reason = denied(policy.check_subscribe(&anon, "$SYS/#").await.unwrap());
    assert!(reason.contains("$SYS/#"), "{reason}");
    let reason = denied(
        policy
            .check_publish(&anon, &Message::new("gerrit/x", "hi"))
            .await
            .unwrap(),
    );
    assert!(reason.contains("anonymous"), "{reason}");
}

#[tokio::test]
async fn public_read_lets_a_configured_publisher_write_inside_its_prefix_only() {
    init_tracing();
    let policy = acl(spec("public-read").with_config(
        "publishers",
        r#"{"ansible":["ansible/#"],"logs":["logs/+/done"]}"#,
    ))
    .await;
    let ansible = user("ansible");
    assert_eq!(
        policy
            .check_publish(&ansible, &Message::new("ansible/run/42", "{}"))
            .await
            .unwrap(),
        Decision::Allow
    );
    denied(
        policy
            .check_publish(&ansible, &Message::new("gerrit/x", "{}"))
            .await
            .unwrap(),
    );
    denied(
        policy
            .check_publish(&user("mallory"), &Message::new("ansible/run/42", "{}"))
            .await
            .unwrap(),
    );
    assert_eq!(
        policy
            .check_publish(&user("logs"), &Message::new("logs/web/done", "ok"))
            .await
            .unwrap(),
        Decision::Allow
    );
}

#[tokio::test]
async fn deny_topics_closes_off_the_configured_filters() {
    init_tracing();
    let policy =
        acl(spec("deny-topics").with_config("deny", r#"["internal/#","+/secrets/#"]"#)).await;
    let anon = anonymous();
    assert_eq!(policy.check_connect(&anon).await.unwrap(), Decision::Allow);
    assert_eq!(
        policy
            .check_subscribe(&anon, "gerrit/nova/comment-added")
            .await
            .unwrap(),
        Decision::Allow
    );
    denied(policy.check_subscribe(&anon, "internal/x").await.unwrap());
    // `#` overlaps `internal/#`: it could receive denied messages.
    denied(policy.check_subscribe(&anon, "#").await.unwrap());
    denied(
        policy
            .check_publish(&user("ops"), &Message::new("ops/secrets/db", "pw"))
            .await
            .unwrap(),
    );
    assert_eq!(
        policy
            .check_publish(&user("ops"), &Message::new("ops/status", "up"))
            .await
            .unwrap(),
        Decision::Allow
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_a_bounded_pool_of_instances() {
    init_tracing();
    let policy = acl(spec("public-read")).await;
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let policy = policy.clone();
            tokio::spawn(async move {
                let client = Client::anonymous(format!("c{i}"), "ws", "127.0.0.1:2");
                policy.check_subscribe(&client, "gerrit/#").await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), Decision::Allow);
    }
    let stats = policy.stats();
    let instances = u64::from(test_limits().instances);
    assert!(stats.instantiated <= instances, "{stats:?}");
    assert_eq!(stats.calls, 16);
    assert_eq!(stats.discarded, 0);
}

#[test]
fn policy_calls_are_send_futures_as_the_broker_needs() {
    fn send<T: Send>(_: &T) {}
    let check = |acl: &AclPolicy, transform: &TransformPolicy, c: &Client, m: &Message| {
        send(&acl.check_connect(c));
        send(&acl.check_subscribe(c, "a/#"));
        send(&acl.check_publish(c, m));
        send(&transform.apply(m));
    };
    let _ = check;
}
