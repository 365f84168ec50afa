//! Readiness probes that speak each server's protocol: a server is ready when it answers a
//! real request, not when its port merely accepts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

fn connect(port: u16) -> Option<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    Some(stream)
}

/// Redis: `PING` → `+PONG`.
pub fn redis(port: u16) -> bool {
    let Some(mut stream) = connect(port) else {
        return false;
    };
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// Kafka: an ApiVersions (v0) request answered with our correlation id and no error.
pub fn kafka(port: u16) -> bool {
    let Some(mut stream) = connect(port) else {
        return false;
    };
    let client_id = b"xtask";
    let mut request = Vec::new();
    request.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    request.extend_from_slice(&0i16.to_be_bytes()); // version 0
    request.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    if stream.write_all(&frame).is_err() {
        return false;
    }
    let mut header = [0u8; 10]; // size, correlation id, error code
    if stream.read_exact(&mut header).is_err() {
        return false;
    }
    let correlation = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let error = i16::from_be_bytes([header[8], header[9]]);
    correlation == 7 && error == 0
}

/// Cassandra: a CQL v4 STARTUP → READY, then `SELECT release_version FROM system.local` → RESULT.
pub fn cassandra(port: u16) -> bool {
    let Some(mut stream) = connect(port) else {
        return false;
    };
    let mut startup = Vec::new();
    startup.extend_from_slice(&1u16.to_be_bytes()); // one map entry
    for text in ["CQL_VERSION", "3.0.0"] {
        startup.extend_from_slice(&(text.len() as u16).to_be_bytes());
        startup.extend_from_slice(text.as_bytes());
    }
    if cql_exchange(&mut stream, 1, 0x01, &startup) != Some(0x02) {
        return false;
    }
    let query = "SELECT release_version FROM system.local";
    let mut body = (query.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(query.as_bytes());
    body.extend_from_slice(&1u16.to_be_bytes()); // consistency ONE
    body.push(0); // no flags
    cql_exchange(&mut stream, 2, 0x07, &body) == Some(0x08)
}

/// Sends one CQL frame and returns the answer's opcode.
fn cql_exchange(stream: &mut TcpStream, stream_id: i16, opcode: u8, body: &[u8]) -> Option<u8> {
    let mut frame = vec![0x04, 0x00];
    frame.extend_from_slice(&stream_id.to_be_bytes());
    frame.push(opcode);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).ok()?;
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).ok()?;
    let length = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
    let mut rest = vec![0u8; length.min(1 << 20)];
    stream.read_exact(&mut rest).ok()?;
    Some(header[4])
}

/// HTTP: `GET path` answered `200` (e.g. Keycloak's realm discovery document, which exists only
/// once the realm was imported).
pub fn http_ok(port: u16, path: &str) -> bool {
    let Some(mut stream) = connect(port) else {
        return false;
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status_line = [0u8; 12];
    stream.read_exact(&mut status_line).is_ok()
        && (&status_line == b"HTTP/1.1 200" || &status_line == b"HTTP/1.0 200")
}
