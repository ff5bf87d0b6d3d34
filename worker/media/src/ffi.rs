//! The few FFmpeg calls and fields ffmpeg-next 9 has no safe wrapper for.
//!
//! Why unsafe is allowed here: ffmpeg-next exposes no accessor for a codec parameter's
//! size, channel count, extradata or codec tag, no way to flush a muxer or ask how much it
//! wrote, no way to scale part of a picture or tell the scaler a picture's colour range, and
//! no way to see the opens an input makes (`io_open`, `io_close2`) or count what it reads,
//! no way to demux bytes that come from Rust (a custom AVIOContext), no way to share a
//! packet's data rather than copy it or add side data to it, and no way to reach a
//! demuxer's private context.
//! Each function below touches only the live objects it borrows, and nothing else. Three calls
//! are not FFmpeg's: the calling thread's CPU clock, which std has no wrapper for either, and
//! glibc's `malloc_trim` and `madvise`, which give back memory an input's probe left behind.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ffmpeg_next::codec::Parameters;
use ffmpeg_next::format::context::{Input, Output};
use ffmpeg_next::software::scaling;
use ffmpeg_next::{ffi, frame, Dictionary, Error};

use crate::playlist::{Budget, Tripwire};

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

/// Bytes the muxer has handed to its file so far (`avio_tell`, which asks nothing of the
/// file): all on disk once its AVIOContext is flushed, as `flush_packets` does after every
/// packet.
pub(crate) fn bytes_written(output: &mut Output) -> u64 {
    // SAFETY: `output` is a valid, exclusively borrowed AVFormatContext; `pb` is checked
    // before use. A zero SEEK_CUR seek only reads the context's position fields.
    unsafe {
        let pb = (*output.as_mut_ptr()).pb;
        if pb.is_null() {
            return 0;
        }
        u64::try_from(ffi::avio_seek(pb, 0, ffi::SEEK_CUR)).unwrap_or(0)
    }
}

/// Scales the part of `source` whose top left corner is (`x`, `y`) — as wide and high as
/// `scaler`'s input — into the whole of `destination` (the scaler's output), without copying
/// the part out first.
pub(crate) fn scale_part(
    scaler: &mut scaling::Context,
    source: &frame::Video,
    (x, y): (u32, u32),
    destination: &mut frame::Video,
) -> Result<(), Error> {
    let input = *scaler.input();
    let output = *scaler.output();
    let fits = source.format() == input.format
        && x.checked_add(input.width).is_some_and(|right| right <= source.width())
        && y.checked_add(input.height).is_some_and(|bottom| bottom <= source.height());
    if !fits {
        return Err(Error::InputChanged);
    }
    if (destination.format(), destination.width(), destination.height()) != (output.format, output.width, output.height)
    {
        return Err(Error::OutputChanged);
    }
    let height = i32::try_from(input.height).map_err(|_| Error::InvalidData)?;
    // SAFETY: `source` and `destination` are valid frames whose buffers hold pictures of
    // their format and size (checked above against what the scaler was made for). The
    // plane pointers are moved by whole pixels inside the source picture: (x, y) plus the
    // scaler's input size lies within it, and the offsets follow the format's descriptor the
    // way `av_frame_apply_cropping` computes them (chroma planes shifted by the subsampling,
    // the palette plane of PAL formats left alone). `sws_scale` reads `height` rows from the
    // moved pointers and writes the whole destination.
    unsafe {
        let desc = ffi::av_pix_fmt_desc_get(ffi::AVPixelFormat::from(input.format));
        if desc.is_null() {
            return Err(Error::InvalidData);
        }
        let desc = &*desc;
        let flags = desc.flags;
        if flags & ffi::AV_PIX_FMT_FLAG_HWACCEL as u64 != 0 {
            return Err(Error::InvalidData);
        }
        let bitstream = flags & ffi::AV_PIX_FMT_FLAG_BITSTREAM as u64 != 0;
        if bitstream && x % 8 != 0 {
            return Err(Error::InvalidData);
        }
        let src = &*source.as_ptr();
        let mut planes = [std::ptr::null::<u8>(); 4];
        for (plane, pointer) in planes.iter_mut().enumerate() {
            if src.data[plane].is_null() {
                break;
            }
            let is_palette = flags & ffi::AV_PIX_FMT_FLAG_PAL as u64 != 0 && plane == 1;
            let (shift_x, shift_y) =
                if plane == 1 || plane == 2 { (desc.log2_chroma_w, desc.log2_chroma_h) } else { (0, 0) };
            let step = desc.comp[..usize::from(desc.nb_components)]
                .iter()
                .filter(|c| c.plane == plane as i32)
                .map(|c| c.step)
                .max()
                .unwrap_or(0);
            let column = i64::from(x >> shift_x) * i64::from(step) / if bitstream { 8 } else { 1 };
            let row = i64::from(y >> shift_y) * i64::from(src.linesize[plane]);
            let offset = if is_palette { 0 } else { row + column };
            *pointer = src.data[plane].cast_const().offset(isize::try_from(offset).map_err(|_| Error::InvalidData)?);
        }
        let dst = &*destination.as_mut_ptr();
        let written = ffi::sws_scale(
            scaler.as_mut_ptr(),
            planes.as_ptr(),
            src.linesize.as_ptr(),
            0,
            height,
            dst.data.as_ptr().cast(),
            dst.linesize.as_ptr(),
        );
        if written < 0 {
            return Err(Error::from(written));
        }
    }
    Ok(())
}

/// Tells `scaler` its input is full range (0–255, as decoded JPEG-range video is) rather
/// than TV range, which it assumes for YUV formats other than the `yuvj` ones.
pub(crate) fn set_full_range_input(scaler: &mut scaling::Context) {
    // SAFETY: `scaler` is a valid, exclusively borrowed SwsContext. The details are read
    // into locals and written back with only the source range changed; the tables
    // `sws_getColorspaceDetails` returns stay owned by the context.
    unsafe {
        let ctx = scaler.as_mut_ptr();
        let (mut inv_table, mut table) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut src_range, mut dst_range, mut brightness, mut contrast, mut saturation) = (0, 0, 0, 0, 0);
        let got = ffi::sws_getColorspaceDetails(
            ctx,
            &mut inv_table,
            &mut src_range,
            &mut table,
            &mut dst_range,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        );
        if got >= 0 {
            ffi::sws_setColorspaceDetails(ctx, inv_table, 1, table, dst_range, brightness, contrast, saturation);
        }
    }
}

/// Makes the decoder of `context` (not yet opened) refuse pictures of more than `max_pixels`
/// pixels before allocating them.
pub(crate) fn set_max_pixels(context: &mut ffmpeg_next::codec::context::Context, max_pixels: i64) {
    // SAFETY: `context` is a valid, exclusively borrowed AVCodecContext; `max_pixels` is a
    // plain integer field, read by the decoder when it allocates a picture.
    unsafe {
        (*context.as_mut_ptr()).max_pixels = max_pixels;
    }
}

/// Makes sure nobody else holds `frame`'s buffers before it is written to again, copying them
/// if someone does (an encoder that kept a reference).
pub(crate) fn make_writable(frame: &mut ffmpeg_next::Frame) -> Result<(), Error> {
    // SAFETY: `frame` is a valid, exclusively borrowed AVFrame with allocated buffers;
    // `av_frame_make_writable` only replaces its buffers with private copies when shared.
    let ret = unsafe { ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if ret < 0 {
        return Err(Error::from(ret));
    }
    Ok(())
}

/// A new reference to `packet`'s data, as `ffmpeg -c copy` hands one packet to several
/// outputs: ffmpeg-next's `clone` copies the data (`av_packet_make_writable`), an allocation
/// and a copy per packet and output. Muxers never write into a packet's data.
pub(crate) fn share_packet(packet: &ffmpeg_next::Packet) -> Result<ffmpeg_next::Packet, Error> {
    use ffmpeg_next::packet::{Mut, Ref};
    let mut shared = ffmpeg_next::Packet::empty();
    // SAFETY: both packets are valid; `av_packet_ref` makes `shared` (blank) a new reference
    // to `packet`'s buffer (copying the data only when it is not reference-counted) and copies
    // its fields and side data. `shared` owns that reference and frees it when dropped.
    let ret = unsafe { ffi::av_packet_ref(shared.as_mut_ptr(), packet.as_ptr()) };
    if ret < 0 {
        return Err(Error::from(ret));
    }
    Ok(shared)
}

/// Whether the demuxer of `input` may still find streams as it reads (`AVFMTCTX_NOHEADER`):
/// for FLV, when the file header did not name both audio and video.
pub(crate) fn streams_may_appear(input: &Input) -> bool {
    // SAFETY: `input` wraps a valid, open AVFormatContext; `ctx_flags` is a plain integer field.
    unsafe { (*input.as_ptr()).ctx_flags & ffi::AVFMTCTX_NOHEADER != 0 }
}

/// Adds `extradata` to `packet` as new-extradata side data, as libavformat's FLV demuxer
/// hands on a sequence header that came after the first.
pub(crate) fn add_new_extradata(packet: &mut ffmpeg_next::Packet, extradata: &[u8]) -> Result<(), Error> {
    use ffmpeg_next::packet::Mut;
    let kind = ffi::AVPacketSideDataType::AV_PKT_DATA_NEW_EXTRADATA;
    // SAFETY: `packet` is a valid, exclusively borrowed AVPacket; `av_packet_new_side_data`
    // allocates `extradata.len()` bytes it owns from then on and returns them (or null), and
    // exactly that many bytes are copied into them.
    unsafe {
        let data = ffi::av_packet_new_side_data(packet.as_mut_ptr(), kind, extradata.len());
        if data.is_null() {
            return Err(Error::Other { errno: ffi::ENOMEM });
        }
        std::ptr::copy_nonoverlapping(extradata.as_ptr(), data, extradata.len());
    }
    Ok(())
}

/// libavformat's `io_open` callback type.
type IoOpen = unsafe extern "C" fn(
    *mut ffi::AVFormatContext,
    *mut *mut ffi::AVIOContext,
    *const c_char,
    c_int,
    *mut *mut ffi::AVDictionary,
) -> c_int;

/// libavformat's `io_close2` callback type.
type IoClose2 = unsafe extern "C" fn(*mut ffi::AVFormatContext, *mut ffi::AVIOContext) -> c_int;

/// An AVIOContext's `read_packet` callback type.
type ReadPacket = unsafe extern "C" fn(*mut c_void, *mut u8, c_int) -> c_int;

/// What every open an input makes (the URL itself, and an HLS demuxer's playlists, segments
/// and keys) is checked against and given: the guard proxy and TLS verification, which the
/// HLS demuxer would not pass on to its segments by itself. Every HTTP(S) resource is counted
/// as it is read, so a playlist over its cap trips the input's [`Tripwire`].
pub(crate) struct NestedOpens {
    /// The URL handed to `avformat_open_input`.
    top: CString,
    options: Vec<(CString, CString)>,
    /// libavformat's own `io_open`, which does the opening once checked.
    default_open: Option<IoOpen>,
    /// libavformat's own `io_close2`, which does the closing.
    default_close: Option<IoClose2>,
    tripwire: Arc<Tripwire>,
    /// Tells this input's entries in [`COUNTED`] from other inputs'.
    id: u64,
}

impl NestedOpens {
    /// Opens of `top`, and of http(s) URLs, given `options`; `None` if a text holds a NUL.
    pub(crate) fn new(top: &str, options: &[(&str, String)]) -> Option<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let options = options
            .iter()
            .map(|(k, v)| Some((CString::new(*k).ok()?, CString::new(v.as_str()).ok()?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            top: CString::new(top).ok()?,
            options,
            default_open: None,
            default_close: None,
            tripwire: Arc::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Trips when something the input reads is refused (a playlist over its cap).
    pub(crate) fn tripwire(&self) -> Arc<Tripwire> {
        Arc::clone(&self.tripwire)
    }

    /// Whether an input may open `url`: its own URL, or HTTP(S) (plain or AES-encrypted), which
    /// the guard proxy judges; anything else an HLS playlist names is refused.
    fn allows(&self, url: &CStr) -> bool {
        if url == self.top.as_c_str() {
            return true;
        }
        let bytes = url.to_bytes();
        let scheme = bytes.split(|b| *b == b':').next().unwrap_or_default().to_ascii_lowercase();
        matches!(scheme.as_slice(), b"http" | b"https" | b"crypto" | b"crypto+http" | b"crypto+https")
    }
}

impl Drop for NestedOpens {
    fn drop(&mut self) {
        // The input's top resource is closed by `avformat_close_input` without `io_close2`.
        counted().retain(|_, entry| entry.owner != self.id);
    }
}

/// Whether `url` is plain HTTP(S), where playlists come from.
fn is_http(url: &CStr) -> bool {
    let bytes = url.to_bytes();
    let scheme = bytes.split(|b| *b == b':').next().unwrap_or_default().to_ascii_lowercase();
    matches!(scheme.as_slice(), b"http" | b"https")
}

/// A resource being counted: libavformat's read function for it, what was read so far, and
/// the input it belongs to.
struct Counted {
    read: ReadPacket,
    budget: Budget,
    owner: u64,
    tripwire: Arc<Tripwire>,
}

/// Counted resources by their AVIOContext's `opaque` (the URLContext its read function is
/// given, the only thing [`counted_read`] learns), for as long as they are open.
static COUNTED: Mutex<BTreeMap<usize, Counted>> = Mutex::new(BTreeMap::new());

fn counted() -> MutexGuard<'static, BTreeMap<usize, Counted>> {
    COUNTED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `pb`, just opened by libavformat for `nested`'s input, count what is read through it.
///
/// # Safety
/// `pb` must point to a valid AVIOContext opened for reading that nothing else reads yet.
unsafe fn count_reads(pb: *mut ffi::AVIOContext, nested: &NestedOpens) {
    // SAFETY: per the contract, `pb` is valid and not in use; replacing its read function
    // with one that calls the original with the same `opaque` changes nothing else.
    unsafe {
        let ctx = &mut *pb;
        let Some(read) = ctx.read_packet else { return };
        if ctx.opaque.is_null() {
            return;
        }
        let entry = Counted { read, budget: Budget::default(), owner: nested.id, tripwire: nested.tripwire() };
        counted().insert(ctx.opaque as usize, entry);
        ctx.read_packet = Some(counted_read);
    }
}

/// The read function of a counted resource: reads with libavformat's own, then counts.
unsafe extern "C" fn counted_read(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    let read = match counted().get(&(opaque as usize)) {
        Some(entry) if entry.tripwire.reason().is_none() => entry.read,
        _ => return ffi::AVERROR(ffi::EFBIG),
    };
    // SAFETY: libavformat calls this as the context's read function, with the context's
    // `opaque` and a buffer of `size` bytes, which is what the original read function takes;
    // it wrote `n` bytes into `buf` when `n` is positive.
    let n = unsafe { read(opaque, buf, size) };
    let Ok(len) = usize::try_from(n) else { return n };
    if len == 0 || buf.is_null() {
        return n;
    }
    // SAFETY: see above; `buf` holds `len` bytes just written.
    let bytes = unsafe { std::slice::from_raw_parts(buf, len) };
    let mut counted = counted();
    let Some(entry) = counted.get_mut(&(opaque as usize)) else { return n };
    if let Err(reason) = entry.budget.count(bytes) {
        tracing::warn!(%reason, "a stream pull was refused");
        entry.tripwire.trip(reason);
        return ffi::AVERROR(ffi::EFBIG);
    }
    n
}

/// Closes what an input opened through [`guarded_open`], forgetting its count.
unsafe extern "C" fn guarded_close(s: *mut ffi::AVFormatContext, pb: *mut ffi::AVIOContext) -> c_int {
    // SAFETY: libavformat calls this with the context `open_input` set it on (whose `opaque`
    // is the live `NestedOpens`, see `guarded_open`) and an AVIOContext it opened through
    // `io_open` and no longer uses; the original `io_close2` frees it.
    unsafe {
        if !pb.is_null() {
            counted().remove(&((*pb).opaque as usize));
        }
        let nested = (*s).opaque.cast::<NestedOpens>().cast_const();
        match nested.as_ref().and_then(|n| n.default_close) {
            Some(close) => close(s, pb),
            None => ffi::avio_close(pb),
        }
    }
}

/// Checks and extends every open of an input made through [`open_input`].
unsafe extern "C" fn guarded_open(
    s: *mut ffi::AVFormatContext,
    pb: *mut *mut ffi::AVIOContext,
    url: *const c_char,
    flags: c_int,
    options: *mut *mut ffi::AVDictionary,
) -> c_int {
    // SAFETY: libavformat calls this with the context `open_input` set it on, whose `opaque`
    // points to the `NestedOpens` the caller keeps alive longer than the context, and with a
    // NUL-terminated `url`. `options` is NULL or points to a dictionary pointer we may add
    // to (libavformat frees it); otherwise a local one is used and freed here.
    unsafe {
        let nested = (*s).opaque.cast::<NestedOpens>().cast_const();
        if nested.is_null() || url.is_null() {
            return ffi::AVERROR(ffi::EACCES);
        }
        let nested = &*nested;
        let Some(open) = nested.default_open else { return ffi::AVERROR(ffi::EACCES) };
        if nested.tripwire.reason().is_some() {
            return ffi::AVERROR(ffi::EACCES);
        }
        if !nested.allows(CStr::from_ptr(url)) {
            tracing::warn!("an input tried to open a URL that is neither its own nor HTTP(S)");
            return ffi::AVERROR(ffi::EACCES);
        }
        let mut local: *mut ffi::AVDictionary = std::ptr::null_mut();
        let dict = if options.is_null() { &raw mut local } else { options };
        for (key, value) in &nested.options {
            ffi::av_dict_set(dict, key.as_ptr(), value.as_ptr(), 0);
        }
        let ret = open(s, pb, url, flags, dict);
        if !local.is_null() {
            ffi::av_dict_free(&raw mut local);
        }
        // Only reads are counted; `*pb` was just opened and nothing has read it yet.
        let reading = flags & ffi::AVIO_FLAG_WRITE == 0;
        if ret >= 0 && reading && !pb.is_null() && !(*pb).is_null() && is_http(CStr::from_ptr(url)) {
            count_reads(*pb, nested);
        }
        ret
    }
}

/// Opens `url` as `ffmpeg_next::format::input_with_interrupt_and_dictionary` does (open, then
/// find the streams), with every open it makes going through [`guarded_open`] and `nested`.
/// `nested` must outlive the returned input.
pub(crate) fn open_input<F>(
    url: &str,
    options: Dictionary,
    interrupt: F,
    nested: &mut NestedOpens,
) -> Result<Input, Error>
where
    F: FnMut() -> bool + Send + 'static,
{
    let path = CString::new(url).map_err(|_| Error::InvalidData)?;
    // SAFETY: the context is allocated here and either handed to `Input`, which closes it
    // once, or closed here on failure (`avformat_open_input` frees it itself when it fails).
    // Its `opaque` points to `nested`, which the caller keeps alive longer than the input;
    // `io_open` and `io_close2` are read before they are replaced, and `guarded_open` and
    // `guarded_close` call them (`io_close` stays the default, so `io_close2` is used). The interrupt
    // closure's box is owned by the guard handed to `Input` alongside the context.
    unsafe {
        let ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(Error::Other { errno: ffi::ENOMEM });
        }
        let interrupt = ffmpeg_next::util::interrupt::new(Box::new(interrupt));
        (*ps).interrupt_callback = interrupt.interrupt;
        nested.default_open = (*ps).io_open;
        (*ps).opaque = std::ptr::from_mut(nested).cast();
        (*ps).io_open = Some(guarded_open);
        nested.default_close = (*ps).io_close2;
        (*ps).io_close2 = Some(guarded_close);
        open_and_find_streams(ps, &path, options, interrupt)
    }
}

/// Opens the allocated context `ps` (its format probed) and finds its streams; the context
/// is freed on failure, else handed to `Input` with `interrupt`'s guard.
///
/// # Safety
/// `ps` must be a context from `avformat_alloc_context` that nothing else owns, its
/// interrupt callback `interrupt`'s.
unsafe fn open_and_find_streams(
    mut ps: *mut ffi::AVFormatContext,
    url: &CStr,
    options: Dictionary,
    interrupt: ffmpeg_next::util::interrupt::Interrupt,
) -> Result<Input, Error> {
    // SAFETY: per the contract; `avformat_open_input` frees the context when it fails.
    unsafe {
        let mut opts = options.disown();
        let res = ffi::avformat_open_input(&raw mut ps, url.as_ptr(), std::ptr::null(), &raw mut opts);
        Dictionary::own(opts);
        if res < 0 {
            return Err(Error::from(res));
        }
        let found = ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if found < 0 {
            ffi::avformat_close_input(&raw mut ps);
            return Err(Error::from(found));
        }
        release_zero_pages((*ps).priv_data.cast(), usize::try_from((*(*ps).iformat).priv_data_size).unwrap_or(0));
        // The probe decoded a few pictures and closed its decoders; glibc keeps what they
        // freed in its arenas (megabytes per input) unless asked to give free pages back.
        libc::malloc_trim(0);
        Ok(Input::wrap_with_interrupt(ps, interrupt.guard))
    }
}

/// Gives the kernel back the pages of the `len` bytes at `data` that hold only zeros. For a
/// demuxer's private context: FLV's holds a 2 MiB buffer for resynchronising after damaged
/// data (flvdec.c, `RESYNC_BUFFER_SIZE`), zeroed when the input opens and not written unless
/// the stream is damaged, so 2 MiB resident per recording for nothing. A private page given
/// back reads as zeros again, so the demuxer sees no change, whatever its context's layout.
///
/// # Safety
/// `data` must be null or point to `len` bytes of heap memory that nothing else reads or
/// writes during the call.
unsafe fn release_zero_pages(data: *mut u8, len: usize) {
    // SAFETY: `sysconf` only reads a constant.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    if data.is_null() || len < page {
        return;
    }
    let (start, end) = ((data as usize).next_multiple_of(page), (data as usize + len) / page * page);
    for at in (start..end).step_by(page) {
        // SAFETY: the page lies inside the caller's bytes (per the contract), so reading it is
        // sound, and so is `madvise` on it: malloc's memory is private and anonymous.
        unsafe {
            let bytes = std::slice::from_raw_parts(at as *const u8, page);
            if bytes.iter().fold(0, |any, b| any | b) == 0 {
                libc::madvise(at as *mut c_void, page, libc::MADV_DONTNEED);
            }
        }
    }
}

/// How many bytes libavformat asks a custom input's read function for at a time.
const CUSTOM_IO_BUFFER: c_int = 64 << 10;

/// A custom input's read function: fills the buffer, answering the bytes written or an
/// AVERROR (`AVERROR_EOF` at the end, `AVERROR_EXIT` when interrupted).
pub(crate) type CustomRead = Box<dyn FnMut(&mut [u8]) -> c_int + Send>;

/// The AVIOContext of an input opened with [`open_custom_input`] and the read function it
/// calls. libavformat does not free a custom AVIOContext: this does, and must be dropped
/// after the input.
pub(crate) struct CustomIo {
    avio: *mut ffi::AVIOContext,
    read: *mut CustomRead,
}

// SAFETY: the context and the read function are used only by the input they were opened
// for, which moves between threads as a whole (the read function is `Send`).
unsafe impl Send for CustomIo {}

impl Drop for CustomIo {
    fn drop(&mut self) {
        // SAFETY: both were allocated by `open_custom_input` and are freed once, here; the
        // input that read through them is closed already (see the type's contract). The
        // buffer is the context's current one (libavformat may have replaced it).
        unsafe {
            if !self.avio.is_null() {
                ffi::av_freep((&raw mut (*self.avio).buffer).cast());
                ffi::avio_context_free(&raw mut self.avio);
            }
            drop(Box::from_raw(self.read));
        }
    }
}

unsafe extern "C" fn custom_read(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    let Ok(len) = usize::try_from(size) else { return ffi::AVERROR(ffi::EINVAL) };
    if opaque.is_null() || buf.is_null() {
        return ffi::AVERROR(ffi::EINVAL);
    }
    // SAFETY: `opaque` is the `CustomRead` that `open_custom_input` boxed and its `CustomIo`
    // keeps alive while the input can read; libavformat hands a writable buffer of `size`
    // bytes and reads through one context on one thread at a time.
    unsafe {
        let read = &mut *opaque.cast::<CustomRead>();
        read(std::slice::from_raw_parts_mut(buf, len))
    }
}

/// Opens an input whose bytes come from `read` instead of a protocol (the format is probed
/// from them, limited by `options`' `format_whitelist`), then finds its streams as
/// [`open_input`] does.
pub(crate) fn open_custom_input<F>(
    read: CustomRead,
    options: Dictionary,
    interrupt: F,
) -> Result<(Input, CustomIo), Error>
where
    F: FnMut() -> bool + Send + 'static,
{
    // SAFETY: the buffer, the read function and the AVIOContext are allocated here and owned
    // by the returned `CustomIo` (freed by it, also when opening fails: `avformat_open_input`
    // frees the format context but never a custom `pb`). The format context is handed to
    // `Input`, which closes it once, or closed here when finding the streams fails.
    unsafe {
        let buffer = ffi::av_malloc(CUSTOM_IO_BUFFER as usize).cast::<u8>();
        if buffer.is_null() {
            return Err(Error::Other { errno: ffi::ENOMEM });
        }
        let read = Box::into_raw(Box::new(read));
        let avio = ffi::avio_alloc_context(buffer, CUSTOM_IO_BUFFER, 0, read.cast(), Some(custom_read), None, None);
        if avio.is_null() {
            ffi::av_free(buffer.cast());
            drop(Box::from_raw(read));
            return Err(Error::Other { errno: ffi::ENOMEM });
        }
        let io = CustomIo { avio, read };
        let ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(Error::Other { errno: ffi::ENOMEM });
        }
        let interrupt = ffmpeg_next::util::interrupt::new(Box::new(interrupt));
        (*ps).interrupt_callback = interrupt.interrupt;
        (*ps).pb = avio;
        (*ps).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        Ok((open_and_find_streams(ps, c"", options, interrupt)?, io))
    }
}

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`); zero if the clock
/// cannot be read.
pub(crate) fn thread_cpu_time() -> std::time::Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through the pointer, which points at a live,
    // writable local; CLOCK_THREAD_CPUTIME_ID needs no other argument.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if read != 0 {
        return std::time::Duration::ZERO;
    }
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
    std::time::Duration::new(seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_pages_are_given_back_and_every_byte_reads_as_before() {
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        let mut bytes = vec![1u8; 64 * page];
        bytes.fill(0); // written, so resident
        let marks = [0, 7 * page + 5, 40 * page, 64 * page - 1];
        for at in marks {
            bytes[at] = 9;
        }
        unsafe { release_zero_pages(bytes.as_mut_ptr(), bytes.len()) };

        // Resident now (before any page is read again): the marked pages and the partial
        // pages at either end.
        let start = (bytes.as_ptr() as usize) / page * page;
        let pages = (bytes.as_ptr() as usize + bytes.len() - start).div_ceil(page);
        let mut resident = vec![0u8; pages];
        let ret = unsafe { libc::mincore(start as *mut c_void, pages * page, resident.as_mut_ptr()) };
        assert_eq!(ret, 0);
        let count = resident.iter().filter(|r| **r & 1 == 1).count();
        assert!(count <= marks.len() + 2, "{count} of {pages} pages still resident");
        for (at, byte) in bytes.iter().enumerate() {
            assert_eq!(*byte, if marks.contains(&at) { 9 } else { 0 }, "byte {at}");
        }
    }

    #[test]
    fn the_thread_cpu_clock_counts_this_threads_work_only() {
        // Busy until the clock shows 20 ms of work (a loaded machine gives less per wall ms).
        let before = thread_cpu_time();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while thread_cpu_time() - before < std::time::Duration::from_millis(20) {
            assert!(std::time::Instant::now() < deadline, "the thread's CPU clock does not advance");
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let idle = std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            thread_cpu_time()
        });
        assert!(idle.join().unwrap() < std::time::Duration::from_millis(20), "a sleeping thread uses none");
    }
}
