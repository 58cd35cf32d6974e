//! Shared by the HTTP tests: Tessera's HTTP server on a loopback port (beside a gRPC server on
//! the same service), and a real HTTP client.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use tessera::api::ServerHandle;
use tessera::auth::Auth;
use tessera::http::{HttpConfig, HttpHandle};
use tessera::service::{ServiceConfig, Tessera};
use tessera::store::memory::MemoryStore;

pub struct HttpTest {
    pub tessera: Arc<Tessera>,
    pub http: HttpHandle,
    pub grpc: ServerHandle,
    pub client: reqwest::Client,
    pub base: String,
    /// Sent as `Authorization: Bearer …` by [`HttpTest::post`] when set.
    pub token: Option<String>,
}

/// A response: status, headers and body (the body parsed as JSON when it is JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The lines of a newline-delimited JSON body.
    pub fn lines(&self) -> Vec<Value> {
        self.text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line ({e}): {l}")))
            .collect()
    }

    /// Asserts an error body: the HTTP status, the gRPC code and message parts.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: i64, parts: &[&str]) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        let message = body["message"].as_str().expect("a message");
        for p in parts {
            assert!(message.contains(p), "`{message}` does not mention `{p}`");
        }
        assert!(body["details"].is_array(), "{body}");
        body
    }

    /// The reason in an error body's details.
    pub fn reason(&self) -> String {
        self.json()["details"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl HttpTest {
    pub async fn start() -> HttpTest {
        Self::with(
            Auth::insecure(),
            ServiceConfig::default(),
            HttpConfig::default(),
        )
        .await
    }

    pub async fn with(auth: Auth, config: ServiceConfig, http: HttpConfig) -> HttpTest {
        let tessera = Arc::new(Tessera::new(Arc::new(MemoryStore::new()), config));
        let auth = Arc::new(auth);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = HttpHandle::start(listener, tessera.clone(), auth.clone(), http).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = ServerHandle::start(listener, tessera.clone(), auth).unwrap();
        HttpTest {
            base: format!("http://{}", http.local_addr()),
            tessera,
            http,
            grpc,
            client: reqwest::Client::new(),
            token: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` (any text) to `path`.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(t) = &self.token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        reply(request.send().await.unwrap()).await
    }

    /// POSTs the JSON `body` to `path`.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// POSTs `body` and returns the first `{"result"}`/`{"error"}` line of a stream that is
    /// still open (for Watch), and the response to read further lines from.
    pub async fn open_stream(&self, path: &str, body: Value) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).body(body.to_string());
        if let Some(t) = &self.token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        headers,
        text,
    }
}

/// Reads one complete line from a streaming response, buffering the rest in `pending`.
pub async fn next_line(response: &mut reqwest::Response, pending: &mut Vec<u8>) -> Option<Value> {
    loop {
        if let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            return Some(serde_json::from_slice(&line[..end]).unwrap());
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("a stream line within 10s")
            .unwrap()?;
        pending.extend_from_slice(&chunk);
    }
}
