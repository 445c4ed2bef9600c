//! Device selection and libtorch threading.

use anyhow::bail;
use tch::Device;

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`; `auto` picks the first GPU libtorch sees, else CPU.
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
                "--device {spec}: libtorch sees {available} CUDA device(s); use --device cpu, or check the driver and LD_LIBRARY_PATH (see README, GPU section)"
            );
        }
    }
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

/// Sets libtorch's intra-op threads: `Some(n)`, or all cores when `None`.
pub fn set_threads(threads: Option<usize>) {
    let n = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    tch::set_num_threads(n.max(1) as i32);
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
