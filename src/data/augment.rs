//! Training augmentation: random crop from the zero-padded image, then a horizontal flip.

use super::rng::SmallRng;

/// Augmentation settings: crop from the image zero-padded by `pad` on each side, and
/// mirror left–right with probability 1/2 when `flip` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Zero padding added on each side before cropping back to the original size.
    pub pad: usize,
    /// Mirror left–right with probability 1/2.
    pub flip: bool,
}

impl Default for Augment {
    /// The reference's CIFAR augmentation: pad 4, flip.
    fn default() -> Self {
        Augment { pad: 4, flip: true }
    }
}

impl Augment {
    /// True when this augmentation can never change an image.
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && !self.flip
    }
}

/// The random choices for one image: crop offset into the padded image, and whether to flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropFlip {
    /// Row offset of the crop in the padded image, `0..=2·pad`.
    pub dy: usize,
    /// Column offset of the crop in the padded image, `0..=2·pad`.
    pub dx: usize,
    /// Mirror left–right after cropping.
    pub flip: bool,
}

impl CropFlip {
    /// Draws the crop offsets and the flip, in the order torchvision applies them
    /// (`RandomCrop(padding)` then `RandomHorizontalFlip`).
    pub fn draw(aug: &Augment, rng: &mut SmallRng) -> Self {
        let span = 2 * aug.pad as u64 + 1;
        let dy = rng.below(span) as usize;
        let dx = rng.below(span) as usize;
        let flip = aug.flip && rng.coin();
        CropFlip { dy, dx, flip }
    }
}

/// Writes one augmented C×H×W image into `out`: `out[c][y][x] = padded[c][y+dy][x'+dx]`
/// with `x' = W−1−x` when flipping, and zero where the crop reaches into the padding.
pub fn crop_flip_image(
    src: &[u8],
    out: &mut [u8],
    channels: usize,
    height: usize,
    width: usize,
    pad: usize,
    cf: CropFlip,
) {
    debug_assert_eq!(src.len(), channels * height * width);
    debug_assert_eq!(out.len(), src.len());
    for c in 0..channels {
        let plane = &src[c * height * width..(c + 1) * height * width];
        let oplane = &mut out[c * height * width..(c + 1) * height * width];
        for y in 0..height {
            // Source row in the unpadded image; outside it the padded image is zero.
            let sy = (y + cf.dy).checked_sub(pad).filter(|&r| r < height);
            let orow = &mut oplane[y * width..(y + 1) * width];
            let Some(sy) = sy else {
                orow.fill(0);
                continue;
            };
            let srow = &plane[sy * width..(sy + 1) * width];
            for (x, o) in orow.iter_mut().enumerate() {
                let xc = if cf.flip { width - 1 - x } else { x };
                *o = match (xc + cf.dx).checked_sub(pad) {
                    Some(sx) if sx < width => srow[sx],
                    _ => 0,
                };
            }
        }
    }
}

/// Augments a batch of `n` C×H×W `u8` images (`images.len() = n·C·H·W`), one independent
/// crop/flip per image drawn from `rng`.
pub fn augment_batch(
    images: &[u8],
    channels: usize,
    height: usize,
    width: usize,
    aug: &Augment,
    rng: &mut SmallRng,
) -> Vec<u8> {
    let len = channels * height * width;
    let mut out = vec![0u8; images.len()];
    if len == 0 {
        return out;
    }
    for (src, dst) in images.chunks_exact(len).zip(out.chunks_exact_mut(len)) {
        let cf = CropFlip::draw(aug, rng);
        crop_flip_image(src, dst, channels, height, width, aug.pad, cf);
    }
    out
}
