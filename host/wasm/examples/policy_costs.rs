//! What a policy costs: compiling a component versus loading it from the
//! disk cache, creating an instance versus reusing a pooled one, and one
//! call of each policy kind. The numbers behind "instances are reused, not
//! created per message" in docs/benchmarks.md.
//!
//! Run (after `guests/build`):
//!
//! ```sh
//! cargo run --release -p firehose-wasm --example policy_costs
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use firehose_wasm::{
    AclPolicy, Client, ComponentCache, Message, PolicySpec, TransformPolicy, WasmEngine,
};

const CALLS: u32 = 20_000;
const INSTANTIATIONS: u32 = 500;

fn wasm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm")
}

fn per(d: Duration, n: u32) -> String {
    let ns = d.as_nanos() as f64 / f64::from(n);
    if ns >= 1_000_000.0 {
        format!("{:.1} ms", ns / 1_000_000.0)
    } else {
        format!("{:.1} µs", ns / 1_000.0)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let engine = WasmEngine::new()?;
    let dir = wasm_dir();
    let public_read = dir.join("public-read.wasm");
    let redact = dir.join("redact.wasm");
    for file in [&public_read, &redact] {
        anyhow::ensure!(
            file.exists(),
            "{} is missing: run guests/build",
            file.display()
        );
    }
    let cache_dir = tempfile::tempdir()?;
    let cache = ComponentCache::new(cache_dir.path());
    let spec = || {
        PolicySpec::new("public-read", &public_read)
            .with_config("publishers", r##"{"bench":["#"]}"##)
    };

    println!("| what | cost |");
    println!("| --- | --- |");
    let t = Instant::now();
    AclPolicy::load(&engine, &cache, spec()).await?;
    println!(
        "| public-read: compile (cache miss) and first instance | {} |",
        per(t.elapsed(), 1)
    );
    let t = Instant::now();
    let acl = AclPolicy::load(&engine, &cache, spec()).await?;
    println!(
        "| public-read: load from the disk cache and first instance | {} |",
        per(t.elapsed(), 1)
    );

    let t = Instant::now();
    for _ in 0..INSTANTIATIONS {
        acl.instantiate_once().await?;
    }
    println!(
        "| public-read: a fresh instance (what reuse saves per call) | {} |",
        per(t.elapsed(), INSTANTIATIONS)
    );

    let mut client = Client::anonymous("bench", "mqtt", "127.0.0.1:1");
    client.username = Some("bench".into());
    let message = Message::new(
        "bench/fanout/1",
        br#"{"seq":1,"host":"ci-7","ok":true}"#.to_vec(),
    );
    let t = Instant::now();
    for _ in 0..CALLS {
        acl.check_publish(&client, &message).await?;
    }
    println!(
        "| public-read: check-publish on a pooled instance | {} |",
        per(t.elapsed(), CALLS)
    );

    let transform = TransformPolicy::load(
        &engine,
        &cache,
        PolicySpec::new("redact", &redact).with_config("fields", r#"["email"]"#),
    )
    .await?;
    let t = Instant::now();
    for _ in 0..CALLS {
        transform.apply(&message).await?;
    }
    println!(
        "| redact: apply, JSON without the field (pass) | {} |",
        per(t.elapsed(), CALLS)
    );
    let with_email = Message::new(
        "bench/fanout/1",
        br#"{"seq":1,"owner":{"name":"A","email":"a@example.org"}}"#.to_vec(),
    );
    let t = Instant::now();
    for _ in 0..CALLS {
        transform.apply(&with_email).await?;
    }
    println!(
        "| redact: apply, JSON with the field (replace) | {} |",
        per(t.elapsed(), CALLS)
    );
    let stats = acl.stats();
    println!();
    println!("public-read pool after the run: {stats:?}");
    Ok(())
}
