//! Decoding one image file (PNG, JPEG) to planar 8-bit gray or RGB.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// One decoded image as planar C×H×W bytes.
pub(crate) struct Decoded {
    /// `channels * height * width` bytes, one plane per channel.
    pub pixels: Vec<u8>,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl Decoded {
    /// The image as RGB: a gray plane repeated three times, as PIL's `convert("RGB")` does.
    pub fn into_rgb(self) -> Decoded {
        if self.channels == 3 {
            return self;
        }
        let mut pixels = Vec::with_capacity(3 * self.pixels.len());
        for _ in 0..3 {
            pixels.extend_from_slice(&self.pixels);
        }
        Decoded {
            pixels,
            channels: 3,
            ..self
        }
    }
}

/// Interleaved `in_ch`-byte pixels (rows `stride` bytes apart) to `out_ch` planes, dropping
/// any channel past `out_ch` (alpha).
fn planar(buf: &[u8], h: usize, w: usize, stride: usize, in_ch: usize, out_ch: usize) -> Vec<u8> {
    let mut pixels = vec![0u8; out_ch * h * w];
    for y in 0..h {
        let row = &buf[y * stride..y * stride + w * in_ch];
        for x in 0..w {
            for c in 0..out_ch {
                pixels[c * h * w + y * w + x] = row[x * in_ch + c];
            }
        }
    }
    pixels
}

/// Decodes a PNG to 8-bit gray (1 channel) or RGB (3 channels), dropping any alpha.
pub(crate) fn decode_png(path: &Path) -> Result<Decoded> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    // Palette and sub-byte gray are expanded, 16-bit samples stripped to 8 bits.
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec
        .read_info()
        .with_context(|| format!("{}: not a readable PNG", path.display()))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: corrupt PNG image data", path.display()))?;
    let (h, w) = (info.height as usize, info.width as usize);
    let (in_ch, out_ch) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => bail!("{}: palette was not expanded", path.display()),
    };
    Ok(Decoded {
        pixels: planar(&buf, h, w, info.line_size, in_ch, out_ch),
        channels: out_ch,
        height: h,
        width: w,
    })
}

/// Decodes a baseline or progressive JPEG to 8-bit gray or RGB.
pub(crate) fn decode_jpeg(path: &Path) -> Result<Decoded> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut dec = jpeg_decoder::Decoder::new(std::io::BufReader::new(file));
    let buf = dec
        .decode()
        .with_context(|| format!("{}: not a readable JPEG", path.display()))?;
    let info = dec
        .info()
        .with_context(|| format!("{}: JPEG without a frame header", path.display()))?;
    let (h, w) = (info.height as usize, info.width as usize);
    let ch = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => bail!(
            "{}: {other:?} JPEG; only 8-bit gray and RGB JPEGs are read: convert it to RGB",
            path.display()
        ),
    };
    if buf.len() != h * w * ch {
        bail!(
            "{}: JPEG decoded to {} bytes, expected {h}×{w}×{ch}",
            path.display(),
            buf.len()
        );
    }
    Ok(Decoded {
        pixels: planar(&buf, h, w, w * ch, ch, ch),
        channels: ch,
        height: h,
        width: w,
    })
}
