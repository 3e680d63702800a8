//! The proxy's listening sockets, made inside the session's network namespace by init and
//! handed to the supervisor (which stays in the host's) over a unix socketpair with
//! `SCM_RIGHTS`. A socket keeps the namespace it was made in: the supervisor accepts
//! connections from inside and connects outside with the same process.

use super::{HTTP_PROXY_ADDR, SOCKS_PROXY_ADDR};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The listeners, HTTP first, SOCKS5 second.
pub struct Listeners {
    /// `127.0.0.1:3128` inside the session.
    pub http: TcpListener,
    /// `127.0.0.1:1080` inside the session.
    pub socks: TcpListener,
}

/// A connected pair (supervisor's end, init's end), close-on-exec, message-preserving.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a two-int array.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair just returned these fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In init, inside the new namespace with loopback up: binds both listeners.
pub fn open() -> io::Result<Listeners> {
    Ok(Listeners {
        http: TcpListener::bind(HTTP_PROXY_ADDR)?,
        socks: TcpListener::bind(SOCKS_PROXY_ADDR)?,
    })
}

/// In init: sends both listeners over `sock`. The caller then drops its copies.
pub fn send(sock: RawFd, l: &Listeners) -> io::Result<()> {
    let fds = [l.http.as_raw_fd(), l.socks.as_raw_fd()];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut byte = [b'L'];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer holds one header with room for the fds (CMSG_SPACE).
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr().cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of_val(&fds),
        );
    }
    // SAFETY: msg is fully initialized.
    if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In the supervisor: the two listeners, or `None` when init ended without sending them
/// (its refusal then comes through the status pipe).
pub fn receive(sock: &OwnedFd) -> io::Result<Option<Listeners>> {
    const WANT: usize = 2;
    // SAFETY: a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((WANT * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: as in send.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // Every descriptor that arrived is owned here, so that none leaks on an error below.
    let mut got: Vec<OwnedFd> = Vec::new();
    // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    got.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if n == 0 && got.is_empty() {
        return Ok(None);
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || got.len() != WANT {
        return Err(io::Error::other(format!(
            "expected {WANT} listening sockets, received {}",
            got.len()
        )));
    }
    for fd in &got {
        if !listening(fd) {
            return Err(io::Error::other(
                "a descriptor received is not a listening socket",
            ));
        }
    }
    let mut it = got.into_iter();
    let (Some(http), Some(socks)) = (it.next(), it.next()) else {
        return Ok(None);
    };
    Ok(Some(Listeners {
        http: TcpListener::from(http),
        socks: TcpListener::from(socks),
    }))
}

fn listening(fd: &OwnedFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out-parameters.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && v == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_sent_over_the_pair_arrive_listening_and_accept_connections() {
        let (ours, theirs) = pair().unwrap();
        let l = Listeners {
            http: TcpListener::bind("127.0.0.1:0").unwrap(),
            socks: TcpListener::bind("127.0.0.1:0").unwrap(),
        };
        let addr = l.http.local_addr().unwrap();
        send(theirs.as_raw_fd(), &l).unwrap();
        drop(l);
        let got = receive(&ours).unwrap().expect("listeners");
        assert_eq!(got.http.local_addr().unwrap(), addr);
        let _c = std::net::TcpStream::connect(addr).unwrap();
        assert!(got.http.accept().is_ok());
    }

    #[test]
    fn a_closed_pair_without_listeners_is_none() {
        let (ours, theirs) = pair().unwrap();
        drop(theirs);
        assert!(receive(&ours).unwrap().is_none());
    }
}
