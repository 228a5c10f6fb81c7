//! What every test needs: the engine, a cache shared by the whole test
//! run (so each component compiles once), and the built components.

use std::path::PathBuf;
use std::sync::OnceLock;

use firehose_wasm::{AclPolicy, ComponentCache, Limits, PolicySpec, TransformPolicy, WasmEngine};

/// The component `target/wasm/<name>.wasm`; fails the test, naming the
/// file and the command that builds it, if it is missing.
pub fn component(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("target/wasm").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "missing test component {}: build the guests first with `guests/build` (from the repo root {})",
        path.display(),
        root.canonicalize().unwrap_or(root.clone()).display(),
    );
    path
}

pub fn engine() -> &'static WasmEngine {
    static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
    ENGINE.get_or_init(|| WasmEngine::new().expect("engine"))
}

/// A disk cache in a temporary directory that lives as long as the test
/// process.
pub fn cache() -> &'static ComponentCache {
    static DIR: OnceLock<(tempfile::TempDir, ComponentCache)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = ComponentCache::new(dir.path());
        (dir, cache)
    })
    .1
}

/// The default limits, but a deadline of 250 ms: the tests run in
/// parallel on a debug build of wasmtime, often on two busy cores, and a
/// deadline is wall-clock time. Tests of the deadline itself set the
/// default 5 ms explicitly.
pub fn test_limits() -> Limits {
    Limits {
        deadline_ms: 250,
        ..Limits::default()
    }
}

/// `target/wasm/<name>.wasm` with [`test_limits`].
pub fn spec(name: &str) -> PolicySpec {
    PolicySpec::new(name, component(name)).with_limits(test_limits())
}

pub async fn acl(spec: PolicySpec) -> AclPolicy {
    AclPolicy::load(engine(), cache(), spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub async fn transform(spec: PolicySpec) -> TransformPolicy {
    TransformPolicy::load(engine(), cache(), spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Log output for failing tests (`RUST_LOG=debug cargo test ...`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
