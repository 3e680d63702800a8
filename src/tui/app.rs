//! The TUI's state and what each key does. Everything goes through the service layer with
//! the user's principal; what the role may not do is not offered (and the service refuses
//! it anyway).

use std::sync::Arc;

use super::keys::Key;
use super::player::Player;
use crate::auth::{allowed, Action};
use crate::service::{NewSession, Principal, Scope, SecretInfo, Service, UserInfo};
use crate::sessions::{Session, Viewer};
use crate::store::RecordingEntry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Sessions,
    Recordings,
    Audit,
    Admin,
}

impl Tab {
    pub fn title(self) -> &'static str {
        match self {
            Tab::Sessions => "Sessions",
            Tab::Recordings => "Recordings",
            Tab::Audit => "Audit",
            Tab::Admin => "Admin",
        }
    }
}

/// A session as the list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: crate::sessions::SessionId,
    pub name: String,
    pub owner: String,
    pub owner_id: i64,
    pub profile: String,
    pub state: String,
    pub age: String,
    pub idle: String,
    pub viewers: usize,
}

/// A one-line text field.
#[derive(Debug, Clone, Default)]
pub struct Field {
    pub label: &'static str,
    pub text: String,
}

/// A field whose text is drawn as dots (a secret's value), wiped when dropped.
#[derive(Clone, Default)]
pub struct Masked(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masked({} characters)", self.0.chars().count())
    }
}

/// Setting a secret: its name, its value (masked), which of the two has the focus.
#[derive(Debug, Clone, Default)]
pub struct SecretForm {
    pub name: Field,
    pub value: Masked,
    /// 0: the name, 1: the value.
    pub focus: usize,
}

/// The longest value the TUI's field takes (a pasted key arrives as typed characters).
const SECRET_FIELD_MAX: usize = 8192;

#[derive(Debug, Clone)]
pub enum Dialog {
    /// The user's secrets (or, with `global`, the host's): names and dates, never values;
    /// `form` sets one.
    Secrets {
        global: bool,
        list: Vec<SecretInfo>,
        selected: usize,
        form: Option<SecretForm>,
    },
    /// New session: profile (chosen from a list), workspace, name, command.
    New {
        profiles: Vec<String>,
        profile: usize,
        fields: Vec<Field>,
        focus: usize,
        /// Where a session may work: the default, where plain names live, granted roots.
        places: Vec<String>,
        /// Why the last try was refused (what was typed stays in the fields).
        error: Option<String>,
    },
    Rename {
        id: crate::sessions::SessionId,
        field: Field,
    },
    /// Ending a session: `y` or Enter ends it, `n` or Esc keeps it.
    ConfirmEnd {
        id: crate::sessions::SessionId,
        name: String,
    },
    /// Quitting the embedded host with `running` sessions still running, which end with
    /// it: `y` or Enter ends them and quits, `n` or Esc stays.
    ConfirmQuit { running: usize },
    /// One of the user's sessions waits to connect where no rule says (egress ask mode).
    Ask(crate::service::QuestionInfo),
    /// What a session created, changed and deleted in its workspace: `lines` from
    /// [`crate::changes::Summary::lines`] (escaped), shown from `scroll` on.
    Files {
        title: String,
        lines: Vec<String>,
        scroll: usize,
    },
    /// A text prompt: filter the current list, or search recordings / the player. Enter
    /// applies it; Esc puts back the filter there was before (`before`).
    Prompt {
        purpose: Prompt,
        field: Field,
        before: String,
    },
    /// The Admin view's: users, roles, keys ([`super::admin`]).
    Admin(super::admin::AdminDialog),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Filter,
    Search,
}

/// What the run loop must do after a key.
pub enum Effect {
    None,
    Quit,
    /// Full-screen passthrough to a session; input goes to it if `writer`.
    Attach {
        session: Arc<Session>,
        viewer: Arc<Viewer>,
        writer: bool,
    },
}

pub struct App {
    pub svc: Arc<Service>,
    pub me: Principal,
    pub tabs: Vec<Tab>,
    pub tab: Tab,
    pub sessions: Vec<SessionRow>,
    pub selected: usize,
    /// The selected session's screen as the preview shows it: its live rows, or scrolled
    /// back `preview_back` lines (of `preview_most`) through its scrollback, where it holds
    /// still until scrolled again or back to live.
    pub preview: Vec<String>,
    pub preview_back: usize,
    pub preview_most: usize,
    /// The session the preview is of.
    preview_of: Option<crate::sessions::SessionId>,
    pub recordings: Vec<RecordingEntry>,
    pub rec_selected: usize,
    pub audit: Vec<serde_json::Value>,
    pub audit_selected: usize,
    pub chain: Option<Result<u64, String>>,
    pub users: Vec<UserInfo>,
    pub user_selected: usize,
    pub profiles: Vec<(String, String)>,
    pub filter: String,
    pub dialog: Option<Dialog>,
    pub player: Option<Player>,
    pub help: bool,
    pub status: String,
    pub size: (u16, u16),
    /// Whether quitting ends the sessions (the embedded host): then `q` asks first.
    pub quitting: super::Quitting,
    last_refresh: std::time::Instant,
    /// Set when the user may no longer use the TUI (locked, removed): the run loop ends
    /// with this message.
    pub ended: Option<String>,
    /// Questions put aside with Esc (session, ask): not shown again.
    put_aside: Vec<(crate::sessions::SessionId, u64)>,
    /// The host's lockdown, for admins (the banner on the tabs' line).
    pub lockdown: Option<crate::service::Lockdown>,
}

/// The views a role may use.
fn tabs_for(role: crate::auth::Role) -> Vec<Tab> {
    let mut tabs = vec![Tab::Sessions, Tab::Recordings];
    if allowed(role, Action::ReadAudit) {
        tabs.push(Tab::Audit);
    }
    if allowed(role, Action::ManageUsers) {
        tabs.push(Tab::Admin);
    }
    tabs
}

fn ago(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl App {
    pub fn new(svc: Arc<Service>, me: Principal, size: (u16, u16)) -> App {
        let tabs = tabs_for(me.role);
        let mut app = App {
            svc,
            me,
            tabs,
            tab: Tab::Sessions,
            sessions: Vec::new(),
            selected: 0,
            preview: Vec::new(),
            preview_back: 0,
            preview_most: 0,
            preview_of: None,
            recordings: Vec::new(),
            rec_selected: 0,
            audit: Vec::new(),
            audit_selected: 0,
            chain: None,
            users: Vec::new(),
            user_selected: 0,
            profiles: Vec::new(),
            filter: String::new(),
            dialog: None,
            player: None,
            help: false,
            status: String::new(),
            size,
            quitting: super::Quitting::LeavesSessions,
            last_refresh: std::time::Instant::now(),
            ended: None,
            put_aside: Vec::new(),
            lockdown: None,
        };
        app.refresh();
        app
    }

    /// Re-reads the user's authority: a new role changes the views offered; a lock or a
    /// removal ends the TUI.
    fn authority(&mut self) {
        match self.svc.current(&self.me) {
            Ok(p) if p.role != self.me.role => {
                self.tabs = tabs_for(p.role);
                if !self.tabs.contains(&self.tab) {
                    self.tab = Tab::Sessions;
                }
                self.status = format!("your role is now {}", p.role);
                self.me = p;
            }
            Ok(_) => {}
            Err(crate::service::Error::Failed(_)) => {}
            Err(e) => self.ended = Some(e.to_string()),
        }
    }

    pub fn may(&self, action: Action) -> bool {
        allowed(self.me.role, action)
    }

    fn selected_session(&self) -> Option<&SessionRow> {
        self.sessions.get(self.selected)
    }

    pub fn own_selected(&self) -> bool {
        self.selected_session()
            .is_some_and(|s| self.me.owns(s.owner_id))
    }

    /// What the run loop calls a few times a second: the sessions view stays live; the
    /// others (the audit log is read whole) reload every few seconds.
    pub fn tick(&mut self) {
        self.authority();
        if self.ended.is_some() {
            return;
        }
        if self.tab == Tab::Sessions
            || self.last_refresh.elapsed() >= std::time::Duration::from_secs(3)
        {
            self.refresh();
        }
        self.ask();
    }

    /// Shows the oldest question of the user's sessions that is not put aside, unless
    /// another dialog is open (a question already shown is refreshed, or closed once gone).
    fn ask(&mut self) {
        let Ok(questions) = self.svc.questions(&self.me) else {
            return;
        };
        match &self.dialog {
            Some(Dialog::Ask(shown)) => {
                let key = (shown.session, shown.ask);
                self.dialog = questions
                    .into_iter()
                    .find(|q| (q.session, q.ask) == key)
                    .map(Dialog::Ask);
            }
            Some(_) => {}
            None => {
                self.put_aside
                    .retain(|k| questions.iter().any(|q| (q.session, q.ask) == *k));
                self.dialog = questions
                    .into_iter()
                    .find(|q| !self.put_aside.contains(&(q.session, q.ask)))
                    .map(Dialog::Ask);
            }
        }
    }

    /// Reloads what the current view shows.
    pub fn refresh(&mut self) {
        self.last_refresh = std::time::Instant::now();
        if self.may(Action::ManageLockdown) {
            self.lockdown = self.svc.lockdown_status(&self.me).ok().flatten();
        }
        match self.tab {
            Tab::Sessions => self.refresh_sessions(),
            Tab::Recordings => {
                if let Ok(list) = self.svc.recordings(&self.me, &Default::default()) {
                    self.recordings = list;
                }
                self.rec_selected = self
                    .rec_selected
                    .min(self.visible_recordings().len().saturating_sub(1));
            }
            Tab::Audit => {
                // The latest events, read from the end of the log, and the chain verified on
                // from where it was last (a refresh costs the same for any size of log).
                if let Ok(events) = self.svc.audit_events(&self.me, 1000, None) {
                    self.audit = events;
                }
                self.chain = self
                    .svc
                    .audit_verify(&self.me, false)
                    .ok()
                    .map(|r| r.map_err(|e| e.to_string()));
            }
            Tab::Admin => {
                if let Ok(users) = self.svc.users(&self.me) {
                    self.users = users;
                }
                let search = sandbox::profile::Search::standard();
                self.profiles = search
                    .list()
                    .into_iter()
                    .map(|(name, _)| {
                        let roles: Vec<&str> = crate::auth::Role::ALL
                            .iter()
                            .filter(|r| self.svc.config().profile_allowed(**r, &name).is_ok())
                            .map(|r| r.name())
                            .collect();
                        (name, roles.join(", "))
                    })
                    .collect();
            }
        }
    }

    fn refresh_sessions(&mut self) {
        let Ok(list) = self.svc.sessions(&self.me) else {
            return;
        };
        let keep = self.selected_session().map(|s| s.id);
        self.sessions = list
            .iter()
            .map(|s| SessionRow {
                id: s.id,
                name: s.name(),
                owner: s.owner.clone(),
                owner_id: s.owner_id,
                profile: s.profile.clone(),
                state: match s.exit_status() {
                    Some(code) => format!("exit {code}"),
                    None if s.frozen() => "frozen".into(),
                    None if !s.egress.questions().is_empty() => "asking".into(),
                    None if s.viewer_count() > 0 => "attached".into(),
                    None => "running".into(),
                },
                age: ago(s.age()),
                idle: ago(s.idle()),
                viewers: s.viewer_count(),
            })
            .collect();
        // Sessions of the other hosts sharing the store: their state says where they run
        // (attaching to one answers how to reach that host).
        let now = crate::tokens::now();
        for s in self.svc.cluster_sessions(&self.me).unwrap_or_default() {
            let Some(id) = crate::sessions::SessionId::parse(&s.id) else {
                continue;
            };
            let host = crate::text::printable(&s.host).into_owned();
            self.sessions.push(SessionRow {
                id,
                name: crate::text::printable(&s.name).into_owned(),
                owner: crate::text::printable(&s.owner).into_owned(),
                owner_id: s.owner_id,
                profile: crate::text::printable(&s.profile).into_owned(),
                state: if s.state == "lost" {
                    format!("lost:{host}")
                } else {
                    format!("on {host}")
                },
                age: ago(std::time::Duration::from_secs(
                    (now - s.started_unix).max(0) as u64,
                )),
                idle: "-".into(),
                viewers: s.viewers.max(0) as usize,
            });
        }
        if let Some(id) = keep {
            if let Some(i) = self.sessions.iter().position(|s| s.id == id) {
                self.selected = i;
            }
        }
        self.selected = self.selected.min(self.sessions.len().saturating_sub(1));
        let of = self.selected_session().map(|s| s.id);
        if of != self.preview_of {
            self.preview_back = 0;
        }
        // Scrolled back, the preview holds still while it is read.
        if of != self.preview_of || self.preview_back == 0 {
            self.load_preview(self.preview_back);
        }
    }

    /// Reads the selected session's screen into the preview, `back` lines up from live.
    fn load_preview(&mut self, back: usize) {
        self.preview_of = self.selected_session().map(|s| s.id);
        let height = super::view::preview_height(self.size, self.sessions.len());
        let window = match self.preview_of {
            Some(id) => self
                .svc
                .preview(&self.me, &id.to_string(), back, height)
                .unwrap_or_default(),
            None => Default::default(),
        };
        self.preview = window.lines;
        self.preview_back = window.back;
        self.preview_most = window.most;
    }

    /// A new terminal size: a view scrolled back keeps its place at its new height.
    pub fn resize(&mut self, size: (u16, u16)) {
        self.size = size;
        if self.preview_back > 0 {
            self.load_preview(self.preview_back);
        }
        if let Some(p) = self.player.as_mut() {
            if let Some(back) = p.back.take().map(|w| w.back) {
                p.scroll(back as isize, super::view::player_height(size));
            }
        }
    }

    /// Scrolls the preview `by` lines up (down if negative) through the selected session's
    /// scrollback.
    fn scroll_preview(&mut self, by: isize) {
        if self.selected_session().is_none() {
            return;
        }
        let to = self.preview_back.saturating_add_signed(by);
        self.load_preview(to);
        if by > 0 && self.preview_back == 0 {
            self.status = "nothing above the screen to scroll back to".into();
        }
    }

    pub fn visible_recordings(&self) -> Vec<&RecordingEntry> {
        let f = self.filter.to_lowercase();
        self.recordings
            .iter()
            .filter(|r| {
                f.is_empty()
                    || [&r.user, &r.profile, &r.started, &r.command, &r.id]
                        .iter()
                        .any(|v| v.to_lowercase().contains(&f))
            })
            .collect()
    }

    pub fn visible_audit(&self) -> Vec<&serde_json::Value> {
        let f = self.filter.to_lowercase();
        self.audit
            .iter()
            .filter(|v| f.is_empty() || v.to_string().to_lowercase().contains(&f))
            .collect()
    }

    pub(super) fn switch(&mut self, tab: Tab) {
        if self.tabs.contains(&tab) && self.tab != tab {
            self.tab = tab;
            self.filter.clear();
            self.status.clear();
            self.refresh();
        }
    }

    /// Handles one key.
    pub fn key(&mut self, key: Key) -> Effect {
        if self.help {
            self.help = false;
            return Effect::None;
        }
        if self.dialog.is_some() {
            return self.dialog_key(key);
        }
        if self.player.is_some() {
            self.player_key(key);
            return Effect::None;
        }
        match key {
            Key::Char('q') | Key::Ctrl('c') => return self.quit(),
            Key::Char('?') => self.help = true,
            Key::Tab | Key::Right if self.tab != Tab::Sessions || key == Key::Tab => self.cycle(1),
            Key::BackTab => self.cycle(-1),
            Key::Char(c @ '1'..='4') => {
                if let Some(&t) = self.tabs.get(c as usize - '1' as usize) {
                    self.switch(t);
                }
            }
            Key::Char('/') if self.tab != Tab::Sessions => {
                self.dialog = Some(Dialog::Prompt {
                    purpose: Prompt::Filter,
                    field: Field {
                        label: "filter",
                        text: self.filter.clone(),
                    },
                    before: self.filter.clone(),
                })
            }
            Key::Esc if !self.filter.is_empty() => {
                self.filter.clear();
            }
            // The sessions view's pages scroll the preview back (the list is rarely long).
            Key::PageUp if self.tab == Tab::Sessions => {
                let page = page(super::view::preview_height(self.size, self.sessions.len()));
                self.scroll_preview(page)
            }
            Key::PageDown if self.tab == Tab::Sessions => {
                let page = page(super::view::preview_height(self.size, self.sessions.len()));
                self.scroll_preview(-page)
            }
            Key::Esc if self.tab == Tab::Sessions && self.preview_back > 0 => self.load_preview(0),
            Key::Char('S') if self.may(Action::ManageSecrets { own: true }) => {
                self.open_secrets(false)
            }
            Key::Up | Key::Char('k') => self.move_by(-1),
            Key::Down | Key::Char('j') => self.move_by(1),
            Key::PageUp => self.move_by(-10),
            Key::PageDown => self.move_by(10),
            Key::Home | Key::Char('g') => self.move_by(-1_000_000),
            Key::End | Key::Char('G') => self.move_by(1_000_000),
            _ => {
                return match self.tab {
                    Tab::Sessions => self.sessions_key(key),
                    Tab::Recordings => {
                        self.recordings_key(key);
                        Effect::None
                    }
                    Tab::Audit => {
                        if key == Key::Char('v') {
                            self.chain = self
                                .svc
                                .audit_verify(&self.me, true)
                                .ok()
                                .map(|r| r.map_err(|e| e.to_string()));
                            self.status = "audit chain verified again, every line".into();
                        }
                        Effect::None
                    }
                    Tab::Admin => {
                        self.admin_tab_key(key);
                        Effect::None
                    }
                };
            }
        }
        Effect::None
    }

    /// Quits; where the sessions end with the TUI and some still run, asks first.
    fn quit(&mut self) -> Effect {
        if self.quitting == super::Quitting::LeavesSessions {
            return Effect::Quit;
        }
        let running = self
            .svc
            .sessions(&self.me)
            .map(|list| list.iter().filter(|s| s.exit_status().is_none()).count())
            .unwrap_or(0);
        if running == 0 {
            return Effect::Quit;
        }
        self.dialog = Some(Dialog::ConfirmQuit { running });
        Effect::None
    }

    /// Locks (ending their sessions, revoking their tokens) or unlocks the selected user.
    pub(super) fn toggle_lock(&mut self) {
        let Some(u) = self.users.get(self.user_selected).map(|u| u.user.clone()) else {
            return;
        };
        self.status = match self.svc.set_locked(&self.me, &u.name, !u.locked) {
            Ok(ended) if !u.locked => format!(
                "{} is locked: {} ended, tokens revoked",
                u.name,
                crate::text::count(ended, "session")
            ),
            Ok(_) => format!("{} is unlocked", u.name),
            Err(e) => e.to_string(),
        };
        self.refresh();
    }

    fn cycle(&mut self, by: i32) {
        let i = self.tabs.iter().position(|&t| t == self.tab).unwrap_or(0) as i32;
        let n = self.tabs.len() as i32;
        let t = self.tabs[((i + by).rem_euclid(n)) as usize];
        self.switch(t);
    }

    fn move_by(&mut self, by: i64) {
        let (cur, len) = match self.tab {
            Tab::Sessions => (&mut self.selected, self.sessions.len()),
            Tab::Recordings => {
                let len = self.visible_recordings().len();
                (&mut self.rec_selected, len)
            }
            Tab::Audit => {
                let len = self.visible_audit().len();
                (&mut self.audit_selected, len)
            }
            Tab::Admin => (&mut self.user_selected, self.users.len()),
        };
        *cur = (*cur as i64 + by).clamp(0, len.saturating_sub(1) as i64) as usize;
        if self.tab == Tab::Sessions {
            self.refresh_sessions();
        }
    }

    fn sessions_key(&mut self, key: Key) -> Effect {
        let selected = self.selected_session().cloned();
        let own = self.own_selected();
        match (key, selected) {
            (Key::Char('n'), _) if self.may(Action::CreateSession) => {
                let profiles = match self.svc.profiles(&self.me) {
                    Ok(list) => list,
                    Err(e) => {
                        self.status = e.to_string();
                        return Effect::None;
                    }
                };
                let default = profiles
                    .iter()
                    .position(|p| *p == self.svc.config().default_profile)
                    .unwrap_or(0);
                let places = match self.svc.workspace_choices(&self.me) {
                    Ok(c) => workspace_words(&c),
                    Err(e) => vec![e.to_string()],
                };
                self.dialog = Some(Dialog::New {
                    profiles,
                    profile: default,
                    places,
                    error: None,
                    fields: vec![
                        Field {
                            label: "workspace",
                            text: String::new(),
                        },
                        Field {
                            label: "name",
                            text: String::new(),
                        },
                        Field {
                            label: "command",
                            text: String::new(),
                        },
                    ],
                    focus: 0,
                });
            }
            (Key::Enter | Key::Char('a'), Some(s)) if self.may(Action::AttachSession { own }) => {
                return self.open(s.id, true)
            }
            (Key::Enter | Key::Char('o'), Some(s)) if self.may(Action::ObserveSession { own }) => {
                return self.open(s.id, false)
            }
            (Key::Char('f'), Some(s)) if self.may(Action::ObserveSession { own }) => {
                match self.svc.session_files(&self.me, &s.id.to_string()) {
                    Ok(summary) => {
                        self.dialog = Some(Dialog::Files {
                            title: format!(" Files changed so far · {} · #{} ", s.name, s.id),
                            lines: summary.lines(),
                            scroll: 0,
                        })
                    }
                    Err(e) => self.status = e.to_string(),
                }
            }
            (Key::Char('r'), Some(s)) if self.may(Action::AttachSession { own }) => {
                self.dialog = Some(Dialog::Rename {
                    id: s.id,
                    field: Field {
                        label: "name",
                        text: s.name.clone(),
                    },
                });
            }
            (Key::Char('x'), Some(s)) if self.may(Action::EndSession { own }) => {
                self.dialog = Some(Dialog::ConfirmEnd {
                    id: s.id,
                    name: s.name.clone(),
                });
            }
            _ => {}
        }
        Effect::None
    }

    fn open(&mut self, id: crate::sessions::SessionId, writer: bool) -> Effect {
        match self.svc.attach(&self.me, &id.to_string(), writer) {
            Ok((session, viewer)) => {
                if writer {
                    session.resize(self.size.0, self.size.1);
                }
                Effect::Attach {
                    session,
                    viewer,
                    writer,
                }
            }
            Err(e) => {
                self.status = e.to_string();
                Effect::None
            }
        }
    }

    fn recordings_key(&mut self, key: Key) {
        match key {
            Key::Enter | Key::Char('p') => {
                let Some(r) = self
                    .visible_recordings()
                    .get(self.rec_selected)
                    .map(|r| (*r).clone())
                else {
                    return;
                };
                self.play(&r.id, None);
            }
            Key::Char('s') => {
                self.dialog = Some(Dialog::Prompt {
                    purpose: Prompt::Search,
                    field: Field {
                        label: "search recordings for",
                        text: String::new(),
                    },
                    before: self.filter.clone(),
                })
            }
            Key::Char('f') => {
                let Some(id) = self
                    .visible_recordings()
                    .get(self.rec_selected)
                    .map(|r| r.id.clone())
                else {
                    return;
                };
                match self.svc.recording_files(&self.me, &id) {
                    Ok((r, summary)) => {
                        self.dialog = Some(Dialog::Files {
                            title: format!(
                                " Files changed · session {} · {} ",
                                crate::sessions::SessionId::from_number(r.session as u64).short(),
                                r.id
                            ),
                            lines: summary.lines(),
                            scroll: 0,
                        })
                    }
                    Err(e) => self.status = e.to_string(),
                }
            }
            Key::Char('e') => {
                let Some(id) = self
                    .visible_recordings()
                    .get(self.rec_selected)
                    .map(|r| r.id.clone())
                else {
                    return;
                };
                self.status = match self.svc.export_recording(&self.me, &id, "asciicast-v2") {
                    Ok(path) => format!("exported for asciinema: {}", path.display()),
                    Err(e) => e.to_string(),
                };
            }
            _ => {}
        }
    }

    /// Opens the player (the service audits the access), optionally at a search hit.
    pub fn play(&mut self, id: &str, find: Option<&str>) {
        match self.svc.open_recording(&self.me, id, 0.0) {
            Ok((entry, rec)) => {
                let mut p = Player::new(entry.id, entry.user, rec, 2.0);
                if let Some(text) = find {
                    let n = p.find(text);
                    self.status =
                        format!("{n} places where \"{text}\" appeared; n / N to go between them");
                }
                self.player = Some(p);
            }
            Err(e) => self.status = e.to_string(),
        }
    }

    fn player_key(&mut self, key: Key) {
        let Some(p) = self.player.as_mut() else {
            return;
        };
        match key {
            Key::Char('q') | Key::Esc => {
                self.player = None;
                self.status.clear();
            }
            Key::Char(' ') => p.toggle(),
            Key::Char('.') => p.step(),
            Key::Char('+') | Key::Char('=') => p.speed = (p.speed * 2.0).min(64.0),
            Key::Char('-') => p.speed = (p.speed / 2.0).max(1.0 / 16.0),
            Key::Right | Key::Char('l') => p.skip(5),
            Key::Left | Key::Char('h') => p.skip(-5),
            Key::Up => p.skip(60),
            Key::Down => p.skip(-60),
            Key::Home | Key::Char('g') => p.seek(0),
            Key::End | Key::Char('G') => p.seek(u64::MAX),
            Key::Char(c @ '0'..='9') => {
                let at = p.duration / 10 * (c as u64 - '0' as u64);
                p.seek(at);
            }
            Key::Char(']') if !p.jump_marker(true) => {
                self.status = "no marker after this point".into()
            }
            Key::Char('[') if !p.jump_marker(false) => {
                self.status = "no marker before this point".into()
            }
            Key::Char('}') if !p.jump_event(true) => {
                self.status = "no command or connection after this point".into()
            }
            Key::Char('{') if !p.jump_event(false) => {
                self.status = "no command or connection before this point".into()
            }
            Key::Char('n') if !p.jump_hit(true) => self.status = "no later match".into(),
            Key::Char('N') if !p.jump_hit(false) => self.status = "no earlier match".into(),
            Key::Char('/') => {
                self.dialog = Some(Dialog::Prompt {
                    purpose: Prompt::Search,
                    field: Field {
                        label: "find in this recording",
                        text: p.search.clone(),
                    },
                    before: self.filter.clone(),
                })
            }
            Key::PageUp | Key::PageDown => {
                let height = super::view::player_height(self.size);
                let page = page(height);
                let by = if key == Key::PageUp { page } else { -page };
                if !p.scroll(by, height) && by > 0 {
                    self.status = "nothing above the screen to scroll back to".into();
                }
            }
            Key::Char('?') => self.help = true,
            _ => {}
        }
    }

    /// The scope the Secrets dialog shows.
    fn secret_scope(&self, global: bool) -> Scope {
        if global {
            Scope::Global
        } else {
            Scope::user_or(None, &self.me)
        }
    }

    /// Opens (or reloads) the Secrets dialog on the user's own secrets or the global ones.
    pub fn open_secrets(&mut self, global: bool) {
        match self.svc.secrets(&self.me, &self.secret_scope(global)) {
            Ok(list) => {
                self.dialog = Some(Dialog::Secrets {
                    global,
                    list,
                    selected: 0,
                    form: None,
                })
            }
            Err(e) => self.status = e.to_string(),
        }
    }

    fn secrets_key(&mut self, key: Key) {
        let Some(Dialog::Secrets {
            global,
            list,
            selected,
            form,
        }) = self.dialog.as_mut()
        else {
            return;
        };
        let global = *global;
        let may_change = if global {
            allowed(self.me.role, Action::ManageGlobalSecrets)
        } else {
            true
        };
        if let Some(f) = form.as_mut() {
            match key {
                Key::Esc => *form = None,
                Key::Tab | Key::BackTab | Key::Up | Key::Down => f.focus = 1 - f.focus,
                Key::Enter if f.focus == 0 => f.focus = 1,
                Key::Enter => {
                    let name = f.name.text.trim().to_string();
                    let value = f.value.clone();
                    let scope = self.secret_scope(global);
                    match self
                        .svc
                        .set_secret(&self.me, &scope, &name, value.0.as_bytes())
                    {
                        Ok(info) => {
                            self.status = format!("secret {} set ({})", info.name, info.scope);
                            self.open_secrets(global);
                        }
                        // The form stays, with what was typed, so that it can be corrected.
                        Err(e) => self.status = e.to_string(),
                    }
                }
                k if f.focus == 0 => edit(&mut f.name.text, k),
                Key::Char(c) if f.value.0.chars().count() < SECRET_FIELD_MAX => f.value.0.push(c),
                Key::Backspace => {
                    f.value.0.pop();
                }
                Key::Ctrl('u') => f.value.0.clear(),
                _ => {}
            }
            return;
        }
        match key {
            Key::Esc | Key::Char('q') => self.dialog = None,
            Key::Up | Key::Char('k') => *selected = selected.saturating_sub(1),
            Key::Down | Key::Char('j') => {
                *selected = (*selected + 1).min(list.len().saturating_sub(1))
            }
            Key::Char('a') | Key::Char('n') if may_change => {
                *form = Some(SecretForm {
                    name: Field {
                        label: "name",
                        text: String::new(),
                    },
                    ..Default::default()
                })
            }
            Key::Enter if may_change && !list.is_empty() => {
                let name = list[*selected].name.clone();
                *form = Some(SecretForm {
                    name: Field {
                        label: "name",
                        text: name,
                    },
                    focus: 1,
                    ..Default::default()
                })
            }
            Key::Char('d') | Key::Char('x') if may_change && !list.is_empty() => {
                let name = list[*selected].name.clone();
                let scope = self.secret_scope(global);
                self.status = match self.svc.remove_secret(&self.me, &scope, &name) {
                    Ok(()) => format!("secret {name} removed"),
                    Err(e) => e.to_string(),
                };
                self.open_secrets(global);
            }
            Key::Char('g') if self.may(Action::ListGlobalSecrets) => self.open_secrets(!global),
            _ => {}
        }
    }

    fn dialog_key(&mut self, key: Key) -> Effect {
        if matches!(self.dialog, Some(Dialog::Secrets { .. })) {
            self.secrets_key(key);
            return Effect::None;
        }
        if matches!(self.dialog, Some(Dialog::Admin(_))) {
            self.admin_dialog_key(key);
            return Effect::None;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return Effect::None;
        };
        if key == Key::Esc {
            match dialog {
                Dialog::Ask(q) => {
                    self.put_aside.push((q.session, q.ask));
                    self.status = format!(
                        "question {} of session {} put aside: `questions` and `answer` over SSH, or the API, still answer it",
                        q.ask, q.session
                    );
                }
                // Cancelled: the list as it was filtered before.
                Dialog::Prompt { before, .. } => self.filter = std::mem::take(before),
                _ => {}
            }
            self.dialog = None;
            return Effect::None;
        }
        match dialog {
            Dialog::Ask(q) => {
                let answer = match key {
                    Key::Char('o' | 'O') => sandbox::egress::Answer::Once,
                    Key::Char('s' | 'S') => sandbox::egress::Answer::Session,
                    Key::Char('d' | 'D') => sandbox::egress::Answer::Deny,
                    _ => return Effect::None,
                };
                let (session, ask) = (q.session, q.ask);
                self.dialog = None;
                self.status =
                    match self
                        .svc
                        .answer_question(&self.me, &session.to_string(), ask, answer)
                    {
                        Ok(q) => format!(
                            "session {session}: {}:{} answered {}",
                            q.host,
                            q.port,
                            answer.name()
                        ),
                        Err(e) => e.to_string(),
                    };
            }
            Dialog::Secrets { .. } | Dialog::Admin(_) => {}
            Dialog::Files { lines, scroll, .. } => {
                let last = lines.len().saturating_sub(1);
                *scroll = match key {
                    Key::Up | Key::Char('k') => scroll.saturating_sub(1),
                    Key::Down | Key::Char('j') => (*scroll + 1).min(last),
                    Key::PageUp => scroll.saturating_sub(10),
                    Key::PageDown => (*scroll + 10).min(last),
                    Key::Home | Key::Char('g') => 0,
                    Key::End | Key::Char('G') => last,
                    Key::Char('q') | Key::Enter => {
                        self.dialog = None;
                        return Effect::None;
                    }
                    _ => *scroll,
                };
            }
            Dialog::New {
                profiles,
                profile,
                fields,
                focus,
                error,
                ..
            } => match key {
                Key::Tab | Key::Down => *focus = (*focus + 1) % (fields.len() + 1),
                Key::BackTab | Key::Up => *focus = (*focus + fields.len()) % (fields.len() + 1),
                Key::Left if *focus == 0 => {
                    *profile = (*profile + profiles.len().max(1) - 1) % profiles.len().max(1)
                }
                Key::Right | Key::Char(' ') if *focus == 0 => {
                    *profile = (*profile + 1) % profiles.len().max(1)
                }
                Key::Enter => {
                    let req = NewSession {
                        profile: profiles.get(*profile).cloned(),
                        workspace: Some(fields[0].text.trim().to_string())
                            .filter(|w| !w.is_empty()),
                        name: fields[1].text.trim().to_string(),
                        command: match crate::text::split_words(&fields[2].text) {
                            Ok(words) => words,
                            Err(e) => {
                                *error = Some(format!("command: {e}"));
                                return Effect::None;
                            }
                        },
                        cols: self.size.0,
                        rows: self.size.1,
                        term: "xterm-256color".into(),
                    };
                    return match self.svc.create_session(&self.me, req) {
                        Ok(s) => {
                            self.dialog = None;
                            self.refresh_sessions();
                            if let Some(i) = self.sessions.iter().position(|r| r.id == s.id) {
                                self.selected = i;
                            }
                            self.open(s.id, true)
                        }
                        // Refused: the dialog stays with what was typed, and says why.
                        Err(e) => {
                            *error = Some(e.to_string());
                            Effect::None
                        }
                    };
                }
                k if *focus > 0 => edit(&mut fields[*focus - 1].text, k),
                _ => {}
            },
            Dialog::Rename { id, field } => {
                if key == Key::Enter {
                    let (id, name) = (*id, field.text.clone());
                    self.dialog = None;
                    match self.svc.rename_session(&self.me, &id.to_string(), &name) {
                        Ok(_) => {
                            self.status = format!(
                                "session {} is now \"{}\"",
                                id.short(),
                                crate::text::printable(name.trim())
                            )
                        }
                        Err(e) => self.status = e.to_string(),
                    }
                    self.refresh_sessions();
                } else {
                    edit(&mut field.text, key);
                }
            }
            Dialog::ConfirmEnd { id, .. } => match confirmation(key) {
                Some(true) => {
                    let id = *id;
                    self.dialog = None;
                    match self.svc.end_session(&self.me, &id.to_string()) {
                        Ok(()) => self.status = format!("session {} ended", id.short()),
                        Err(e) => self.status = e.to_string(),
                    }
                    self.refresh_sessions();
                }
                Some(false) => self.dialog = None,
                None => {}
            },
            Dialog::ConfirmQuit { .. } => match confirmation(key) {
                Some(true) => {
                    self.dialog = None;
                    return Effect::Quit;
                }
                Some(false) => self.dialog = None,
                None => {}
            },
            Dialog::Prompt { purpose, field, .. } => {
                if key != Key::Enter {
                    edit(&mut field.text, key);
                    if *purpose == Prompt::Filter {
                        self.filter = field.text.clone();
                    }
                    return Effect::None;
                }
                let (purpose, text) = (*purpose, field.text.clone());
                self.dialog = None;
                match purpose {
                    Prompt::Filter => self.filter = text,
                    Prompt::Search if self.player.is_some() => {
                        if let Some(p) = self.player.as_mut() {
                            let n = p.find(&text);
                            self.status = format!(
                                "{n} places where \"{text}\" appeared; n / N to go between them"
                            );
                        }
                    }
                    Prompt::Search => self.search_all(&text),
                }
            }
        }
        Effect::None
    }

    /// Searches every readable recording; opens the first hit in the player.
    fn search_all(&mut self, text: &str) {
        match self
            .svc
            .search(&self.me, text, &Default::default())
            .map(|(hits, _)| hits)
        {
            Ok(hits) if hits.is_empty() => {
                self.status = format!("\"{text}\" appears in no recording you may read")
            }
            Ok(hits) => {
                let first = hits[0].recording.clone();
                let in_recs = hits
                    .iter()
                    .map(|h| h.recording.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                self.play(&first, Some(text));
                let extra = format!(
                    " ({} hits in {in_recs} recordings; this is {first})",
                    hits.len()
                );
                self.status.push_str(&extra);
            }
            Err(e) => self.status = e.to_string(),
        }
    }
}

/// A page for scrolling: half what the view shows.
fn page(height: usize) -> isize {
    (height / 2).max(1) as isize
}

/// A confirmation's answer: yes (`y`, Enter), no (`n`; Esc closes every dialog), or not an
/// answer (the dialog stays: a stray key neither confirms nor cancels).
fn confirmation(key: Key) -> Option<bool> {
    match key {
        Key::Char('y' | 'Y') | Key::Enter => Some(true),
        Key::Char('n' | 'N') | Key::Esc => Some(false),
        _ => None,
    }
}

/// Line editing in a text field.
fn edit(text: &mut String, key: Key) {
    match key {
        Key::Char(c) if text.chars().count() < 200 => text.push(c),
        Key::Backspace => {
            text.pop();
        }
        Key::Ctrl('u') => text.clear(),
        _ => {}
    }
}

/// The new-session dialog's lines on where a session may work.
pub fn workspace_words(c: &crate::service::WorkspaceChoices) -> Vec<String> {
    let granted = if c.granted.is_empty() {
        "none granted ([workspaces] in the configuration)".to_string()
    } else {
        c.granted
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        format!("empty: {}", c.default.display()),
        format!("a name: a folder in {}", c.area.display()),
        format!("a path: beneath {granted}"),
    ]
}
