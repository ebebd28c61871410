//! The browser client: the files of `web/` (at the repository root), served by
//! the gateway. A release build embeds them in the binary (rust-embed), so
//! `rapat serve` serves them wherever it runs, with nothing to install next to
//! it; a debug build reads them from `web/` when it starts, so an edited client
//! needs no rebuild. Every file under `web/` is served, a new one without being
//! listed anywhere. `index.html` answers `/`.
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

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

/// The client's files; paths are relative to `web/`, with `/` separators, and are
/// also their URL paths.
#[derive(RustEmbed)]
#[folder = "../web/"]
struct Client;

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
    body: Bytes,
    content_type: HeaderValue,
    etag: Option<HeaderValue>,
}

impl Served {
    fn new(path: &str, file: rust_embed::EmbeddedFile) -> Self {
        let hex: String = file.metadata.sha256_hash().iter().take(12).map(|byte| format!("{byte:02x}")).collect();
        let body = match file.data {
            Cow::Borrowed(bytes) => Bytes::from_static(bytes),
            Cow::Owned(bytes) => Bytes::from(bytes),
        };
        Self {
            body,
            content_type: HeaderValue::from_static(content_type(path).unwrap_or("application/octet-stream")),
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
        (StatusCode::OK, headers, self.body.clone()).into_response()
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
    for path in Client::iter() {
        let Some(file) = Client::get(&path) else { continue };
        let served = Arc::new(Served::new(&path, file));
        let handler = move |headers: HeaderMap| {
            let served = Arc::clone(&served);
            async move { served.respond(&headers) }
        };
        if path == INDEX {
            router = router.route("/", get(handler.clone()));
        }
        router = router.route(&format!("/{path}"), get(handler));
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

    fn files_on_disk() -> BTreeSet<String> {
        let mut on_disk = BTreeSet::new();
        files_under(&web_dir(), &web_dir(), &mut on_disk);
        on_disk
    }

    #[test]
    fn every_client_file_is_embedded() {
        let embedded: BTreeSet<String> = Client::iter().map(|path| path.into_owned()).collect();
        assert_eq!(files_on_disk(), embedded, "web/ and the files served differ");
    }

    #[tokio::test]
    async fn every_client_file_is_served_with_its_content_type() {
        for path in files_on_disk() {
            assert!(content_type(&path).is_some(), "no content type for {path}");
            let response = get(&format!("/{path}"), None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(Some(header_of(&response, header::CONTENT_TYPE)), content_type(&path), "{path}");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
            assert_eq!(body, std::fs::read(web_dir().join(&path)).expect("the file reads"), "{path}");
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
