//! Ask mode (`[network] unknown = "ask"`): a connection to a destination that no rule
//! names waits while the session's owner is asked, and goes on as they answer.
//!
//! The proxy announces each question on its events descriptor (an `ask` line) and reads
//! the answers, one JSON line each (`{"ask": 3, "answer": "once"}`), from the answers
//! descriptor the host passes (`cordon sandbox --answers-fd`). Connections to the same
//! destination while a question is open wait on that question rather than ask again.
//! Every wait is bounded: the question's deadline (`ask_wait`), and the host's end (the
//! answers descriptor closing refuses whatever still waits). "session" and "deny" are
//! remembered for the rest of the session; "once" lets through the connections that were
//! waiting, and the next one asks again.

use super::rules::{Answer, Destination, Verdict};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most questions open at once: past it a connection to yet another unlisted destination
/// is refused at once, so that a program cannot queue up an unbounded list for the owner.
pub const MAX_OPEN: usize = 16;
/// Most destinations remembered as answered for the session.
const MAX_REMEMBERED: usize = 1024;
/// Longest answer line read; a longer one is skipped.
const MAX_LINE: u64 = 1024;

/// A question, as announced on the events descriptor.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Question {
    /// Always `ask`.
    pub event: &'static str,
    /// Its number in this session (from 1).
    pub ask: u64,
    /// `http`, `connect` or `socks5`.
    pub protocol: &'static str,
    /// The host as the client named it (normalized).
    pub host: String,
    /// The port.
    pub port: u16,
    /// How long it waits for an answer.
    pub wait_s: u64,
}

/// A question that stopped waiting without an answer, as announced.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Expired {
    /// Always `expired`.
    pub event: &'static str,
    /// The question's number.
    pub ask: u64,
}

/// One answer line from the host.
#[derive(Debug, Deserialize)]
struct AnswerLine {
    ask: u64,
    answer: Answer,
}

struct Open {
    id: u64,
    /// The destination as `host:port`.
    dest: String,
    deadline: Instant,
    answer: Option<Answer>,
    /// Connections waiting on it.
    waiting: usize,
}

#[derive(Default)]
struct State {
    next: u64,
    open: Vec<Open>,
    /// Destinations answered "session" (true) or "deny" (false).
    remembered: Vec<(String, bool)>,
    /// The host stopped listening: nothing more can be answered.
    closed: bool,
}

/// The questions of one session's proxy.
pub struct Asker {
    wait: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

impl Asker {
    /// Questions that wait at most `wait` for their answer.
    pub fn new(wait: Duration) -> Arc<Asker> {
        Arc::new(Asker {
            wait,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads answers from `answers` on a thread of its own until it ends; then every
    /// question still open is refused (no one is left to answer it).
    pub fn listen(self: &Arc<Self>, answers: std::fs::File) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("egress-answers".into())
            .spawn(move || {
                let mut r = std::io::BufReader::new(answers);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match (&mut r).take(MAX_LINE).read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line.last() != Some(&b'\n') => {
                            // Overlong: skip to the end of the line.
                            let mut rest = Vec::new();
                            if r.read_until(b'\n', &mut rest).unwrap_or(0) == 0 {
                                break;
                            }
                        }
                        Ok(_) => {
                            if let Ok(a) = serde_json::from_slice::<AnswerLine>(&line) {
                                me.answer(a.ask, a.answer);
                            }
                        }
                    }
                }
                me.close();
            })?;
        Ok(())
    }

    /// Records the owner's answer to question `id`; false if it is not open (answered,
    /// expired, or never asked).
    pub fn answer(&self, id: u64, answer: Answer) -> bool {
        let mut st = self.lock();
        let Some(q) = st
            .open
            .iter_mut()
            .find(|q| q.id == id && q.answer.is_none())
        else {
            return false;
        };
        q.answer = Some(answer);
        let dest = q.dest.clone();
        if answer != Answer::Once && st.remembered.len() < MAX_REMEMBERED {
            st.remembered.push((dest, answer == Answer::Session));
        }
        drop(st);
        self.changed.notify_all();
        true
    }

    /// The host is gone: open questions are refused, and no new one is asked.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The verdict on `dest`, which no rule names: a remembered answer, or the answer to a
    /// question (announced through `announce` when it is new), or a refusal when no answer
    /// comes in time. `expire` announces a question that ran out of time.
    pub fn decide(
        &self,
        protocol: &'static str,
        dest: &Destination,
        announce: impl FnOnce(&Question),
        expire: impl FnOnce(&Expired),
    ) -> Verdict {
        let key = dest.to_string();
        let mut st = self.lock();
        if let Some((_, allow)) = st.remembered.iter().find(|(d, _)| *d == key) {
            return Verdict::Answered(if *allow {
                Answer::Session
            } else {
                Answer::Deny
            });
        }
        if st.closed {
            return Verdict::Unanswered("no one is left to ask".into());
        }
        let id = match st
            .open
            .iter_mut()
            .find(|q| q.dest == key && q.answer.is_none())
        {
            Some(q) => {
                q.waiting += 1;
                q.id
            }
            None => {
                if st.open.len() >= MAX_OPEN {
                    return Verdict::Unanswered(format!(
                        "{MAX_OPEN} questions already wait for the session's owner"
                    ));
                }
                st.next += 1;
                let id = st.next;
                st.open.push(Open {
                    id,
                    dest: key,
                    deadline: Instant::now() + self.wait,
                    answer: None,
                    waiting: 1,
                });
                // Announced under the lock, so that the announcement comes before any
                // answer can be taken for it (an answer to an unknown question is dropped).
                announce(&Question {
                    event: "ask",
                    ask: id,
                    protocol,
                    host: dest.host.to_string(),
                    port: dest.port,
                    wait_s: self.wait.as_secs(),
                });
                id
            }
        };
        loop {
            let Some(i) = st.open.iter().position(|q| q.id == id) else {
                // Removed by a waiter that saw it expire.
                return Verdict::Unanswered(self.timeout_words());
            };
            if let Some(a) = st.open[i].answer {
                st.open[i].waiting -= 1;
                if st.open[i].waiting == 0 {
                    st.open.remove(i);
                }
                return Verdict::Answered(a);
            }
            if st.closed {
                st.open.remove(i);
                return Verdict::Unanswered("no one is left to ask".into());
            }
            let now = Instant::now();
            let deadline = st.open[i].deadline;
            if now >= deadline {
                st.open.remove(i);
                expire(&Expired {
                    event: "expired",
                    ask: id,
                });
                return Verdict::Unanswered(self.timeout_words());
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn timeout_words(&self) -> String {
        format!(
            "the session's owner did not answer within {} s",
            self.wait.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::Host;

    fn dest(host: &str, port: u16) -> Destination {
        Destination {
            host: Host::parse(host).unwrap(),
            port,
        }
    }

    /// Asks on a thread; returns the question announced and the verdict's receiver.
    fn ask_in_background(
        a: &Arc<Asker>,
        host: &str,
    ) -> (Question, std::sync::mpsc::Receiver<Verdict>) {
        let (qtx, qrx) = std::sync::mpsc::channel();
        let (vtx, vrx) = std::sync::mpsc::channel();
        let (a, d) = (a.clone(), dest(host, 443));
        std::thread::spawn(move || {
            let v = a.decide("connect", &d, |q| qtx.send(q.clone()).unwrap(), |_| {});
            vtx.send(v).unwrap();
        });
        (qrx.recv_timeout(Duration::from_secs(5)).unwrap(), vrx)
    }

    #[test]
    fn once_lets_the_waiting_connection_through_and_the_next_one_asks_again() {
        let a = Asker::new(Duration::from_secs(30));
        let (q, v) = ask_in_background(&a, "new.example");
        assert_eq!(
            (q.ask, q.host.as_str(), q.port, q.wait_s),
            (1, "new.example", 443, 30)
        );
        assert!(a.answer(1, Answer::Once));
        let v = v.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(v, Verdict::Answered(Answer::Once));
        assert!(v.allowed());
        let (q, _) = ask_in_background(&a, "new.example");
        assert_eq!(q.ask, 2, "a new question");
        assert!(!a.answer(1, Answer::Once), "the first is answered already");
    }

    #[test]
    fn session_and_deny_are_remembered_without_asking_again() {
        let a = Asker::new(Duration::from_secs(30));
        let (_, v) = ask_in_background(&a, "kept.example");
        a.answer(1, Answer::Session);
        assert!(v.recv_timeout(Duration::from_secs(5)).unwrap().allowed());
        let (_, v) = ask_in_background(&a, "refused.example");
        a.answer(2, Answer::Deny);
        assert!(!v.recv_timeout(Duration::from_secs(5)).unwrap().allowed());
        let never = |_: &Question| panic!("asked again");
        let v = a.decide("socks5", &dest("kept.example", 443), never, |_| {});
        assert_eq!(v, Verdict::Answered(Answer::Session));
        let v = a.decide("socks5", &dest("refused.example", 443), never, |_| {});
        assert_eq!(v, Verdict::Answered(Answer::Deny));
        assert!(!v.allowed());
        assert_eq!(
            v.to_string(),
            "refused by the session's owner",
            "the words the audit shows"
        );
    }

    #[test]
    fn connections_to_one_destination_share_one_question() {
        let a = Asker::new(Duration::from_secs(30));
        let (q, first) = ask_in_background(&a, "shared.example");
        let (vtx, second) = std::sync::mpsc::channel();
        let a2 = a.clone();
        std::thread::spawn(move || {
            let v = a2.decide(
                "http",
                &dest("shared.example", 443),
                |_| panic!("asked twice"),
                |_| {},
            );
            vtx.send(v).unwrap();
        });
        // The second joins the open question before it is answered.
        crate::egress::ask::tests::wait_for(|| a.lock().open.first().map(|o| o.waiting) == Some(2));
        a.answer(q.ask, Answer::Once);
        for v in [first, second] {
            assert!(v.recv_timeout(Duration::from_secs(5)).unwrap().allowed());
        }
        assert!(
            a.lock().open.is_empty(),
            "the question is gone once all have their answer"
        );
    }

    #[test]
    fn no_answer_in_time_refuses_and_announces_the_expiry() {
        let a = Asker::new(Duration::from_millis(200));
        let mut expired = None;
        let v = a.decide(
            "connect",
            &dest("slow.example", 443),
            |_| {},
            |e| expired = Some(e.ask),
        );
        assert_eq!(expired, Some(1));
        assert!(!v.allowed());
        assert_eq!(
            v.to_string(),
            "no rule names it, and the session's owner did not answer within 0 s"
        );
        assert!(!a.answer(1, Answer::Session), "too late");
    }

    #[test]
    fn the_hosts_end_refuses_what_waits_and_asks_nothing_more() {
        let a = Asker::new(Duration::from_secs(30));
        let (_, v) = ask_in_background(&a, "orphan.example");
        a.close();
        let v = v.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(v, Verdict::Unanswered("no one is left to ask".into()));
        let v = a.decide(
            "connect",
            &dest("later.example", 443),
            |_| panic!("asked"),
            |_| {},
        );
        assert!(!v.allowed());
    }

    #[test]
    fn open_questions_are_bounded() {
        let a = Asker::new(Duration::from_secs(30));
        let mut pending = Vec::new();
        for i in 0..MAX_OPEN {
            pending.push(ask_in_background(&a, &format!("h{i}.example")));
        }
        let v = a.decide(
            "connect",
            &dest("one-more.example", 443),
            |_| panic!("asked"),
            |_| {},
        );
        assert!(v.to_string().contains("16 questions already wait"), "{v}");
        a.close();
    }

    #[test]
    fn answers_are_read_from_the_hosts_lines_and_bad_lines_are_skipped() {
        let a = Asker::new(Duration::from_secs(30));
        let (r, mut w) = os_pipe();
        a.listen(r).unwrap();
        let (q, v) = ask_in_background(&a, "piped.example");
        use std::io::Write;
        let junk = format!(
            "{}\nnot json\n{{\"ask\":{},\"answer\":\"maybe\"}}\n",
            "x".repeat(5000),
            q.ask
        );
        w.write_all(junk.as_bytes()).unwrap();
        w.write_all(format!("{{\"ask\":{},\"answer\":\"session\"}}\n", q.ask).as_bytes())
            .unwrap();
        assert_eq!(
            v.recv_timeout(Duration::from_secs(5)).unwrap(),
            Verdict::Answered(Answer::Session)
        );
        drop(w);
        wait_for(|| a.lock().closed);
    }

    /// A pipe (read end, write end), close-on-exec.
    fn os_pipe() -> (std::fs::File, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: a two-int array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        use std::os::fd::FromRawFd;
        // SAFETY: pipe2 returned them; owned from here.
        unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    pub(super) fn wait_for(f: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < end, "timed out");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
