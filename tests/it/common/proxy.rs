//! A TCP proxy in front of a real service, for faults the service cannot be made to produce
//! on demand while other tests share it: `Down` closes every connection (the server going
//! away), `Hang` accepts and never answers (a hung server: the client's timeout must act),
//! `Http500` answers every request with a 500. `Up` forwards bytes unchanged.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mode {
    Up = 0,
    Down = 1,
    Hang = 2,
    Http500 = 3,
}

pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    /// Forwards to `upstream` (host:port).
    pub async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        let mode = Arc::new(AtomicU8::new(Mode::Up as u8));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (m, list) = (mode.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let mode = m.load(Ordering::Relaxed);
                let upstream = upstream.clone();
                let h = tokio::spawn(async move {
                    if mode == Mode::Down as u8 {
                        return; // dropped: the client sees the connection close
                    }
                    if mode == Mode::Hang as u8 {
                        let mut buf = vec![0u8; 8192];
                        while matches!(down.read(&mut buf).await, Ok(n) if n > 0) {}
                        return;
                    }
                    if mode == Mode::Http500 as u8 {
                        let mut buf = vec![0u8; 8192];
                        let _ = down.read(&mut buf).await;
                        let body = "{\"error_code\":50001,\"message\":\"injected\"}";
                        let resp = format!(
                            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = down.write_all(resp.as_bytes()).await;
                        return;
                    }
                    if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                list.lock().unwrap_or_else(|p| p.into_inner()).push(h);
            }
        });
        Proxy { port, mode, conns }
    }

    /// Switches the mode; any other mode than `Up` also cuts the connections open now, so
    /// pooled keep-alive connections see the fault too.
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
        if mode != Mode::Up {
            for h in self
                .conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
            {
                h.abort();
            }
        }
    }
}
