//! A loopback TCP proxy that a test can cut and restore.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards every connection to `upstream` while open; when cut, drops every
/// connection it carries and closes new ones at once, as a dead backend would
/// look to the process behind it.
pub struct TcpProxy {
    address: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the proxy can listen on loopback");
        let address = listener.local_addr().expect("a bound listener has an address");
        let (open, _) = watch::channel(true);
        let open = Arc::new(open);
        let upstream = upstream.to_string();
        let accept_task = tokio::spawn(accept(listener, upstream, Arc::clone(&open)));
        Self { address, open, accept_task }
    }

    /// `127.0.0.1:<port>` to give the process under test instead of the upstream.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Drops every carried connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept_task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: String, open: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        if !*open.borrow() {
            drop(client);
            continue;
        }
        let upstream = upstream.clone();
        let mut open = open.subscribe();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&upstream).await else { return };
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = open.wait_for(|open| !*open) => {}
            }
        });
    }
}
