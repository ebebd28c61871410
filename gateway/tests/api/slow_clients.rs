//! Clients that hold connections without finishing their requests are cut off,
//! over raw TCP: a head that never ends, a body dribbled a byte at a time, a
//! connection that idles, and connections beyond the cap. WebSockets are not
//! HTTP requests once upgraded and keep living.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app_with};
use crate::rooms::{join, room_body};

/// Longer than any limit set below, far shorter than "never".
const CUT_OFF_WITHIN: Duration = Duration::from_secs(15);

/// Reads until the server closes the connection (or resets it) and returns what
/// came, or panics if it is still open after `CUT_OFF_WITHIN`.
async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(CUT_OFF_WITHIN, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server still holds the connection after {CUT_OFF_WITHIN:?}");
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends a whole `GET /healthz` on a kept-alive connection and reads its answer
/// (a head with a content-length, and that many bytes of body).
async fn healthz(stream: &mut TcpStream) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: rapat\r\n\r\n").await.expect("write");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(CUT_OFF_WITHIN, async {
        loop {
            let text = String::from_utf8_lossy(&received).to_lowercase();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .expect("a content-length");
                if body.len() >= length {
                    return;
                }
            }
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "closed before answering: {text}");
            received.extend_from_slice(&buffer[..read]);
        }
    })
    .await
    .expect("an answer in time");
    String::from_utf8_lossy(&received).into_owned()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address).await.expect("connects")
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    let app = spawn_app_with(|config| config.http.header_timeout = Duration::from_secs(1)).await;
    let started = Instant::now();
    let mut stream = connect(&app).await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: rapat\r\nx-slow: ").await.expect("write");
    read_until_closed(&mut stream).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "not closed before the timeout: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_body_dribbled_a_byte_at_a_time_is_answered_408_and_cut_off() {
    let app = spawn_app_with(|config| config.http.body_timeout = Duration::from_secs(1)).await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    let head = "POST /api/v1/auth/login HTTP/1.1\r\nhost: rapat\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
    writer.write_all(head.as_bytes()).await.expect("write");
    // A thousand bytes at five a second would take over three minutes.
    let dribble = tokio::spawn(async move {
        for _ in 0..1000 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let answer = read_until_closed(&mut reader).await;
    dribble.abort();
    assert!(answer.starts_with("HTTP/1.1 408"), "answered: {answer}");
    assert!(answer.contains("\"request_timeout\""), "in the SPEC's envelope: {answer}");
}

#[tokio::test]
async fn a_connection_that_moves_no_bytes_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|config| {
        config.http.idle_timeout = Duration::from_secs(1);
        config.http.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&app).await;
    assert!(healthz(&mut stream).await.starts_with("HTTP/1.1 200"));
    read_until_closed(&mut stream).await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_while_open_ones_are_served() {
    let app = spawn_app_with(|config| config.http.max_connections = 2).await;
    let mut first = connect(&app).await;
    assert!(healthz(&mut first).await.starts_with("HTTP/1.1 200"));
    let mut second = connect(&app).await;
    assert!(healthz(&mut second).await.starts_with("HTTP/1.1 200"));

    let mut third = connect(&app).await;
    let refused = read_until_closed(&mut third).await;
    assert!(refused.is_empty() || refused.starts_with("HTTP/1.1 503"), "refused: {refused}");
    assert!(healthz(&mut first).await.starts_with("HTTP/1.1 200"), "an open connection is still served");

    // A closed connection gives its slot back.
    drop(second);
    let started = Instant::now();
    loop {
        let mut next = connect(&app).await;
        if next.write_all(b"GET /healthz HTTP/1.1\r\nhost: rapat\r\nconnection: close\r\n\r\n").await.is_ok()
            && read_until_closed(&mut next).await.starts_with("HTTP/1.1 200")
        {
            break;
        }
        assert!(started.elapsed() < CUT_OFF_WITHIN, "the freed slot was never reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_websocket_outlives_the_http_timeouts() {
    let app = spawn_app_with(|config| {
        config.http.idle_timeout = Duration::from_secs(1);
        config.http.header_timeout = Duration::from_secs(1);
        config.http.body_timeout = Duration::from_secs(1);
        config.ws_ping_interval = Duration::from_secs(30);
    })
    .await;
    let host = app.new_user("Hana").await;
    let room = app.create_room(&host, room_body("Quiet")).await;
    join(&app, &host, &room, json!({})).await.expect(200);
    let url = format!("ws://{}/ws?roomId={room}&token={}", app.address, host.token);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket upgrade");

    // Three times the idle timeout without a byte from the client.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(frame) = tokio::time::timeout_at(quiet_until, socket.next()).await {
        assert!(matches!(frame, Some(Ok(_))), "the socket ended while quiet: {frame:?}");
    }
    let chat = json!({ "type": "chat", "payload": { "message": "still here" } });
    socket.send(Message::text(chat.to_string())).await.expect("send");
    let echoed = tokio::time::timeout(CUT_OFF_WITHIN, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) if text.contains("still here") => return,
                Some(Ok(_)) => continue,
                other => panic!("the socket ended: {other:?}"),
            }
        }
    })
    .await;
    assert!(echoed.is_ok(), "the chat came back");
}
