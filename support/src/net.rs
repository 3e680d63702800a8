//! Loopback ports: one free to listen on, and waiting until something listens.

use crate::wait::wait_until;
use std::net::{TcpListener, TcpStream};

/// A port nothing listens on now (the kernel's pick, given back at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16) {
    wait_until(&format!("something to listen on 127.0.0.1:{port}"), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}
