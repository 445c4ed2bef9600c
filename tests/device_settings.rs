//! Device settings that tch does not wrap (TF32 switch, bf16 autocast dtype) reach libtorch's
//! context and are restored; parsing of `--device` and `--amp` values.

use gunlearn::device::{autocast_is_bf16, parse_device, tf32_allowed, with_amp, Amp, StrictFp32};
use tch::Device;

#[test]
fn strict_fp32_turns_tf32_off_and_restores_it() {
    // libtorch 2.11's defaults: TF32 allowed in cuDNN convolutions, not in cuBLAS matmuls.
    let before = tf32_allowed();
    assert_eq!(before, (true, false));
    {
        let _outer = StrictFp32::new();
        assert_eq!(tf32_allowed(), (false, false));
        {
            let _inner = StrictFp32::new();
            assert_eq!(tf32_allowed(), (false, false));
        }
        assert_eq!(
            tf32_allowed(),
            (false, false),
            "inner guard restores the outer state"
        );
    }
    assert_eq!(tf32_allowed(), before);
}

#[test]
fn bf16_autocast_dtype_is_set_only_inside() {
    assert!(!autocast_is_bf16());
    assert!(with_amp(Amp::Bf16, autocast_is_bf16));
    assert!(!with_amp(Amp::Off, autocast_is_bf16));
    assert!(!autocast_is_bf16());
    // On a CPU tensor autocast changes nothing: the loss stays FP32 and the value the same.
    let x = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).view([1, 3]);
    let y = tch::Tensor::from_slice(&[2i64]);
    let plain = x.cross_entropy_for_logits(&y).double_value(&[]);
    let amp = with_amp(Amp::Bf16, || {
        x.cross_entropy_for_logits(&y).double_value(&[])
    });
    assert_eq!(plain, amp);
}

#[test]
fn device_strings() {
    assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
    let err = parse_device("gpu").unwrap_err().to_string();
    assert!(err.contains("auto, cpu, cuda or cuda:N"), "{err}");
    if !tch::Cuda::is_available() {
        assert_eq!(parse_device("auto").unwrap(), Device::Cpu);
        let err = parse_device("cuda:0").unwrap_err().to_string();
        assert!(err.contains("0 CUDA device"), "{err}");
    }
    let json = serde_json::to_string(&Amp::Bf16).unwrap();
    assert_eq!(json, "\"bf16\"");
    assert_eq!(serde_json::from_str::<Amp>("\"off\"").unwrap(), Amp::Off);
}

/// The sampler behind `bench gan`'s memory breakdown sees a buffer that lives between two of its
/// readings: the peak it keeps holds the buffer as resident memory and as heap in use, and the
/// heap falls back once the buffer is freed (so `in_use` is live memory, not a high-water mark).
#[test]
fn memory_sampler_sees_a_short_lived_buffer() {
    use gunlearn::device::{heap_stats, resident_memory, MemorySampler};
    let size = 400usize << 20;
    let (before, _) = resident_memory().expect("/proc/self/status");
    let heap_before = heap_stats().expect("glibc mallinfo2").in_use;
    let sampler = MemorySampler::start(std::time::Duration::from_millis(1));
    // Waits for readings, not for time: on a loaded machine the sampler may run late.
    let readings_after = |sampler: &MemorySampler, n: usize| {
        let from = sampler.readings();
        let started = std::time::Instant::now();
        while sampler.readings() < from + n {
            assert!(
                started.elapsed().as_secs() < 60,
                "the sampler took no reading"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    readings_after(&sampler, 3);
    // ones() writes every page, so all of it becomes resident.
    let buffer = tch::Tensor::ones([(size / 4) as i64], (tch::Kind::Float, Device::Cpu));
    readings_after(&sampler, 3);
    let held = heap_stats().unwrap().in_use;
    drop(buffer);
    readings_after(&sampler, 3);
    let after = heap_stats().unwrap().in_use;
    let peak = sampler.stop().expect("a reading");
    let mib = |b: f64| b / f64::from(1 << 20);
    assert!(
        held - heap_before >= 0.95 * size as f64,
        "heap in use grew by {} MiB",
        mib(held - heap_before)
    );
    assert!(
        held - after >= 0.95 * size as f64,
        "freeing the buffer lowered the heap in use by {} MiB",
        mib(held - after)
    );
    assert!(
        peak.resident - before >= 0.95 * size as f64,
        "peak resident {} MiB above the start",
        mib(peak.resident - before)
    );
    assert!(
        peak.heap.in_use - heap_before >= 0.95 * size as f64,
        "heap in use at the peak: {} MiB above the start",
        mib(peak.heap.in_use - heap_before)
    );
    assert!(
        peak.max_in_use >= peak.heap.in_use && peak.max_in_use - heap_before >= 0.95 * size as f64
    );
}
