//! What reusing instances saves: the cost of `check_publish` on a reused
//! instance beside creating an instance for each call. Prints the numbers
//! (`cargo test --release -p firehose-wasm cost -- --nocapture`).

use std::time::{Duration, Instant};

use firehose_wasm::{Client, Decision, Message};

use crate::common::{acl, init_tracing, spec};

const REUSED_CALLS: u32 = 2000;
const FRESH_CALLS: u32 = 100;

#[tokio::test]
async fn a_reused_instance_is_much_cheaper_than_one_per_call() {
    init_tracing();
    let policy =
        acl(spec("public-read").with_config("publishers", r#"{"ansible":["ansible/#"]}"#)).await;
    let client = Client {
        username: Some("ansible".into()),
        ..Client::anonymous("p1", "mqtt", "127.0.0.1:1")
    };
    let message = Message::new(
        "ansible/run/42",
        br#"{"host":"web1","status":"ok"}"#.to_vec(),
    );
    for _ in 0..100 {
        policy.check_publish(&client, &message).await.unwrap();
    }

    let start = Instant::now();
    for _ in 0..REUSED_CALLS {
        assert_eq!(
            policy.check_publish(&client, &message).await.unwrap(),
            Decision::Allow
        );
    }
    let reused = start.elapsed() / REUSED_CALLS;

    let start = Instant::now();
    for _ in 0..FRESH_CALLS {
        policy.instantiate_once().await.unwrap();
    }
    let instantiate = start.elapsed() / FRESH_CALLS;
    let fresh = instantiate + reused;

    println!(
        "check_publish (public-read): reused instance {reused:?}/call; \
         instantiate {instantiate:?}; per call with a fresh instance {fresh:?} \
         ({:.0}x)",
        fresh.as_secs_f64() / reused.as_secs_f64().max(1e-9)
    );
    assert!(reused < fresh);
    assert!(
        reused < Duration::from_millis(5),
        "a call fits its deadline: {reused:?}"
    );
}
