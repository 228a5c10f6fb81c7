//! `fault-transform-loop`: a transform whose `apply` never returns (it
//! spins, without calling the host), so only the host's deadline stops it.
//!
//! A fault for the runtime's tests, never for a real config. The
//! component exists only for wasm32; natively the crate is empty.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "transform-policy" });

    use exports::firehose::bus::transform::{Guest, Outcome};
    use firehose::bus::types::Message;

    struct Component;

    impl Guest for Component {
        fn apply(_message: Message) -> Outcome {
            let mut spins: u64 = 0;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
    }

    export!(Component);
}
