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

/// A decoder (not yet opened) for `stream`, told the time base of its packets.
fn decoder_for(stream: &format::stream::Stream) -> Result<decoder::Decoder, Error> {
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())?.decoder();
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
