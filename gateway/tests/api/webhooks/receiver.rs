//! A webhook receiver on loopback, as an integration would run one: it verifies
//! every request's signatures with the `standardwebhooks` crate against each
//! secret it is given (all must verify), records what came (`webhook-id`, body,
//! its answer), and answers the status it is told to. It can be stopped (the
//! port refuses connections) and started again on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct Received {
    pub webhook_id: String,
    pub signature: String,
    pub body: Value,
    /// The status this receiver answered.
    pub answered: u16,
    /// Whether every configured secret verified the request.
    pub verified: bool,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
    secrets: Mutex<Vec<String>>,
}

pub struct Receiver {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Receiver {
    /// Started on a free loopback port, answering 204.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("address");
        let shared = Arc::new(Shared { status: AtomicU16::new(204), ..Default::default() });
        let mut receiver = Self { address, shared, running: None };
        receiver.serve(listener);
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.address)
    }

    /// Every later request must verify with each of these secrets.
    pub fn verify_with(&self, secrets: &[&str]) {
        *self.shared.secrets.lock().expect("lock") = secrets.iter().map(|secret| secret.to_string()).collect();
    }

    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Stops listening and closes every connection: deliveries meet a refused port.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.address).await.expect("the same port again");
        self.serve(listener);
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().route("/hooks", post(receive)).with_state(Arc::clone(&self.shared));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some((stop, task));
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.take() {
            task.abort();
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secrets = shared.secrets.lock().expect("lock").clone();
    let verified = secrets.iter().all(|secret| {
        standardwebhooks::Webhook::new(secret).is_ok_and(|webhook| webhook.verify(&body, &headers).is_ok())
    });
    let status = if verified { shared.status.load(Ordering::SeqCst) } else { 401 };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
    shared.received.lock().expect("lock").push(Received {
        webhook_id: header("webhook-id"),
        signature: header("webhook-signature"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered: status,
        verified,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
