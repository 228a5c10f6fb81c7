//! What a `.wasm` file is, before anything runs: not wasm at all, a core
//! module (the most common mistake: built for wasm32-wasip1 or
//! wasm32-unknown-unknown), or a component of one of our worlds, built
//! against which version of `firehose:bus`, asking for which imports.
//!
//! Used by `firehose component check FILE.wasm` and by every load. The
//! world is told by the component's exports: `firehose:bus/acl@0.1.x` is an
//! `acl-policy`, `firehose:bus/transform@0.1.x` a `transform-policy`,
//! `firehose:bus/run@0.1.x` a `source`; so is a component that exports
//! `wasi:http/incoming-handler@0.2.x` (a webhook source, world
//! `webhook-source`: `run` is optional then, see
//! [`ComponentInfo::http_handler`]). Any 0.1.x is accepted: wasmtime
//! resolves names across semver-compatible versions (for 0.x, the same
//! minor), so a component built against 0.1.0 runs on a host at 0.1.1.
//!
//! This module must not instantiate anything: checking runs no guest code.

use std::fmt;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::engine::WasmEngine;
use crate::host_imports;

/// The `firehose:bus` major.minor this host implements (any patch).
pub const BUS_VERSION: (u64, u64) = (0, 1);

/// The full `firehose:bus` version of this host's `wit/`: what the guests
/// in this repository are built against. Components of any earlier 0.1.x
/// load too.
pub const WIT_VERSION: &str = "0.1.1";

/// The export that makes a component a webhook source (any 0.2.x).
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler";

/// The worlds a component can implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    AclPolicy,
    TransformPolicy,
    Source,
}

impl World {
    const ALL: [World; 3] = [World::AclPolicy, World::TransformPolicy, World::Source];

    /// The `firehose:bus` interface whose export identifies the world.
    pub fn export_interface(self) -> &'static str {
        match self {
            World::AclPolicy => "acl",
            World::TransformPolicy => "transform",
            World::Source => "run",
        }
    }

    /// The functions that interface must export.
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            World::AclPolicy => &[
                "cache-hints",
                "check-connect",
                "check-subscribe",
                "check-publish",
            ],
            World::TransformPolicy => &["apply"],
            World::Source => &["run"],
        }
    }

    /// The `firehose:bus` interfaces a component of this world may import.
    fn bus_imports(self) -> &'static [&'static str] {
        match self {
            World::AclPolicy | World::TransformPolicy => &["types", "config", "log"],
            World::Source => &["types", "config", "log", "publish"],
        }
    }

    /// The WASI 0.2 packages a component of this world may import (what
    /// they allow is the host's business: see `wasi_ctx`).
    fn wasi_packages(self) -> &'static [&'static str] {
        match self {
            World::AclPolicy | World::TransformPolicy => {
                &["cli", "clocks", "filesystem", "io", "random", "sockets"]
            }
            World::Source => &[
                "cli",
                "clocks",
                "filesystem",
                "io",
                "random",
                "sockets",
                "http",
            ],
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::AclPolicy => "acl-policy",
            World::TransformPolicy => "transform-policy",
            World::Source => "source",
        })
    }
}

/// What a component is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    pub world: World,
    /// The `firehose:bus` version it was built against (e.g. `0.1.0`).
    pub bus_version: String,
    /// Its import names, e.g. `firehose:bus/config@0.1.0`,
    /// `wasi:cli/environment@0.2.6`.
    pub imports: Vec<String>,
    /// Its export names.
    pub exports: Vec<String>,
}

impl ComponentInfo {
    /// The `wasi:http/incoming-handler@0.2.x` export of a webhook source
    /// (e.g. `wasi:http/incoming-handler@0.2.4`), if it has one.
    pub fn http_handler(&self) -> Option<&str> {
        self.exports
            .iter()
            .map(String::as_str)
            .find(|name| is_http_handler(name))
    }

    /// Whether it exports `firehose:bus/run` (a source's long-running part).
    pub fn has_run(&self) -> bool {
        self.exports
            .iter()
            .any(|name| split_name(name, "firehose:bus/").is_some_and(|(i, _)| i == "run"))
    }
}

/// `wasi:http/incoming-handler@0.2.x`.
fn is_http_handler(name: &str) -> bool {
    name.strip_prefix(HTTP_HANDLER)
        .and_then(|rest| rest.strip_prefix('@'))
        .and_then(parse_version)
        .is_some_and(|(major, minor, _)| (major, minor) == (0, 2))
}

/// Why a file is not a usable component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("not a WebAssembly file (it does not start with the \\0asm magic)")]
    NotWasm,
    #[error(
        "a core WebAssembly module, not a component: build with --target wasm32-wasip2 \
         (the linker wasm-component-ld makes a component), or wrap the module with \
         `wasm-tools component new`"
    )]
    CoreModule,
    #[error("a precompiled wasmtime artifact (.cwasm), not a component: give the .wasm file")]
    Precompiled,
    #[error("WebAssembly binary of unsupported version {version} (layer {layer})")]
    UnknownEncoding { version: u16, layer: u16 },
    #[error("not a valid component: {0}")]
    Invalid(String),
    #[error(
        "implements none of our worlds: it exports no firehose:bus/acl (acl-policy), \
         firehose:bus/transform (transform-policy), firehose:bus/run (source) or \
         wasi:http/incoming-handler@0.2.x (webhook source); its exports: [{}]", exports.join(", ")
    )]
    UnknownWorld { exports: Vec<String> },
    #[error("exports the interfaces of several worlds ({}); a component implements one", worlds.iter().map(World::to_string).collect::<Vec<_>>().join(", "))]
    SeveralWorlds { worlds: Vec<World> },
    #[error(
        "{name}: built against firehose:bus {found}; this host implements {}.{}.x \
         (rebuild the component against this host's wit/)", BUS_VERSION.0, BUS_VERSION.1
    )]
    UnsupportedVersion { name: String, found: String },
    #[error("implements {world} but {interface} lacks: {}", missing.join(", "))]
    MissingExports {
        world: World,
        interface: String,
        missing: Vec<String>,
    },
    #[error(
        "implements {world} but imports {import}, which the host does not provide to {world} components"
    )]
    UnsupportedImport { world: World, import: String },
    #[error("implements {world} but does not fit this host's {world} world: {message}")]
    Link { world: World, message: String },
}

/// Checks `bytes` as a component: header, validity, world, version,
/// exports, imports, and that it links against what this host provides.
/// Compiles the component (tens to hundreds of milliseconds) but runs none
/// of its code.
pub fn check_component(engine: &WasmEngine, bytes: &[u8]) -> Result<ComponentInfo, CheckError> {
    sniff(bytes)?;
    let component = Component::new(engine.engine(), bytes)
        .map_err(|e| CheckError::Invalid(format!("{e:#}")))?;
    let info = inspect(engine, &component)?;
    link(engine, &component, info.world)?;
    Ok(info)
}

/// The header-only part of the check: rejects what is not a component
/// without compiling anything.
pub fn sniff(bytes: &[u8]) -> Result<(), CheckError> {
    if wasmtime::Engine::detect_precompiled(bytes).is_some() {
        return Err(CheckError::Precompiled);
    }
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(CheckError::NotWasm);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    match (version, layer) {
        (1, 0) => Err(CheckError::CoreModule),
        (_, 1) => Ok(()),
        _ => Err(CheckError::UnknownEncoding { version, layer }),
    }
}

/// Reads the world, version, imports and exports of a compiled component.
pub(crate) fn inspect(
    engine: &WasmEngine,
    component: &Component,
) -> Result<ComponentInfo, CheckError> {
    let engine = engine.engine();
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();

    let mut found = Vec::new();
    for name in &exports {
        let Some((interface, version)) = split_name(name, "firehose:bus/") else {
            continue;
        };
        let Some(world) = World::ALL
            .into_iter()
            .find(|w| w.export_interface() == interface)
        else {
            continue;
        };
        check_version(name, version)?;
        found.push((world, name.as_str(), version.to_string()));
    }
    let (world, export_name, bus_version) = match found.len() {
        // A webhook source without `run`: its firehose:bus version is that
        // of its imports.
        0 if exports.iter().any(|name| is_http_handler(name)) => {
            let mut version = "none".to_string();
            for import in &imports {
                if let Some((_, v)) = split_name(import, "firehose:bus/") {
                    check_version(import, v)?;
                    version = v.to_string();
                }
            }
            for import in &imports {
                check_import(World::Source, import)?;
            }
            return Ok(ComponentInfo {
                world: World::Source,
                bus_version: version,
                imports,
                exports,
            });
        }
        0 => return Err(CheckError::UnknownWorld { exports }),
        1 => found.remove(0),
        _ => {
            return Err(CheckError::SeveralWorlds {
                worlds: found.into_iter().map(|(w, _, _)| w).collect(),
            });
        }
    };

    let functions: Vec<String> = match ty.get_export(engine, export_name).map(|e| e.ty) {
        Some(ComponentItem::ComponentInstance(instance)) => instance
            .exports(engine)
            .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
            .map(|(n, _)| n.to_string())
            .collect(),
        _ => Vec::new(),
    };
    let missing: Vec<String> = world
        .functions()
        .iter()
        .filter(|f| !functions.iter().any(|g| g == *f))
        .map(|f| f.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(CheckError::MissingExports {
            world,
            interface: export_name.to_string(),
            missing,
        });
    }

    for import in &imports {
        check_import(world, import)?;
    }
    Ok(ComponentInfo {
        world,
        bus_version,
        imports,
        exports,
    })
}

/// Links `component` against the host's imports and bindings for its
/// world, as a load would: catches function signatures that differ from
/// this host's WIT.
pub(crate) fn link(
    engine: &WasmEngine,
    component: &Component,
    world: World,
) -> Result<(), CheckError> {
    let fail = |e: wasmtime::Error| CheckError::Link {
        world,
        message: format!("{e:#}"),
    };
    let linker = host_imports::policy_linker(engine.engine()).map_err(fail)?;
    match world {
        World::AclPolicy => {
            let pre = linker.instantiate_pre(component).map_err(fail)?;
            crate::bindings::acl::AclPolicyPre::new(pre).map_err(fail)?;
        }
        World::TransformPolicy => {
            let pre = linker.instantiate_pre(component).map_err(fail)?;
            crate::bindings::transform::TransformPolicyPre::new(pre).map_err(fail)?;
        }
        World::Source => {
            let linker = crate::source::linker(engine.engine()).map_err(fail)?;
            let pre = linker.instantiate_pre(component).map_err(fail)?;
            crate::source::EntryPoints::new(pre).map_err(fail)?;
        }
    }
    Ok(())
}

fn check_import(world: World, import: &str) -> Result<(), CheckError> {
    let unsupported = || CheckError::UnsupportedImport {
        world,
        import: import.to_string(),
    };
    if let Some((interface, version)) = split_name(import, "firehose:bus/") {
        check_version(import, version)?;
        if world.bus_imports().contains(&interface) {
            return Ok(());
        }
        return Err(unsupported());
    }
    if let Some(rest) = import.strip_prefix("wasi:") {
        let (package, version) = rest
            .split_once('/')
            .and_then(|(p, iv)| iv.split_once('@').map(|(_, v)| (p, v)))
            .ok_or_else(unsupported)?;
        let v = parse_version(version).ok_or_else(unsupported)?;
        if world.wasi_packages().contains(&package) && v.0 == 0 && v.1 == 2 {
            return Ok(());
        }
    }
    Err(unsupported())
}

/// `firehose:bus/acl@0.1.0` -> `("acl", "0.1.0")`; `None` for other
/// packages. A name without a version gives an empty version (refused by
/// [`check_version`]).
fn split_name<'a>(name: &'a str, package: &str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix(package)?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

fn check_version(name: &str, version: &str) -> Result<(), CheckError> {
    match parse_version(version) {
        Some((major, minor, _)) if (major, minor) == BUS_VERSION => Ok(()),
        _ => Err(CheckError::UnsupportedVersion {
            name: name.to_string(),
            found: if version.is_empty() {
                "no version".to_string()
            } else {
                version.to_string()
            },
        }),
    }
}

/// `major.minor.patch` without pre-release (a pre-release is compatible
/// with nothing else, in wasmtime as in semver).
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.split('+').next()?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versions_are_those_of_wit() {
        let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit");
        let package = format!("package firehose:bus@{WIT_VERSION};");
        let mut files = 0;
        for entry in std::fs::read_dir(wit).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wit") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.starts_with(&package), "{}", path.display());
                files += 1;
            }
        }
        assert!(files > 0);
        let (major, minor, _) = parse_version(WIT_VERSION).unwrap();
        assert_eq!((major, minor), BUS_VERSION);
    }

    #[test]
    fn any_patch_of_the_host_minor_is_accepted() {
        check_version("firehose:bus/acl@0.1.0", "0.1.0").unwrap();
        check_version("firehose:bus/acl@0.1.7", "0.1.7").unwrap();
        let e = check_version("firehose:bus/acl@0.2.0", "0.2.0").unwrap_err();
        assert!(e.to_string().contains("built against firehose:bus 0.2.0"));
        check_version("firehose:bus/acl@0.1.0-rc1", "0.1.0-rc1").unwrap_err();
        check_version("firehose:bus/acl", "").unwrap_err();
    }

    #[test]
    fn policies_may_import_wasi_0_2_and_our_config_and_log_only() {
        let w = World::AclPolicy;
        check_import(w, "wasi:cli/environment@0.2.6").unwrap();
        check_import(w, "wasi:io/streams@0.2.0").unwrap();
        check_import(w, "firehose:bus/log@0.1.0").unwrap();
        check_import(w, "firehose:bus/publish@0.1.0").unwrap_err();
        check_import(w, "wasi:http/outgoing-handler@0.2.0").unwrap_err();
        check_import(w, "wasi:cli/environment@0.3.0").unwrap_err();
        check_import(w, "acme:thing/x@1.0.0").unwrap_err();
        check_import(World::Source, "firehose:bus/publish@0.1.0").unwrap();
        check_import(World::Source, "wasi:http/types@0.2.4").unwrap();
    }

    #[test]
    fn the_http_handler_export_is_told_by_name_and_version() {
        assert!(is_http_handler("wasi:http/incoming-handler@0.2.0"));
        assert!(is_http_handler("wasi:http/incoming-handler@0.2.4"));
        assert!(!is_http_handler("wasi:http/incoming-handler@0.3.0"));
        assert!(!is_http_handler("wasi:http/incoming-handler"));
        assert!(!is_http_handler("wasi:http/outgoing-handler@0.2.4"));
        let info = ComponentInfo {
            world: World::Source,
            bus_version: "0.1.0".into(),
            imports: Vec::new(),
            exports: vec!["wasi:http/incoming-handler@0.2.4".into()],
        };
        assert_eq!(
            info.http_handler(),
            Some("wasi:http/incoming-handler@0.2.4")
        );
        assert!(!info.has_run());
    }

    #[test]
    fn headers_are_told_apart_without_compiling() {
        assert_eq!(sniff(b"hello world\n"), Err(CheckError::NotWasm));
        assert_eq!(sniff(b"\0asm\x01\0\0\0"), Err(CheckError::CoreModule));
        assert_eq!(sniff(b"\0asm\x0d\0\x01\0"), Ok(()));
    }
}
