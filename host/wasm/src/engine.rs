//! The one `wasmtime::Engine` that every component shares, and the clock
//! behind call deadlines.
//!
//! The engine is configured once: component model, epoch interruption,
//! Cranelift at speed. Async calls need no switch in wasmtime 48
//! (`Config::async_support` is deprecated and has no effect: every engine
//! can run `call_async`).
//!
//! Deadlines use epoch interruption: compiled code checks the engine's
//! epoch counter at function entries and loop back-edges, which costs a
//! load and a compare, far less than fuel metering. A dedicated OS thread
//! ticks the epoch every [`EPOCH_TICK`] (1 ms). A thread and not a tokio
//! task because guest code runs inside the future that calls it: a guest
//! that loops forever holds its tokio worker, and with every worker busy a
//! ticking task would never run and no deadline would ever fire. One wakeup
//! per millisecond costs the process next to nothing; a coarser tick
//! would make the default 5 ms policy deadline imprecise (it is rounded
//! up to whole ticks, plus one for the tick in progress), a finer one buys
//! nothing measurable.
//!
//! This module must not know about policies or the broker; it only hands
//! out the engine and converts durations into ticks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances: the granularity of every deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The shared engine plus its ticker thread. Cheap to clone; the ticker
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("epoch_tick", &EPOCH_TICK)
            .finish_non_exhaustive()
    }
}

impl WasmEngine {
    /// Builds the engine and starts its epoch ticker thread.
    pub fn new() -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context("creating the wasmtime engine"))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(WasmEngine {
            engine,
            _ticker: Arc::new(ticker),
        })
    }

    /// The wasmtime engine, for compiling and instantiating.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The number of epoch ticks to give a call that may run for
    /// `deadline`: rounded up to whole ticks, plus one because the tick in
    /// progress when the call starts may end at once. A call is therefore
    /// interrupted after at least `deadline` and at most `deadline` plus one
    /// tick (plus scheduling delay of the ticker thread).
    pub fn deadline_ticks(deadline: Duration) -> u64 {
        let tick = EPOCH_TICK.as_nanos();
        let ticks = deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX - 1).max(1) + 1
    }
}

/// The thread that advances the epoch.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| anyhow::anyhow!("starting the wasm epoch ticker thread: {e}"))?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ticks_round_up_and_add_one() {
        assert_eq!(WasmEngine::deadline_ticks(Duration::from_millis(5)), 6);
        assert_eq!(WasmEngine::deadline_ticks(Duration::from_micros(1500)), 3);
        assert_eq!(WasmEngine::deadline_ticks(Duration::ZERO), 2);
    }
}
