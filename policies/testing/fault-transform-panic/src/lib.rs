//! `fault-transform-panic`: a transform whose `apply` panics (a trap:
//! guests abort on panic).
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
            panic!("fault-transform-panic: panicking as asked")
        }
    }

    export!(Component);
}
