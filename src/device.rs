//! Device selection and libtorch threading.

use anyhow::bail;
use std::os::raw::c_int;
use tch::Device;

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`; `auto` picks the first GPU libtorch sees, else CPU.
/// A CUDA device is also [`prepare`]d (cuDNN benchmark mode).
pub fn parse_device(spec: &str) -> anyhow::Result<Device> {
    let device = match spec {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => bail!("--device {other:?}: expected auto, cpu, cuda or cuda:N"),
        },
    };
    if let Device::Cuda(n) = device {
        let available = tch::Cuda::device_count() as usize;
        if n >= available {
            bail!(
                "--device {spec}: libtorch sees {available} CUDA device(s); use --device cpu, or check the driver and LD_LIBRARY_PATH (see docs/gpu.md)"
            );
        }
    }
    prepare(device);
    Ok(device)
}

/// A short name for a device, as written to `model.json` and `eval_result.json`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `Some(n)`, or the number of cores when `None`.
pub fn thread_count(threads: Option<usize>) -> usize {
    threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1)
}

/// More libtorch threads than this many per core only make the cores wait on each other.
const MAX_THREADS_PER_CORE: usize = 4;

/// Parses a `--threads` value: at least 1 and at most four per core of
/// this machine (a value of 100 000 would stall for minutes starting threads).
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of threads"))?;
    let cores = thread_count(None);
    let most = cores * MAX_THREADS_PER_CORE;
    if n == 0 || n > most {
        return Err(format!(
            "{n}: give 1 to {most} ({MAX_THREADS_PER_CORE} per core; this machine has {cores} core(s))"
        ));
    }
    Ok(n)
}

/// Sets libtorch's intra-op threads: `Some(n)`, or all cores when `None`.
pub fn set_threads(threads: Option<usize>) {
    tch::set_num_threads(thread_count(threads) as i32);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
}

/// With `keep`, makes glibc keep freed memory for reuse instead of unmapping it (no mmap for
/// large blocks, no heap trimming); without, restores glibc's defaults. libtorch allocates CPU
/// activations through malloc, and by default every large buffer is a fresh mmap that is
/// returned to the OS when freed and page-faulted back in on the next step — millions of minor
/// faults per adversarial iteration (PERFORMANCE-NOTES). Process-wide; returns whether glibc
/// accepted the settings.
pub fn keep_freed_memory(keep: bool) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        let (mmap_max, trim) = if keep {
            (0, i32::MAX)
        } else {
            (65_536, 128 * 1024)
        };
        // SAFETY: mallopt only changes allocator tuning parameters; valid at any time.
        unsafe { mallopt(M_MMAP_MAX, mmap_max) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = keep;
        false
    }
}

/// Host memory this process may still use, in bytes: `GUNLEARN_AVAILABLE_MEMORY_GB` if set,
/// else the smaller of the kernel's `MemAvailable` and the room left under this process's
/// cgroup v2 limit (`memory.max − memory.current`); `None` where neither can be read.
pub fn available_memory() -> Option<f64> {
    if let Some(v) = std::env::var_os("GUNLEARN_AVAILABLE_MEMORY_GB") {
        return v
            .to_str()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|g| g.is_finite() && *g >= 0.0)
            .map(|g| g * 1e9);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024.0)
    });
    let cgroup = (|| {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        let max: f64 = std::fs::read_to_string(dir.join("memory.max"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let current: f64 = std::fs::read_to_string(dir.join("memory.current"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some((max - current).max(0.0))
    })();
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Resident memory of this process now (`VmRSS`) and its peak (`VmHWM`), in bytes (Linux).
pub fn resident_memory() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// glibc's malloc statistics (`mallinfo2`), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct HeapStats {
    /// Allocated and not freed: arena blocks in use plus mmapped blocks. libtorch allocates CPU
    /// tensors through malloc, so this counts them whether or not they reuse memory freed
    /// earlier (which resident memory would not show).
    pub in_use: f64,
    /// Freed, but kept by glibc in its arenas for reuse instead of being returned to the OS.
    pub free_kept: f64,
}

/// This process's [`HeapStats`] now; `None` off glibc.
pub fn heap_stats() -> Option<HeapStats> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[repr(C)]
        struct MallInfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: mallinfo2 (glibc ≥ 2.33) only reads the allocator's statistics.
        let m = unsafe { mallinfo2() };
        Some(HeapStats {
            in_use: (m.uordblks + m.hblkhd) as f64,
            free_kept: m.fordblks as f64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Bytes of heap memory allocated and not freed ([`HeapStats::in_use`]).
pub fn heap_in_use() -> Option<f64> {
    heap_stats().map(|h| h.in_use)
}

/// One reading of [`MemorySampler`], in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MemorySample {
    /// Resident memory (`VmRSS`).
    pub resident: f64,
    /// glibc's heap at the same moment.
    pub heap: HeapStats,
    /// The highest heap in use over all readings (live memory peaks need not coincide with the
    /// resident peak: with freed memory kept, resident memory never falls).
    pub max_in_use: f64,
}

/// Reads resident memory and the heap every few milliseconds on a background thread and keeps
/// the reading with the highest resident memory: what the peak consists of (memory in use,
/// freed memory glibc kept, the rest: code, libraries, stacks).
pub struct MemorySampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    readings: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: std::thread::JoinHandle<Option<MemorySample>>,
}

impl MemorySampler {
    /// Starts sampling every `interval`.
    pub fn start(interval: std::time::Duration) -> MemorySampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let readings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = readings.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: Option<MemorySample> = None;
            loop {
                let done = flag.load(std::sync::atomic::Ordering::Relaxed);
                if let (Some((resident, _)), Some(heap)) = (resident_memory(), heap_stats()) {
                    let max_in_use = peak.map_or(0.0, |p| p.max_in_use).max(heap.in_use);
                    match &mut peak {
                        Some(p) if resident <= p.resident => p.max_in_use = max_in_use,
                        _ => {
                            peak = Some(MemorySample {
                                resident,
                                heap,
                                max_in_use,
                            })
                        }
                    }
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                if done {
                    return peak;
                }
                std::thread::sleep(interval);
            }
        });
        MemorySampler {
            stop,
            readings,
            thread,
        }
    }

    /// How many readings it has taken so far.
    pub fn readings(&self) -> usize {
        self.readings.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops sampling; the reading with the highest resident memory, `None` where none could
    /// be read.
    pub fn stop(self) -> Option<MemorySample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}

/// Resets this process's peak resident memory to its current one (Linux ≥ 4.0), so that the
/// next [`resident_memory`] peak covers only what runs from here on.
pub fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Mixed precision for the plain classification losses (`--amp`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Amp {
    /// FP32 everywhere (the reference's semantics).
    #[default]
    Off,
    /// Forward pass and cross-entropy under bfloat16 autocast on CUDA (no loss scaling needed).
    Bf16,
}

/// libtorch entry points that tch 0.24 does not wrap: C++ functions called through their
/// Itanium-ABI symbol names in `libtorch_cpu` (which tch links). The enums are plain `int`
/// (`Float32*`) or `int8_t` (`c10::DeviceType`, `c10::ScalarType`) on that ABI. Only values
/// libtorch accepts are passed, so none of them throws.
mod ffi {
    use std::os::raw::{c_int, c_void};
    extern "C" {
        #[link_name = "_ZN2at13globalContextEv"]
        pub fn global_context() -> *mut c_void;
        #[link_name = "_ZN2at7Context19setFloat32PrecisionENS_14Float32BackendENS_9Float32OpENS_16Float32PrecisionE"]
        pub fn set_float32_precision(ctx: *mut c_void, backend: c_int, op: c_int, precision: c_int);
        #[link_name = "_ZNK2at7Context16float32PrecisionENS_14Float32BackendENS_9Float32OpE"]
        pub fn float32_precision(ctx: *mut c_void, backend: c_int, op: c_int) -> c_int;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
    }
    /// `at::Float32Backend::CUDA`.
    pub const BACKEND_CUDA: c_int = 1;
    /// `at::Float32Op::CONV`.
    pub const OP_CONV: c_int = 1;
    /// `at::Float32Op::MATMUL`.
    pub const OP_MATMUL: c_int = 3;
    /// `at::Float32Precision::IEEE`.
    pub const IEEE: c_int = 1;
    /// `at::Float32Precision::TF32`.
    pub const TF32: c_int = 2;
    /// `c10::DeviceType::CUDA`.
    pub const DEVICE_CUDA: i8 = 1;
    /// `c10::ScalarType::BFloat16`.
    pub const BFLOAT16: i8 = 15;
}

/// libtorch's current FP32 precision settings for CUDA (convolutions, matrix products).
fn cuda_fp32_precision() -> (c_int, c_int) {
    // SAFETY: globalContext() returns libtorch's static context; the getter only reads it.
    unsafe {
        let ctx = ffi::global_context();
        (
            ffi::float32_precision(ctx, ffi::BACKEND_CUDA, ffi::OP_CONV),
            ffi::float32_precision(ctx, ffi::BACKEND_CUDA, ffi::OP_MATMUL),
        )
    }
}

/// Whether CUDA convolutions (cuDNN) and matrix products (cuBLAS) may use TF32 now.
pub fn tf32_allowed() -> (bool, bool) {
    let (conv, matmul) = cuda_fp32_precision();
    (conv == ffi::TF32, matmul == ffi::TF32)
}

fn set_cuda_fp32_precision(conv: c_int, matmul: c_int) {
    // SAFETY: valid (backend, op, precision) triples; the setter stores them in the context.
    unsafe {
        let ctx = ffi::global_context();
        ffi::set_float32_precision(ctx, ffi::BACKEND_CUDA, ffi::OP_CONV, conv);
        ffi::set_float32_precision(ctx, ffi::BACKEND_CUDA, ffi::OP_MATMUL, matmul);
    }
}

/// While alive, CUDA convolutions and matrix products run in full IEEE FP32 (no TF32); the
/// previous settings come back on drop. The adversarial method needs this: its sensitivity
/// feature is a finite difference with step 1e-3, and TF32's 10-bit mantissa (relative
/// rounding ≈ 5e-4 per product) is as large as the differences it must resolve.
#[must_use = "TF32 is allowed again as soon as the guard is dropped"]
pub struct StrictFp32 {
    /// The raw settings before (restored exactly, `NONE` = "inherit" included).
    previous: (c_int, c_int),
}

impl StrictFp32 {
    /// Turns TF32 off for CUDA convolutions and matrix products (libtorch's process-wide
    /// setting; it has no effect on CPU computations).
    pub fn new() -> StrictFp32 {
        let previous = cuda_fp32_precision();
        set_cuda_fp32_precision(ffi::IEEE, ffi::IEEE);
        StrictFp32 { previous }
    }
}

impl Default for StrictFp32 {
    fn default() -> Self {
        StrictFp32::new()
    }
}

impl Drop for StrictFp32 {
    fn drop(&mut self) {
        set_cuda_fp32_precision(self.previous.0, self.previous.1);
    }
}

/// Runs `f` under bfloat16 autocast on CUDA when `amp` is [`Amp::Bf16`], else plainly.
/// (`tch::autocast` alone would use libtorch's CUDA default, float16.)
pub fn with_amp<T>(amp: Amp, f: impl FnOnce() -> T) -> T {
    match amp {
        Amp::Off => f(),
        Amp::Bf16 => {
            // SAFETY: sets/reads libtorch's (thread-local) autocast dtype for CUDA.
            let previous = unsafe { ffi::get_autocast_dtype(ffi::DEVICE_CUDA) };
            unsafe { ffi::set_autocast_dtype(ffi::DEVICE_CUDA, ffi::BFLOAT16) };
            let out = tch::autocast(true, f);
            unsafe { ffi::set_autocast_dtype(ffi::DEVICE_CUDA, previous) };
            out
        }
    }
}

/// True when the CUDA autocast dtype is bfloat16 (inside [`with_amp`] with [`Amp::Bf16`]).
pub fn autocast_is_bf16() -> bool {
    // SAFETY: reads libtorch's autocast dtype.
    unsafe { ffi::get_autocast_dtype(ffi::DEVICE_CUDA) == ffi::BFLOAT16 }
}

/// Settings every CUDA run uses: cuDNN picks the fastest convolution algorithms for the
/// shapes it sees (benchmark mode). Nothing to do on the CPU.
pub fn prepare(device: Device) {
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
}
