//! The browser client: the files of `web/` (at the repository root), compiled into
//! the binary with `include_bytes!`, so `rapat serve` serves them wherever it
//! runs, with nothing to install next to it. `index.html` answers `/`.
//!
//! Every file gets its own exact route, not a wildcard: a path that is not one of
//! the client's files falls through to the gateway's JSON 404 like any unknown
//! path (so `/api/...` typos keep their envelope), and no method on an unknown
//! path turns into a 405. The client routes inside the URL fragment
//! (`/#/rooms/<id>`), so the server never has to answer `index.html` for paths
//! it does not know.
//!
//! Answers carry a strong ETag and `Cache-Control: no-cache`: browsers revalidate
//! every load (a 304 costs one round trip) and never run a stale client against a
//! newer server.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// One file of the client, as compiled in.
struct Asset {
    /// Relative to `web/`, with `/` separators; also its URL path.
    path: &'static str,
    body: &'static [u8],
}

/// Lists the client's files; a file missing from `web/` fails the build, and the
/// `every_client_file_is_served` test fails when `web/` has a file not listed here.
macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/", $path)) }),*]
    };
}

const ASSETS: &[Asset] = assets![
    "index.html",
    "favicon.svg",
    "css/app.css",
    "js/api.js",
    "js/auth-view.js",
    "js/chat.js",
    "js/errors.js",
    "js/lobby-view.js",
    "js/main.js",
    "js/media.js",
    "js/meeting-view.js",
    "js/meeting.js",
    "js/roster.js",
    "js/signaling.js",
    "js/tiles.js",
    "js/ui.js",
];

const INDEX: &str = "index.html";

/// Only the client's own files run and load; media may come from the camera and
/// from the peer connection (blob:/mediastream:); the page is never framed.
/// `connect-src 'self'` covers the same-origin WebSocket.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The camera, microphone and screen capture are for this origin only.
const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), display-capture=(self)";

/// A file ready to answer: its type and validator are worked out once, at start.
struct Served {
    body: &'static [u8],
    content_type: HeaderValue,
    etag: Option<HeaderValue>,
}

impl Served {
    fn new(asset: &Asset) -> Self {
        let digest = Sha256::digest(asset.body);
        let hex: String = digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect();
        Self {
            body: asset.body,
            content_type: HeaderValue::from_static(content_type(asset.path).unwrap_or("application/octet-stream")),
            etag: HeaderValue::from_str(&format!("\"{hex}\"")).ok(),
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Some(etag) = &self.etag {
            headers.insert(header::ETAG, etag.clone());
            if matches_etag(request, etag) {
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
        }
        headers.insert(header::CONTENT_TYPE, self.content_type.clone());
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(HeaderName::from_static("permissions-policy"), HeaderValue::from_static(PERMISSIONS_POLICY));
        (StatusCode::OK, headers, self.body).into_response()
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`). Weak comparison, as RFC 9110
/// asks for this header.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

fn content_type(path: &str) -> Option<&'static str> {
    let (_, extension) = path.rsplit_once('.')?;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        _ => return None,
    })
}

/// The client's routes: `/` and one route per file. Merged into the application
/// router, whose fallback (the JSON 404) answers every other path.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        let served = Arc::new(Served::new(asset));
        let handler = move |headers: HeaderMap| {
            let served = Arc::clone(&served);
            async move { served.respond(&headers) }
        };
        if asset.path == INDEX {
            router = router.route("/", get(handler.clone()));
        }
        router = router.route(&format!("/{}", asset.path), get(handler));
    }
    router
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    fn web_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
    }

    fn files_under(dir: &Path, base: &Path, found: &mut BTreeSet<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path, base, found);
            } else if let Ok(relative) = path.strip_prefix(base) {
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_client_file_is_served() {
        let mut on_disk = BTreeSet::new();
        files_under(&web_dir(), &web_dir(), &mut on_disk);
        let listed: BTreeSet<String> = ASSETS.iter().map(|asset| asset.path.to_string()).collect();
        assert_eq!(on_disk, listed, "web/ and the ASSETS list in gateway/src/web.rs differ");
    }

    #[test]
    fn every_client_file_has_a_content_type() {
        for asset in ASSETS {
            assert!(content_type(asset.path).is_some(), "no content type for {}", asset.path);
        }
    }

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let request = request.body(Body::empty()).expect("a valid request");
        router::<()>().oneshot(request).await.expect("the router is infallible")
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default()
    }

    #[tokio::test]
    async fn the_root_is_the_index_page() {
        let response = get("/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CONTENT_TYPE), "text/html; charset=utf-8");
        assert!(header_of(&response, header::CONTENT_SECURITY_POLICY).contains("frame-ancestors 'none'"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        assert!(body.starts_with(b"<!doctype html>"));
    }

    #[tokio::test]
    async fn scripts_and_styles_have_their_types() {
        let script = get("/js/main.js", None).await;
        assert_eq!(script.status(), StatusCode::OK);
        assert_eq!(header_of(&script, header::CONTENT_TYPE), "text/javascript; charset=utf-8");
        let style = get("/css/app.css", None).await;
        assert_eq!(header_of(&style, header::CONTENT_TYPE), "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn a_known_etag_answers_not_modified() {
        let first = get("/js/api.js", None).await;
        let etag = header_of(&first, header::ETAG).to_string();
        assert!(etag.starts_with('"'));
        let again = get("/js/api.js", Some(&format!("\"other\", {etag}"))).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let changed = get("/js/api.js", Some("\"other\"")).await;
        assert_eq!(changed.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn only_client_files_are_routed() {
        assert_eq!(get("/js/nope.js", None).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/api/v1/nope", None).await.status(), StatusCode::NOT_FOUND);
    }
}
