//! Augmentation and batching: crops and flips are exact, batches cover epochs, seeds
//! reproduce, tensors have the right shapes, dtypes and values, prefetch threads stop.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gunlearn::data::augment::{augment_batch, crop_flip_image, Augment, CropFlip};
use gunlearn::data::batches::{epoch_batches, random_batches, to_tensor, Batch, Prefetch};
use gunlearn::data::rng::SmallRng;
use gunlearn::data::ImageSet;
use tch::{Kind, Tensor};

fn threads() {
    common::pin_threads();
}

/// `n` images of C×H×W with distinct pixel values (image i, pixel p → (7i + 3p + 1) mod 256).
fn set(n: usize, c: usize, h: usize, w: usize) -> ImageSet {
    let len = c * h * w;
    ImageSet {
        images: (0..n * len)
            .map(|k| ((7 * (k / len) + 3 * (k % len) + 1) % 256) as u8)
            .collect(),
        labels: (0..n).map(|i| (i % 10) as i64).collect(),
        channels: c,
        height: h,
        width: w,
    }
}

/// The crop of the explicitly zero-padded image, then the mirror, written out the slow way.
fn reference_crop(src: &[u8], c: usize, h: usize, w: usize, pad: usize, cf: CropFlip) -> Vec<u8> {
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut padded = vec![0u8; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[ch * ph * pw + (y + pad) * pw + x + pad] = src[ch * h * w + y * w + x];
            }
        }
    }
    let mut out = vec![0u8; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let v = padded[ch * ph * pw + (y + cf.dy) * pw + x + cf.dx];
                let xo = if cf.flip { w - 1 - x } else { x };
                out[ch * h * w + y * w + xo] = v;
            }
        }
    }
    out
}

#[test]
fn identity_when_no_pad_no_flip() {
    let s = set(5, 3, 6, 4);
    let aug = Augment {
        pad: 0,
        flip: false,
    };
    assert!(aug.is_identity());
    let out = augment_batch(&s.images, 3, 6, 4, &aug, &mut SmallRng::new(1));
    assert_eq!(out, s.images);
}

#[test]
fn crop_and_flip_match_the_padded_image() {
    let s = set(1, 2, 5, 7);
    for pad in [0, 1, 3] {
        for dy in 0..=2 * pad {
            for dx in 0..=2 * pad {
                for flip in [false, true] {
                    let cf = CropFlip { dy, dx, flip };
                    let mut out = vec![0u8; s.images.len()];
                    crop_flip_image(&s.images, &mut out, 2, 5, 7, pad, cf);
                    assert_eq!(
                        out,
                        reference_crop(&s.images, 2, 5, 7, pad, cf),
                        "{cf:?} pad {pad}"
                    );
                }
            }
        }
    }
}

#[test]
fn flip_is_an_exact_mirror() {
    let s = set(1, 3, 4, 5);
    let mut out = vec![0u8; s.images.len()];
    crop_flip_image(
        &s.images,
        &mut out,
        3,
        4,
        5,
        0,
        CropFlip {
            dy: 0,
            dx: 0,
            flip: true,
        },
    );
    for row in 0..3 * 4 {
        let a: Vec<u8> = s.images[row * 5..row * 5 + 5]
            .iter()
            .rev()
            .copied()
            .collect();
        assert_eq!(out[row * 5..row * 5 + 5], a[..]);
    }
    // With flip on and no padding, each image comes out either unchanged or mirrored, and
    // both happen.
    let many = set(200, 1, 3, 4);
    let aug = Augment { pad: 0, flip: true };
    let out = augment_batch(&many.images, 1, 3, 4, &aug, &mut SmallRng::new(5));
    let (mut same, mut mirrored) = (0, 0);
    for (a, b) in many.images.chunks(12).zip(out.chunks(12)) {
        let m: Vec<u8> = a.chunks(4).flat_map(|r| r.iter().rev().copied()).collect();
        if a == b {
            same += 1;
        } else {
            assert_eq!(b, &m[..]);
            mirrored += 1;
        }
    }
    assert!(same > 70 && mirrored > 70, "{same} {mirrored}");
}

#[test]
fn crop_offsets_cover_the_padded_range() {
    let aug = Augment { pad: 4, flip: true };
    let mut rng = SmallRng::new(3);
    let mut dys = HashSet::new();
    let mut dxs = HashSet::new();
    let mut flips = HashSet::new();
    for _ in 0..2000 {
        let cf = CropFlip::draw(&aug, &mut rng);
        assert!(cf.dy <= 8 && cf.dx <= 8);
        dys.insert(cf.dy);
        dxs.insert(cf.dx);
        flips.insert(cf.flip);
    }
    assert_eq!(dys.len(), 9);
    assert_eq!(dxs.len(), 9);
    assert_eq!(flips.len(), 2);
    let no_flip = Augment {
        pad: 2,
        flip: false,
    };
    assert!((0..200).all(|_| !CropFlip::draw(&no_flip, &mut rng).flip));
}

#[test]
fn same_seed_same_augmentation() {
    let s = set(16, 3, 8, 8);
    let aug = Augment::default();
    let a = augment_batch(&s.images, 3, 8, 8, &aug, &mut SmallRng::new(11));
    let b = augment_batch(&s.images, 3, 8, 8, &aug, &mut SmallRng::new(11));
    let c = augment_batch(&s.images, 3, 8, 8, &aug, &mut SmallRng::new(12));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

fn u8s(b: &Batch) -> Vec<u8> {
    let v: Vec<f32> = Vec::<f32>::try_from(b.images.flatten(0, -1)).unwrap();
    v.iter().map(|x| (x * 255.0).round() as u8).collect()
}

#[test]
fn to_tensor_shapes_dtypes_values() {
    threads();
    let s = set(6, 3, 4, 5);
    let b = to_tensor(&s, &[4, 1, 5]);
    assert_eq!(b.images.size(), vec![3, 3, 4, 5]);
    assert_eq!(b.images.kind(), Kind::Float);
    assert_eq!(b.labels.kind(), Kind::Int64);
    assert_eq!(b.images.device(), tch::Device::Cpu);
    assert_eq!(Vec::<i64>::try_from(&b.labels).unwrap(), vec![4, 1, 5]);
    assert_eq!(b.indices, vec![4, 1, 5]);
    let want: Vec<f32> = s
        .subset(&[4, 1, 5])
        .images
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect();
    let got: Vec<f32> = Vec::<f32>::try_from(b.images.flatten(0, -1)).unwrap();
    assert_eq!(got, want);
    let expect = Tensor::from_slice(&want).view([3, 3, 4, 5]);
    assert!(b.images.equal(&expect));
}

#[test]
fn epochs_cover_every_index_once() {
    threads();
    let s = Arc::new(set(23, 1, 2, 2));
    let idx: Vec<usize> = (0..23).filter(|i| i % 4 != 0).collect(); // 17 indices
    let order = |shuffle: bool, drop_last: bool, seed: u64| -> Vec<Vec<usize>> {
        epoch_batches(s.clone(), idx.clone(), 5, shuffle, drop_last, None, seed)
            .map(|b| {
                assert_eq!(b.images.size()[0] as usize, b.indices.len());
                assert_eq!(u8s(&b), s.subset(&b.indices).images);
                let labels: Vec<i64> = Vec::<i64>::try_from(&b.labels).unwrap();
                assert_eq!(labels, s.subset(&b.indices).labels);
                b.indices
            })
            .collect()
    };
    // Not shuffled: the given order, with a short last batch.
    let plain = order(false, false, 0);
    assert_eq!(
        plain.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 5, 2]
    );
    assert_eq!(plain.concat(), idx);
    // Shuffled: a permutation, reproducible, different for another seed.
    let a = order(true, false, 1);
    let mut flat = a.concat();
    assert_ne!(flat, idx);
    flat.sort_unstable();
    assert_eq!(flat, idx);
    assert_eq!(order(true, false, 1), a);
    assert_ne!(order(true, false, 2), a);
    // drop_last: only full batches, and they are the first 15 of the same shuffled order.
    let d = order(true, true, 1);
    assert_eq!(d.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 5]);
    assert_eq!(d.concat(), a.concat()[..15]);
}

#[test]
fn augmented_epoch_batches_are_crops_of_the_originals() {
    threads();
    let s = Arc::new(set(40, 3, 6, 6));
    let aug = Augment { pad: 2, flip: true };
    let run = |seed| -> Vec<Vec<u8>> {
        epoch_batches(
            s.clone(),
            (0..40).collect(),
            8,
            true,
            false,
            Some(aug),
            seed,
        )
        .map(|b| u8s(&b))
        .collect()
    };
    let a = run(4);
    assert_eq!(a, run(4));
    assert_ne!(a, run(5));
    // Each output image is one of the possible crops/flips of its source.
    let mut changed = 0;
    for b in epoch_batches(s.clone(), (0..40).collect(), 8, true, false, Some(aug), 4) {
        let px = u8s(&b);
        for (k, &i) in b.indices.iter().enumerate() {
            let src = &s.images[i * 108..(i + 1) * 108];
            let got = &px[k * 108..(k + 1) * 108];
            let ok = (0..=4).any(|dy| {
                (0..=4).any(|dx| {
                    [false, true].iter().any(|&flip| {
                        reference_crop(src, 3, 6, 6, 2, CropFlip { dy, dx, flip }) == got
                    })
                })
            });
            assert!(ok, "image {i} is not a crop/flip of its source");
            changed += usize::from(got != src);
        }
    }
    assert!(
        changed > 20,
        "augmentation changed only {changed} of 40 images"
    );
}

#[test]
fn random_batches_draw_distinct_indices_from_the_pool() {
    threads();
    let s = Arc::new(set(50, 1, 2, 2));
    let pool: Vec<usize> = (10..40).collect();
    let batches: Vec<Vec<usize>> = random_batches(s.clone(), pool.clone(), 8, None, 9)
        .take(60)
        .map(|b| {
            assert_eq!(b.images.size(), vec![8, 1, 2, 2]);
            assert_eq!(u8s(&b), s.subset(&b.indices).images);
            b.indices
        })
        .collect();
    let mut seen = HashSet::new();
    for b in &batches {
        let distinct: HashSet<_> = b.iter().collect();
        assert_eq!(distinct.len(), 8, "indices within a batch are distinct");
        assert!(b.iter().all(|i| pool.contains(i)));
        seen.extend(b.iter().copied());
    }
    assert_eq!(
        seen.len(),
        pool.len(),
        "every pool member is drawn eventually"
    );
    assert_ne!(batches[0], batches[1], "batches are fresh draws");
    let again: Vec<Vec<usize>> = random_batches(s.clone(), pool.clone(), 8, None, 9)
        .take(60)
        .map(|b| b.indices)
        .collect();
    assert_eq!(again, batches);
    // A pool smaller than the batch gives the whole pool each time.
    let small: Vec<Batch> = random_batches(s.clone(), vec![3, 7, 1], 8, None, 1)
        .take(3)
        .collect();
    for b in small {
        let mut i = b.indices.clone();
        i.sort_unstable();
        assert_eq!(i, vec![1, 3, 7]);
    }
    // An empty pool gives nothing rather than empty batches forever.
    assert!(random_batches(s, vec![], 8, None, 1).next().is_none());
}

#[test]
fn prefetch_runs_ahead_and_stops_on_drop() {
    let produced = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (p, f) = (produced.clone(), finished.clone());
    let mut it = Prefetch::spawn(3, move |sink| {
        let mut i = 0usize;
        loop {
            if !sink.send(i) {
                break;
            }
            p.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
        f.store(true, Ordering::SeqCst);
    });
    // Before anything is consumed, the producer fills the queue on its own thread.
    let t0 = Instant::now();
    while produced.load(Ordering::SeqCst) < 3 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        produced.load(Ordering::SeqCst),
        3,
        "queue of depth 3 filled ahead"
    );
    assert_eq!(it.next(), Some(0));
    assert_eq!(it.next(), Some(1));
    drop(it);
    // Drop joined the thread, so the producer has already returned.
    assert!(finished.load(Ordering::SeqCst));

    // A finite producer ends the iteration.
    let v: Vec<i32> = Prefetch::spawn(2, |sink| {
        for i in 0..5 {
            sink.send(i);
        }
    })
    .collect();
    assert_eq!(v, vec![0, 1, 2, 3, 4]);

    // An endless batch stream is stopped by dropping it mid-way.
    let s = Arc::new(set(10, 1, 2, 2));
    let mut stream = random_batches(
        s,
        (0..10).collect(),
        4,
        Some(Augment { pad: 1, flip: true }),
        0,
    );
    assert!(stream.next().is_some());
    drop(stream);
}

#[test]
fn producer_panic_is_not_a_short_epoch() {
    let it = Prefetch::spawn(2, |sink| {
        sink.send(1);
        panic!("producer failed");
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.collect::<Vec<i32>>()));
    assert!(r.is_err());
}
