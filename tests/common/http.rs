//! Loopback http for the tests: a one-file server (for ADD of URLs and `fetch()`), a free
//! port, and a GET that waits for a container's published port to answer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 now (bound to port 0, noted, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Two consecutive free loopback ports (for a port range).
pub fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = first.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports");
}

/// `GET PATH HTTP/1.0` to 127.0.0.1:PORT, retried every 100 ms until a reply says `200 OK`
/// or `limit` has passed; the whole last reply (status line, headers, body), maybe empty.
pub fn http_get(port: u16, path: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let mut text = String::new();
        let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            s.read_to_string(&mut text)
        });
        if (got.is_ok() && text.contains("200 OK")) || start.elapsed() > limit {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serve `body` once per connection, for `requests` connections, on 127.0.0.1; returns the
/// URL base (`http://127.0.0.1:PORT`).
pub fn serve(body: &'static [u8], requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body);
        }
    });
    format!("http://{addr}")
}
