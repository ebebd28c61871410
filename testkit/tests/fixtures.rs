//! The fixtures do what fault tests rely on: a killed server comes back with
//! its stream, and a cut proxy really cuts.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use rapat_testkit::{NatsServer, PostgresServer, TcpProxy};
use sqlx::Connection as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_killed_server_restarts_with_its_acknowledged_messages() {
    let mut nats = NatsServer::start().await;
    let client = async_nats::connect(nats.url()).await.expect("the private NATS answers");
    let js = jetstream::new(client);
    js.create_stream(stream::Config { name: "KEEP".into(), subjects: vec!["keep.>".into()], ..Default::default() })
        .await
        .expect("a stream can be created");
    for n in 0..10 {
        js.publish("keep.it", n.to_string().into()).await.expect("publish").await.expect("ack");
    }
    nats.kill();
    assert!(!nats.is_running());
    nats.restart().await;
    let client = async_nats::connect(nats.url()).await.expect("the restarted NATS answers");
    let mut keep = jetstream::new(client).get_stream("KEEP").await.expect("the stream survived");
    let info = keep.info().await.expect("stream info");
    assert_eq!(info.state.messages, 10, "every acknowledged message is still there");
}

#[tokio::test]
async fn a_cut_proxy_drops_connections_and_a_restored_one_forwards_again() {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let upstream_address = upstream.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 64];
                while let Ok(read) = socket.read(&mut buffer).await {
                    if read == 0 || socket.write_all(&buffer[..read]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let proxy = TcpProxy::start(&upstream_address).await;
    let mut connection = tokio::net::TcpStream::connect(proxy.address()).await.expect("connect");
    connection.write_all(b"ping").await.expect("write");
    let mut echoed = [0u8; 4];
    connection.read_exact(&mut echoed).await.expect("echo through the proxy");
    assert_eq!(&echoed, b"ping");

    proxy.cut();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), connection.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a cut proxy closes carried connections: {read:?}");

    proxy.restore();
    let mut again = tokio::net::TcpStream::connect(proxy.address()).await.expect("connect again");
    again.write_all(b"pong").await.expect("write");
    again.read_exact(&mut echoed).await.expect("echo after restore");
    assert_eq!(&echoed, b"pong");
}

#[tokio::test]
async fn a_postgres_stopped_immediately_starts_again_with_its_committed_rows() {
    let mut postgres = PostgresServer::start().await;
    let url = format!("{}/postgres", postgres.url());
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("the private Postgres answers");
    sqlx::query("CREATE TABLE kept (n INT)").execute(&mut connection).await.expect("create");
    sqlx::query("INSERT INTO kept SELECT generate_series(1, 10)").execute(&mut connection).await.expect("insert");

    postgres.stop_immediate().await;
    assert!(!postgres.is_running());
    assert!(sqlx::query("SELECT 1").execute(&mut connection).await.is_err(), "the stopped server is gone");
    assert!(sqlx::PgConnection::connect(&url).await.is_err(), "nobody listens while stopped");

    postgres.restart().await;
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("the restarted Postgres answers");
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM kept").fetch_one(&mut connection).await.expect("count");
    assert_eq!(count, 10, "every committed row survived the crash");
}
