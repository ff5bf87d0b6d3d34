//! The few FFmpeg calls and fields ffmpeg-next 9 has no safe wrapper for.
//!
//! Why unsafe is allowed here: ffmpeg-next exposes no accessor for a codec parameter's
//! size, channel count, extradata or codec tag, and no way to flush a muxer. Each function
//! below touches exactly one live object it borrows, and nothing else.
#![allow(unsafe_code)]

use ffmpeg_next::codec::Parameters;
use ffmpeg_next::format::context::Output;
use ffmpeg_next::{ffi, Error};

/// The parts of a stream's codec parameters that decide whether two sources fit one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParamsInfo {
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u32,
    /// Bits per second, 0 when unknown.
    pub bit_rate: i64,
    /// SPS/PPS or AudioSpecificConfig: different bytes mean a decoder must restart.
    pub extradata: Vec<u8>,
}

/// Reads [`ParamsInfo`] from `params`.
pub(crate) fn describe(params: &Parameters) -> ParamsInfo {
    // SAFETY: `params` wraps a valid AVCodecParameters for its whole lifetime (owned, or kept
    // alive through its owner). We read plain integer fields, and copy `extradata_size` bytes
    // from `extradata`, which FFmpeg keeps allocated at least that long when non-null.
    unsafe {
        let raw = &*params.as_ptr();
        let extradata = match (raw.extradata.is_null(), usize::try_from(raw.extradata_size)) {
            (false, Ok(size)) if size > 0 => std::slice::from_raw_parts(raw.extradata, size).to_vec(),
            _ => Vec::new(),
        };
        ParamsInfo {
            width: u32::try_from(raw.width).unwrap_or(0),
            height: u32::try_from(raw.height).unwrap_or(0),
            sample_rate: u32::try_from(raw.sample_rate).unwrap_or(0),
            channels: u32::try_from(raw.ch_layout.nb_channels).unwrap_or(0),
            bit_rate: raw.bit_rate,
            extradata,
        }
    }
}

/// Forgets the input container's codec tag, so the muxer picks its own: a tag that is right
/// in MPEG-TS (0x1b for H.264) is refused by the MP4 muxer. The `ffmpeg` program does the same
/// for stream copy.
pub(crate) fn clear_codec_tag(params: &mut Parameters) {
    // SAFETY: `params` is a valid, exclusively borrowed AVCodecParameters; `codec_tag` is a
    // plain integer field.
    unsafe {
        (*params.as_mut_ptr()).codec_tag = 0;
    }
}

/// Writes out every packet the muxer holds (interleaving queue, and for fragmented MP4 the
/// fragment being built), then flushes its AVIOContext, so all bytes written so far are on
/// disk and, for MP4, end on a fragment boundary.
pub(crate) fn flush_muxer(output: &mut Output) -> Result<(), Error> {
    // SAFETY: `output` is a valid, exclusively borrowed AVFormatContext whose header has been
    // written. A NULL packet is the documented way to flush both the interleaving queue
    // (`av_interleaved_write_frame`) and a muxer with AVFMT_ALLOW_FLUSH (`av_write_frame`;
    // mov, mpegts). `pb` is checked before it is flushed.
    unsafe {
        let ctx = output.as_mut_ptr();
        let ret = ffi::av_interleaved_write_frame(ctx, std::ptr::null_mut());
        if ret < 0 {
            return Err(Error::from(ret));
        }
        let ret = ffi::av_write_frame(ctx, std::ptr::null_mut());
        if ret < 0 {
            return Err(Error::from(ret));
        }
        if !(*ctx).pb.is_null() {
            ffi::avio_flush((*ctx).pb);
        }
    }
    Ok(())
}
