//! Minor versions of `firehose:bus` keep older components working:
//!
//! - a source built against 0.1.0 as released (`source-0-1-0`, from a
//!   frozen copy of 0.1.0's WIT) loads, runs and publishes on this host,
//!   whose `wit/` is a later 0.1.x with more functions (`publish-batch`);
//! - in general, wasmtime matches semver-compatible names for imports
//!   (Linker) and exports (`get_export_index`, which bindgen's `*Pre::new`
//!   uses): the real public-read component, built against this `wit/`,
//!   links and answers on a host that names every `firehose:bus` item at
//!   the next patch version, and is not found under the next minor.

use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Store, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use std::sync::Arc;
use std::time::Duration;

use firehose_wasm::{SourceSpec, TopicPrefix, WIT_VERSION, World, check_component};
use tokio::sync::{mpsc, watch};

use crate::common::{component, engine, init_tracing};
use crate::source::{Collect, load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_built_against_0_1_0_runs_and_publishes_on_this_host() {
    init_tracing();
    assert_ne!(WIT_VERSION, "0.1.0", "this host's wit/ is a later 0.1.x");
    let path = component("source-0-1-0");
    let info = check_component(engine(), &std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(info.world, World::Source);
    assert_eq!(info.bus_version, "0.1.0");
    assert!(
        info.imports
            .iter()
            .any(|i| i == "firehose:bus/publish@0.1.0"),
        "{:?}",
        info.imports
    );

    let spec = SourceSpec::new("old", path, TopicPrefix::parse("old").unwrap())
        .with_config("prefix", "old/")
        .with_config("count", "3");
    let source = load(spec).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn({
        let source = source.clone();
        async move { source.run(Arc::new(Collect { tx, gate: None }), stop).await }
    });
    let mut got = Vec::new();
    while got.last().is_none_or(|t| t != "old/compat/done") {
        let m = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the 0.1.0 source publishes in time")
            .expect("the sink is open");
        got.push(m.topic);
    }
    assert_eq!(
        got,
        [
            "old/compat/1",
            "old/compat/2",
            "old/compat/3",
            "old/compat/done"
        ]
    );
    stop_tx.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, Ok(()), "it saw shutting-down and returned");
}

/// `0.1.<patch + 1>` of this host's `wit/` version.
fn next_patch() -> String {
    let (minor, patch) = WIT_VERSION
        .strip_prefix("0.")
        .and_then(|v| v.split_once('.'))
        .unwrap();
    format!("0.{minor}.{}", patch.parse::<u32>().unwrap() + 1)
}

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn client() -> Val {
    Val::Record(vec![
        ("id".into(), Val::String("c1".into())),
        ("username".into(), Val::Option(None)),
        ("listener".into(), Val::String("mqtt".into())),
        ("remote-address".into(), Val::String("127.0.0.1:1".into())),
        ("tls-identity".into(), Val::Option(None)),
    ])
}

#[tokio::test]
async fn a_component_links_and_answers_on_a_host_of_the_next_patch_version() {
    let engine = engine().engine();
    let (built, host) = (WIT_VERSION, next_patch());
    let component = Component::from_file(engine, component("public-read")).unwrap();
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    assert!(
        imports
            .iter()
            .any(|n| *n == format!("firehose:bus/config@{built}")),
        "{imports:?}"
    );

    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker
        .instance(&format!("firehose:bus/types@{host}"))
        .unwrap();
    let mut config = linker
        .instance(&format!("firehose:bus/config@{host}"))
        .unwrap();
    config
        .func_wrap("get", |_, (key,): (String,)| {
            Ok((if key == "deny_dollar" {
                Some("true".to_string())
            } else {
                None
            },))
        })
        .unwrap();
    config
        .func_wrap("keys", |_, (): ()| Ok((vec!["deny_dollar".to_string()],)))
        .unwrap();
    let mut log = linker
        .instance(&format!("firehose:bus/log@{host}"))
        .unwrap();
    log.func_new("log", |_, _, _, _| Ok(())).unwrap();

    // Imports: the component's names resolve to the host's next patch.
    let pre = linker
        .instantiate_pre(&component)
        .expect("the imports resolve against the next patch's definitions");
    // Exports: looked up under the host's name.
    let acl = component
        .get_export_index(None, format!("firehose:bus/acl@{host}"))
        .expect("the export is found under the next patch version");
    let check_subscribe = component
        .get_export_index(Some(&acl), "check-subscribe")
        .unwrap();
    assert!(
        component
            .get_export_index(None, "firehose:bus/acl@0.2.0")
            .is_none(),
        "another minor version is not compatible"
    );

    let mut store = Store::new(
        engine,
        State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimits::default(),
        },
    );
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(10_000);
    let instance = pre.instantiate_async(&mut store).await.unwrap();
    let func = instance.get_func(&mut store, check_subscribe).unwrap();
    let mut results = [Val::Bool(false)];
    func.call_async(
        &mut store,
        &[client(), Val::String("$SYS/#".into())],
        &mut results,
    )
    .await
    .unwrap();
    assert!(
        matches!(&results[0], Val::Variant(case, Some(_)) if case == "deny"),
        "{:?}",
        results[0]
    );
    func.call_async(
        &mut store,
        &[client(), Val::String("gerrit/#".into())],
        &mut results,
    )
    .await
    .unwrap();
    assert!(
        matches!(&results[0], Val::Variant(case, None) if case == "allow"),
        "{:?}",
        results[0]
    );
}
