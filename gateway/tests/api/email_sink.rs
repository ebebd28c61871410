//! A real SMTP server on loopback for the email tests (`infra/smtp-sink.py` on
//! Debian's python3-aiosmtpd; `infra/services.sh smtp-python` installs it), the
//! email channel's worker on the app's outbox, and what the server received,
//! parsed with `mail-parser`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use rapat_delivery::email::{EmailConfig, EmailSender};
use rapat_delivery::{OutboxWorker, RetryPolicy, WorkerConfig};
use rapat_domain::account::AccountTokenKey;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{TEST_JWT_SECRET, TestApp};

/// What the tests' links start with (`RAPAT_PUBLIC_URL`).
pub const PUBLIC_URL: &str = "https://meet.example.test";
/// The longest a test waits for an email.
pub const MAIL_WAIT: Duration = Duration::from_secs(30);

/// The SMTP server, on a port of its own, writing what it takes to a directory.
pub struct SmtpSink {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let dir = std::env::temp_dir().join(format!("rapat-smtp-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("mail directory");
        let mut sink = Self { port, dir, child: None };
        sink.up().await;
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again, on the same port and directory).
    pub async fn up(&mut self) {
        let python = std::env::var("RAPAT_TEST_SMTP_PYTHON").unwrap_or_else(|_| {
            if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3".into() } else { "python3".into() }
        });
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/smtp-sink.py");
        let child = Command::new(&python)
            .arg(script)
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 starts (infra/services.sh smtp-python installs what the SMTP server needs)");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "the SMTP server exited ({status}); is python3-aiosmtpd installed? (infra/services.sh smtp-python)"
                );
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the SMTP server did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server: connections are refused until `up`.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every message received so far, oldest first.
    pub fn received(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("mail directory")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names.iter().map(|path| Mail::parse(&std::fs::read(path).expect("a message file"))).collect()
    }

    /// Waits until the received messages to `to` satisfy `done`, and returns them.
    pub async fn wait_for(&self, to: &str, what: &str, done: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let mails: Vec<Mail> = self.received().into_iter().filter(|mail| mail.to == to).collect();
            if done(&mails) {
                return mails;
            }
            assert!(started.elapsed() < MAIL_WAIT, "timed out waiting for {what} to {to}; got {mails:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the first message to `to` whose subject starts with `subject`.
    pub async fn mail(&self, to: &str, subject: &str) -> Mail {
        let mails =
            self.wait_for(to, subject, |mails| mails.iter().any(|mail| mail.subject.starts_with(subject))).await;
        mails.into_iter().find(|mail| mail.subject.starts_with(subject)).expect("found above")
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One received message.
#[derive(Debug)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    /// Without the angle brackets.
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// The content types of the message's parts, in order (the root included).
    pub content_types: Vec<String>,
    /// (file name, content type, contents) of each attachment.
    pub attachments: Vec<(String, String, String)>,
}

impl Mail {
    fn parse(raw: &[u8]) -> Self {
        let message = MessageParser::default().parse(raw).expect("a parsable message");
        let address = |list: Option<&mail_parser::Address<'_>>| {
            list.and_then(|list| list.first()).and_then(|addr| addr.address()).unwrap_or_default().to_owned()
        };
        let content_types = message
            .parts
            .iter()
            .filter_map(|part| part.content_type())
            .map(|ctype| format!("{}/{}", ctype.ctype(), ctype.subtype().unwrap_or_default()))
            .collect();
        let attachments = message
            .attachments()
            .map(|part| {
                let ctype = part.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()));
                (
                    part.attachment_name().unwrap_or_default().to_owned(),
                    ctype.unwrap_or_default(),
                    String::from_utf8_lossy(part.contents()).into_owned(),
                )
            })
            .collect();
        Self {
            to: address(message.to()),
            from: address(message.from()),
            subject: message.subject().unwrap_or_default().to_owned(),
            message_id: message.message_id().unwrap_or_default().to_owned(),
            text: message.body_text(0).map(|text| text.into_owned()).unwrap_or_default(),
            html: message.body_html(0).map(|html| html.into_owned()).unwrap_or_default(),
            content_types,
            attachments,
        }
    }

    /// The first link in the plain text that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let start = self.text.find(prefix).unwrap_or_else(|| panic!("no link {prefix} in {}", self.text));
        self.text[start..].split_whitespace().next().expect("a link").to_owned()
    }

    /// The `token` of the link that starts with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        let link = self.link(prefix);
        link.split_once("token=").expect("a token in the link").1.to_owned()
    }
}

/// Runs the email channel's worker on `app`'s outbox, sending to `smtp_url`,
/// with retries seconds apart; cancel the token to stop it.
pub fn start_email_worker(app: &TestApp, smtp_url: &str) -> CancellationToken {
    let config = EmailConfig {
        smtp_url: smtp_url.to_owned(),
        from: "rapat <noreply@meet.example.test>".to_owned(),
        public_url: PUBLIC_URL.to_owned(),
        token_key: AccountTokenKey::derive(TEST_JWT_SECRET),
        timeout: Duration::from_secs(5),
    };
    let sender = EmailSender::new(app.db.clone(), config).expect("the email settings are valid");
    let policy = RetryPolicy {
        base: Duration::from_millis(200),
        max_delay: Duration::from_millis(1000),
        give_up_after: Duration::from_secs(120),
    };
    let worker_config = WorkerConfig {
        retry: policy,
        lease: Duration::from_secs(20),
        batch: 16,
        poll_every: Duration::from_millis(500),
    };
    let stop = CancellationToken::new();
    tokio::spawn(OutboxWorker::new(app.db.clone(), Arc::new(sender), worker_config).run(stop.clone()));
    stop
}
