//! The data set resident on the compute device as `u8`, with batches gathered, augmented and
//! converted to `f32` there, so that on a GPU the input pipeline costs a few small kernels per
//! step instead of a host-side copy of every batch.
//!
//! The random choices (batch order, crop offsets, flips) are drawn on the CPU from the same
//! seeded streams, in the same order, as the host path in [`super::batches`]; the pixels are
//! then the same as the host path's, bit for bit, on any device (tested on the CPU).

use std::rc::Rc;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use super::augment::{Augment, CropFlip};
use super::batches::{augment_rng, host_batches, Batch, BatchOrder, Prefetch};
use super::rng::SmallRng;
use super::ImageSet;

/// Images kept on a device: `u8` N×C×H×W pixels and `i64` labels.
#[derive(Debug)]
pub struct DeviceImages {
    /// Pixels, `u8` `[N, C, H, W]`, on the device.
    pub images: Tensor,
    /// Class labels, `i64` `[N]`, on the device.
    pub labels: Tensor,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// `f32` table of `p / 255` for p in 0..=255, computed in Rust: CUDA divides by a scalar
    /// as a multiplication by its reciprocal, which rounds differently from the host path.
    lut: Tensor,
}

impl DeviceImages {
    /// Copies the whole `set` to `device`.
    pub fn new(set: &ImageSet, device: Device) -> Self {
        let shape = [
            set.len() as i64,
            set.channels as i64,
            set.height as i64,
            set.width as i64,
        ];
        let images = Tensor::from_slice(&set.images)
            .view(shape)
            .to_device(device);
        let labels = Tensor::from_slice(&set.labels).to_device(device);
        let table: Vec<f32> = (0..=255u8).map(|p| p as f32 / 255.0).collect();
        DeviceImages {
            images,
            labels,
            channels: set.channels,
            height: set.height,
            width: set.width,
            lut: Tensor::from_slice(&table).to_device(device),
        }
    }

    /// Copies only `set[indices]`, in that order (evaluation passes over one split).
    pub fn subset(set: &ImageSet, indices: &[usize], device: Device) -> Self {
        DeviceImages::new(&set.subset(indices), device)
    }

    /// The device holding the images.
    pub fn device(&self) -> Device {
        self.images.device()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `u8` pixels to `f32` in [0, 1], exactly as the host path's `p as f32 / 255.0`.
    fn to_unit(&self, pixels: &Tensor) -> Tensor {
        self.lut.take(&pixels.to_kind(Kind::Int64))
    }

    /// Images `start..start+len` (positions in this store), un-augmented, as `f32`.
    pub fn range(&self, start: usize, len: usize) -> Tensor {
        self.to_unit(&self.images.narrow(0, start as i64, len as i64))
    }

    /// Copies a small host `i64` vector to the device without waiting for queued kernels.
    fn upload(&self, values: &[i64]) -> Tensor {
        Tensor::from_slice(values).to_device_(self.device(), Kind::Int64, true, false)
    }

    /// The images at `indices` (positions in this store) as an un-augmented batch.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = self.upload(&idx);
        Batch {
            images: self.to_unit(&self.images.index_select(0, &idx)),
            labels: self.labels.index_select(0, &idx),
            indices: indices.to_vec(),
        }
    }

    /// The images at `indices`, image k cropped from the image zero-padded by `pad` at
    /// `crops[k]`'s offsets and mirrored when `crops[k].flip`, as [`super::augment::crop_flip_image`].
    pub fn augmented_batch(&self, indices: &[usize], crops: &[CropFlip], pad: usize) -> Batch {
        assert_eq!(indices.len(), crops.len(), "one crop per image");
        let (b, c, h, w) = (
            indices.len() as i64,
            self.channels as i64,
            self.height as i64,
            self.width as i64,
        );
        // One upload per batch: the sample indices, then per-image source rows (B×H) and
        // source columns (B×W) in the padded image.
        let mut host = Vec::with_capacity(indices.len() * (1 + self.height + self.width));
        host.extend(indices.iter().map(|&i| i as i64));
        for cf in crops {
            host.extend((0..self.height).map(|y| (y + cf.dy) as i64));
        }
        for cf in crops {
            host.extend((0..self.width).map(|x| {
                let xc = if cf.flip { self.width - 1 - x } else { x };
                (xc + cf.dx) as i64
            }));
        }
        let all = self.upload(&host);
        let idx = all.narrow(0, 0, b);
        let rows = all.narrow(0, b, b * h).view([b, 1, h, 1]);
        let cols = all.narrow(0, b + b * h, b * w).view([b, 1, 1, w]);
        let p = pad as i64;
        let padded = self
            .images
            .index_select(0, &idx)
            .constant_pad_nd([p, p, p, p]);
        let picked_rows = padded.gather(2, &rows.expand([b, c, h, w + 2 * p], false), false);
        let cropped = picked_rows.gather(3, &cols.expand([b, c, h, w], false), false);
        Batch {
            images: self.to_unit(&cropped),
            labels: self.labels.index_select(0, &idx),
            indices: indices.to_vec(),
        }
    }

    /// A batch of `indices`, augmented with choices drawn from `rng` as the host path draws
    /// them (nothing is drawn when `augment` is `None` or can never change an image).
    fn make(&self, indices: &[usize], augment: Option<&Augment>, rng: &mut SmallRng) -> Batch {
        match augment {
            Some(a) if !a.is_identity() => {
                let crops: Vec<CropFlip> = indices.iter().map(|_| CropFlip::draw(a, rng)).collect();
                self.augmented_batch(indices, &crops, a.pad)
            }
            _ => self.batch(indices),
        }
    }
}

/// Batches built on the device from a [`DeviceImages`], on the caller's thread (each batch is a
/// few asynchronous kernels, so no producer thread is needed).
pub struct DeviceStream {
    store: Rc<DeviceImages>,
    order: BatchOrder,
    augment: Option<Augment>,
    aug_rng: SmallRng,
}

impl Iterator for DeviceStream {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let indices = self.order.next_batch()?;
        Some(
            self.store
                .make(indices, self.augment.as_ref(), &mut self.aug_rng),
        )
    }
}

/// A batch stream from either source; both yield the same indices and pixels for a seed.
pub enum Batches {
    /// Host batches from a background producer (CPU training).
    Host(Prefetch<Batch>),
    /// Batches built on the device.
    Device(DeviceStream),
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        match self {
            Batches::Host(p) => p.next(),
            Batches::Device(d) => d.next(),
        }
    }
}

/// Where batches come from: host memory (CPU runs, where the background producer is already
/// off the critical path) or a copy of the images on the device (CUDA runs).
#[derive(Clone)]
pub enum BatchSource {
    /// Host images; batches are made on a background thread and moved by the consumer.
    Host(Arc<ImageSet>),
    /// Device-resident images; batches are made on the device, on the consumer's thread.
    Device(Rc<DeviceImages>),
}

impl BatchSource {
    /// The source suited to `device`: the images copied to it when it is a GPU, else the host.
    pub fn new(set: &Arc<ImageSet>, device: Device) -> Self {
        if device.is_cuda() {
            BatchSource::Device(Rc::new(DeviceImages::new(set, device)))
        } else {
            BatchSource::Host(Arc::clone(set))
        }
    }

    /// One epoch over `indices`, as [`super::batches::epoch_batches`] (same order and
    /// augmentation per seed).
    pub fn epoch(
        &self,
        indices: Vec<usize>,
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        augment: Option<Augment>,
        seed: u64,
    ) -> Batches {
        let order = BatchOrder::epoch(indices, batch_size, shuffle, drop_last, seed);
        self.stream(order, augment, seed)
    }

    /// Endless random batches from `pool`, as [`super::batches::random_batches`] (same samples
    /// per seed).
    pub fn random(
        &self,
        pool: Vec<usize>,
        batch_size: usize,
        augment: Option<Augment>,
        seed: u64,
    ) -> Batches {
        self.stream(BatchOrder::random(pool, batch_size, seed), augment, seed)
    }

    /// The batches of `order` from this source.
    fn stream(&self, order: BatchOrder, augment: Option<Augment>, seed: u64) -> Batches {
        match self {
            BatchSource::Host(set) => {
                Batches::Host(host_batches(Arc::clone(set), order, augment, seed))
            }
            BatchSource::Device(store) => Batches::Device(DeviceStream {
                store: Rc::clone(store),
                order,
                augment,
                aug_rng: augment_rng(seed),
            }),
        }
    }
}
