//! `check_component` tells what a file is, and loading refuses what does
//! not fit, naming the component and the file.

use firehose_wasm::{
    AclPolicy, CheckError, LoadError, PolicySpec, TransformPolicy, World, check_component,
};

use crate::common::{cache, component, engine};

fn check_bytes(bytes: &[u8]) -> Result<firehose_wasm::ComponentInfo, CheckError> {
    check_component(engine(), bytes)
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

#[test]
fn a_text_file_is_not_wasm() {
    let e = check_bytes(b"[policy]\nname = \"x\"\n").unwrap_err();
    assert_eq!(e, CheckError::NotWasm);
    assert!(e.to_string().contains("not a WebAssembly file"));
}

#[test]
fn a_core_module_is_named_as_such_with_how_to_build_a_component() {
    let module = wat(r#"(module (func (export "check") (result i32) i32.const 1))"#);
    let e = check_bytes(&module).unwrap_err();
    assert_eq!(e, CheckError::CoreModule);
    let message = e.to_string();
    assert!(
        message.contains("core WebAssembly module, not a component"),
        "{message}"
    );
    assert!(message.contains("wasm32-wasip2"), "{message}");
}

#[test]
fn a_component_of_no_world_of_ours_is_refused() {
    let e = check_bytes(&wat("(component)")).unwrap_err();
    assert!(matches!(e, CheckError::UnknownWorld { .. }), "{e}");
    assert!(e.to_string().contains("implements none of our worlds"));
}

#[test]
fn a_component_of_another_minor_version_is_refused() {
    let bytes = wat(r#"(component (instance $i) (export "firehose:bus/acl@0.2.0" (instance $i)))"#);
    let e = check_bytes(&bytes).unwrap_err();
    assert!(
        matches!(&e, CheckError::UnsupportedVersion { found, .. } if found == "0.2.0"),
        "{e}"
    );
    assert!(e.to_string().contains("this host implements 0.1.x"), "{e}");
}

#[test]
fn a_component_missing_exports_is_refused_listing_them() {
    // A later patch version is fine; the missing functions are not.
    let bytes = wat(r#"(component (instance $i) (export "firehose:bus/acl@0.1.5" (instance $i)))"#);
    let e = check_bytes(&bytes).unwrap_err();
    let CheckError::MissingExports { world, missing, .. } = &e else {
        panic!("expected MissingExports, got {e}");
    };
    assert_eq!(*world, World::AclPolicy);
    assert_eq!(
        missing,
        &[
            "cache-hints",
            "check-connect",
            "check-subscribe",
            "check-publish"
        ]
    );
}

#[test]
fn each_real_component_reports_its_world_and_imports() {
    let expected = [
        ("public-read", World::AclPolicy),
        ("deny-topics", World::AclPolicy),
        ("fault-loop", World::AclPolicy),
        ("fault-alloc", World::AclPolicy),
        ("fault-panic", World::AclPolicy),
        ("redact", World::TransformPolicy),
        ("topic-rewrite", World::TransformPolicy),
        ("fault-transform-loop", World::TransformPolicy),
        ("fault-transform-alloc", World::TransformPolicy),
        ("fault-transform-panic", World::TransformPolicy),
    ];
    for (name, world) in expected {
        let bytes = std::fs::read(component(name)).unwrap();
        let info = check_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.world, world, "{name}");
        assert_eq!(info.bus_version, firehose_wasm::WIT_VERSION, "{name}");
        println!(
            "{name}: {} (firehose:bus {}), imports: {}",
            info.world,
            info.bus_version,
            info.imports.join(", ")
        );
        assert!(
            info.imports
                .iter()
                .any(|i| i.starts_with("firehose:bus/types@")),
            "{name}: {:?}",
            info.imports
        );
    }
}

#[tokio::test]
async fn loading_a_transform_as_an_acl_policy_names_the_entry_and_the_file() {
    let path = component("redact");
    let e = AclPolicy::load(engine(), cache(), PolicySpec::new("gate", &path))
        .await
        .unwrap_err();
    assert!(matches!(e, LoadError::WrongWorld { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains("component gate"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("implements transform-policy, but is configured as acl-policy"),
        "{message}"
    );
}

#[tokio::test]
async fn loading_a_missing_or_non_component_file_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.wasm");
    let e = TransformPolicy::load(engine(), cache(), PolicySpec::new("t", &missing))
        .await
        .unwrap_err();
    assert!(matches!(e, LoadError::Read { .. }), "{e}");
    assert!(e.to_string().contains("nope.wasm"));

    let module = dir.path().join("core.wasm");
    std::fs::write(&module, wat("(module)")).unwrap();
    let e = TransformPolicy::load(engine(), cache(), PolicySpec::new("t", &module))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            LoadError::Check {
                source: CheckError::CoreModule,
                ..
            }
        ),
        "{e}"
    );
}
