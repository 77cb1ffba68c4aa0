//! Who may scrape `/metrics` and see `/healthz` in detail: a bearer token, or (without one)
//! only direct loopback clients. A module of its own so `health` and `metrics` share it
//! without depending on each other.

use std::net::SocketAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// Who may scrape.
#[derive(Clone)]
pub enum Access {
    /// Requests with `Authorization: Bearer <token>`; the SHA-256 of the token is kept so the
    /// comparison takes the same time whatever the guess.
    Token([u8; 32]),
    /// Only direct connections from a loopback address.
    Loopback,
}

impl Access {
    pub fn new(token: Option<&Secret>) -> Access {
        match token {
            Some(t) => Access::Token(Sha256::digest(t.expose().as_bytes()).into()),
            None => Access::Loopback,
        }
    }

    /// Whether the request may see the metrics.
    pub(crate) fn check(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<(), Refusal> {
        match self {
            Access::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(|t| -> [u8; 32] { Sha256::digest(t.trim().as_bytes()).into() });
                match given {
                    Some(g) if constant_time_eq(&g, expected) => Ok(()),
                    _ => Err(Refusal::NoToken),
                }
            }
            Access::Loopback => {
                let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
                    .iter()
                    .any(|h| headers.contains_key(*h));
                let local = peer.is_some_and(|p| p.ip().is_loopback());
                if local && !proxied {
                    Ok(())
                } else {
                    Err(Refusal::NotLocal)
                }
            }
        }
    }
}

/// Why a scrape is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401: the token is missing or wrong.
    NoToken,
    /// 403: no token is configured and the client is not on loopback.
    NotLocal,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoToken => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"trialdesk metrics\"",
                )],
                "a bearer token is required (metrics.token)\n",
            )
                .into_response(),
            Refusal::NotLocal => (
                StatusCode::FORBIDDEN,
                "metrics are served to loopback clients only; set metrics.token to scrape from elsewhere\n",
            )
                .into_response(),
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn loopback_access_refuses_remote_and_proxied_clients() {
        let a = Access::new(None);
        let local: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let local6: SocketAddr = "[::1]:5555".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let none = HeaderMap::new();
        assert!(a.check(&none, Some(local)).is_ok());
        assert!(a.check(&none, Some(local6)).is_ok());
        assert_eq!(a.check(&none, Some(remote)), Err(Refusal::NotLocal));
        assert!(a.check(&none, None).is_err());
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(a.check(&proxied, Some(local)).is_err());
    }

    #[test]
    fn token_access_needs_the_exact_bearer_token_from_anywhere() {
        let a = Access::new(Some(&Secret::new("s3cret-token")));
        let remote: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert!(a.check(&with("Bearer s3cret-token"), Some(remote)).is_ok());
        assert_eq!(
            a.check(&with("Bearer s3cret-tokeN"), Some(remote)),
            Err(Refusal::NoToken)
        );
        assert!(a.check(&with("Basic s3cret-token"), Some(remote)).is_err());
        // Loopback alone is not enough once a token is configured.
        let local: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        assert!(a.check(&HeaderMap::new(), Some(local)).is_err());
    }
}
