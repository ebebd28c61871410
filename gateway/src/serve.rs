//! The HTTP server: an accept loop running hyper on each connection, with the
//! limits `axum::serve` lacks (`HttpLimits`): a cap on open connections, a time
//! limit on a request's head, on its body, and on a connection that moves no
//! bytes. Graceful shutdown, `ConnectInfo<SocketAddr>` and WebSocket upgrades
//! work as they did with `axum::serve`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::HttpLimits;
use crate::error::ApiError;

/// Serves `router` on `listener` until `shutdown`, then lets the connections
/// finish their requests (idle ones close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: wait a little rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = Watched::new(stream, slot);
        let activity = Arc::clone(&io.activity);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(io), service).with_upgrades();
        connections.spawn(drive(connection, activity, limits.idle_timeout, shutdown.clone()));
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Runs one connection to its end: the client closes it, hyper closes it (a
/// header timeout, an error), it idles past `idle_timeout`, or shutdown drains
/// it. An upgraded connection (a WebSocket) leaves hyper, and this task, at the
/// upgrade: its socket task owns it from then on.
async fn drive<C>(connection: C, activity: Arc<Activity>, idle_timeout: Duration, shutdown: CancellationToken)
where
    C: Future<Output = hyper::Result<()>> + GracefulShutdown,
{
    let mut connection = std::pin::pin!(connection);
    let mut draining = false;
    loop {
        let idle_deadline = activity.last() + idle_timeout;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(idle_deadline) => {
                if activity.last() + idle_timeout <= Instant::now() {
                    tracing::debug!("closing an HTTP connection idle for {idle_timeout:?}");
                    return;
                }
            }
        }
    }
}

/// hyper's connections, seen through the one method `drive` needs.
trait GracefulShutdown {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

/// A connection over the cap: told so in one best-effort write, then closed.
fn refuse(stream: TcpStream) {
    const BODY: &str = r#"{"success":false,"error":{"code":"busy","message":"the server is busy (too many connections); try again shortly"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 2\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    // Never waits: a client that does not read gets nothing but the close.
    let _ = stream.try_write(answer.as_bytes());
    // Counted rather than logged one by one: a flood would flood the log too.
    metrics::counter!("rapat_http_connections_refused_total").increment(1);
    tracing::debug!("refused a connection: every connection slot is taken");
}

/// When a connection last moved a byte, as milliseconds since `origin`.
struct Activity {
    origin: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let millis = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.origin + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }
}

/// A TCP stream that records its activity and holds a connection slot for as
/// long as it is open, WebSocket upgrades included.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl Watched {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            stream,
            activity: Arc::new(Activity { origin: Instant::now(), last_millis: AtomicU64::new(0) }),
            _slot: slot,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Middleware: a request's body must arrive whole within `timeout` of its head.
/// A client dribbling it a byte at a time is answered 408 and the connection
/// closed.
pub async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|length| length.as_bytes() != b"0");
    if !has_body {
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = Body::from_stream(Deadline {
        inner: body.into_data_stream(),
        sleep: Box::pin(tokio::time::sleep(timeout)),
        expired: Arc::clone(&expired),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if expired.load(Ordering::Relaxed) {
        let mut response = ApiError::request_timeout().into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    response
}

#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
struct BodyTimedOut;

/// A body stream that fails once its deadline passes.
struct Deadline<S> {
    inner: S,
    sleep: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl<S> Stream for Deadline<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, axum::BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item.map(|chunk| chunk.map_err(Into::into)));
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }
}
