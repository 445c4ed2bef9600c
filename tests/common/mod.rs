//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

/// Threads the tests may use (`GUNLEARN_TEST_THREADS`, default 2: the CI machine has 2 cores).
pub fn test_threads() -> usize {
    std::env::var("GUNLEARN_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Pins libtorch's intra-op threads to [`test_threads`] (its threads busy-wait on shared cores).
pub fn pin_threads() -> usize {
    let n = test_threads();
    tch::set_num_threads(n as i32);
    n
}
