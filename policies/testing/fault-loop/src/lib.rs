//! `fault-loop`: an ACL policy whose `check-publish` never returns (it
//! spins, without calling the host), so only the host's deadline stops
//! it. Connect and subscribe are allowed.
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
            let mut spins: u64 = 0;
            loop {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
        }
    }

    export!(Component);
}
