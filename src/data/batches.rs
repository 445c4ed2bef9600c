//! Mini-batches as CPU tensors, produced (gathered, augmented, converted) on a background
//! thread so that the model never waits on data preparation.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use tch::Tensor;

use super::augment::{crop_flip_image, Augment, CropFlip};
use super::rng::SmallRng;
use super::ImageSet;

/// Batches kept ready ahead of the consumer.
const DEFAULT_DEPTH: usize = 3;
/// Mixed into the seed so that augmentation and batch order use independent streams.
const AUGMENT_STREAM: u64 = 0x6175_676d_656e_7421;

/// One mini-batch.
#[derive(Debug)]
pub struct Batch {
    /// Pixels as f32 `[B, C, H, W]` in [0, 1], on the CPU.
    pub images: Tensor,
    /// Class labels, i64 `[B]`.
    pub labels: Tensor,
    /// Index of each image in its `ImageSet`.
    pub indices: Vec<usize>,
}

/// The sending end handed to a [`Prefetch`] producer.
pub struct Sink<T> {
    tx: SyncSender<T>,
}

impl<T> Sink<T> {
    /// Queues an item, blocking while the queue is full; false once the consumer is gone,
    /// and the producer should then return.
    pub fn send(&self, item: T) -> bool {
        self.tx.send(item).is_ok()
    }
}

/// An iterator fed by a producer closure running on a background thread through a bounded
/// queue; dropping it disconnects the queue and joins the thread.
pub struct Prefetch<T> {
    rx: Option<Receiver<T>>,
    handle: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Prefetch<T> {
    /// Starts `producer` on its own thread with a queue of `depth` items (at least 1).
    pub fn spawn<F>(depth: usize, producer: F) -> Self
    where
        F: FnOnce(Sink<T>) + Send + 'static,
    {
        let (tx, rx) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("gunlearn-prefetch".into())
            .spawn(move || producer(Sink { tx }))
            .expect("cannot spawn the prefetch thread");
        Prefetch {
            rx: Some(rx),
            handle: Some(handle),
        }
    }
}

impl<T> Iterator for Prefetch<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let item = self.rx.as_ref()?.recv();
        match item {
            Ok(t) => Some(t),
            Err(_) => {
                // The producer finished or panicked; a panic must not look like a short epoch.
                self.rx = None;
                if let Some(h) = self.handle.take() {
                    if let Err(panic) = h.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                None
            }
        }
    }
}

impl<T> Drop for Prefetch<T> {
    fn drop(&mut self) {
        // Dropping the receiver first makes a producer blocked in `send` return.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Gathers `indices` from `set`, optionally augmenting each image, into a [`Batch`].
fn make_batch(set: &ImageSet, indices: &[usize], aug: Option<(&Augment, &mut SmallRng)>) -> Batch {
    let len = set.image_len();
    let mut pixels = vec![0u8; indices.len() * len];
    match aug {
        Some((a, rng)) if !a.is_identity() => {
            for (&i, dst) in indices.iter().zip(pixels.chunks_exact_mut(len.max(1))) {
                let cf = CropFlip::draw(a, rng);
                let src = &set.images[i * len..(i + 1) * len];
                crop_flip_image(src, dst, set.channels, set.height, set.width, a.pad, cf);
            }
        }
        _ => {
            for (&i, dst) in indices.iter().zip(pixels.chunks_exact_mut(len.max(1))) {
                dst.copy_from_slice(&set.images[i * len..(i + 1) * len]);
            }
        }
    }
    let floats: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let labels: Vec<i64> = indices.iter().map(|&i| set.labels[i]).collect();
    let shape = [
        indices.len() as i64,
        set.channels as i64,
        set.height as i64,
        set.width as i64,
    ];
    Batch {
        images: Tensor::from_slice(&floats).view(shape),
        labels: Tensor::from_slice(&labels),
        indices: indices.to_vec(),
    }
}

/// The images at `indices` as one un-augmented batch (for evaluation).
pub fn to_tensor(set: &ImageSet, indices: &[usize]) -> Batch {
    make_batch(set, indices, None)
}

/// Which images each batch holds, batch after batch: the one place where a seed becomes a
/// batch order, shared by the host stream here and the device stream
/// ([`super::device_batches`]) so that both give the same batches for a seed.
pub(crate) enum BatchOrder {
    /// One pass over a (shuffled) index list in chunks.
    Epoch {
        order: Vec<usize>,
        next: usize,
        batch_size: usize,
        drop_last: bool,
    },
    /// Endless uniform samples without replacement from a pool.
    Random {
        work: Vec<usize>,
        k: usize,
        rng: SmallRng,
    },
}

impl BatchOrder {
    /// One pass over `indices` in batches of `batch_size` (> 0), shuffled with `seed` when
    /// `shuffle`, the last short batch dropped when `drop_last`.
    pub(crate) fn epoch(
        indices: Vec<usize>,
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        seed: u64,
    ) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        let mut order = indices;
        if shuffle {
            SmallRng::new(seed).shuffle(&mut order);
        }
        BatchOrder::Epoch {
            order,
            next: 0,
            batch_size,
            drop_last,
        }
    }

    /// Endless batches of `min(batch_size, pool size)` distinct indices drawn from `pool`.
    pub(crate) fn random(pool: Vec<usize>, batch_size: usize, seed: u64) -> Self {
        BatchOrder::Random {
            k: batch_size.min(pool.len()),
            work: pool,
            rng: SmallRng::new(seed),
        }
    }

    /// The indices of the next batch; `None` at the end of an epoch (or for an empty pool).
    pub(crate) fn next_batch(&mut self) -> Option<&[usize]> {
        match self {
            BatchOrder::Epoch {
                order,
                next,
                batch_size,
                drop_last,
            } => {
                let start = *next;
                let end = (start + *batch_size).min(order.len());
                if start >= end || (*drop_last && end - start < *batch_size) {
                    return None;
                }
                *next = end;
                Some(&order[start..end])
            }
            BatchOrder::Random { work, k, rng } => {
                if *k == 0 {
                    return None;
                }
                partial_shuffle(work, *k, rng);
                Some(&work[..*k])
            }
        }
    }
}

/// The augmentation stream of a batch stream seeded with `seed`, independent of its order.
pub(crate) fn augment_rng(seed: u64) -> SmallRng {
    SmallRng::new(seed ^ AUGMENT_STREAM)
}

/// Host batches in `order`, made on a background thread.
pub(crate) fn host_batches(
    set: Arc<ImageSet>,
    mut order: BatchOrder,
    augment: Option<Augment>,
    seed: u64,
) -> Prefetch<Batch> {
    Prefetch::spawn(DEFAULT_DEPTH, move |sink| {
        let mut aug_rng = augment_rng(seed);
        while let Some(chunk) = order.next_batch() {
            let batch = make_batch(&set, chunk, augment.as_ref().map(|a| (a, &mut aug_rng)));
            if !sink.send(batch) {
                return;
            }
        }
    })
}

/// One epoch over `indices` in batches of `batch_size` (> 0): shuffled with `seed` when
/// `shuffle`, the last short batch dropped when `drop_last`, augmented when `augment` is set.
pub fn epoch_batches(
    set: Arc<ImageSet>,
    indices: Vec<usize>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    augment: Option<Augment>,
    seed: u64,
) -> Prefetch<Batch> {
    let order = BatchOrder::epoch(indices, batch_size, shuffle, drop_last, seed);
    host_batches(set, order, augment, seed)
}

/// A partial Fisher–Yates shuffle: the first `k` slots of `work` become a uniform sample
/// without replacement, and `work` stays a permutation of the pool for the next one.
fn partial_shuffle(work: &mut [usize], k: usize, rng: &mut SmallRng) {
    let n = work.len();
    for i in 0..k {
        let j = i + rng.below((n - i) as u64) as usize;
        work.swap(i, j);
    }
}

/// Endless batches, each of `min(batch_size, pool.len())` distinct indices drawn uniformly
/// and afresh from `pool`; an empty pool gives no batches.
pub fn random_batches(
    set: Arc<ImageSet>,
    pool: Vec<usize>,
    batch_size: usize,
    augment: Option<Augment>,
    seed: u64,
) -> Prefetch<Batch> {
    host_batches(
        set,
        BatchOrder::random(pool, batch_size, seed),
        augment,
        seed,
    )
}
