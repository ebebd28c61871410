//! Graceful shutdown of `rapat serve` (SPEC §8): on SIGTERM `/readyz` turns 503
//! first, new requests are refused while a request in flight finishes, sockets
//! close with 1012, and the process exits 0 within its grace period, or exits
//! anyway, saying so, when the grace runs out.

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use rapat_testkit::eventually_async;
use serde_json::{Value, json};
use support::Served;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Long enough to watch the drain on a busy machine.
const DRAIN_SECONDS: u64 = 4;
const GRACE_SECONDS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_closes_sockets_with_1012_and_exits_0() {
    let mut served = Served::start(&[
        ("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"),
        ("RAPAT_SHUTDOWN_DRAIN_SECONDS", &DRAIN_SECONDS.to_string()),
        ("RAPAT_SHUTDOWN_GRACE_SECONDS", &GRACE_SECONDS.to_string()),
    ])
    .await;
    let ayu = served.new_user("Ayu").await;
    let room = served.post("/api/v1/rooms", Some(&ayu.token), None, json!({ "name": "Standup", "maxUsers": 5 })).await;
    let room = room["id"].as_str().expect("room id").to_string();
    served.post(&format!("/api/v1/rooms/{room}/join"), Some(&ayu.token), None, json!({})).await;

    // A joined participant's socket, admitted (its first message arrived).
    let url = format!("ws://{}/ws?roomId={room}&token={}", served.address, ayu.token);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket upgrade");
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a first message in time");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "admitted: {first:?}");

    // A request in flight: its head is in, its body is not, when the signal comes.
    // It asks `Expect: 100-continue`, so the server says when its handler starts
    // reading the body: the request is past the drain's check by then (the drain
    // refuses requests that start later).
    let body = json!({ "name": "Retro", "maxUsers": 3 }).to_string();
    let (head_part, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(&served.address).await.expect("connects");
    let head = format!(
        "POST /api/v1/rooms HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n{head_part}",
        served.address,
        ayu.token,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.expect("head sent");
    let interim = tokio::time::timeout(Duration::from_secs(10), read_head(&mut in_flight))
        .await
        .expect("an interim answer in time");
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "the handler reads the body: {interim}");

    served.terminate();
    let signalled = Instant::now();

    // Draining: not ready, new work refused, the process still up.
    let client = reqwest::Client::new();
    let readyz = async || client.get(served.url("/readyz")).send().await.expect("readyz answers while draining");
    eventually_async("/readyz to turn 503", Duration::from_secs(DRAIN_SECONDS), async || {
        readyz().await.status() == 503
    })
    .await;
    let draining: Value = readyz().await.json().await.expect("json");
    assert_eq!(draining["state"], "draining", "{draining}");
    let refused =
        client.get(served.url("/api/v1/rooms/history")).bearer_auth(&ayu.token).send().await.expect("answers");
    assert_eq!(refused.status(), 503, "a new request is refused while draining");
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refused["error"]["code"], "service_unavailable", "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|message| message.contains("shutting down")), "{refused}");
    assert!(served.is_running(), "still running while draining");

    // The request in flight finishes.
    in_flight.write_all(rest.as_bytes()).await.expect("rest of the body sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = in_flight.read(&mut buffer).await.expect("reads");
            answer.extend_from_slice(&buffer[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok() && answer.starts_with("HTTP/1.1 201"), "the request in flight completed: {answer}");

    // The socket is closed with 1012, so the client reconnects elsewhere.
    let close = tokio::time::timeout(Duration::from_secs(GRACE_SECONDS), async {
        while let Some(frame) = socket.next().await {
            if let Ok(Message::Close(frame)) = frame {
                return frame;
            }
        }
        None
    })
    .await
    .expect("the socket closes within the grace period")
    .expect("with a close frame");
    assert_eq!(u16::from(close.code), 1012, "service restart: {close:?}");

    let status = served.exit_within(Duration::from_secs(GRACE_SECONDS)).await.expect("exits within the grace period");
    assert!(status.success(), "a clean drain exits 0: {status}\n{}", served.log());
    assert!(signalled.elapsed() < Duration::from_secs(GRACE_SECONDS), "took {:?}", signalled.elapsed());
    assert!(served.logged("SIGTERM: shutting down"), "{}", served.log());
}

#[tokio::test]
async fn when_the_grace_period_runs_out_the_process_exits_anyway_and_says_so() {
    // A drain longer than the grace: the grace wins.
    let mut served = Served::start(&[
        ("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"),
        ("RAPAT_SHUTDOWN_DRAIN_SECONDS", "60"),
        ("RAPAT_SHUTDOWN_GRACE_SECONDS", "1"),
    ])
    .await;
    served.terminate();
    let signalled = Instant::now();
    let status =
        served.exit_within(Duration::from_secs(10)).await.expect("exits within the grace period and some slack");
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "not before the grace ran out: {:?}",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(1), "an unfinished shutdown is not a clean exit\n{}", served.log());
    assert!(served.logged("grace period"), "the log says the grace ran out:\n{}", served.log());
}

#[tokio::test]
async fn ctrl_c_shuts_down_as_sigterm_does() {
    let mut served =
        Served::start(&[("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"), ("RAPAT_SHUTDOWN_DRAIN_SECONDS", "0")]).await;
    served.signal("INT");
    let status = served.exit_within(Duration::from_secs(GRACE_SECONDS)).await.expect("exits within the grace period");
    assert!(status.success(), "a clean drain exits 0: {status}\n{}", served.log());
    assert!(served.logged("SIGINT: shutting down"), "{}", served.log());
}

/// Reads one answer's head (up to its blank line), byte by byte so that nothing
/// after it is taken.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("reads the answer");
        head.push(byte);
    }
    String::from_utf8_lossy(&head).into_owned()
}
