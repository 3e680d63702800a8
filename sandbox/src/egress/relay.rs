//! Copying a proxied connection's bytes both ways, counting them: one thread per
//! direction, each a blocking read into a buffer and a write out of it, until both sides
//! have finished sending (each end's finish passed on as a half-close), one side fails, or
//! no byte has moved either way for the idle timeout.
//!
//! Why read and write rather than splice(2) through a pipe: measured on loopback, splice
//! took more CPU per byte than the two copies it saves, in the proxy and in the reader
//! after it (its sends carry the received fragments as they came), and moved fewer bytes
//! a second (docs/security.md, "The proxy's cost"). Why a thread per direction: one loop
//! that writes a chunk out before it reads again serializes the two directions and pays a
//! poll round trip per chunk; two blocking threads do neither.

use super::workers::Workers;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most bytes one read takes. Large, because each write sends what one read brought and
/// fewer, larger sends cost less per byte (measured on loopback: 64 KiB took about a third
/// more CPU per byte than 1 MiB); the pages are only touched as far as reads fill them.
/// The same bound per direction as the 1 MiB pipes the proxy spliced through before.
const CHUNK: usize = 1 << 20;

/// What a relayed connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes from the client to the upstream.
    pub up: u64,
    /// Bytes from the upstream to the client.
    pub down: u64,
    /// What ended it early: the idle timeout (`idle for N s`) or an error. A reset is a
    /// peer's way to end a connection, not an error.
    pub error: Option<String>,
}

/// Why a connection ended before both sides had finished.
#[derive(Debug)]
enum Early {
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A side reset the connection: its way to end one, not an error.
    Reset,
    /// Reading or writing failed.
    Failed(io::Error),
}

impl Early {
    fn of(e: io::Error) -> Early {
        match e.kind() {
            io::ErrorKind::ConnectionReset => Early::Reset,
            _ => Early::Failed(e),
        }
    }
}

/// What the two directions share: the sockets, when bytes last moved, and why the
/// connection ended early, if it did.
struct Watch {
    /// The client, then the upstream.
    ends: [TcpStream; 2],
    start: Instant,
    idle: Duration,
    /// Milliseconds from `start` to when bytes last moved, either way.
    moved_ms: AtomicU64,
    early: Mutex<Option<Early>>,
}

impl Watch {
    fn moved(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        // The maximum: the other direction may have stored a later time meanwhile.
        self.moved_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How much longer a wait may last before the connection counts as idle; `None` once
    /// nothing has moved either way for the idle timeout.
    fn left(&self) -> Option<Duration> {
        let moved = Duration::from_millis(self.moved_ms.load(Ordering::Relaxed));
        let silent = self.start.elapsed().saturating_sub(moved);
        let left = self.idle.saturating_sub(silent);
        // Socket timeouts count in milliseconds; less than one is none at all.
        (left >= Duration::from_millis(1)).then_some(left)
    }

    /// Ends the connection both ways, waking the other direction's blocked read or write;
    /// the first reason given is the one reported.
    fn end(&self, why: Early) {
        self.early
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(why);
        for s in &self.ends {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// The error an attempt reports, if any.
    fn error(&self) -> Option<String> {
        match self
            .early
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?
        {
            Early::Idle => Some(format!("idle for {} s", self.idle.as_secs())),
            Early::Reset => None,
            Early::Failed(e) => Some(e.to_string()),
        }
    }
}

/// Which way a direction copies: up reads the client and writes the upstream, down the
/// reverse (the index of the end it reads).
#[derive(Clone, Copy)]
enum Way {
    Up = 0,
    Down = 1,
}

/// Relays between `client` and `upstream` until both have finished sending, one fails,
/// or nothing moves either way for `idle`. The upstream-to-client direction runs on one
/// of `workers`' threads, the other on the caller's.
pub fn relay(client: TcpStream, upstream: TcpStream, idle: Duration, workers: &Workers) -> Outcome {
    let watch = Arc::new(Watch {
        ends: [client, upstream],
        start: Instant::now(),
        idle,
        moved_ms: AtomicU64::new(0),
        early: Mutex::new(None),
    });
    let (done, down) = mpsc::sync_channel(1);
    let w = watch.clone();
    let started = workers.run(move || {
        let _ = done.send(with_buffer(|buf| copy(&w, Way::Down, buf)));
    });
    if let Err(e) = started {
        return Outcome {
            up: 0,
            down: 0,
            error: Some(format!("no thread for the connection: {e}")),
        };
    }
    let up = with_buffer(|buf| copy(&watch, Way::Up, buf));
    // A direction that panicked dropped its sender: count it as having moved nothing.
    let down = down.recv().unwrap_or(0);
    Outcome {
        up,
        down,
        error: watch.error(),
    }
}

thread_local! {
    /// A thread's buffer, kept between connections: a fresh one costs a mapping, and a page
    /// fault for each page a read touches.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut buf = BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    if buf.len() < CHUNK {
        buf = vec![0; CHUNK];
    }
    let r = f(&mut buf);
    BUFFER.with(|b| *b.borrow_mut() = buf);
    r
}

/// One direction: reads from its source and writes all of it to its destination until the
/// source finishes (then half-closes the destination) or the connection ends. Returns the
/// bytes written.
fn copy(watch: &Watch, way: Way, buf: &mut [u8]) -> u64 {
    let (mut src, mut dst): (&TcpStream, &TcpStream) =
        (&watch.ends[way as usize], &watch.ends[1 - way as usize]);
    let mut count = 0u64;
    // Each wait is bounded by what is left of the idle timeout, so that a silent
    // connection is noticed by whichever direction waits, on time. A zero timeout would
    // be refused, and the wait left unbounded.
    let first = watch.idle.max(Duration::from_millis(1));
    let _ = src.set_read_timeout(Some(first));
    let _ = dst.set_write_timeout(Some(first));
    loop {
        let n = match src.read(buf) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return count;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                match watch.left() {
                    Some(left) => {
                        let _ = src.set_read_timeout(Some(left));
                        continue;
                    }
                    None => watch.end(Early::Idle),
                }
                return count;
            }
            Err(e) => {
                watch.end(Early::of(e));
                return count;
            }
        };
        watch.moved();
        let mut sent = 0;
        while sent < n {
            match dst.write(&buf[sent..n]) {
                Ok(0) => {
                    watch.end(Early::Failed(io::ErrorKind::WriteZero.into()));
                    return count;
                }
                Ok(k) => {
                    sent += k;
                    count += k as u64;
                    watch.moved();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => match watch.left() {
                    Some(left) => {
                        let _ = dst.set_write_timeout(Some(left));
                    }
                    None => {
                        watch.end(Early::Idle);
                        return count;
                    }
                },
                Err(e) => {
                    watch.end(Early::of(e));
                    return count;
                }
            }
        }
    }
}

/// A socket timeout shows as `EAGAIN` (`WouldBlock`).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// Both ends of a loopback connection: (the program's, the proxy's).
    fn connection() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let outside = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (inside, _) = l.accept().unwrap();
        (outside, inside)
    }

    /// A relay between a client and an upstream, running: (client, upstream, the relay).
    fn relayed(idle: Duration) -> (TcpStream, TcpStream, JoinHandle<Outcome>) {
        let (client, client_end) = connection();
        let (upstream, upstream_end) = connection();
        let workers = Workers::new("test-relay", Duration::from_secs(1));
        let relay = std::thread::spawn(move || relay(client_end, upstream_end, idle, &workers));
        (client, upstream, relay)
    }

    fn read_all(mut s: &TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn each_side_finishing_is_passed_on_as_a_half_close_while_the_other_way_flows_on() {
        let (client, upstream, relay) = relayed(Duration::from_secs(10));
        (&client).write_all(b"request").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        // The upstream sees the client's end of file, and can still answer after it.
        assert_eq!(read_all(&upstream), b"request");
        (&upstream).write_all(b"a longer answer").unwrap();
        upstream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&client), b"a longer answer");
        let outcome = relay.join().unwrap();
        assert_eq!(
            outcome,
            Outcome {
                up: 7,
                down: 15,
                error: None
            }
        );
    }

    #[test]
    fn a_connection_silent_both_ways_for_the_idle_timeout_is_closed_and_reported() {
        let started = Instant::now();
        let (client, upstream, relay) = relayed(Duration::from_secs(1));
        (&client).write_all(b"x").unwrap();
        let outcome = relay.join().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(outcome.error.as_deref(), Some("idle for 1 s"));
        assert_eq!((outcome.up, outcome.down), (1, 0));
        // Both sides see the connection end.
        assert_eq!(read_all(&upstream), b"x");
        assert_eq!(read_all(&client), b"");
    }

    #[test]
    fn one_direction_that_keeps_moving_keeps_the_silent_other_one_open() {
        let (client, upstream, relay) = relayed(Duration::from_secs(1));
        // The client never sends; the upstream sends a byte every 200 ms for 2 s, twice the
        // idle timeout.
        for _ in 0..10 {
            (&upstream).write_all(b"t").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        upstream.shutdown(Shutdown::Write).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&client), b"tttttttttt");
        let outcome = relay.join().unwrap();
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.down, 10);
    }

    #[test]
    fn a_destination_that_stops_reading_while_nothing_else_moves_counts_as_silence() {
        let (client, _upstream, relay) = relayed(Duration::from_secs(1));
        // More than every buffer on the way can hold: the relay's write blocks.
        let writer = std::thread::spawn(move || {
            let chunk = vec![0u8; 1 << 20];
            while (&client).write_all(&chunk).is_ok() {}
        });
        let outcome = relay.join().unwrap();
        assert_eq!(outcome.error.as_deref(), Some("idle for 1 s"));
        assert!(outcome.up > 0);
        // The relay's end of the client's connection is shut: the writer fails and ends.
        writer.join().unwrap();
    }

    #[test]
    fn a_reset_from_either_side_ends_the_connection_without_an_error() {
        let (client, upstream, relay) = relayed(Duration::from_secs(10));
        (&client).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&upstream).read_exact(&mut b).unwrap();
        // SO_LINGER with a zero timeout: close sends a reset.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt with a linger we own, of its size.
        let r = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&upstream),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        drop(upstream);
        let outcome = relay.join().unwrap();
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.up, 1);
    }
}
