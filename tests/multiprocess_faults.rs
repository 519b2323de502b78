//! Multi-process mode under the faults an operator's machine produces: a full disk,
//! files truncated or replaced under a running process, a FIFO or a link planted in
//! the directory, fork() after the registry was built, pids reused, a small address
//! space. Each case asserts that the process lives, that a scrape answers within 2 s,
//! and that every increment made is either served or counted in a labelled metric.

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::multiprocess::{assert_same_samples, file_of_one_entry, python_aggregate};
use common::{serve, Exposition, TempDir};
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use tower_prometheus::multiprocess::{Folding, GaugeMode, DISPLACED_FILES, SKIPPED_FILES};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

type Series = [(&'static str, String); 1];

const WRITE_ERRORS_TOTAL: &str = "tower_prometheus_multiprocess_write_errors_total";

/// A scrape that must answer within 2 s.
async fn scrape(addr: SocketAddr) -> Exposition {
    tokio::time::timeout(Duration::from_secs(2), common::scrape(addr))
        .await
        .expect("the scrape answers within 2 s")
}

fn skipped(metrics: &Exposition, reason: &str) -> f64 {
    metrics
        .value(SKIPPED_FILES, &[("reason", reason)])
        .unwrap_or_else(|| panic!("no {SKIPPED_FILES}{{reason={reason}}}\n{}", metrics.text))
}

/// A registry in multi-process mode over `dir` with one counter family, served.
async fn counting_endpoint(dir: &Path) -> (MetricsRegistry, Family<Series, Counter>, SocketAddr) {
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir).unwrap();
    registry.multiprocess_folding(Folding::Off).unwrap();
    registry
        .provider("items", "Items.", || {
            Family::<Series, Counter>::default().max_series(20_000)
        })
        .unwrap();
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    let items = registry.get("items").unwrap();
    (registry, items, serve(endpoint).await)
}

fn own_file(dir: &Path, kind: &str) -> PathBuf {
    dir.join(format!("{kind}_{}.db", std::process::id()))
}

/// A tmpfs of 1 MiB, unmounted on drop.
struct SmallFilesystem {
    _dir: TempDir,
    mount: PathBuf,
}

impl SmallFilesystem {
    fn mount() -> Self {
        let dir = TempDir::new("tmpfs");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1M,mode=0755", "tmpfs"])
            .arg(&mount)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount a tmpfs");
        Self { _dir: dir, mount }
    }

    /// Leaves about `free` bytes free, with a filler file.
    fn leave_free(&self, free: u64) -> PathBuf {
        let filler = self.mount.join("filler");
        let _ = std::fs::remove_file(&filler);
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![1u8; 4096];
        let mut written = 0u64;
        while written + free < 1 << 20 {
            if file.write_all(&chunk).is_err() {
                break;
            }
            written += 4096;
        }
        filler
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

async fn a_full_disk_is_a_build_error_or_counted_write_errors_never_a_signal() -> common::Checked {
    common::require_root("mount a 1 MiB tmpfs that fills up")?;
    let filesystem = SmallFilesystem::mount();

    // No room left: the first page of the two files made at build time does not fit.
    filesystem.leave_free(0);
    let dir = filesystem.mount.join("full");
    std::fs::create_dir(&dir).unwrap();
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(&dir).unwrap();
    let error = MetricsEndpoint::new(&registry).expect_err("no room for the files");
    assert!(error.to_string().contains("No space left"), "{error}");

    // 200 KiB free: the layer builds, and the counter file fills up.
    let filler = filesystem.leave_free(200 << 10);
    let dir = filesystem.mount.join("fills");
    std::fs::create_dir(&dir).unwrap();
    let (_registry, items, addr) = counting_endpoint(&dir).await;
    const SERIES: usize = 6000;
    let series: Vec<Counter> = (0..SERIES)
        .map(|i| items.get_or_create(&[("item", i.to_string())]))
        .collect();
    let mut made = 0.0;
    for counter in &series {
        counter.inc();
        made += 1.0;
    }
    let metrics = scrape(addr).await;
    let served = metrics.sum("items_total", &[]);
    let counted = metrics
        .value(WRITE_ERRORS_TOTAL, &[("reason", "no_space")])
        .unwrap_or(0.0);
    assert!(counted > 0.0, "the disk filled up\n{}", metrics.text);
    assert_eq!(served + counted, made, "{}", metrics.text);

    // Room again: every value finds its place at a later write, with what it kept.
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last_served = served;
    loop {
        for counter in &series {
            counter.inc();
            made += 1.0;
        }
        let metrics = scrape(addr).await;
        let served = metrics.sum("items_total", &[]);
        let counted = metrics.sum(WRITE_ERRORS_TOTAL, &[]);
        assert!(served >= last_served, "{}", metrics.text);
        assert!(served + counted >= made, "{}", metrics.text);
        last_served = served;
        if served == made {
            assert_eq!(metrics.matching("items_total", &[]).len(), SERIES);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "values still unplaced with room on the disk\n{}",
            metrics.text
        );
        // Unplaced values try again a second after their last failure.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn a_fifo_a_link_and_a_directory_in_the_directory_are_skipped_without_blocking() {
    let dir = TempDir::new("fifo");
    let (_registry, items, addr) = counting_endpoint(dir.path()).await;
    items.get_or_create(&[("item", "a".into())]).inc_by(3);

    let fifo = dir.path().join("counter_999999.db");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let victim = dir.path().join("victim");
    std::fs::copy(own_file(dir.path(), "counter"), &victim).unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("counter_999998.db")).unwrap();
    std::fs::create_dir(dir.path().join("histogram_999997.db")).unwrap();
    std::fs::write(dir.path().join("nonsense_1.db"), b"").unwrap();

    // Several scrapes at once, as two runtime workers serve them.
    let scrapes: Vec<_> = (0..4).map(|_| tokio::spawn(scrape(addr))).collect();
    for metrics in scrapes {
        let metrics = metrics.await.unwrap();
        assert_eq!(metrics.value("items_total", &[("item", "a")]), Some(3.0));
        assert_eq!(skipped(&metrics, "not_regular"), 3.0, "{}", metrics.text);
        assert_eq!(skipped(&metrics, "unknown_name"), 1.0);
    }
    std::fs::remove_file(&fifo).unwrap();
    let metrics = scrape(addr).await;
    assert_eq!(skipped(&metrics, "not_regular"), 2.0);
    assert_eq!(metrics.value("items_total", &[("item", "a")]), Some(3.0));
}

fn a_link_planted_in_place_of_a_file_is_never_written_through() {
    let dir = TempDir::new("planted");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious bytes").unwrap();
    std::os::unix::fs::symlink(&victim, own_file(dir.path(), "counter")).unwrap();
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let error = MetricsEndpoint::new(&registry).expect_err("the link is refused");
    assert!(error.to_string().contains("symbolic links"), "{error}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes");
}

fn new_files_take_the_read_and_write_bits_of_their_directory() {
    for (directory_mode, most) in [(0o700, 0o600), (0o755, 0o644)] {
        let dir = TempDir::new("modes");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(directory_mode))
            .unwrap();
        let registry = MetricsRegistry::new();
        registry.multiprocess_dir(dir.path()).unwrap();
        let _endpoint = MetricsEndpoint::new(&registry).unwrap();
        for name in [
            format!("counter_{}.db", std::process::id()),
            format!("tower_prometheus_{}.lock", std::process::id()),
        ] {
            let mode = std::fs::metadata(dir.path().join(&name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            // The umask may take more bits away, never add any.
            assert_eq!(
                mode & !most,
                0,
                "{name} in a {directory_mode:o} directory: {mode:o}"
            );
            assert_eq!(mode & 0o600, 0o600, "{name}: {mode:o}");
        }
    }
}

async fn a_file_truncated_or_rewritten_under_scrapes_is_skipped_counted_and_read_again() {
    let dir = TempDir::new("truncated");
    let (_registry, items, addr) = counting_endpoint(dir.path()).await;
    for i in 0..2000 {
        items.get_or_create(&[("item", i.to_string())]).inc_by(100);
    }
    // Another process's file: a copy of ours under another pid.
    let other = dir.path().join("counter_4000100.db");
    let original = std::fs::read(own_file(dir.path(), "counter")).unwrap();
    std::fs::write(&other, &original).unwrap();
    let whole = scrape(addr).await;
    assert_eq!(whole.sum("items_total", &[]), 400_000.0);

    for cut in [0, 4, 100, original.len() / 2] {
        std::fs::write(&other, &original).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&other)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let metrics = scrape(addr).await;
        assert_eq!(
            skipped(&metrics, "truncated"),
            1.0,
            "cut at {cut}\n{}",
            metrics.text
        );
        assert_eq!(metrics.sum("items_total", &[]), 200_000.0);
    }
    std::fs::write(&other, &original).unwrap();
    let metrics = scrape(addr).await;
    assert_eq!(metrics.sum("items_total", &[]), 400_000.0);
    assert_eq!(metrics.sum(SKIPPED_FILES, &[]), 0.0);

    // Truncated and rewritten in a loop while scrapes run: each scrape serves the
    // file whole or counts it skipped.
    let stop = Arc::new(AtomicBool::new(false));
    let vandal = {
        let stop = Arc::clone(&stop);
        let other = other.clone();
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&other)
                    .unwrap();
                file.set_len(rounds % 5000).unwrap();
                std::fs::write(&other, &original).unwrap();
                rounds += 1;
            }
            rounds
        })
    };
    let mut skips = 0.0;
    for _ in 0..300 {
        let metrics = scrape(addr).await;
        let total = metrics.sum("items_total", &[]);
        let skipped = metrics.sum(SKIPPED_FILES, &[]);
        let whole = total == 400_000.0 && skipped == 0.0;
        let counted = total == 200_000.0 && skipped == 1.0;
        assert!(whole || counted, "{}", metrics.text);
        skips += skipped;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(vandal.join().unwrap() > 0);
    eprintln!("{skips} of 300 scrapes skipped the file while it was being rewritten");
}

async fn deleting_a_running_writers_files_leaves_it_running() {
    let dir = TempDir::new("deleted");
    let (_registry, items, addr) = counting_endpoint(dir.path()).await;
    let counter = items.get_or_create(&[("item", "a".into())]);
    counter.inc_by(2);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    // The writer keeps its deleted file: new series and old ones still record.
    counter.inc();
    for i in 0..3000 {
        items.get_or_create(&[("item", i.to_string())]).inc();
    }
    assert_eq!(counter.get(), 3);
    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("items_total", &[("item", "a")]), None);
    assert_eq!(metrics.sum(SKIPPED_FILES, &[]), 0.0);
    // The loss is shown: its counter and histogram files and its lock are gone.
    assert_eq!(metrics.value(DISPLACED_FILES, &[]), Some(3.0));
}

/// Kills its child process when dropped, so a failing test leaves no worker behind.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary as a worker of `role` in `dir`.
fn worker(role: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "fault_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOWER_PROMETHEUS_FAULT_WORKER", role)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    command
}

/// Starts a worker of `role` in `dir` whose address space is limited to `kilobytes`
/// (`ulimit -v`), its output piped.
fn worker_in_address_space(role: &str, dir: &Path, kilobytes: u64) -> Child {
    let command = worker(role, dir);
    Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -v {kilobytes} && exec \"$0\" \"$@\""),
        ])
        .arg(std::env::current_exe().expect("test binary"))
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("sh starts")
}

/// The worker's first line that starts with `prefix`, without it.
fn line_of(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                // The harness may print the test's name first on the same line.
                if let Some(at) = line.find(prefix) {
                    return line[at + prefix.len()..].to_string();
                }
            }
            _ => panic!("worker exited before it wrote {prefix:?}"),
        }
    }
}

/// Not a test: the body of the worker processes the fault tests start. On the main
/// thread (one test thread), so that `fork` forks a single-threaded process.
fn fault_worker() {
    let Ok(role) = std::env::var("TOWER_PROMETHEUS_FAULT_WORKER") else {
        return;
    };
    match role.as_str() {
        "fork" => fork_three_children(),
        "restart" => start_once(),
        "address_space" => start_in_little_address_space(),
        "truncate_own" => write_after_own_file_is_truncated(),
        "scrape" => scrape_once(),
        other => panic!("unknown worker role {other}"),
    }
}

/// Builds the registry, then forks 3 children that count 100,000 increments over 300
/// series each (and gauges, histograms and pre-fork series), and waits for them.
fn fork_three_children() {
    let registry = MetricsRegistry::new();
    registry
        .provider("jobs", "Jobs.", || {
            Family::<Series, Counter>::default().max_series(2000)
        })
        .unwrap();
    registry
        .provider("busy", "Busy.", || {
            Family::<Series, Gauge>::new_with_constructor(|| Gauge::with_mode(GaugeMode::Sum))
        })
        .unwrap();
    registry
        .provider("wait", "Wait.", || {
            Family::<Series, Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new([1.0, 10.0]).unwrap())
            })
        })
        .unwrap();
    registry
        .provider("before_fork", "Counted before and after.", Counter::default)
        .unwrap();
    let _endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    let jobs: Family<Series, Counter> = registry.get("jobs").unwrap();
    let busy: Family<Series, Gauge> = registry.get("busy").unwrap();
    let wait: Family<Series, Histogram> = registry.get("wait").unwrap();
    let before = registry.get::<Counter>("before_fork").unwrap();
    before.inc_by(5);
    let shared = jobs.get_or_create(&[("series", "shared".into())]);
    shared.inc();
    let mut children = Vec::new();
    for child in 0..3 {
        // SAFETY: this process has one thread (the test harness runs one test on its
        // main thread), so the child may do anything the parent could.
        match unsafe { libc::fork() } {
            0 => {
                for i in 0..100_000 {
                    jobs.get_or_create(&[("series", format!("c{child}-{}", i % 300))])
                        .inc();
                }
                for i in 0..300 {
                    let series = [("series", format!("c{child}-{}", i % 30))];
                    busy.get_or_create(&series).inc();
                    wait.get_or_create(&series).observe(f64::from(i % 20));
                }
                before.inc();
                shared.inc();
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(0) };
            }
            pid if pid > 0 => children.push(pid),
            _ => panic!("fork failed: {}", std::io::Error::last_os_error()),
        }
    }
    for pid in children {
        let mut status = 0;
        // SAFETY: waits for a child of this process; `status` outlives the call.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    println!("children done");
}

/// Builds an endpoint in the directory with a live gauge set, says whether that
/// worked, and holds its files until stdin closes.
fn start_once() {
    let registry = MetricsRegistry::new();
    registry
        .provider("restarts_live", "Live workers.", || {
            Gauge::with_mode(GaugeMode::LiveSum)
        })
        .unwrap();
    match MetricsEndpoint::new(&registry) {
        Ok(_endpoint) => {
            registry.get::<Gauge>("restarts_live").unwrap().set(1);
            println!("started {}", std::process::id());
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        Err(error) => println!("started failed: {error}"),
    }
}

/// Counts, has its own counter file truncated (as a cleanup script would), and
/// counts again into the cut range.
fn write_after_own_file_is_truncated() {
    let registry = MetricsRegistry::new();
    registry
        .provider("items", "Items.", Family::<Series, Counter>::default)
        .unwrap();
    let _endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    let items: Family<Series, Counter> = registry.get("items").unwrap();
    let counter = items.get_or_create(&[("item", "a".into())]);
    counter.inc();
    let dir = PathBuf::from(std::env::var_os("PROMETHEUS_MULTIPROC_DIR").unwrap());
    std::fs::OpenOptions::new()
        .write(true)
        .open(own_file(&dir, "counter"))
        .unwrap()
        .set_len(0)
        .unwrap();
    println!("truncated");
    std::io::stdout().flush().unwrap();
    counter.inc();
    println!("still running");
}

/// Virtual memory of this process, in kB.
fn vm_size() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmSize")
}

/// Builds the default layer's families in the directory and fills them a little,
/// reporting the address space that took.
fn start_in_little_address_space() {
    let before = vm_size();
    let registry = MetricsRegistry::new();
    registry
        .provider("items", "Items.", || {
            Family::<Series, Counter>::default().max_series(20_000)
        })
        .unwrap();
    let _layer = tower_prometheus::MetricsLayer::new(&registry).expect("layer builds");
    let items: Family<Series, Counter> = registry.get("items").unwrap();
    for i in 0..10_000 {
        items.get_or_create(&[("item", i.to_string())]).inc();
    }
    let dir = PathBuf::from(std::env::var_os("PROMETHEUS_MULTIPROC_DIR").unwrap());
    let files: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    println!("vm {before} {} {}", vm_size(), files / 1024);
}

/// Counts 3 into a counter of its own, then prints the text of one scrape of the
/// directory, line by line after `scrape `.
fn scrape_once() {
    let registry = MetricsRegistry::new();
    registry
        .provider("kept", "Still served.", Counter::default)
        .unwrap();
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    registry.get::<Counter>("kept").unwrap().inc_by(3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = runtime
        .block_on(endpoint.render(Format::PrometheusText))
        .expect("the scrape renders");
    for line in String::from_utf8(body).unwrap().lines() {
        println!("scrape {line}");
    }
    println!("scrape end");
}

/// A header whose `used` claims more than its file holds, up to `i32::MAX`.
fn plant_claiming(path: &Path, used: i32, len: usize) {
    let mut bytes = vec![0u8; len];
    bytes[..4].copy_from_slice(&used.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// The text a `scrape` worker printed, up to its end.
fn scraped_text(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().expect("stdout");
    let mut text = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("worker output");
        let Some(at) = line.find("scrape ") else {
            continue;
        };
        match &line[at + "scrape ".len()..] {
            "end" => return text,
            sample => {
                text.push_str(sample);
                text.push('\n');
            }
        }
    }
    panic!("the worker exited before its scrape ended:\n{text}")
}

/// Files whose headers claim up to 2 GiB in 64 bytes, scraped by a process limited
/// to 400 MB of address space: a buffer of the claimed size would abort it.
fn a_header_claiming_gigabytes_is_skipped_without_a_buffer_of_that_size() -> common::Checked {
    common::require_tool("sh", "set a virtual memory limit with ulimit")?;
    let dir = TempDir::new("claims");
    plant_claiming(&dir.path().join("counter_4000001.db"), i32::MAX, 64);
    plant_claiming(&dir.path().join("histogram_4000002.db"), 1 << 30, 4096);
    let mut child = worker_in_address_space("scrape", dir.path(), 400_000);
    let text = scraped_text(&mut child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let metrics = Exposition::parse(&text);
    assert_eq!(metrics.value("kept_total", &[]), Some(3.0), "{text}");
    assert_eq!(skipped(&metrics, "truncated"), 2.0, "{text}");
    Ok(())
}

/// xorshift64: the same mutations on every run.
struct Mutations(u64);

impl Mutations {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `file` with one to three of: bytes overwritten, a length or `used` replaced by
    /// an extreme, a value replaced by NaN or an infinity, JSON punctuation spliced
    /// into a key, the file cut short.
    fn mutate(&mut self, file: &[u8]) -> Vec<u8> {
        let mut bytes = file.to_vec();
        let used = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let span = usize::try_from(used).unwrap_or(8).clamp(16, bytes.len());
        for _ in 0..1 + self.below(3) {
            let at = self.below(span - 8);
            match self.below(5) {
                0 => bytes[at] = self.next() as u8,
                1 => {
                    let extremes = [0, 1, 3, i32::MAX, -1, i32::MIN, 4096];
                    let value = extremes[self.below(extremes.len())];
                    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
                2 => {
                    let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, f64::MAX];
                    let value = odd[self.below(odd.len())];
                    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
                }
                3 => {
                    let punctuation = b"{}[]\",:\\u0";
                    for byte in &mut bytes[at..at + 8] {
                        *byte = punctuation[self.below(punctuation.len())];
                    }
                }
                _ => bytes.truncate(self.below(span)),
            }
            if bytes.len() < span {
                break;
            }
        }
        bytes
    }
}

/// Files another process wrote, each mutated at random (6,000 times, seeded), scraped
/// in each format in turn: every scrape renders within 1 s, and the text one serves
/// this process's own count intact, however the file is broken.
fn mutated_files_of_other_processes_never_panic_or_stall_a_scrape() {
    let written = TempDir::new("mutate-src");
    let writer = MetricsRegistry::new();
    writer.multiprocess_dir(written.path()).unwrap();
    writer
        .provider("items", "Items.", Family::<Series, Counter>::default)
        .unwrap();
    writer
        .provider("wait", "Wait.", || {
            Family::<Series, Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new([0.1, 1.0]).unwrap())
            })
        })
        .unwrap();
    let _writing = MetricsEndpoint::new(&writer).expect("endpoint builds");
    let items: Family<Series, Counter> = writer.get("items").unwrap();
    let wait: Family<Series, Histogram> = writer.get("wait").unwrap();
    for i in 0..20 {
        items
            .get_or_create(&[("item", format!("é\"\\\n{i}"))])
            .inc_by(i);
        wait.get_or_create(&[("item", i.to_string())])
            .observe(i as f64 / 10.0);
    }
    let originals: Vec<(String, Vec<u8>)> = ["counter", "histogram"]
        .into_iter()
        .map(|kind| {
            (
                kind.to_string(),
                std::fs::read(own_file(written.path(), kind)).unwrap(),
            )
        })
        .collect();

    let dir = TempDir::new("mutate");
    let reader = MetricsRegistry::new();
    reader.multiprocess_dir(dir.path()).unwrap();
    reader
        .provider("kept", "Still served.", Counter::default)
        .unwrap();
    let endpoint = MetricsEndpoint::new(&reader).expect("endpoint builds");
    reader.get::<Counter>("kept").unwrap().inc_by(3);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut mutations = Mutations(0x9E37_79B9_7F4A_7C15);
    let formats = [
        Format::PrometheusText,
        Format::OpenMetricsText,
        #[cfg(feature = "protobuf")]
        Format::PrometheusProtobuf,
    ];
    for round in 0..6_000 {
        let (kind, original) = &originals[mutations.below(originals.len())];
        let planted = dir.path().join(format!("{kind}_4000001.db"));
        // Written aside and renamed in: a new file each round, as a restart makes.
        let aside = dir.path().join("aside");
        std::fs::write(&aside, mutations.mutate(original)).unwrap();
        std::fs::rename(&aside, &planted).unwrap();
        let format = formats[round % formats.len()];
        let scrape = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), endpoint.render(format)).await
        });
        let body = scrape
            .unwrap_or_else(|_| panic!("round {round}: the scrape took over 1 s"))
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        if format == Format::PrometheusText {
            let metrics = Exposition::parse(&String::from_utf8(body).unwrap());
            assert_eq!(metrics.value("kept_total", &[]), Some(3.0), "round {round}");
        }
    }
}

/// Files whose keys are JSON but carry names no exposition parser takes (a space, a
/// non-ASCII letter, a leading digit, a dash, an empty or a reserved label name): each
/// file is skipped as corrupt, and the scrape stays one that promtool accepts, where
/// before one such file made Prometheus drop the whole scrape.
async fn files_with_names_a_parser_refuses_are_skipped_and_the_scrape_stays_valid(
) -> common::Checked {
    let dir = TempDir::new("names");
    let keys = [
        r#"["a b", "a b_total", {}, "Space."]"#,
        r#"["9lives", "9lives_total", {}, "Digit."]"#,
        r#"["ok", "ok_total", {"é": "v"}, "Letter."]"#,
        r#"["ok", "ok_total", {"a-b": "v"}, "Dash."]"#,
        r#"["ok", "ok_total", {"": "v"}, "Empty."]"#,
        r#"["ok", "ok_total", {"__name__": "x"}, "Reserved."]"#,
    ];
    for (pid, key) in (4_000_001..).zip(keys) {
        std::fs::write(
            dir.path().join(format!("counter_{pid}.db")),
            file_of_one_entry(key),
        )
        .unwrap();
    }
    // Valid names with every character a value and a help may carry.
    std::fs::write(
        dir.path().join("counter_4000100.db"),
        file_of_one_entry(
            r#"["shop_orders", "shop_orders_total", {"k": "v\"\\\n\u00e9"}, "Help \"text\"\nmore."]"#,
        ),
    )
    .unwrap();
    let (_registry, _items, addr) = counting_endpoint(dir.path()).await;
    let metrics = scrape(addr).await;
    assert_eq!(
        skipped(&metrics, "corrupt"),
        keys.len() as f64,
        "{}",
        metrics.text
    );
    assert_eq!(
        metrics.value("shop_orders_total", &[("k", "v\"\\\né")]),
        Some(1.0),
        "{}",
        metrics.text
    );
    common::promtool_accepts(&metrics.text)
}

/// The aggregate of `dir` as this crate scrapes it, from this (non-writing) process.
/// What a scrape of `dir` serves, from a registry that leaves the files as they are
/// (these tests look at the files; folding them has tests of its own).
async fn aggregate(dir: &Path) -> Exposition {
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir).unwrap();
    registry.multiprocess_folding(Folding::Off).unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    scrape(addr).await
}

fn run_forking_worker(dir: &Path) {
    let mut child = Worker(worker("fork", dir).spawn().expect("worker starts"));
    assert_eq!(line_of(&mut child.0, "children done"), "");
    assert!(child.0.wait().unwrap().success());
}

/// What the fork worker's counts add up to, in an aggregate.
fn assert_forked_counts(metrics: &Exposition) {
    let children: Vec<_> = metrics
        .matching("jobs_total", &[])
        .into_iter()
        .filter(|s| s.labels.get("series").is_some_and(|v| v.starts_with('c')))
        .collect();
    assert_eq!(children.len(), 900, "{}", metrics.text);
    assert_eq!(children.iter().map(|s| s.value).sum::<f64>(), 300_000.0);
    assert_eq!(
        metrics.value("jobs_total", &[("series", "shared")]),
        Some(4.0)
    );
    assert_eq!(metrics.value("before_fork_total", &[]), Some(8.0));
    assert_eq!(metrics.matching("busy", &[]).len(), 90);
    assert_eq!(metrics.sum("busy", &[]), 900.0);
    assert_eq!(metrics.matching("wait_count", &[]).len(), 90);
    assert_eq!(metrics.sum("wait_count", &[]), 900.0);
    assert_eq!(metrics.sum("wait_bucket", &[("le", "+Inf")]), 900.0);
}

async fn forked_children_write_their_own_files_with_exact_counts() {
    let dir = TempDir::new("fork");
    run_forking_worker(dir.path());
    let metrics = aggregate(dir.path()).await;
    assert_forked_counts(&metrics);
    assert_eq!(metrics.sum(SKIPPED_FILES, &[]), 0.0);
    // The parent and three children wrote four counter files (and this process one).
    let counter_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("counter_"))
        .count();
    assert_eq!(counter_files, 5);
}

async fn python_counts_forked_children_exactly_as_this_crate_does() -> common::Checked {
    let python = common::require_python_client(
        "aggregate the files of forked children with Python's MultiProcessCollector",
    )?;
    let dir = TempDir::new("fork-python");
    run_forking_worker(dir.path());
    let python_view = python_aggregate(&python, dir.path());
    assert_forked_counts(&python_view);
    assert_same_samples(&aggregate(dir.path()).await, &python_view, &[]);
    Ok(())
}

async fn python_summaries_are_summed_as_pythons_collector_sums_them() -> common::Checked {
    let python =
        common::require_python_client("write summary files with Python's prometheus_client")?;
    let dir = TempDir::new("summary");
    let script = "import sys\n\
        from prometheus_client import Summary\n\
        s = Summary('py_wait_seconds', 'Waits.', ['kind'])\n\
        for v in sys.argv[1:]:\n\
        \x20   s.labels('a').observe(float(v))\n\
        s.labels('b').observe(0.5)\n";
    for values in [&["1", "3"][..], &["10"][..]] {
        let status = Command::new(&python)
            .env("PROMETHEUS_MULTIPROC_DIR", dir.path())
            .args(["-c", script])
            .args(values)
            .status()
            .expect("python runs");
        assert!(status.success());
    }
    let ours = aggregate(dir.path()).await;
    let python_view = python_aggregate(&python, dir.path());
    assert_eq!(
        python_view.value("py_wait_seconds_count", &[("kind", "a")]),
        Some(3.0)
    );
    for (sample, kind, value) in [
        ("py_wait_seconds_count", "a", 3.0),
        ("py_wait_seconds_sum", "a", 14.0),
        ("py_wait_seconds_count", "b", 2.0),
        ("py_wait_seconds_sum", "b", 1.0),
    ] {
        assert_eq!(
            ours.value(sample, &[("kind", kind)]),
            Some(value),
            "{}",
            ours.text
        );
    }
    assert_eq!(ours.sum(SKIPPED_FILES, &[]), 0.0);
    assert_same_samples(&ours, &python_view, &[]);
    Ok(())
}

async fn a_reused_pid_does_not_bring_back_a_dead_python_workers_live_gauge() -> common::Checked {
    let python =
        common::require_python_client("write a live gauge from a Python worker that exits")?;
    common::require_root("give a new process the pid of an exited one")?;
    let dir = TempDir::new("reuse");
    let script = "import os\n\
        from prometheus_client import Gauge\n\
        Gauge('py_busy', 'Busy.', multiprocess_mode='livesum').set(1)\n\
        print(os.getpid(), flush=True)\n";
    let output = Command::new(&python)
        .env("PROMETHEUS_MULTIPROC_DIR", dir.path())
        .args(["-c", script])
        .output()
        .expect("python runs");
    assert!(output.status.success());
    let pid: u32 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    let python_file = dir.path().join(format!("gauge_livesum_{pid}.db"));
    assert!(python_file.exists());
    assert_eq!(aggregate(dir.path()).await.value("py_busy", &[]), None);
    // A start time is known only to a clock tick or two, so liveness cannot tell a pid
    // reused within 20 ms of the last write; date the write a second back, as a pid
    // comes round again only after the others have been handed out.
    std::fs::File::options()
        .write(true)
        .open(&python_file)
        .and_then(|file| file.set_modified(std::time::SystemTime::now() - Duration::from_secs(1)))
        .expect("file dated back");

    // An unrelated process with that pid started after the file was written.
    let mut sleeper = Command::new("sleep");
    sleeper.arg("30");
    let Some(mut sleeper) = common::spawn_as_pid(&mut sleeper, pid) else {
        panic!("pid {pid} could not be had within 20 s");
    };
    let metrics = aggregate(dir.path()).await;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(metrics.value("py_busy", &[]), None, "{}", metrics.text);

    // A worker of this crate with that pid: the dead worker's live gauges go.
    let Some(child) = common::spawn_as_pid(&mut worker("restart", dir.path()), pid) else {
        panic!("pid {pid} could not be had within 20 s");
    };
    let mut child = Worker(child);
    assert_eq!(line_of(&mut child.0, "started "), pid.to_string());
    let metrics = aggregate(dir.path()).await;
    assert_eq!(metrics.value("py_busy", &[]), None, "{}", metrics.text);
    assert_eq!(metrics.value("restarts_live", &[]), Some(1.0));
    Ok(())
}

async fn three_hundred_restarts_with_one_pid_never_fail_while_another_process_scrapes(
) -> common::Checked {
    common::require_root("give each restarted worker the same pid")?;
    let dir = TempDir::new("restarts");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut scrapes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                scrape(addr).await;
                scrapes += 1;
            }
            scrapes
        })
    };
    let start_anywhere = || {
        let mut first = Worker(worker("restart", dir.path()).spawn().unwrap());
        line_of(&mut first.0, "started ").parse::<u32>().unwrap()
    };
    let mut pid = start_anywhere();
    let (mut restarts, mut pids, mut failures) = (0, 1, Vec::new());
    while restarts < 300 {
        let Some(child) = common::spawn_as_pid(&mut worker("restart", dir.path()), pid) else {
            // A process of the machine took the pid (a thread holds one too): go on
            // with another.
            pid = start_anywhere();
            pids += 1;
            continue;
        };
        let mut child = Worker(child);
        let started = line_of(&mut child.0, "started ");
        if started != pid.to_string() {
            failures.push(started);
        }
        restarts += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(pids <= 5, "{pids} pids were taken by other processes");
    assert!(scrapes > 0);
    eprintln!("{restarts} restarts with {pids} pid(s), {scrapes} scrapes meanwhile, 0 failures");
    Ok(())
}

async fn workers_in_separate_pid_namespaces_never_share_one_pid_s_files() -> common::Checked {
    common::require_root("start workers in PID namespaces of their own")?;
    let unshare = common::require_tool("unshare", "start workers in new PID namespaces")?;
    let dir = TempDir::new("namespaces");
    // Each worker is pid 1 of its own namespace: the second must refuse the first's
    // files rather than append to them.
    let in_namespace = || {
        let inner = worker("restart", dir.path());
        let mut command = Command::new(&unshare);
        command
            .args(["--pid", "--fork", "--kill-child"])
            .arg(inner.get_program())
            .args(inner.get_args())
            .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        Worker(command.spawn().expect("unshare runs"))
    };
    let mut first = in_namespace();
    assert_eq!(line_of(&mut first.0, "started "), "1");
    let mut second = in_namespace();
    let refused = line_of(&mut second.0, "started ");
    assert!(
        refused.starts_with("failed") && refused.contains("another live process holds"),
        "{refused}"
    );
    // A live process of another namespace is live here: its lock is on the file.
    let metrics = aggregate(dir.path()).await;
    assert_eq!(
        metrics.value("restarts_live", &[]),
        Some(1.0),
        "{}",
        metrics.text
    );
    drop(first);
    let dir = dir.path();
    common::eventually(
        Duration::from_secs(5),
        "the killed worker counted dead",
        || async move {
            aggregate(dir)
                .await
                .value("restarts_live", &[])
                .is_none()
                .then_some(())
        },
    )
    .await;
    Ok(())
}

/// The documented limit: a shared mapping cannot outlive the truncation of its own
/// file, so the writer ends with SIGBUS; everyone else's scrapes go on.
async fn a_writer_whose_own_file_is_truncated_ends_with_sigbus_and_scrapes_go_on() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TempDir::new("truncate-own");
    let mut child = worker("truncate_own", dir.path()).spawn().unwrap();
    assert_eq!(line_of(&mut child, "truncated"), "");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status:?}");
    let metrics = aggregate(dir.path()).await;
    assert_eq!(skipped(&metrics, "truncated"), 1.0, "{}", metrics.text);
}

fn the_layer_starts_in_an_address_space_of_300_mb() -> common::Checked {
    common::require_tool("sh", "set a virtual memory limit with ulimit")?;
    let dir = TempDir::new("ulimit");
    let mut child = worker_in_address_space("address_space", dir.path(), 300_000);
    let report = line_of(&mut child, "vm ");
    assert!(child.wait().unwrap().success());
    let numbers: Vec<u64> = report.split(' ').map(|n| n.parse().unwrap()).collect();
    let (before, after, files) = (numbers[0], numbers[1], numbers[2]);
    // Mappings: at most about twice what the files hold, plus the heap's growth.
    assert!(
        after - before < 2 * files + 16 * 1024,
        "{before} kB before, {after} kB after, files {files} kB"
    );
    eprintln!(
        "address space grew {} kB for {files} kB of files",
        after - before
    );
    Ok(())
}

test_main! {
    tokio_2 a_full_disk_is_a_build_error_or_counted_write_errors_never_a_signal,
    tokio_2 a_fifo_a_link_and_a_directory_in_the_directory_are_skipped_without_blocking,
    sync a_link_planted_in_place_of_a_file_is_never_written_through,
    sync new_files_take_the_read_and_write_bits_of_their_directory,
    tokio_2 a_file_truncated_or_rewritten_under_scrapes_is_skipped_counted_and_read_again,
    tokio_2 deleting_a_running_writers_files_leaves_it_running,
    sync_ignored fault_worker,
    tokio forked_children_write_their_own_files_with_exact_counts,
    tokio python_counts_forked_children_exactly_as_this_crate_does,
    tokio python_summaries_are_summed_as_pythons_collector_sums_them,
    tokio a_reused_pid_does_not_bring_back_a_dead_python_workers_live_gauge,
    tokio_2 three_hundred_restarts_with_one_pid_never_fail_while_another_process_scrapes,
    tokio workers_in_separate_pid_namespaces_never_share_one_pid_s_files,
    tokio a_writer_whose_own_file_is_truncated_ends_with_sigbus_and_scrapes_go_on,
    sync the_layer_starts_in_an_address_space_of_300_mb,
    sync a_header_claiming_gigabytes_is_skipped_without_a_buffer_of_that_size,
    sync mutated_files_of_other_processes_never_panic_or_stall_a_scrape,
    tokio files_with_names_a_parser_refuses_are_skipped_and_the_scrape_stays_valid,
}
