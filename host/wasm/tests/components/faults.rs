//! Faulty components (from policies/testing) fail their call within the
//! limits, and the policy keeps serving: the failed instance is discarded
//! and a fresh one answers the next call.

use std::time::{Duration, Instant};

use firehose_wasm::{AclPolicy, Client, Decision, Limits, Message, PolicyError, TransformPolicy};

use crate::common::{acl, init_tracing, spec, test_limits, transform};

/// Far beyond any deadline here: a call still running by then hangs. The
/// loops run with the default 5 ms deadline; the allocation and panic
/// faults with the tests' 250 ms (see `test_limits`), so that the memory
/// cap or the panic, not the clock, is what stops them.
const HANG: Duration = Duration::from_secs(1);

fn anon() -> Client {
    Client::anonymous("c1", "mqtt", "127.0.0.1:1")
}

/// Runs `check_publish` on another task so that a guest that never
/// yields cannot stop the timer that catches a hang.
async fn publish(policy: &AclPolicy) -> (Result<Decision, PolicyError>, Duration) {
    let policy = policy.clone();
    let start = Instant::now();
    let call = tokio::spawn(async move {
        policy
            .check_publish(&anon(), &Message::new("t/x", "p"))
            .await
    });
    let result = tokio::time::timeout(HANG, call)
        .await
        .expect("the call returns within 1 s instead of hanging")
        .expect("the call does not panic");
    (result, start.elapsed())
}

async fn apply(
    policy: &TransformPolicy,
) -> (Result<firehose_wasm::Outcome, PolicyError>, Duration) {
    let policy = policy.clone();
    let start = Instant::now();
    let call = tokio::spawn(async move { policy.apply(&Message::new("t/x", "p")).await });
    let result = tokio::time::timeout(HANG, call)
        .await
        .expect("the call returns within 1 s instead of hanging")
        .expect("the call does not panic");
    (result, start.elapsed())
}

/// The ACL fault fails, then a good call on the same policy works, on a
/// fresh instance.
async fn acl_fault_then_recovery(name: &str, limits: Limits, check: impl Fn(&PolicyError) -> bool) {
    init_tracing();
    let policy = acl(spec(name).with_limits(limits)).await;
    let (result, elapsed) = publish(&policy).await;
    let error = result.expect_err("the faulty call fails");
    assert!(check(&error), "{name}: unexpected error: {error}");
    assert_eq!(error.component(), name);
    println!("{name}: failed after {elapsed:?}: {error}");

    assert_eq!(
        policy.check_subscribe(&anon(), "t/#").await.unwrap(),
        Decision::Allow
    );
    let stats = policy.stats();
    assert_eq!(stats.discarded, 1, "{stats:?}");
    assert_eq!(
        stats.instantiated, 2,
        "one at load, one after the fault: {stats:?}"
    );
    assert_eq!(stats.failures, 1, "{stats:?}");
    // And it fails the same way again, on that fresh instance.
    let (again, _) = publish(&policy).await;
    assert!(check(&again.unwrap_err()));
}

/// The transform fault fails every time, each time on a fresh instance
/// (never on one left broken by the previous failure).
async fn transform_fault_each_time_fresh(
    name: &str,
    limits: Limits,
    check: impl Fn(&PolicyError) -> bool,
) {
    init_tracing();
    let policy = transform(spec(name).with_limits(limits)).await;
    for round in 1..=2u64 {
        let (result, elapsed) = apply(&policy).await;
        let error = result.expect_err("the faulty call fails");
        assert!(check(&error), "{name}: unexpected error: {error}");
        println!("{name}: failed after {elapsed:?}: {error}");
        let stats = policy.stats();
        assert_eq!(stats.discarded, round, "{stats:?}");
        assert_eq!(stats.instantiated, round, "{stats:?}");
    }
    assert_eq!(policy.stats().instantiated, 2);
}

fn deadline(e: &PolicyError) -> bool {
    matches!(e, PolicyError::Deadline { deadline_ms: 5, .. })
}

fn out_of_memory(e: &PolicyError) -> bool {
    matches!(e, PolicyError::OutOfMemory { memory_mib: 16, .. })
}

fn trap(e: &PolicyError) -> bool {
    matches!(e, PolicyError::Trap { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_policy_that_loops_is_denied_at_its_deadline_and_the_next_call_works() {
    acl_fault_then_recovery("fault-loop", Limits::default(), deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_policy_that_allocates_without_end_traps_at_the_memory_cap() {
    acl_fault_then_recovery("fault-alloc", test_limits(), out_of_memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_policy_that_panics_traps() {
    acl_fault_then_recovery("fault-panic", test_limits(), trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_that_loops_is_stopped_at_its_deadline() {
    transform_fault_each_time_fresh("fault-transform-loop", Limits::default(), deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_that_allocates_without_end_traps_at_the_memory_cap() {
    transform_fault_each_time_fresh("fault-transform-alloc", test_limits(), out_of_memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_that_panics_traps() {
    transform_fault_each_time_fresh("fault-transform-panic", test_limits(), trap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_call_ends_close_to_its_deadline() {
    init_tracing();
    let policy = acl(spec("fault-loop").with_limits(Limits::default())).await;
    let (result, elapsed) = publish(&policy).await;
    assert!(deadline(&result.unwrap_err()));
    // At most one 1 ms tick late, plus scheduling on a busy machine.
    assert!(
        elapsed >= Duration::from_millis(5) && elapsed < Duration::from_millis(200),
        "deadline 5 ms, took {elapsed:?}"
    );
}
