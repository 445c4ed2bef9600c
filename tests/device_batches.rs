//! Device-resident batches (run here on the CPU device): the same pixels, labels, indices and
//! order as the host path for the same seeds and crop choices, with the right shapes and dtypes.

mod common;

use std::rc::Rc;
use std::sync::Arc;

use gunlearn::data::augment::{crop_flip_image, Augment, CropFlip};
use gunlearn::data::batches::{to_tensor, Batch};
use gunlearn::data::device_batches::{BatchSource, Batches, DeviceImages};
use gunlearn::data::rng::SmallRng;
use gunlearn::data::ImageSet;
use tch::{Device, Kind};

fn threads() {
    common::pin_threads();
}

/// `n` random images (every byte value occurs), labels `i % 10`.
fn set(n: usize, c: usize, h: usize, w: usize, seed: u64) -> ImageSet {
    let mut rng = SmallRng::new(seed);
    ImageSet {
        images: (0..n * c * h * w).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n).map(|i| (i % 10) as i64).collect(),
        channels: c,
        height: h,
        width: w,
    }
}

fn pixels(b: &Batch) -> Vec<f32> {
    Vec::<f32>::try_from(b.images.flatten(0, -1)).unwrap()
}

fn labels(b: &Batch) -> Vec<i64> {
    Vec::<i64>::try_from(&b.labels).unwrap()
}

fn device_source(s: &ImageSet) -> BatchSource {
    BatchSource::Device(Rc::new(DeviceImages::new(s, Device::Cpu)))
}

#[test]
fn every_crop_and_flip_matches_the_host_path_exactly() {
    threads();
    let (c, h, w, pad) = (3, 7, 9, 3);
    let s = set(5, c, h, w, 1);
    let store = DeviceImages::new(&s, Device::Cpu);
    let len = c * h * w;
    for dy in 0..=2 * pad {
        for dx in 0..=2 * pad {
            for flip in [false, true] {
                let indices = [3usize, 0, 4];
                let crops = vec![CropFlip { dy, dx, flip }; indices.len()];
                let b = store.augmented_batch(&indices, &crops, pad);
                assert_eq!(b.images.size(), vec![3, c as i64, h as i64, w as i64]);
                assert_eq!(b.images.kind(), Kind::Float);
                let mut want = Vec::new();
                for &i in &indices {
                    let mut out = vec![0u8; len];
                    let cf = CropFlip { dy, dx, flip };
                    crop_flip_image(
                        &s.images[i * len..(i + 1) * len],
                        &mut out,
                        c,
                        h,
                        w,
                        pad,
                        cf,
                    );
                    want.extend(out.iter().map(|&p| p as f32 / 255.0));
                }
                assert_eq!(pixels(&b), want, "dy {dy} dx {dx} flip {flip}");
                assert_eq!(labels(&b), vec![3, 0, 4]);
            }
        }
    }
}

#[test]
fn mixed_crops_in_one_batch() {
    threads();
    let (c, h, w, pad) = (1, 4, 4, 1);
    let s = set(3, c, h, w, 2);
    let store = DeviceImages::new(&s, Device::Cpu);
    let crops = [
        CropFlip {
            dy: 0,
            dx: 2,
            flip: true,
        },
        CropFlip {
            dy: 2,
            dx: 0,
            flip: false,
        },
        CropFlip {
            dy: 1,
            dx: 1,
            flip: true,
        },
    ];
    let b = store.augmented_batch(&[2, 2, 1], &crops, pad);
    let len = c * h * w;
    let mut want = Vec::new();
    for (&i, &cf) in [2usize, 2, 1].iter().zip(&crops) {
        let mut out = vec![0u8; len];
        crop_flip_image(
            &s.images[i * len..(i + 1) * len],
            &mut out,
            c,
            h,
            w,
            pad,
            cf,
        );
        want.extend(out.iter().map(|&p| p as f32 / 255.0));
    }
    assert_eq!(pixels(&b), want);
    // The first crop reaches into the top padding: its first row is zero.
    assert!(pixels(&b)[..w].iter().all(|&p| p == 0.0));
}

#[test]
fn plain_batches_and_ranges_equal_to_tensor() {
    threads();
    let s = set(9, 3, 5, 6, 3);
    let store = DeviceImages::new(&s, Device::Cpu);
    let host = to_tensor(&s, &[8, 0, 3]);
    let dev = store.batch(&[8, 0, 3]);
    assert_eq!(dev.images.size(), host.images.size());
    assert_eq!(pixels(&dev), pixels(&host));
    assert_eq!(labels(&dev), labels(&host));
    assert_eq!(dev.indices, vec![8, 0, 3]);
    let sub = DeviceImages::subset(&s, &[4, 5, 6, 7], Device::Cpu);
    assert_eq!(sub.len(), 4);
    let range = sub.range(1, 2);
    let want = to_tensor(&s, &[5, 6]);
    assert_eq!(
        Vec::<f32>::try_from(range.flatten(0, -1)).unwrap(),
        pixels(&want)
    );
    // Every byte value converts exactly as the host path's `p as f32 / 255.0`.
    let all = ImageSet {
        images: (0..=255u8).collect(),
        labels: vec![0],
        channels: 1,
        height: 16,
        width: 16,
    };
    let b = DeviceImages::new(&all, Device::Cpu).batch(&[0]);
    let want: Vec<f32> = (0..=255u8).map(|p| p as f32 / 255.0).collect();
    assert_eq!(pixels(&b), want);
}

fn collect(b: Batches, n: usize) -> Vec<(Vec<usize>, Vec<f32>, Vec<i64>)> {
    b.take(n)
        .map(|b| (b.indices.clone(), pixels(&b), labels(&b)))
        .collect()
}

#[test]
fn epochs_match_the_host_stream_for_every_option() {
    threads();
    let s = Arc::new(set(23, 3, 8, 8, 4));
    let host = BatchSource::new(&s, Device::Cpu);
    assert!(matches!(host, BatchSource::Host(_)));
    let dev = device_source(&s);
    let idx: Vec<usize> = (0..23).rev().collect();
    let augments = [
        None,
        Some(Augment::default()),
        Some(Augment {
            pad: 2,
            flip: false,
        }),
        Some(Augment {
            pad: 0,
            flip: false,
        }),
    ];
    for augment in augments {
        for (shuffle, drop_last) in [(true, false), (false, true), (true, true)] {
            let a = collect(
                host.epoch(idx.clone(), 5, shuffle, drop_last, augment, 17),
                100,
            );
            let b = collect(
                dev.epoch(idx.clone(), 5, shuffle, drop_last, augment, 17),
                100,
            );
            assert_eq!(a.len(), if drop_last { 4 } else { 5 });
            assert_eq!(
                a, b,
                "augment {augment:?} shuffle {shuffle} drop_last {drop_last}"
            );
        }
    }
    // A different seed changes the augmented pixels.
    let a = collect(
        dev.epoch(idx.clone(), 5, false, false, Some(Augment::default()), 1),
        1,
    );
    let b = collect(
        dev.epoch(idx, 5, false, false, Some(Augment::default()), 2),
        1,
    );
    assert_eq!(a[0].0, b[0].0);
    assert_ne!(a[0].1, b[0].1);
}

#[test]
fn random_streams_match_the_host_stream() {
    threads();
    let s = Arc::new(set(30, 3, 6, 6, 5));
    let host = BatchSource::Host(Arc::clone(&s));
    let dev = device_source(&s);
    let pool: Vec<usize> = (5..25).collect();
    for augment in [None, Some(Augment::default())] {
        let a = collect(host.random(pool.clone(), 8, augment, 9), 6);
        let b = collect(dev.random(pool.clone(), 8, augment, 9), 6);
        assert_eq!(a.len(), 6);
        assert_eq!(a, b);
        for (indices, _, _) in &b {
            let mut sorted = indices.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 8, "distinct samples");
            assert!(indices.iter().all(|i| pool.contains(i)));
        }
    }
    // A pool smaller than the batch gives batches of the whole pool; an empty pool none.
    let small = collect(dev.random(vec![3, 7, 1], 8, None, 1), 2);
    assert!(small.iter().all(|(i, _, _)| i.len() == 3));
    assert!(dev.random(vec![], 8, None, 1).next().is_none());
}
