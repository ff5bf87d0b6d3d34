//! Re-encoding when copying will not do: H.264 at another size (or from another codec), and
//! AAC from another audio codec (or from ADTS). Each transcoder owns its decoder, converter
//! and encoder, and is drained explicitly at the end of its input.

mod audio;
mod video;

pub(crate) use audio::{open_aac, AudioTranscoder};
pub(crate) use video::{open_x264, VideoTranscoder, X264};

use ffmpeg_next::codec::{self, decoder, encoder};
use ffmpeg_next::util::error::EAGAIN;
use ffmpeg_next::{format, Error, Packet};

use crate::ffi;

/// Widest or highest picture decoded; a source announcing more is not decoded (its video is
/// copied as it is when no transcode is asked for).
pub(crate) const MAX_PICTURE_SIDE: u32 = 4096;
/// Most pixels in one decoded picture: the decoder refuses a larger one before allocating it,
/// whatever the stream announced first.
const MAX_PICTURE_PIXELS: i64 = 4096 * 4096;

/// A decoder (not yet opened) for `stream`, told the time base of its packets and bounded to
/// [`MAX_PICTURE_SIDE`] and [`MAX_PICTURE_PIXELS`].
pub(crate) fn decoder_for(stream: &format::stream::Stream) -> Result<decoder::Decoder, Error> {
    let params = stream.parameters();
    let info = ffi::describe(&params);
    if info.width > MAX_PICTURE_SIDE || info.height > MAX_PICTURE_SIDE {
        return Err(Error::InvalidData);
    }
    let mut context = codec::context::Context::from_parameters(params)?;
    ffi::set_max_pixels(&mut context, MAX_PICTURE_PIXELS);
    let mut decoder = context.decoder();
    decoder.set_packet_time_base(stream.time_base());
    Ok(decoder)
}

/// Moves every packet the encoder has ready into `out`.
pub(crate) fn receive_packets(encoder: &mut encoder::Encoder, out: &mut Vec<Packet>) -> Result<(), Error> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => out.push(packet),
            Err(Error::Other { errno: EAGAIN }) | Err(Error::Eof) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}
