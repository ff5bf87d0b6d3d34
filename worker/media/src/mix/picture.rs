//! Pictures in YUV420P, the canvas format: scaling part of any decoded picture straight to
//! a pane's size, copying pictures and rectangles into the canvas plane by plane, solid
//! colours, and still images (PNG, JPEG) decoded with libav.

use ffmpeg_next::codec::{self, decoder};
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::color;
use ffmpeg_next::{format, frame, Error, Packet};

use super::geometry::Rect;

/// The canvas's pixel format, which every pane picture is scaled to.
pub(crate) const PIXEL: format::Pixel = format::Pixel::YUV420P;
/// Bilinear: cheap, and smooth enough for the downscaling panes mostly need.
const SCALER_FLAGS: scaling::Flags = scaling::Flags::BILINEAR;

/// A colour as YUV (BT.601, TV range: what untagged H.264 is read as).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Yuv([u8; 3]);

impl Yuv {
    /// `rgb` (0–255 each) in YUV.
    pub(crate) fn from_rgb([r, g, b]: [u8; 3]) -> Self {
        let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        let byte = |value: f64| value.round().clamp(0.0, 255.0) as u8;
        Self([byte(y), byte(u), byte(v)])
    }
}

/// A YUV420P picture of `size`.
pub(crate) fn blank((width, height): (u32, u32)) -> frame::Video {
    frame::Video::new(PIXEL, width, height)
}

/// Fills all of `picture` with `colour`.
pub(crate) fn fill(picture: &mut frame::Video, colour: Yuv) {
    for plane in 0..3 {
        picture.data_mut(plane).fill(colour.0[plane]);
    }
}

/// Copies the `size` area at `from` in `source` to `to` in `target` (both YUV420P; even
/// coordinates and sizes), clipped to both pictures.
pub(crate) fn copy(
    target: &mut frame::Video,
    to: (u32, u32),
    source: &frame::Video,
    from: (u32, u32),
    size: (u32, u32),
) {
    let width = size.0.min(source.width().saturating_sub(from.0)).min(target.width().saturating_sub(to.0));
    let height = size.1.min(source.height().saturating_sub(from.1)).min(target.height().saturating_sub(to.1));
    for plane in 0..3 {
        let shift = u32::from(plane > 0);
        let (w, h) = ((width >> shift) as usize, (height >> shift) as usize);
        let (sx, sy) = ((from.0 >> shift) as usize, (from.1 >> shift) as usize);
        let (tx, ty) = ((to.0 >> shift) as usize, (to.1 >> shift) as usize);
        let (source_stride, target_stride) = (source.stride(plane), target.stride(plane));
        let source_data = source.data(plane);
        let target_data = target.data_mut(plane);
        for row in 0..h {
            let s = (sy + row) * source_stride + sx;
            let t = (ty + row) * target_stride + tx;
            target_data[t..t + w].copy_from_slice(&source_data[s..s + w]);
        }
    }
}

/// Copies the `rect` of `source` to the same place in `target` (pictures of one size).
pub(crate) fn copy_rect(target: &mut frame::Video, source: &frame::Video, rect: Rect) {
    copy(target, (rect.x, rect.y), source, (rect.x, rect.y), rect.size());
}

/// Scales a part of pictures to YUV420P of some size. The libswscale context is made again
/// only when the source's format or size, or the output size, changes.
#[derive(Default)]
pub(crate) struct Scaler {
    context: Option<(scaling::Context, bool)>,
}

impl Scaler {
    /// Scales the `crop` of `source` into all of `target`.
    pub(crate) fn scale(&mut self, source: &frame::Video, crop: Rect, target: &mut frame::Video) -> Result<(), Error> {
        let full_range = is_full_range(source);
        let wanted = (source.format(), crop.width, crop.height, target.width(), target.height(), full_range);
        let fits = |(context, range): &(scaling::Context, bool)| {
            let (input, output) = (context.input(), context.output());
            (input.format, input.width, input.height, output.width, output.height, *range) == wanted
        };
        if !self.context.as_ref().is_some_and(fits) {
            let mut context = scaling::Context::get(
                source.format(),
                crop.width,
                crop.height,
                PIXEL,
                target.width(),
                target.height(),
                SCALER_FLAGS,
            )?;
            if full_range {
                crate::ffi::set_full_range_input(&mut context);
            }
            self.context = Some((context, full_range));
        }
        let (context, _) = self.context.as_mut().ok_or(Error::Bug)?;
        crate::ffi::scale_part(context, source, (crop.x, crop.y), target)
    }
}

/// Whether `picture` uses the full 0–255 range in a format that does not say so itself
/// (libswscale knows it for the `yuvj` formats).
fn is_full_range(picture: &frame::Video) -> bool {
    let says_so = matches!(
        picture.format(),
        format::Pixel::YUVJ420P | format::Pixel::YUVJ422P | format::Pixel::YUVJ444P | format::Pixel::YUVJ440P
    );
    let is_yuv = picture.format().descriptor().is_some_and(|d| d.nb_components() >= 3) && !is_rgb(picture.format());
    picture.color_range() == color::Range::JPEG && is_yuv && !says_so
}

fn is_rgb(format: format::Pixel) -> bool {
    format
        .descriptor()
        .is_some_and(|d| d.name().contains("rgb") || d.name().contains("bgr") || d.name().starts_with("gbr"))
}

/// Why a still image cannot be shown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImageError {
    #[error("the image is neither PNG nor JPEG")]
    UnknownFormat,
    #[error("the image does not decode")]
    Decode(#[source] Error),
}

/// Decodes a PNG or JPEG image (told apart by its first bytes) with libav's decoders.
pub(crate) fn decode_image(bytes: &[u8]) -> Result<frame::Video, ImageError> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    const JPEG_SIGNATURE: &[u8] = b"\xff\xd8\xff";
    let id = if bytes.starts_with(PNG_SIGNATURE) {
        codec::Id::PNG
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        codec::Id::MJPEG
    } else {
        return Err(ImageError::UnknownFormat);
    };
    decode_still(id, bytes).map_err(ImageError::Decode)
}

fn decode_still(id: codec::Id, bytes: &[u8]) -> Result<frame::Video, Error> {
    let codec = decoder::find(id).ok_or(Error::DecoderNotFound)?;
    let mut decoder = codec::context::Context::new_with_codec(codec).decoder().video()?;
    decoder.send_packet(&Packet::copy(bytes))?;
    decoder.send_eof()?;
    let mut picture = frame::Video::empty();
    decoder.receive_frame(&mut picture)?;
    if picture.width() == 0 || picture.height() == 0 {
        return Err(Error::InvalidData);
    }
    Ok(picture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_colours_take_their_bt601_tv_range_values() {
        assert_eq!(Yuv::from_rgb([0, 0, 0]), Yuv([16, 128, 128]));
        assert_eq!(Yuv::from_rgb([255, 255, 255]), Yuv([235, 128, 128]));
        assert_eq!(Yuv::from_rgb([255, 0, 0]), Yuv([81, 90, 240]));
        assert_eq!(Yuv::from_rgb([0, 0, 255]), Yuv([41, 240, 110]));
    }

    #[test]
    fn copy_places_a_picture_inside_another_plane_by_plane() {
        let mut canvas = blank((8, 4));
        fill(&mut canvas, Yuv([1, 2, 3]));
        let mut pane = blank((4, 2));
        fill(&mut pane, Yuv([9, 8, 7]));
        copy(&mut canvas, (2, 2), &pane, (0, 0), (4, 2));
        let luma: Vec<u8> = (0..4).flat_map(|y| canvas.data(0)[y * canvas.stride(0)..][..8].to_vec()).collect();
        #[rustfmt::skip]
        assert_eq!(luma, [
            1, 1, 1, 1, 1, 1, 1, 1,
            1, 1, 1, 1, 1, 1, 1, 1,
            1, 1, 9, 9, 9, 9, 1, 1,
            1, 1, 9, 9, 9, 9, 1, 1,
        ]);
        let u: Vec<u8> = (0..2).flat_map(|y| canvas.data(1)[y * canvas.stride(1)..][..4].to_vec()).collect();
        assert_eq!(u, [2, 2, 2, 2, 2, 8, 8, 2]);
    }

    #[test]
    fn copy_clips_to_the_target() {
        let mut canvas = blank((4, 4));
        fill(&mut canvas, Yuv([0, 0, 0]));
        let mut big = blank((8, 8));
        fill(&mut big, Yuv([5, 5, 5]));
        copy(&mut canvas, (2, 2), &big, (0, 0), (8, 8));
        assert_eq!(canvas.data(0)[3 * canvas.stride(0) + 3], 5);
        assert_eq!(canvas.data(0)[0], 0);
    }

    #[test]
    fn bytes_that_are_neither_png_nor_jpeg_are_refused() {
        assert!(matches!(decode_image(b"GIF89a...."), Err(ImageError::UnknownFormat)));
        assert!(matches!(decode_image(b"\x89PNG\r\n\x1a\ntruncated"), Err(ImageError::Decode(_))));
    }

    #[test]
    fn the_scaler_scales_a_cropped_part_into_the_target() {
        // Left half red, right half blue; take the right half only.
        let mut source = blank((64, 32));
        fill(&mut source, Yuv::from_rgb([255, 0, 0]));
        let mut blue = blank((32, 32));
        fill(&mut blue, Yuv::from_rgb([0, 0, 255]));
        copy(&mut source, (32, 0), &blue, (0, 0), (32, 32));
        let mut target = blank((16, 16));
        Scaler::default().scale(&source, Rect { x: 32, y: 0, width: 32, height: 32 }, &mut target).expect("scales");
        let expected = Yuv::from_rgb([0, 0, 255]).0;
        for (plane, wanted) in expected.into_iter().enumerate() {
            let value = target.data(plane)[0];
            assert!(value.abs_diff(wanted) <= 2, "plane {plane}: {value} vs {wanted}");
        }
    }
}
