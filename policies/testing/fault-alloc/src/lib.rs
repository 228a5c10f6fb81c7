//! `fault-alloc`: an ACL policy whose `check-publish` allocates 1 MiB
//! blocks until the memory cap stops it (the allocation fails and the
//! guest aborts). Connect and subscribe are allowed.
//!
//! A fault for the runtime's tests, never for a real config. The
//! component exists only for wasm32; natively the crate is empty.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../../wit", world: "acl-policy" });

    use exports::firehose::bus::acl::{Cacheable, Guest};
    use firehose::bus::types::{Client, Decision, Message};

    struct Component;

    impl Guest for Component {
        /// Nothing is cacheable: every publish reaches the fault.
        fn cache_hints() -> Cacheable {
            Cacheable::empty()
        }

        fn check_connect(_client: Client) -> Decision {
            Decision::Allow
        }

        fn check_subscribe(_client: Client, _filter: String) -> Decision {
            Decision::Allow
        }

        fn check_publish(_client: Client, _message: Message) -> Decision {
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
