//! The replay player inside the TUI: a recording read (and its access audited) through the
//! service, played into a terminal screen at a speed, with idle time skipped, seeking from
//! the nearest keyframe, markers, and search hits to jump between.

use std::time::Instant;

use crate::record::format::{self, Event, Recording};
use crate::record::play::Screen;
use crate::sessions::screen::{window, Window, SCROLLBACK};

pub struct Player {
    pub id: String,
    pub user: String,
    rec: Recording,
    pub screen: Screen,
    /// Index of the next event to play.
    next: usize,
    /// Position in µs of recording time.
    pub at: u64,
    pub duration: u64,
    pub playing: bool,
    pub speed: f64,
    /// Pauses longer than this (µs) play as this long.
    pub idle_limit: u64,
    pub markers: Vec<(u64, String)>,
    /// What the session did (programs started, connections, questions and answers), in
    /// words: the timeline beside the screen.
    pub timeline: Vec<(u64, String)>,
    /// Text being searched, and the times it appeared on screen.
    pub search: String,
    pub hits: Vec<(u64, String)>,
    /// Scrolled back through the lines that scrolled off (paused meanwhile): what shows.
    pub back: Option<Window>,
    last_tick: Option<Instant>,
}

impl Player {
    pub fn new(id: String, user: String, rec: Recording, idle_limit_s: f64) -> Player {
        let duration = rec.events.last().map(|e| e.at_us).unwrap_or(0);
        let markers = rec
            .events
            .iter()
            .filter(|e| e.kind == format::MARKER)
            .map(|e| (e.at_us, String::from_utf8_lossy(&e.data).into_owned()))
            .collect();
        // Exits stay out: the programs and connections are what an auditor looks for.
        let timeline = crate::record::timeline::entries(&rec)
            .into_iter()
            .filter(|e| matches!(e.kind, "exec" | "net"))
            .map(|e| (e.at_us, e.words))
            .collect();
        let screen = Screen::with_scrollback(rec.header.cols, rec.header.rows, SCROLLBACK);
        let mut p = Player {
            id,
            user,
            rec,
            screen,
            next: 0,
            at: 0,
            duration,
            playing: true,
            speed: 1.0,
            idle_limit: (idle_limit_s * 1e6) as u64,
            markers,
            timeline,
            search: String::new(),
            hits: Vec::new(),
            back: None,
            last_tick: None,
        };
        p.seek(0);
        p
    }

    fn events(&self) -> &[Event] {
        &self.rec.events
    }

    /// Plays forward by the wall-clock time since the last tick.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let elapsed = self
            .last_tick
            .map(|t| now.duration_since(t).as_micros() as f64)
            .unwrap_or(0.0);
        self.last_tick = Some(now);
        if !self.playing {
            return;
        }
        let mut budget = (elapsed * self.speed) as u64;
        while budget > 0 {
            let Some(e) = self.rec.events.get(self.next).cloned() else {
                self.at = self.duration;
                self.playing = false;
                return;
            };
            // Idle time beyond the limit is skipped.
            let gap = e.at_us.saturating_sub(self.at).min(self.idle_limit.max(1));
            if gap > budget {
                self.at += budget;
                return;
            }
            budget -= gap;
            self.at = e.at_us;
            self.screen.apply(&e);
            self.next += 1;
        }
    }

    /// Draws the screen at `at` µs: from the last keyframe at or before it.
    pub fn seek(&mut self, at: u64) {
        let at = at.min(self.duration);
        // From the keyframe before the last one at or before `at`: the lines that scrolled
        // off between the two are the scrollback (a keyframe comes every 1 MiB of output).
        let mut keyframes = self
            .events()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == format::KEYFRAME && e.at_us <= at)
            .map(|(i, _)| i);
        let start = keyframes.nth_back(1).unwrap_or(0);
        let mut screen =
            Screen::with_scrollback(self.rec.header.cols, self.rec.header.rows, SCROLLBACK);
        let mut next = start;
        while let Some(e) = self.events().get(next) {
            if e.at_us > at {
                break;
            }
            screen.apply(e);
            next += 1;
        }
        self.screen = screen;
        self.next = next;
        self.at = at;
        self.back = None;
        self.last_tick = None;
    }

    /// One event forward (paused stepping).
    pub fn step(&mut self) {
        self.playing = false;
        self.back = None;
        if let Some(e) = self.events().get(self.next).cloned() {
            self.screen.apply(&e);
            self.at = e.at_us;
            self.next += 1;
        }
    }

    pub fn toggle(&mut self) {
        if !self.playing && self.at >= self.duration {
            self.seek(0);
        }
        self.back = None;
        self.playing = !self.playing;
        self.last_tick = None;
    }

    pub fn skip(&mut self, seconds: i64) {
        let at = (self.at as i64 + seconds * 1_000_000).max(0) as u64;
        self.seek(at);
    }

    /// The next (or previous) point of `points` after (before) now.
    fn jump(&mut self, points: &[u64], forward: bool) -> bool {
        let target = if forward {
            points.iter().find(|&&t| t > self.at).copied()
        } else {
            points
                .iter()
                .rev()
                .find(|&&t| t + 500_000 < self.at)
                .copied()
        };
        match target {
            Some(t) => {
                self.seek(t);
                true
            }
            None => false,
        }
    }

    pub fn jump_marker(&mut self, forward: bool) -> bool {
        let points: Vec<u64> = self.markers.iter().map(|m| m.0).collect();
        self.jump(&points, forward)
    }

    /// Jumps to the next (or previous) event of the timeline.
    pub fn jump_event(&mut self, forward: bool) -> bool {
        let points: Vec<u64> = self.timeline.iter().map(|n| n.0).collect();
        self.jump(&points, forward)
    }

    /// The index of the latest timeline event at or before the current point.
    pub fn event_now(&self) -> Option<usize> {
        self.timeline.iter().rposition(|(t, _)| *t <= self.at)
    }

    pub fn jump_hit(&mut self, forward: bool) -> bool {
        let points: Vec<u64> = self.hits.iter().map(|h| h.0).collect();
        self.jump(&points, forward)
    }

    /// Finds the times `text` appeared on screen, and goes to the first after now.
    pub fn find(&mut self, text: &str) -> usize {
        self.search = text.to_string();
        self.hits = crate::record::screen_lines(&self.rec)
            .into_iter()
            .filter(|(_, line)| line.contains(text))
            .map(|(t, line)| ((t * 1e6).round() as u64, line))
            .collect();
        if !self.hits.is_empty() {
            self.playing = false;
            if !self.jump_hit(true) {
                let first = self.hits[0].0;
                self.seek(first);
            }
        }
        self.hits.len()
    }

    /// Scrolls the screen `by` lines up (down if negative) through the lines that scrolled
    /// off it, `height` lines shown; paused meanwhile. False when there is nothing above.
    pub fn scroll(&mut self, by: isize, height: usize) -> bool {
        let now = self.back.as_ref().map_or(0, |w| w.back);
        let to = now.saturating_add_signed(by);
        self.back = None;
        if to == 0 {
            return true;
        }
        self.playing = false;
        self.last_tick = None;
        let w = window(self.screen.parser.screen_mut(), to, height);
        let moved = w.back > 0;
        self.back = moved.then_some(w);
        moved
    }

    /// What the screen shows: the rows now, or the lines scrolled back to.
    pub fn rows(&self) -> Vec<String> {
        if let Some(w) = &self.back {
            return w.lines.clone();
        }
        let s = self.screen.parser.screen();
        let (_, cols) = s.size();
        s.rows(0, cols.get()).collect()
    }
}
