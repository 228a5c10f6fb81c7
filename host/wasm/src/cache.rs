//! Compile once, keep the result on disk: a restart (or a reload with the
//! same files) loads the compiled artifact instead of compiling again.
//!
//! An entry is `<data_dir>/wasm-cache/<key>.cwasm`, where `key` is the
//! SHA-256 of the wasm bytes together with the engine's
//! `precompile_compatibility_hash` (target, Cranelift flags, tunables,
//! enabled wasm features and wasmtime's own version string). Any change of
//! the file, of wasmtime or of the engine configuration gives a new key, so
//! a stale artifact is never looked up. Beside it, `<key>.sha256` holds the
//! SHA-256 of the artifact, written after the artifact is complete.
//!
//! Loading an artifact is `unsafe` in wasmtime (`Component::deserialize`):
//! the bytes are machine code that is mapped executable without
//! validation. It is sound here because (1) only this module writes these
//! files, from `Engine::precompile_component` output, into a directory the
//! broker creates with mode 0700, (2) the name is the content-and-engine
//! key, so a file can only be the artifact of exactly this wasm for
//! exactly this engine, (3) the checksum file proves the artifact was
//! written completely and not altered since, and it is checked on the same
//! bytes that are then deserialized (read once into memory rather than
//! `deserialize_file`, which would map the file again after the check), and
//! (4) wasmtime itself refuses an artifact of another version or
//! configuration. An entry that fails any step is ignored, compiled again
//! and rewritten; writing the cache may fail (read-only disk) without
//! failing the load.
//!
//! Nothing is ever evicted: entries are small (a policy's artifact is a
//! few hundred KiB) and change only when a policy file or wasmtime does.

use std::fs;
use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::engine::WasmEngine;

/// Where the compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from the disk cache without compiling.
    Hit,
    /// Compiled (no usable cache entry, or the cache is disabled).
    Miss,
}

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache under `<data_dir>/wasm-cache` (created on first write).
    pub fn new(data_dir: &Path) -> Self {
        ComponentCache {
            dir: Some(data_dir.join("wasm-cache")),
        }
    }

    /// No cache: every load compiles (for one-shot tools such as
    /// `firehose component check`).
    pub fn disabled() -> Self {
        ComponentCache { dir: None }
    }

    /// The directory of the entries, if the cache is enabled.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache key of `wasm` for `engine`: 64 hex digits.
    pub fn key(engine: &WasmEngine, wasm: &[u8]) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        hasher.0.update(b"firehose-wasm cache v1\0");
        hasher.0.update(Sha256::digest(wasm));
        std::hash::Hash::hash(
            &engine.engine().precompile_compatibility_hash(),
            &mut hasher,
        );
        hex(&hasher.0.finalize())
    }

    /// The compiled component for `wasm`: from the cache if there is a good
    /// entry, else compiled now (and stored). Blocking: compiling takes
    /// tens to hundreds of milliseconds; call it off the async workers.
    pub fn load(
        &self,
        engine: &WasmEngine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine.engine(), wasm)?, CacheOutcome::Miss));
        };
        let key = Self::key(engine, wasm);
        let artifact = dir.join(format!("{key}.cwasm"));
        let checksum = dir.join(format!("{key}.sha256"));
        match read_verified(&artifact, &checksum) {
            Ok(Some(bytes)) => {
                // SAFETY: see the module documentation: the bytes are an
                // artifact this module wrote for exactly this wasm and
                // engine, checked against its checksum just now.
                match unsafe { Component::deserialize(engine.engine(), &bytes) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(e) => tracing::warn!(
                        path = %artifact.display(),
                        "compiled component cache entry rejected, compiling again: {e:#}"
                    ),
                }
            }
            Ok(None) => {}
            Err(reason) => tracing::warn!(
                path = %artifact.display(),
                "compiled component cache entry unusable, compiling again: {reason}"
            ),
        }
        let bytes = engine.engine().precompile_component(wasm)?;
        // SAFETY: `bytes` was produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine.engine(), &bytes)? };
        if let Err(e) = write_entry(dir, &artifact, &checksum, &bytes) {
            tracing::warn!(
                path = %artifact.display(),
                "cannot write the compiled component cache (loading goes on without it): {e}"
            );
        }
        Ok((component, CacheOutcome::Miss))
    }
}

/// The artifact's bytes if both files exist and the checksum matches;
/// `Ok(None)` if there is no entry; `Err` for a damaged entry.
fn read_verified(artifact: &Path, checksum: &Path) -> Result<Option<Vec<u8>>, String> {
    let expected = match fs::read_to_string(checksum) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", checksum.display())),
    };
    let bytes = match fs::read(artifact) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", artifact.display())),
    };
    if hex(&Sha256::digest(&bytes)) != expected.trim() {
        return Err("checksum mismatch".into());
    }
    Ok(Some(bytes))
}

/// Writes the artifact, then its checksum, each to a temporary file that
/// is renamed into place, so a reader sees either a complete entry or none.
fn write_entry(dir: &Path, artifact: &Path, checksum: &Path, bytes: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    write_atomically(artifact, bytes)?;
    write_atomically(checksum, hex(&Sha256::digest(bytes)).as_bytes())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` implementations (the engine's compatibility hash) into
/// SHA-256, which unlike `DefaultHasher` is stable across Rust releases.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_entry_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let artifact = dir.path().join("k.cwasm");
        let checksum = dir.path().join("k.sha256");
        assert_eq!(read_verified(&artifact, &checksum), Ok(None));
        write_entry(dir.path(), &artifact, &checksum, b"compiled").unwrap();
        assert_eq!(
            read_verified(&artifact, &checksum),
            Ok(Some(b"compiled".to_vec()))
        );
        fs::write(&artifact, b"tampered").unwrap();
        assert_eq!(
            read_verified(&artifact, &checksum),
            Err("checksum mismatch".to_string())
        );
    }
}
