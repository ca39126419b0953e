//! The SNS bus in tests: `moto_server` (from PyPI, started by scripts/test.sh and named by
//! `QUINT_TEST_AWS_ENDPOINT`) stands in for AWS. Resources are made by `quint-relay admin aws
//! bootstrap` under a name of their own per test; queues are read through SQS's JSON protocol,
//! which moto answers without checking signatures.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::bin;
use crate::relay::{free_port, Relay};

pub struct Moto {
    pub endpoint: String,
}

/// What `admin aws bootstrap --json` printed.
pub struct Resources {
    pub topic_arn: String,
    pub sink_queue_url: String,
    pub dead_letter_queue_url: String,
    pub alert_queue_url: String,
}

impl Moto {
    /// `None` (the reason printed) when no moto_server was started for the tests.
    pub fn from_env() -> Option<Moto> {
        match std::env::var("QUINT_TEST_AWS_ENDPOINT") {
            Ok(endpoint) => Some(Moto { endpoint }),
            Err(_) => {
                eprintln!("SKIPPED: QUINT_TEST_AWS_ENDPOINT is not set (scripts/test.sh starts moto_server)");
                None
            }
        }
    }

    /// The AWS settings every relay and sink process gets.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn bootstrap(&self, name: &str) -> Resources {
        let output = Command::new(bin("quint-relay"))
            .args(["admin", "aws", "bootstrap", "--name", name, "--json"])
            .envs(self.env())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "bootstrap: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let created: Value = serde_json::from_slice(&output.stdout).unwrap();
        let field = |name: &str| created[name].as_str().unwrap().to_string();
        Resources {
            topic_arn: field("topic_arn"),
            sink_queue_url: field("sink_queue_url"),
            dead_letter_queue_url: field("dead_letter_queue_url"),
            alert_queue_url: field("alert_queue_url"),
        }
    }

    fn sqs(&self, action: &str, body: Value) -> Value {
        let agent = crate::http_agent(Duration::from_secs(30));
        let mut response = agent
            .post(&self.endpoint)
            .header("X-Amz-Target", &format!("AmazonSQS.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            // moto routes by the service named in the credential scope (unchecked).
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send(body.to_string())
            .unwrap_or_else(|e| panic!("SQS {action}: {e}"));
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert!(
            response.status().is_success(),
            "SQS {action}: {} {text}",
            response.status()
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("SQS {action}: {e}: {text}"))
    }

    /// Every message waiting in a queue, received and deleted.
    pub fn drain(&self, queue_url: &str) -> Vec<Value> {
        let mut all = Vec::new();
        loop {
            let answer = self.sqs(
                "ReceiveMessage",
                json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10,
                       "MessageAttributeNames": ["All"], "WaitTimeSeconds": 0}),
            );
            let messages = answer["Messages"].as_array().cloned().unwrap_or_default();
            if messages.is_empty() {
                return all;
            }
            for message in &messages {
                self.sqs(
                    "DeleteMessage",
                    json!({"QueueUrl": queue_url, "ReceiptHandle": message["ReceiptHandle"]}),
                );
            }
            all.extend(messages);
        }
    }

    /// Sends one message straight to a FIFO queue; returns its message id.
    pub fn send(&self, queue_url: &str, body: &str, group: &str) -> String {
        let answer = self.sqs(
            "SendMessage",
            json!({"QueueUrl": queue_url, "MessageBody": body, "MessageGroupId": group,
                   "MessageDeduplicationId": uuid::Uuid::now_v7().to_string()}),
        );
        answer["MessageId"].as_str().unwrap().to_string()
    }

    /// Messages waiting and messages received but not deleted.
    pub fn depth(&self, queue_url: &str) -> (u64, u64) {
        let answer = self.sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": queue_url, "AttributeNames": ["All"]}),
        );
        let count = |name: &str| {
            answer["Attributes"][name]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (
            count("ApproximateNumberOfMessages"),
            count("ApproximateNumberOfMessagesNotVisible"),
        )
    }
}

/// A `quint-relay sink` process on a relay's database.
pub struct Sink {
    child: Option<Child>,
    log: std::path::PathBuf,
    pub metrics_url: String,
    _dir: tempfile::TempDir,
}

impl Sink {
    pub fn start(relay: &Relay, moto: &Moto, queue_url: &str, flags: &[&str]) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sink.log");
        let port = free_port();
        let child = Command::new(bin("quint-relay"))
            .args([
                "sink",
                "--queue-url",
                queue_url,
                "--database-url",
                &relay.app_url,
                "--metrics-listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(flags)
            .envs(moto.env())
            .env("QUINT_LOG", "quint_relay=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut sink = Sink {
            child: Some(child),
            log,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
            _dir: dir,
        };
        let log = sink.log.clone();
        crate::wait_for_listener(
            sink.child.as_mut().unwrap(),
            port,
            "quint-relay sink",
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        sink
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and how it exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling a child this struct owns and has not reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().unwrap()
    }

    /// The event ids of each write, in the order the sink wrote them (its debug log).
    pub fn written(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains("events written"))
            .filter_map(|line| line.split("events=").nth(1))
            .flat_map(|ids| {
                ids.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.kill();
    }
}
