//! The baseline: a bare axum WebSocket server that does what the gateway's chat
//! fan-out does at its simplest. Each socket joins its room's broadcast channel;
//! a text message is parsed, stamped with the room, sender and time, and sent to
//! every socket of the room. No authentication, no persistence, no limits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>>;

#[derive(Deserialize)]
struct Params {
    #[serde(rename = "roomId")]
    room_id: String,
    token: String,
}

pub fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let rooms: Rooms = Arc::default();
        let app = Router::new().route("/ws", get(upgrade)).with_state(rooms);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening on {}", listener.local_addr()?);
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

async fn upgrade(State(rooms): State<Rooms>, Query(params): Query<Params>, upgrade: WebSocketUpgrade) -> Response {
    let channel = {
        let mut rooms = rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rooms.entry(params.room_id.clone()).or_insert_with(|| broadcast::channel(1024).0).clone()
    };
    upgrade.on_upgrade(move |socket| serve(socket, channel, params))
}

async fn serve(socket: WebSocket, channel: broadcast::Sender<Arc<str>>, params: Params) {
    let (mut sink, mut stream) = socket.split();
    // What rapat's `config` is to the clients: the sign that the socket is held.
    if sink.send(Message::text(r#"{"type":"config"}"#)).await.is_err() {
        return;
    }
    let mut deliveries = channel.subscribe();
    let writer = tokio::spawn(async move {
        while let Ok(text) = deliveries.recv().await {
            if sink.send(Message::text(text.as_ref())).await.is_err() {
                break;
            }
        }
    });
    // The token stands in for the user: no session lookup here.
    let user = params.token.get(..16).unwrap_or_default().to_string();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else { continue };
        let Ok(incoming) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        let outgoing = json!({
            "type": incoming["type"],
            "roomId": params.room_id,
            "userId": user,
            "username": "Bench",
            "payload": incoming["payload"],
            "timestamp": chrono::Utc::now().to_rfc3339(),
        });
        let _ = channel.send(Arc::from(outgoing.to_string()));
    }
    writer.abort();
}
