//! A real HTTP server on a loopback port serving the app's router, and a minimal HTTP/1.1
//! client, so the API tests go over the wire as `curl` does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::common::TestEnv;

/// A response read off the socket.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// Serves the app's web router (review pages + API) on 127.0.0.1:0 for the test's lifetime.
pub async fn serve(env: &TestEnv) -> SocketAddr {
    let router = env.app.web_router(Arc::new(Notify::new())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// One request over a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server may answer (413) before reading all of a large body and close.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        data = &data[end + 2..];
        out.extend_from_slice(&data[..size.min(data.len())]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// A client bound to one server and (optionally) one bearer token.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
    /// Sent as `Cookie:` when set.
    pub cookie: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Api {
        Api {
            addr,
            token: token.map(str::to_string),
            cookie: None,
        }
    }

    pub async fn send(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Resp {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        if let Some(c) = &self.cookie {
            headers.push(("Cookie", c));
        }
        if !content_type.is_empty() {
            headers.push(("Content-Type", content_type));
        }
        request(self.addr, method, path, &headers, body).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, "", b"").await
    }

    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Resp {
        self.send("PUT", path, "application/json", body.to_string().as_bytes())
            .await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Resp {
        self.send(
            "POST",
            path,
            "application/json",
            body.to_string().as_bytes(),
        )
        .await
    }
}

/// Stores a token straight in the database (the CLI is tested on its own); returns it.
pub async fn token(env: &TestEnv, name: &str, read_only: bool) -> String {
    let t = trialdesk::api::new_token();
    env.app
        .store
        .add_api_token(name, &trialdesk::api::token_hash(&t), read_only, 0)
        .await
        .unwrap();
    t
}
