//! The compiled-component cache: the second load (also by a new engine,
//! as after a restart) does not compile; a damaged entry is compiled
//! again, never loaded.

use std::time::Instant;

use firehose_wasm::{AclPolicy, CacheOutcome, ComponentCache, WasmEngine};

use crate::common::{component, engine, init_tracing, spec};

#[tokio::test]
async fn a_second_load_is_a_cache_hit_even_after_a_restart() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path());

    let start = Instant::now();
    let first = AclPolicy::load(engine(), &cache, spec("public-read"))
        .await
        .unwrap();
    let compiled = start.elapsed();
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);

    let start = Instant::now();
    let second = AclPolicy::load(engine(), &cache, spec("public-read"))
        .await
        .unwrap();
    let cached = start.elapsed();
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);

    // A restart: a new engine with the same configuration.
    let restarted = WasmEngine::new().unwrap();
    let third = AclPolicy::load(&restarted, &cache, spec("public-read"))
        .await
        .unwrap();
    assert_eq!(third.cache_outcome(), CacheOutcome::Hit);
    println!("public-read load: compiling {compiled:?}, from the cache {cached:?}");

    let bytes = std::fs::read(component("public-read")).unwrap();
    let key = ComponentCache::key(engine(), &bytes);
    let entry = dir.path().join("wasm-cache").join(format!("{key}.cwasm"));
    assert!(entry.is_file(), "{} exists", entry.display());
    assert!(entry.with_extension("sha256").is_file());
}

#[tokio::test]
async fn a_damaged_cache_entry_is_compiled_again() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cache = ComponentCache::new(dir.path());
    AclPolicy::load(engine(), &cache, spec("deny-topics"))
        .await
        .unwrap();

    let bytes = std::fs::read(component("deny-topics")).unwrap();
    let key = ComponentCache::key(engine(), &bytes);
    let entry = dir.path().join("wasm-cache").join(format!("{key}.cwasm"));
    let mut artifact = std::fs::read(&entry).unwrap();
    let middle = artifact.len() / 2;
    artifact[middle] ^= 0xff;
    std::fs::write(&entry, artifact).unwrap();

    let reloaded = AclPolicy::load(engine(), &cache, spec("deny-topics"))
        .await
        .unwrap();
    assert_eq!(reloaded.cache_outcome(), CacheOutcome::Miss);
    let again = AclPolicy::load(engine(), &cache, spec("deny-topics"))
        .await
        .unwrap();
    assert_eq!(
        again.cache_outcome(),
        CacheOutcome::Hit,
        "the entry was rewritten"
    );
}

#[test]
fn the_key_depends_on_the_bytes() {
    let a = ComponentCache::key(engine(), b"\0asm\x0d\0\x01\0");
    let b = ComponentCache::key(engine(), b"\0asm\x0d\0\x01\0 ");
    assert_ne!(a, b);
    assert_eq!(a.len(), 64);
}
