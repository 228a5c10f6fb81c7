//! `fault-transform-alloc`: a transform whose `apply` allocates 1 MiB
//! blocks until the memory cap stops it (the allocation fails and the
//! guest aborts).
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
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page so the memory is really used.
                hoard.push(vec![0xa5; 1 << 20]);
                std::hint::black_box(&mut hoard);
            }
        }
    }

    export!(Component);
}
