//! `/console/`: the web console, static files served by the API on its own origin, so the
//! pages call the API with no CORS and deploy with it. The files are compiled in: the pages in
//! `static/` and hls.js, which `build.rs` vendors from npm. Every answer carries a strict
//! Content-Security-Policy: scripts and styles only from this origin, nothing inline.

mod assets;

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_http_edge::{route_key, ApiError};

pub use assets::{asset, Asset};

/// Where the console's files are.
pub const BASE: &str = "/console/";

/// Where `/console` sends a browser: a file under [`BASE`], so the page's relative links
/// resolve, and a path API Gateway routes whether or not it matches `/console/` itself to
/// `/console/{proxy+}`.
pub const START: &str = "/console/index.html";

/// Answers one request routed to this function; it needs no dependency.
pub async fn handle(_deps: &Deps, req: Request) -> Response<Body> {
    serve(&req)
}

/// The file `req`'s path names under [`BASE`] (`index.html` for the base itself).
pub fn serve(req: &Request) -> Response<Body> {
    let path = req.uri().path();
    if path == BASE.trim_end_matches('/') {
        return Response::builder()
            .status(301)
            .header("location", START)
            .body(Body::Empty)
            .unwrap_or_else(|err| ApiError::internal(&err).into_response(route_key(req)));
    }
    let name = path.strip_prefix(BASE).unwrap_or_default();
    let name = if name.is_empty() { "index.html" } else { name };
    let Some(file) = asset(name) else {
        let missing = ApiError { status: 404, code: "NOT_FOUND", message: "path: no such file in the console".into() };
        return missing.into_response(route_key(req));
    };
    let etag = file.etag();
    let unchanged = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    Response::builder()
        .status(if unchanged { 304 } else { 200 })
        .header("etag", &etag)
        .header("content-type", file.content_type)
        .header("content-security-policy", assets::content_security_policy())
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        // A deploy changes the files under the same names: revalidate every time.
        .header("cache-control", "no-cache")
        .body(if unchanged { Body::Empty } else { Body::Text(file.body.to_owned()) })
        .unwrap_or_else(|err| ApiError::internal(&err).into_response(route_key(req)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn get(path: &str) -> Response<Body> {
        let req = lambda_http::http::Request::builder().uri(format!("https://api.example.com{path}")).body(Body::Empty);
        serve(&Request::from(req.unwrap()))
    }

    fn header<'r>(response: &'r Response<Body>, name: &str) -> &'r str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[test]
    fn the_base_serves_the_index_page_as_html_under_a_policy_that_allows_no_inline_script() {
        let response = get("/console/");
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
        let policy = header(&response, "content-security-policy");
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-inline") && !policy.contains("unsafe-eval"), "{policy}");
        let Body::Text(html) = response.body() else { panic!("a text body") };
        assert!(html.contains("<script type=\"module\" src=\"console.js\">"), "the page loads its script from a file");
        assert!(!html.contains("<script>"), "no inline script");
    }

    #[test]
    fn a_file_the_browser_has_is_answered_304_without_a_body() {
        let etag = header(&get("/console/console.js"), "etag").to_owned();
        let req = lambda_http::http::Request::builder()
            .uri("https://api.example.com/console/console.js")
            .header("if-none-match", format!("\"other\", {etag}"))
            .body(Body::Empty);
        let response = serve(&Request::from(req.unwrap()));
        assert_eq!(response.status(), 304);
        assert!(matches!(response.body(), Body::Empty));
        assert_ne!(header(&get("/console/console.css"), "etag"), etag, "each file has its own");
    }

    #[test]
    fn the_base_without_its_slash_redirects_to_the_index_page() {
        let response = get("/console");
        assert_eq!((response.status().as_u16(), header(&response, "location")), (301, "/console/index.html"));
    }

    #[test]
    fn scripts_and_styles_carry_their_own_content_types() {
        for module in ["console.js", "api.js", "dom.js", "player.js", "job.js", "hls.min.js"] {
            let response = get(&format!("/console/{module}"));
            assert_eq!(header(&response, "content-type"), "text/javascript; charset=utf-8", "{module}");
        }
        assert_eq!(header(&get("/console/console.css"), "content-type"), "text/css; charset=utf-8");
    }

    #[test]
    fn an_unknown_file_or_a_path_out_of_the_console_is_a_404_in_the_apis_error_shape() {
        for path in ["/console/nope.js", "/console/../v2/apps", "/console/static/index.html"] {
            let response = get(path);
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(header(&response, "content-type"), "application/json");
        }
    }
}
