//! The test harness of the test files that hold tests needing something outside the Rust
//! toolchain: a program (promtool, prometheus, Python with a package) or root.
//!
//! libtest decides `ignored` when it compiles a test; these tests find out when they run
//! whether what they need is there. Through this harness a test that lacks it ends as
//! `ignored, <reason>` on its own line and in the summary's ignored count, never as a pass
//! that hides it. Under `TOWER_PROMETHEUS_REQUIRE_TOOLS=1` (as CI runs) it fails instead.
//!
//! A file using it is declared with `harness = false` in Cargo.toml and ends with
//! [`test_main!`](crate::test_main), which lists every test of the file with its flavour:
//! `sync` (a plain function), `tokio` (an async function on a current-thread runtime, as
//! `#[tokio::test]`) or `tokio_2` (on a runtime with two worker threads); `sync_ignored` is a plain
//! function run only on request, as the body of a child process. A function left
//! out of the list is dead code, which the lints reject.

use std::future::Future;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Why a test did not run: what it needs is missing.
#[derive(Debug)]
pub struct Skipped(pub String);

/// What a test that may lack a tool returns: `Err(Skipped)` through `?` on a `require_*`
/// call, `Ok(())` when it ran.
pub type Checked = Result<(), Skipped>;

/// A test's return value as the harness's outcome.
pub trait TestResult {
    fn completion(self) -> Completion;
}

impl TestResult for () {
    fn completion(self) -> Completion {
        Completion::Completed
    }
}

impl TestResult for Checked {
    fn completion(self) -> Completion {
        match self {
            Ok(()) => Completion::Completed,
            Err(Skipped(reason)) => Completion::ignored_with(reason),
        }
    }
}

/// A plain test function.
pub fn sync<T: TestResult + 'static>(name: &str, test: fn() -> T) -> Trial {
    Trial::ignorable_test(name, move || Ok(test().completion()))
}

/// A plain function that runs only when asked for by name with `--ignored`: the body of
/// a child process that a test starts from its own binary.
pub fn sync_ignored(name: &str, test: fn()) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
    .with_ignored_flag(true)
}

/// An async test on a current-thread runtime, as `#[tokio::test]` runs it.
pub fn tokio<F, Fut>(name: &str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: TestResult,
{
    on_runtime(name, tokio::runtime::Builder::new_current_thread, test)
}

/// An async test on a runtime with two worker threads, as
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` runs it.
pub fn tokio_2<F, Fut>(name: &str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: TestResult,
{
    let two_workers = || {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(2);
        builder
    };
    on_runtime(name, two_workers, test)
}

/// An async test on a runtime from `builder`, with its I/O and time drivers.
fn on_runtime<F, Fut>(name: &str, builder: fn() -> tokio::runtime::Builder, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: TestResult,
{
    Trial::ignorable_test(name, move || {
        let runtime = builder()
            .enable_all()
            .build()
            .map_err(|error| Failed::from(format!("runtime: {error}")))?;
        Ok(runtime.block_on(test()).completion())
    })
}

/// Runs the trials as libtest would, with its command-line arguments, and exits.
pub fn run(trials: Vec<Trial>) -> ! {
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}

/// The `main` of a test file with `harness = false`: every test of the file, each
/// prefixed by its flavour (`sync`, `sync_ignored`, `tokio` or `tokio_2`).
#[macro_export]
macro_rules! test_main {
    ($($flavour:ident $name:ident),* $(,)?) => {
        fn main() {
            common::harness::run(vec![
                $(common::harness::$flavour(stringify!($name), $name)),*
            ])
        }
    };
}
