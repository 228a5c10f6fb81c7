//! Tests of the runtime with the real policy components that
//! `guests/build` puts in `target/wasm/`, one module per area.

mod acl;
mod cache;
mod check;
mod common;
mod cost;
mod faults;
mod semver;
mod source;
mod transform;
mod webhook;
