//! The proxy's threads: a connection (and each of its directions) runs on a thread that
//! waits for work, kept for a while after its last connection ended, so that the next
//! connection does not pay for starting one (measured on a 2-core VM: about 23 µs to start
//! a thread, 2 µs to hand work to one that waits; a connection takes two).
//!
//! Not a bound: the proxy's connection limit is what bounds the threads. A thread that
//! has waited [`Workers::new`]'s `keep` without work ends.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Queue {
    /// Threads waiting for work, less the jobs already queued for them: above zero, a job
    /// handed over is sure to be taken.
    free: usize,
    jobs: VecDeque<Job>,
}

/// Threads that run jobs, started as needed and kept while work keeps coming.
pub struct Workers {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    name: &'static str,
    keep: Duration,
}

impl Workers {
    /// Threads named `name`, each ending after `keep` without work.
    pub fn new(name: &'static str, keep: Duration) -> Workers {
        Workers {
            queue: Arc::new((
                Mutex::new(Queue {
                    free: 0,
                    jobs: VecDeque::new(),
                }),
                Condvar::new(),
            )),
            name,
            keep,
        }
    }

    /// Runs `job` on a waiting thread, or on a new one when none waits. An error means no
    /// thread could be started; the job (and what it owns) is dropped.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let job: Job = Box::new(job);
        {
            let (lock, wake) = &*self.queue;
            let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if q.free > 0 {
                q.free -= 1;
                q.jobs.push_back(job);
                wake.notify_one();
                return Ok(());
            }
        }
        let queue = self.queue.clone();
        let keep = self.keep;
        std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || {
                job();
                serve(&queue, keep);
            })
            .map(drop)
    }
}

/// A thread's life after its first job: wait for the next, run it, until `keep` passes
/// without one.
fn serve(queue: &(Mutex<Queue>, Condvar), keep: Duration) {
    let (lock, wake) = queue;
    loop {
        let job = {
            let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
            q.free += 1;
            let deadline = Instant::now() + keep;
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // No job was queued for this thread (the queue is empty), so it takes
                    // its own place back.
                    q.free -= 1;
                    return;
                }
                q = wake
                    .wait_timeout(q, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn thread_id_of(w: &Workers) -> std::thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        w.run(move || tx.send(std::thread::current().id()).unwrap())
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    fn wait_until_free(w: &Workers, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while w.queue.0.lock().unwrap().free != n {
            assert!(Instant::now() < deadline, "no thread came back to wait");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_thread_that_finished_its_job_runs_the_next_one() {
        let w = Workers::new("test-worker", Duration::from_secs(30));
        let first = thread_id_of(&w);
        wait_until_free(&w, 1);
        assert_eq!(thread_id_of(&w), first);
    }

    #[test]
    fn jobs_that_overlap_each_get_a_thread_of_their_own() {
        let w = Workers::new("test-worker", Duration::from_secs(30));
        let (started_tx, started_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Arc::new(Mutex::new(go_rx));
        for _ in 0..3 {
            let (started, go) = (started_tx.clone(), go_rx.clone());
            // Each job waits for the others to have started: on one thread, they never would.
            w.run(move || {
                started.send(()).unwrap();
                let _ = go.lock().unwrap().recv_timeout(Duration::from_secs(5));
            })
            .unwrap();
        }
        for _ in 0..3 {
            started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        for _ in 0..3 {
            go_tx.send(()).unwrap();
        }
        wait_until_free(&w, 3);
    }

    #[test]
    fn a_thread_without_work_for_its_keep_time_ends() {
        let w = Workers::new("test-worker", Duration::from_millis(20));
        let first = thread_id_of(&w);
        wait_until_free(&w, 1);
        wait_until_free(&w, 0);
        assert_ne!(thread_id_of(&w), first);
    }
}
