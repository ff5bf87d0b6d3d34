//! The console's files, compiled into the function, and the policy they are served under.

use std::sync::LazyLock;

/// A file of the console.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

impl Asset {
    /// A strong validator of the body, the same in every instance of one build (SipHash
    /// with fixed keys), so a browser revalidating (`no-cache`) downloads a file only when a
    /// deploy changed it.
    pub fn etag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.body.hash(&mut hasher);
        format!("\"{:016x}\"", hasher.finish())
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

include!(concat!(env!("OUT_DIR"), "/vendored.rs"));

/// Said by `hls.min.js` when the build had no hls.js to vendor (a debug build without
/// `make install`): the live view tells the user instead of failing silently.
const NO_PLAYER: &str = "window.roomrecNoPlayer = 'hls.js was not vendored into this build (run make install)';\n";

/// The file called `name` (a path under `/console/`), if the console has one.
pub fn asset(name: &str) -> Option<Asset> {
    let (content_type, body) = match name {
        "index.html" => (HTML, include_str!("../static/index.html")),
        "console.js" => (JS, include_str!("../static/console.js")),
        "api.js" => (JS, include_str!("../static/api.js")),
        "dom.js" => (JS, include_str!("../static/dom.js")),
        "player.js" => (JS, include_str!("../static/player.js")),
        "job.js" => (JS, include_str!("../static/job.js")),
        "console.css" => (CSS, include_str!("../static/console.css")),
        "hls.min.js" => (JS, HLS_MIN_JS.unwrap_or(NO_PLAYER)),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// Scripts, styles and fonts from this origin only and nothing inline; the API on this
/// origin; recordings (presigned S3 URLs, played by `<video>` or fetched by hls.js) from any
/// HTTPS origin, `blob:` for hls.js's media source, and the AWS endpoint the deployment names
/// when it is a local one (`AWS_ENDPOINT_URL`: moto over plain HTTP).
pub fn content_security_policy() -> &'static str {
    static POLICY: LazyLock<String> = LazyLock::new(|| {
        let endpoint = roomrec_adapters::s3_endpoint_override();
        let local = endpoint.and_then(|url| origin(&url)).map(|o| format!(" {o}")).unwrap_or_default();
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' https:{local}; media-src 'self' blob: https:{local}; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    });
    &POLICY
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next().filter(|h| !h.is_empty() && !h.contains([' ', ';', '\'']))?;
    matches!(scheme, "http" | "https").then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoints_origin_drops_its_path_and_refuses_what_could_break_the_policy() {
        assert_eq!(origin("http://127.0.0.1:5000/").as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(origin("https://s3.example.com").as_deref(), Some("https://s3.example.com"));
        assert_eq!(origin("http://a; script-src *"), None);
        assert_eq!(origin("file:///etc"), None);
    }
}
