//! A one-file http server on loopback, for ADD of URLs and `fetch()`.

use std::io::{Read, Write};
use std::net::TcpListener;

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
