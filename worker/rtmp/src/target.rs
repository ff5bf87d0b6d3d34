//! Where to play or publish, split from a URL exactly as libavformat's `rtmp_open`
//! (rtmpproto.c) splits it, so a stream reached through our client is the one libav reaches:
//!
//! - the path is taken with its `?query` (libav keeps the query in the play path);
//! - one segment before the stream name is the app (`/live/key` → app `live`, stream `key`);
//! - with three segments or more, the app is the first two (`/app/inst/stream` → app
//!   `app/inst`, stream `stream`; `/live/a/b/c` → app `live/a`, stream `b/c`): Wowza and FMS
//!   address application instances that way. The exception: a `:` before the second `/` after
//!   the app (`/vod/mp4:dir/file`) keeps a one-segment app, the rest being a prefixed play path;
//! - `/ondemand/…` is app `ondemand` with the rest as stream;
//! - a stream name ending in `.flv` loses it, one ending in `.mp4` or `.f4v` gains `mp4:`;
//! - tcUrl is `scheme://host:port/app`, the port always written (1935 for rtmp, 443 for
//!   rtmps when the URL has none), as libav's `ff_url_join` does once it defaulted the port.
//!
//! libav's `slist=` query form (app before the query, play path in it) is not supported: such
//! URLs are split like any other.

use url::Url;

use crate::Target;

/// The port rtmp:// URLs use when they name none (libavformat's RTMP_DEFAULT_PORT).
const RTMP_DEFAULT_PORT: u16 = 1935;
/// The port rtmps:// URLs use when they name none (libavformat's RTMPS_DEFAULT_PORT).
const RTMPS_DEFAULT_PORT: u16 = 443;

impl Target {
    /// None when the URL has no app or no stream name. `url` is rtmp:// or rtmps://.
    pub fn from_url(url: &Url) -> Option<Target> {
        let default_port = match url.scheme() {
            "rtmp" => RTMP_DEFAULT_PORT,
            "rtmps" => RTMPS_DEFAULT_PORT,
            _ => return None,
        };
        let host = url.host_str().filter(|h| !h.is_empty())?;
        let port = url.port().unwrap_or(default_port);
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let (app, name) = split_path(&path);
        if app.is_empty() || name.is_empty() {
            return None;
        }
        let stream = play_path(name);
        if stream.is_empty() {
            return None;
        }
        let tc_url = format!("{}://{host}:{port}/{app}", url.scheme());
        Some(Target { tc_url, app: app.to_owned(), stream })
    }
}

/// The app and the stream name of a path (with its query), as `rtmp_open` splits them.
fn split_path(path: &str) -> (&str, &str) {
    if let Some(rest) = path.strip_prefix("/ondemand/") {
        return ("ondemand", rest);
    }
    let next = path.strip_prefix('/').unwrap_or(path);
    let Some(first_slash) = next.find('/') else { return ("", next) };
    let after = &next[first_slash + 1..];
    let colon = after.find(':');
    match after.find('/') {
        Some(second_slash) if colon.is_none_or(|c| c > second_slash) => {
            (&next[..first_slash + 1 + second_slash], &after[second_slash + 1..])
        }
        _ => (&next[..first_slash], after),
    }
}

/// The play path for a stream name: `.flv` dropped, `mp4:` added to MP4 names.
fn play_path(name: &str) -> String {
    let mp4 = name.ends_with(".mp4") || name.ends_with(".f4v");
    if mp4 && !name.contains(':') {
        format!("mp4:{name}")
    } else {
        name.strip_suffix(".flv").unwrap_or(name).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Option<(String, String, String)> {
        let url = Url::parse(url).unwrap();
        Target::from_url(&url).map(|t| (t.tc_url, t.app, t.stream))
    }

    fn some(tc_url: &str, app: &str, stream: &str) -> Option<(String, String, String)> {
        Some((tc_url.to_owned(), app.to_owned(), stream.to_owned()))
    }

    #[test]
    fn app_is_the_first_segment_and_the_port_is_always_in_tc_url() {
        assert_eq!(target("rtmp://h/live/key"), some("rtmp://h:1935/live", "live", "key"));
        assert_eq!(target("rtmp://h:1940/live/key"), some("rtmp://h:1940/live", "live", "key"));
        assert_eq!(target("rtmps://h/live/key"), some("rtmps://h:443/live", "live", "key"));
        assert_eq!(target("rtmps://h:8443/live/key"), some("rtmps://h:8443/live", "live", "key"));
        assert_eq!(target("rtmp://[::1]:1935/live/key"), some("rtmp://[::1]:1935/live", "live", "key"));
    }

    #[test]
    fn the_query_stays_in_the_play_path() {
        assert_eq!(target("rtmp://h/live/key?token=a&b=c"), some("rtmp://h:1935/live", "live", "key?token=a&b=c"));
    }

    #[test]
    fn nested_paths_take_two_segments_as_app_like_libav() {
        assert_eq!(target("rtmp://h/app/inst/stream"), some("rtmp://h:1935/app/inst", "app/inst", "stream"));
        assert_eq!(target("rtmp://h/live/a/b/c"), some("rtmp://h:1935/live/a", "live/a", "b/c"));
        assert_eq!(target("rtmp://h/vod/mp4:dir/file.mp4"), some("rtmp://h:1935/vod", "vod", "mp4:dir/file.mp4"));
        assert_eq!(target("rtmp://h/ondemand/a/b"), some("rtmp://h:1935/ondemand", "ondemand", "a/b"));
    }

    #[test]
    fn file_suffixes_are_rewritten_like_libav() {
        assert_eq!(target("rtmp://h/live/key.flv"), some("rtmp://h:1935/live", "live", "key"));
        assert_eq!(target("rtmp://h/vod/movie.mp4"), some("rtmp://h:1935/vod", "vod", "mp4:movie.mp4"));
    }

    #[test]
    fn urls_without_app_or_stream_or_of_another_scheme_are_refused() {
        assert_eq!(target("rtmp://h/key"), None);
        assert_eq!(target("rtmp://h/live/"), None);
        assert_eq!(target("rtmp://h"), None);
        assert_eq!(target("http://h/live/key"), None);
    }
}
