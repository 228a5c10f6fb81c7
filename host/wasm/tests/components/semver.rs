//! A component built against `firehose:bus@0.1.0` keeps working when the
//! host speaks 0.1.1: wasmtime matches semver-compatible names for
//! imports (Linker) and exports (`get_export_index`, which bindgen's
//! `*Pre::new` uses). Proven with the real public-read component
//! (built against 0.1.0) and a host that names every `firehose:bus`
//! item at 0.1.1.

use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Store, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::common::{component, engine};

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
async fn a_0_1_0_component_links_and_answers_on_a_0_1_1_host() {
    let engine = engine().engine();
    let component = Component::from_file(engine, component("public-read")).unwrap();
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    assert!(
        imports.iter().any(|n| n == "firehose:bus/config@0.1.0"),
        "{imports:?}"
    );

    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    linker.instance("firehose:bus/types@0.1.1").unwrap();
    let mut config = linker.instance("firehose:bus/config@0.1.1").unwrap();
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
    let mut log = linker.instance("firehose:bus/log@0.1.1").unwrap();
    log.func_new("log", |_, _, _, _| Ok(())).unwrap();

    // Imports: the component's @0.1.0 names resolve to the host's @0.1.1.
    let pre = linker
        .instantiate_pre(&component)
        .expect("0.1.0 imports resolve against 0.1.1 definitions");
    // Exports: looked up under the host's @0.1.1 name.
    let acl = component
        .get_export_index(None, "firehose:bus/acl@0.1.1")
        .expect("the @0.1.0 export is found under @0.1.1");
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
