//! A loopback HTTP/1.1 server a test scripts, for the services no real server exists for on
//! this machine: token endpoints (Databricks OAuth, Azure AD), a Unity Catalog that vends
//! credentials, GCS, an LLM endpoint, webhooks. Each request is read whole (headers, then
//! Content-Length bytes of body), kept for the test to inspect, and answered with the status
//! and JSON body the test's closure chooses, then the connection is closed.
//!
//! Hand-written rather than `wiremock` or `httpmock` (neither is in Cargo.lock): either would
//! add a dependency tree to every test build for what is about 130 lines here.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target as sent: the path and any query string.
    pub target: String,
    /// Each header's name and value, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes of it), as text.
    pub body: String,
    /// The whole request as text, for tests that search all of it.
    pub raw: String,
}

impl Request {
    /// The target without its query string.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The first header named `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Answer = dyn Fn(&Request) -> (u16, String) + Send + Sync;

/// A running mock on `url()`; stopped, with every open connection, when dropped.
pub struct HttpMock {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    accept: JoinHandle<()>,
}

impl HttpMock {
    /// Listens on a free loopback port; `answer` gives each request's status and JSON body.
    pub async fn start(answer: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a mock port");
        let url = format!("http://{}", listener.local_addr().expect("the mock port"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Answer> = Arc::new(answer);
        let log = requests.clone();
        let accept = tokio::spawn(async move {
            // Dropped with this task when the mock is: so are the connections it serves.
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                connections.spawn(serve(socket, answer.clone(), log.clone()));
            }
        });
        HttpMock {
            url,
            requests,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The requests received so far, in the order they were read.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("the request log").clone()
    }
}

impl Drop for HttpMock {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads one request, keeps it, answers it and closes the connection.
async fn serve(mut socket: TcpStream, answer: Arc<Answer>, log: Arc<Mutex<Vec<Request>>>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    // Kept before answering, so a client that has its answer finds its request in the log.
    log.lock().expect("the request log").push(request.clone());
    let (status, body) = answer(&request);
    let reply = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// Headers up to the blank line, then Content-Length bytes of body, however the packets split
/// them. `None` when the client closes before the headers end.
async fn read_request(socket: &mut TcpStream) -> Option<Request> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while bytes.len() < body_start + length {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    let body_end = bytes.len().min(body_start + length);
    Some(Request {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&bytes[body_start..body_end]).to_string(),
        raw: String::from_utf8_lossy(&bytes[..body_end]).to_string(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request written in pieces (headers split mid-line, the body after a pause) is read
    /// whole, and the answer is the closure's.
    #[tokio::test]
    async fn a_request_split_across_packets_is_read_whole_and_answered() {
        let mock = HttpMock::start(|r| {
            let status = if r.path() == "/token" { 200 } else { 404 };
            (status, format!(r#"{{"got":{}}}"#, r.body.len()))
        })
        .await;
        let addr = mock.url().trim_start_matches("http://").to_string();
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        for piece in [
            "POST /token?x=1 HTTP/1.1\r\nHost: a\r\nCont",
            "ent-Length: 11\r\nAuthorization: Bearer t\r\n\r\nhello",
            " world",
        ] {
            socket.write_all(piece.as_bytes()).await.unwrap();
            socket.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut reply = String::new();
        socket.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("Connection: close\r\n"), "{reply}");
        assert!(reply.ends_with(r#"{"got":11}"#), "{reply}");

        let seen = mock.requests();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!(
            (r.method.as_str(), r.target.as_str()),
            ("POST", "/token?x=1")
        );
        assert_eq!(r.path(), "/token");
        assert_eq!(r.header("AUTHORIZATION"), Some("Bearer t"));
        assert_eq!(r.body, "hello world");
        assert!(r.raw.starts_with("POST /token?x=1 ") && r.raw.ends_with("hello world"));
    }

    #[tokio::test]
    async fn a_dropped_mock_refuses_connections() {
        let mock = HttpMock::start(|_| (200, "{}".into())).await;
        let addr = mock.url().trim_start_matches("http://").to_string();
        drop(mock);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(TcpStream::connect(&addr).await.is_err());
    }
}
