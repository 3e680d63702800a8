//! Drawing: one function per view, from the App's state only (so snapshot tests can draw any
//! state). Colours are the terminal's own plus reverse video for the selection and a few
//! named accents, so the TUI reads on dark and light backgrounds alike.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::app::{App, Dialog, Tab};
use crate::auth::Action;

pub(super) const ACCENT: Color = Color::Cyan;

pub(super) fn selected() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

pub(super) fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

pub(super) fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}

/// The tabs, the view, the status line and the keys' line.
fn areas(area: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// The session list's and the preview's areas in the sessions view's `area`.
fn sessions_areas(area: Rect, sessions: usize) -> [Rect; 2] {
    if area.width >= 140 {
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area)
    } else {
        let list_h = (sessions as u16 + 3).max(4).min((area.height / 2).max(1));
        Layout::vertical([Constraint::Length(list_h), Constraint::Min(3)]).areas(area)
    }
}

/// The player's screen, its seek bar and its line of figures, in the view's `area`.
fn player_areas(area: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// How many lines the preview shows on a terminal of `size` listing `sessions` sessions.
pub fn preview_height(size: (u16, u16), sessions: usize) -> usize {
    let [_, main, _, _] = areas(super::rect(size));
    usize::from(
        Block::bordered()
            .inner(sessions_areas(main, sessions)[1])
            .height,
    )
}

/// How many lines the player's screen shows on a terminal of `size`.
pub fn player_height(size: (u16, u16)) -> usize {
    let [_, main, _, _] = areas(super::rect(size));
    usize::from(Block::bordered().inner(player_areas(main)[0]).height)
}

pub fn draw(f: &mut Frame, app: &App) {
    let [top, main, status, hints] = areas(f.area());
    draw_tabs(f, app, top);
    match (app.tab, &app.player) {
        (_, Some(_)) => draw_player(f, app, main),
        (Tab::Sessions, _) => draw_sessions(f, app, main),
        (Tab::Recordings, _) => draw_recordings(f, app, main),
        (Tab::Audit, _) => draw_audit(f, app, main),
        (Tab::Admin, _) => draw_admin(f, app, main),
    }
    let status_line = if app.status.is_empty() && !app.filter.is_empty() {
        Line::from(vec![
            Span::styled(" filter: ", dim()),
            Span::raw(app.filter.clone()),
            Span::styled("  (Esc clears)", dim()),
        ])
    } else {
        Line::from(Span::styled(
            format!(" {}", app.status),
            Style::default().fg(Color::Yellow),
        ))
    };
    f.render_widget(Paragraph::new(status_line), status);
    f.render_widget(Paragraph::new(hint_line(app)), hints);
    if let Some(d) = &app.dialog {
        draw_dialog(f, d, f.area());
    }
    if app.help {
        draw_help(f, app, f.area());
    }
}

fn draw_tabs(f: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::styled(" cordon ", bold().fg(ACCENT)), Span::raw("│")];
    for (i, t) in app.tabs.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, t.title());
        spans.push(if *t == app.tab {
            Span::styled(label, selected().add_modifier(Modifier::BOLD))
        } else {
            Span::raw(label)
        });
    }
    if let Some(l) = &app.lockdown {
        spans.push(Span::styled(
            format!(" LOCKDOWN since {} ", l.since),
            bold().fg(Color::White).bg(Color::Red),
        ));
    }
    let who = format!("{} ({}) ", app.me.user, app.me.role);
    let used: usize = spans.iter().map(|s| s.content.chars().count()).sum();
    let pad = (area.width as usize).saturating_sub(used + who.chars().count());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(who, dim()));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The keys a dialog takes, as its footer says them: each does what it says (the tests
/// press them), and only what the role may do is offered.
pub fn dialog_keys(app: &App, d: &Dialog) -> Vec<(&'static str, &'static str)> {
    match d {
        Dialog::Secrets {
            global, form: None, ..
        } => {
            let mut keys = Vec::new();
            if !*global || app.may(Action::ManageGlobalSecrets) {
                keys.extend([("a", "add"), ("Enter", "replace"), ("d", "remove")]);
            }
            if app.may(Action::ListGlobalSecrets) {
                keys.push(("g", "own/global"));
            }
            keys.push(("Esc", "close"));
            keys
        }
        Dialog::Secrets { form: Some(f), .. } => vec![
            ("Tab", "other field"),
            if f.focus == 0 {
                ("Enter", "next field")
            } else {
                ("Enter", "save")
            },
            ("Esc", "cancel"),
        ],
        Dialog::Ask(_) => vec![
            ("o", "allow once"),
            ("s", "allow for the session"),
            ("d", "deny"),
            ("Esc", "later"),
        ],
        Dialog::Files { .. } => vec![("↑↓ PgUp PgDn g G", "scroll"), ("q Enter Esc", "close")],
        Dialog::ConfirmEnd { .. } => vec![("y Enter", "end it"), ("n Esc", "keep it")],
        Dialog::ConfirmQuit { .. } => {
            vec![("y Enter", "end them and quit"), ("n Esc", "stay")]
        }
        Dialog::New { focus, .. } => {
            let mut keys = vec![("Tab ↑↓", "field")];
            if *focus == 0 {
                keys.push(("←→ Space", "profile"));
            }
            keys.extend([("Enter", "start"), ("Esc", "cancel")]);
            keys
        }
        Dialog::Rename { .. } => vec![("Enter", "rename"), ("Esc", "cancel")],
        Dialog::Admin(d) => super::admin::hints(d),
        Dialog::Prompt {
            purpose: super::app::Prompt::Filter,
            ..
        } => vec![("Enter", "filter"), ("Esc", "cancel")],
        Dialog::Prompt { .. } => vec![("Enter", "search"), ("Esc", "cancel")],
    }
}

/// The keys that work here, for the bottom line; only what the role may do.
fn hint_line(app: &App) -> Line<'static> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    if let Some(d) = &app.dialog {
        keys = dialog_keys(app, d);
    } else if let Some(p) = &app.player {
        keys = vec![
            ("Space", "play/pause"),
            ("←→", "±5s"),
            ("+-", "speed"),
            ("[]", "markers"),
            ("{}", "commands, connections (^)"),
            ("/", "find"),
            ("n N", "matches"),
        ];
        if p.back.is_some() || p.screen.parser.screen().scrollback_len() > 0 {
            keys.push(("PgUp PgDn", "scroll back"));
        }
        keys.push(("q", "close"));
    } else {
        match app.tab {
            Tab::Sessions => {
                let own = app.own_selected();
                if app.may(Action::CreateSession) {
                    keys.push(("n", "new"));
                }
                if app.may(Action::ManageSecrets { own: true }) {
                    keys.push(("S", "secrets"));
                }
                if !app.sessions.is_empty() {
                    if app.preview_back > 0 || app.preview_most > 0 {
                        keys.push(("PgUp PgDn", "scroll"));
                    }
                    if app.may(Action::AttachSession { own }) {
                        keys.push(("Enter", "attach"));
                        keys.push(("r", "rename"));
                    }
                    if app.may(Action::ObserveSession { own }) {
                        keys.push(("o", "observe"));
                        keys.push(("f", "files"));
                    }
                    if app.may(Action::EndSession { own }) {
                        keys.push(("x", "end"));
                    }
                }
            }
            Tab::Recordings => keys.extend([
                ("Enter", "play"),
                ("f", "files"),
                ("s", "search"),
                ("e", "export"),
                ("/", "filter"),
            ]),
            Tab::Audit => keys.extend([("/", "filter"), ("v", "verify")]),
            Tab::Admin => keys.extend([
                ("a", "add"),
                ("r", "role"),
                ("K", "keys"),
                ("l", "lock"),
                ("t", "tokens"),
                // `L` (lockdown) is in the help: 80 columns hold no more.
                ("D", "remove"),
            ]),
        }
        keys.extend([("Tab", "view"), ("?", "help"), ("q", "quit")]);
    }
    let mut spans = vec![Span::raw(" ")];
    for (k, what) in keys {
        spans.push(Span::styled(k.to_string(), bold().fg(ACCENT)));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

fn draw_sessions(f: &mut Frame, app: &App, area: Rect) {
    let [list_area, preview_area] = sessions_areas(area, app.sessions.len());
    let header = Row::new([
        "ID", "NAME", "OWNER", "PROFILE", "STATE", "AGE", "IDLE", "VIEW",
    ])
    .style(bold());
    let rows = app.sessions.iter().map(|s| {
        Row::new(vec![
            s.id.short(),
            s.name.clone(),
            s.owner.clone(),
            s.profile.clone(),
            s.state.clone(),
            s.age.clone(),
            s.idle.clone(),
            s.viewers.to_string(),
        ])
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Min(10),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(4),
    ];
    let title = format!(" Sessions ({}) ", app.sessions.len());
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(selected())
        .block(Block::bordered().title(Span::styled(title, bold().fg(ACCENT))));
    let mut state =
        TableState::default().with_selected((!app.sessions.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, list_area, &mut state);

    let mut block = match app.sessions.get(app.selected) {
        Some(s) => Block::bordered().title(Span::styled(
            format!(" {} · {} · {} ", s.name, s.id.short(), s.owner),
            bold().fg(ACCENT),
        )),
        None => Block::bordered().title(" preview "),
    };
    if app.preview_back > 0 {
        block = block.title_bottom(back_indicator(
            app.preview_back,
            app.preview_most,
            "PgDn, Esc: live",
        ));
    }
    let inner = block.inner(preview_area);
    f.render_widget(block, preview_area);
    if app.sessions.is_empty() {
        let text = if app.may(Action::CreateSession) {
            "No sessions yet. Press n to start one."
        } else {
            "No sessions to show."
        };
        f.render_widget(Paragraph::new(Line::styled(text, dim())), inner);
        return;
    }
    f.render_widget(Paragraph::new(fitting(&app.preview, inner.height)), inner);
}

/// Where a view scrolled back through a screen's scrollback is, and how to return.
fn back_indicator(back: usize, most: usize, keys: &str) -> Span<'static> {
    Span::styled(
        format!(" ↑ {back} of {most} lines back · {keys} "),
        bold().fg(Color::Yellow),
    )
}

/// The rows of a terminal screen that fit `height`: from the top while the content fits,
/// else the last ones with content (where the cursor and the newest output are).
fn fitting(rows: &[String], height: u16) -> Vec<Line<'static>> {
    let used = rows
        .iter()
        .rposition(|r| !r.trim_end().is_empty())
        .map(|i| i + 1)
        .unwrap_or(0);
    let start = used.saturating_sub(height as usize);
    rows[start..]
        .iter()
        .take(height as usize)
        .map(|r| Line::raw(r.clone()))
        .collect()
}

fn draw_recordings(f: &mut Frame, app: &App, area: Rect) {
    let list = app.visible_recordings();
    let header = Row::new([
        "ID", "USER", "PROFILE", "STATE", "STARTED", "SIZE", "COMMAND",
    ])
    .style(bold());
    let rows = list.iter().map(|r| {
        let started = r.started.get(..16).unwrap_or(&r.started).replace('T', " ");
        let state = if r.hold {
            format!("{} (held)", r.state)
        } else {
            r.state.to_string()
        };
        Row::new(vec![
            r.id.clone(),
            r.user.clone(),
            r.profile.clone(),
            state,
            started,
            human_bytes(r.bytes),
            r.command.clone(),
        ])
    });
    let widths = [
        Constraint::Length(16),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(16),
        Constraint::Length(8),
        Constraint::Min(6),
    ];
    let title = format!(" Recordings ({} of {}) ", list.len(), app.recordings.len());
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(selected())
        .block(Block::bordered().title(Span::styled(title, bold().fg(ACCENT))));
    let mut state =
        TableState::default().with_selected((!list.is_empty()).then_some(app.rec_selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn human_bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1048576.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.1} MiB", n / 1048576.0)
    }
}

fn clock(us: u64) -> String {
    let s = us / 1_000_000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn draw_player(f: &mut Frame, app: &App, area: Rect) {
    let Some(p) = &app.player else { return };
    let [screen_area, bar, info] = player_areas(area);
    // The timeline beside the screen when there is room for both; under it (the latest
    // event) when there is not.
    let beside = !p.timeline.is_empty() && screen_area.width >= 120;
    let (screen_area, timeline_area) = if beside {
        let [s, t] =
            Layout::horizontal([Constraint::Min(40), Constraint::Length(44)]).areas(screen_area);
        (s, Some(t))
    } else {
        (screen_area, None)
    };
    let now = p.event_now();
    let mut block = Block::bordered().title(Span::styled(
        format!(" replay {} · {} ", p.id, p.user),
        bold().fg(ACCENT),
    ));
    if let Some(w) = &p.back {
        block = block.title_bottom(back_indicator(w.back, w.most, "PgDn, Space: play on"));
    } else if let (None, Some(i)) = (timeline_area, now) {
        // The latest event before this point (a `^` on the bar), under the screen.
        block = block.title_bottom(Span::styled(format!(" {} ", p.timeline[i].1), dim()));
    }
    let inner = block.inner(screen_area);
    f.render_widget(block, screen_area);
    f.render_widget(Paragraph::new(fitting(&p.rows(), inner.height)), inner);
    if let Some(area) = timeline_area {
        let block =
            Block::bordered().title(Span::styled(" what it did · { } jump ", bold().fg(ACCENT)));
        let inner = block.inner(area);
        f.render_widget(block, area);
        // The current event in view, a third of the way down.
        let height = inner.height as usize;
        let first = now
            .map(|i| i.saturating_sub(height / 3))
            .unwrap_or(0)
            .min(p.timeline.len().saturating_sub(height));
        let lines: Vec<Line> = p
            .timeline
            .iter()
            .enumerate()
            .skip(first)
            .take(height)
            .map(|(i, (t, words))| {
                let text = format!("{} {words}", clock(*t));
                if Some(i) == now {
                    Line::styled(text, bold().fg(ACCENT))
                } else if *t > p.at {
                    Line::styled(text, dim())
                } else {
                    Line::raw(text)
                }
            })
            .collect();
        f.render_widget(Paragraph::new(lines), inner);
    }

    // Seek bar with markers (|) and search hits (*).
    let width = bar.width.saturating_sub(2).max(1) as usize;
    let pos = |t: u64| {
        if p.duration == 0 {
            0
        } else {
            ((t as f64 / p.duration as f64) * (width - 1) as f64) as usize
        }
    };
    let mut cells: Vec<char> = vec!['─'; width];
    for (t, _) in &p.timeline {
        cells[pos(*t).min(width - 1)] = '^';
    }
    for (t, _) in &p.markers {
        cells[pos(*t).min(width - 1)] = '|';
    }
    for (t, _) in &p.hits {
        cells[pos(*t).min(width - 1)] = '*';
    }
    let here = pos(p.at).min(width - 1);
    let (before, rest) = cells.split_at(here);
    let bar_line = Line::from(vec![
        Span::raw(" "),
        Span::styled(
            before.iter().collect::<String>(),
            Style::default().fg(ACCENT),
        ),
        Span::styled("●", bold().fg(ACCENT)),
        Span::raw(rest.iter().skip(1).collect::<String>()),
    ]);
    f.render_widget(Paragraph::new(bar_line), bar);
    let state = if p.playing { "playing" } else { "paused" };
    let mut text = format!(
        " {} / {}  {}  speed {}×  idle ≤ {} s",
        clock(p.at),
        clock(p.duration),
        state,
        p.speed,
        p.idle_limit / 1_000_000
    );
    if !p.markers.is_empty() {
        text.push_str(&format!("  {} markers", p.markers.len()));
    }
    if !p.search.is_empty() {
        text.push_str(&format!("  \"{}\": {} matches", p.search, p.hits.len()));
    }
    f.render_widget(Paragraph::new(Line::styled(text, dim())), info);
}

fn draw_audit(f: &mut Frame, app: &App, area: Rect) {
    let [head, list_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let chain = match &app.chain {
        Some(Ok(n)) => Span::styled(
            format!(" ✓ chain intact: {n} events verified"),
            bold().fg(Color::Green),
        ),
        Some(Err(e)) => Span::styled(format!(" ✗ chain BROKEN at {e}"), bold().fg(Color::Red)),
        None => Span::styled(" chain not verified", dim()),
    };
    f.render_widget(Paragraph::new(Line::from(chain)), head);
    let events = app.visible_audit();
    let header = Row::new(["SEQ", "TIME", "EVENT", "ACTOR", "DETAILS"]).style(bold());
    let rows = events.iter().map(|v| {
        let s = |k: &str| {
            v.get(k)
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .unwrap_or_default()
        };
        let details: Vec<String> = v
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| {
                        !["seq", "time", "event", "actor", "mac", "prev"].contains(&k.as_str())
                    })
                    .map(|(k, x)| {
                        format!(
                            "{k}={}",
                            x.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| x.to_string())
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let time = s("time");
        Row::new(vec![
            s("seq"),
            time.get(5..19).unwrap_or(&time).replace('T', " "),
            s("event"),
            s("actor"),
            details.join(" "),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(14),
        Constraint::Length(18),
        Constraint::Length(12),
        Constraint::Min(10),
    ];
    let title = format!(
        " Audit log ({} of the last {}) ",
        events.len(),
        app.audit.len()
    );
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(selected())
        .block(Block::bordered().title(Span::styled(title, bold().fg(ACCENT))));
    let mut state =
        TableState::default().with_selected((!events.is_empty()).then_some(app.audit_selected));
    f.render_stateful_widget(table, list_area, &mut state);
}

fn draw_admin(f: &mut Frame, app: &App, area: Rect) {
    let [users_area, lower] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
    let header = Row::new(["USER", "ROLE", "KEYS", "PASSWORD", "LOCKED", "CREATED"]).style(bold());
    let rows = app.users.iter().map(|u| {
        let locked = if u.user.locked {
            Span::styled("locked", bold().fg(Color::Red))
        } else {
            Span::raw("no")
        };
        Row::new(vec![
            Line::raw(u.user.name.clone()),
            Line::raw(u.user.role.name()),
            Line::raw(u.keys.to_string()),
            Line::raw(if u.password { "set" } else { "-" }),
            Line::from(locked),
            Line::raw(
                u.user
                    .created
                    .get(..10)
                    .unwrap_or(&u.user.created)
                    .to_string(),
            ),
        ])
    });
    let widths = [
        Constraint::Min(10),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(11),
    ];
    let users = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(selected())
        .block(Block::bordered().title(Span::styled(
            format!(" Users ({}) ", app.users.len()),
            bold().fg(ACCENT),
        )));
    let mut state =
        TableState::default().with_selected((!app.users.is_empty()).then_some(app.user_selected));
    f.render_stateful_widget(users, users_area, &mut state);

    let [profiles_area, limits_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(lower);
    let rows = app
        .profiles
        .iter()
        .map(|(name, roles)| Row::new(vec![name.clone(), roles.clone()]));
    let profiles = Table::new(rows, [Constraint::Length(12), Constraint::Min(10)])
        .header(Row::new(["PROFILE", "ROLES ALLOWED"]).style(bold()))
        .block(Block::bordered().title(Span::styled(" Profiles (read-only) ", bold().fg(ACCENT))));
    f.render_widget(profiles, profiles_area);
    let c = &app.svc.config();
    let mut lines = vec![
        Line::from(vec![
            Span::styled("default profile ", dim()),
            Span::raw(c.default_profile.clone()),
        ]),
        Line::from(vec![
            Span::styled("idle timeout    ", dim()),
            Span::raw(format!("{} min", c.idle_timeout.as_secs() / 60)),
        ]),
        Line::from(vec![
            Span::styled("max duration    ", dim()),
            Span::raw(format!("{} h", c.max_duration.as_secs() / 3600)),
        ]),
    ];
    for (role, n) in &c.max_sessions {
        lines.push(Line::from(vec![
            Span::styled(format!("sessions/{role:<9}"), dim()),
            Span::raw(format!(" {n}")),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(" Limits ", bold().fg(ACCENT)))),
        limits_area,
    );
}

/// A box of `w`×`h` in the middle of `area`.
pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let (w, h) = (w.min(area.width), h.min(area.height));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_dialog(f: &mut Frame, d: &Dialog, area: Rect) {
    let field_line = |label: &str, text: &str, focused: bool| {
        let style = if focused {
            selected()
        } else {
            Style::default()
        };
        Line::from(vec![
            Span::styled(format!("{label:>10} "), dim()),
            Span::styled(
                format!(
                    "{}{}",
                    crate::text::printable(text),
                    if focused { "▏" } else { "" }
                ),
                style,
            ),
        ])
    };
    let (title, lines) = match d {
        Dialog::New {
            profiles,
            profile,
            fields,
            focus,
            places,
            error,
        } => {
            let mut lines = vec![Line::from(vec![
                Span::styled(format!("{:>10} ", "profile"), dim()),
                Span::styled(
                    format!(
                        "◀ {} ▶",
                        profiles
                            .get(*profile)
                            .map(String::as_str)
                            .unwrap_or("(none allowed)")
                    ),
                    if *focus == 0 {
                        selected()
                    } else {
                        Style::default()
                    },
                ),
            ])];
            for (i, fl) in fields.iter().enumerate() {
                lines.push(field_line(fl.label, &fl.text, *focus == i + 1));
            }
            lines.push(Line::raw(""));
            let width = usize::from(area.width.saturating_sub(8).min(68));
            for p in places {
                for l in wrap(&format!("workspace {}", crate::text::printable(p)), width) {
                    lines.push(Line::styled(l, dim()));
                }
            }
            lines.push(Line::styled("command: empty: the profile's", dim()));
            if let Some(e) = error {
                lines.push(Line::raw(""));
                for l in wrap(&crate::text::printable(e), width) {
                    lines.push(Line::styled(l, bold().fg(Color::Red)));
                }
            }
            (" New session ", lines)
        }
        Dialog::Ask(q) => (
            " Network question ",
            vec![
                Line::raw(q.words()),
                Line::styled("No rule of its profile names this destination.", dim()),
                Line::styled(
                    format!(
                        "It waits {} s more for your answer, then is refused.",
                        q.seconds_left
                    ),
                    dim(),
                ),
                Line::raw(""),
                Line::styled(
                    "o: allow once   s: allow for this session   d: deny   Esc: later",
                    bold(),
                ),
            ],
        ),
        Dialog::Rename { id, field } => (
            " Rename session ",
            vec![
                Line::styled(format!("session {id}"), dim()),
                field_line(field.label, &field.text, true),
            ],
        ),
        Dialog::ConfirmEnd { id, name } => (
            " End session ",
            vec![
                Line::raw(format!(
                    "End session {} ({}) and every process in it?",
                    id.short(),
                    crate::text::printable(name)
                )),
                Line::raw(""),
                Line::styled("y or Enter: end it    n or Esc: keep it", bold()),
            ],
        ),
        Dialog::ConfirmQuit { running } => (
            " Quit ",
            vec![
                Line::raw(match running {
                    1 => {
                        "1 of your sessions is still running. This cordon is its host:".to_string()
                    }
                    n => format!(
                        "{n} of your sessions are still running. This cordon is their host:"
                    ),
                }),
                Line::raw(if *running == 1 {
                    "quitting ends it, and every process in it."
                } else {
                    "quitting ends them, and every process in them."
                }),
                Line::styled(
                    "(Sessions that outlive the TUI: `cordon serve`, then `cordon tui`.)",
                    dim(),
                ),
                Line::raw(""),
                Line::styled("y or Enter: end them and quit    n or Esc: stay", bold()),
            ],
        ),
        Dialog::Prompt { field, .. } => (" ", vec![field_line(field.label, &field.text, true)]),
        Dialog::Admin(d) => {
            super::admin::draw(f, d, area);
            return;
        }
        Dialog::Files {
            title,
            lines,
            scroll,
        } => {
            draw_files(f, title, lines, *scroll, area);
            return;
        }
        Dialog::Secrets {
            global,
            list,
            selected: at,
            form,
        } => {
            let mut lines = vec![Line::styled(
                if *global {
                    "global secrets: every user's sessions get them (a user's own wins)"
                } else {
                    "your secrets: sessions whose profile names one ([env] secrets) get it"
                },
                dim(),
            )];
            if list.is_empty() {
                lines.push(Line::raw("(none)"));
            }
            for (i, s) in list.iter().enumerate() {
                let style = if i == *at && form.is_none() {
                    selected()
                } else {
                    Style::default()
                };
                lines.push(Line::styled(
                    format!(
                        "{:<28} updated {}",
                        crate::text::printable(&s.name),
                        s.updated
                    ),
                    style,
                ));
            }
            if let Some(fm) = form {
                lines.push(Line::raw(""));
                lines.push(field_line(fm.name.label, &fm.name.text, fm.focus == 0));
                let dots = "•".repeat(fm.value.0.chars().count().min(40));
                lines.push(field_line("value", &dots, fm.focus == 1));
                lines.push(Line::styled(
                    "the value is never shown again; Enter saves, Esc cancels",
                    dim(),
                ));
            }
            (
                if *global {
                    " Global secrets "
                } else {
                    " Secrets "
                },
                lines,
            )
        }
    };
    let h = (lines.len() as u16 + 2).min(area.height);
    let w = (area.width.saturating_sub(4)).min(72);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(title, bold().fg(ACCENT)))),
        r,
    );
}

/// A summary of files changed: its lines (escaped already) from `scroll` on, in a dialog
/// nearly as large as the screen; the first line (the counts) in bold.
fn draw_files(f: &mut Frame, title: &str, lines: &[String], scroll: usize, area: Rect) {
    let r = centered(
        area,
        area.width.saturating_sub(4).min(110),
        (lines.len() as u16 + 2).min(area.height.saturating_sub(2)),
    );
    let shown = lines
        .iter()
        .enumerate()
        .skip(scroll)
        .take(usize::from(r.height.saturating_sub(2)))
        .map(|(i, l)| {
            let style = if i == 0 {
                bold()
            } else if l.starts_with("not seen") || l.starts_with("left out") {
                dim()
            } else {
                Style::default()
            };
            Line::styled(l.clone(), style)
        })
        .collect::<Vec<_>>();
    let more = lines.len().saturating_sub(scroll + shown.len());
    let block = Block::bordered().title(Span::styled(title.to_string(), bold().fg(ACCENT)));
    let block = if more > 0 {
        block.title_bottom(Span::styled(format!(" {more} more lines ↓ "), dim()))
    } else {
        block
    };
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(shown).block(block), r);
}

fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    let k = |key: &str, what: &str| {
        Line::from(vec![
            Span::styled(format!("{key:>12}  "), bold().fg(ACCENT)),
            Span::raw(what.to_string()),
        ])
    };
    let mut lines = vec![
        k(
            "Tab 1-4",
            "switch view (Sessions, Recordings, Audit, Admin)",
        ),
        k("↑↓ j k", "move; g G: first, last; PgUp PgDn: a page"),
        k("/", "filter the list (recordings, audit); Esc clears"),
        k("?", "this help; q quits"),
        Line::raw(""),
    ];
    // The keys of the view at hand.
    match (app.tab, app.player.is_some()) {
        (_, true) => lines.extend([
            Line::styled("Replay", bold()),
            k("Space .", "play/pause, step one event"),
            k("← → ↑ ↓", "seek ±5 s, ±1 min; 0-9 jump to 0-90 %"),
            k("+ -", "faster, slower; idle pauses play as 2 s at most"),
            k("[ ]", "previous, next marker"),
            k("/ n N", "find text on screen; next, previous match"),
            k("PgUp PgDn", "scroll back through lines that scrolled off"),
            k("q Esc", "back to the list"),
        ]),
        (Tab::Sessions, _) => lines.extend([
            Line::styled("Sessions", bold()),
            k("n", "new session: profile, workspace, name, command"),
            k("PgUp PgDn", "scroll the preview back; Esc: live again"),
            k(
                "Enter a",
                "attach (full screen; the detach key returns here)",
            ),
            k("o", "observe (read-only)"),
            k("f", "files it created, changed, deleted so far"),
            k("r  x", "rename, end"),
            k("S", "secrets for sessions (a add, d remove, g global)"),
        ]),
        (Tab::Recordings, _) => lines.extend([
            Line::styled("Recordings", bold()),
            k("Enter", "replay (then ? for the player's keys)"),
            k("f", "files its session created, changed, deleted"),
            k("s", "search every recording for text, open the first hit"),
            k("e", "export as asciicast v2 to your workspace's exports/"),
        ]),
        (Tab::Audit, _) => lines.extend([
            Line::styled("Audit", bold()),
            k("v", "verify the chain again"),
        ]),
        (Tab::Admin, _) => lines.extend([
            Line::styled("Admin", bold()),
            k("a", "add a user (name, role, an SSH key)"),
            k("r", "change the selected user's role"),
            k("K", "the selected user's SSH keys: add, remove"),
            k("l", "lock (ends sessions, revokes tokens) or unlock"),
            k("t", "revoke every API token of the selected user"),
            k(
                "T",
                "reset the selected user's second factor (a lost device)",
            ),
            k("D", "remove the selected user (asks first)"),
            k(
                "L",
                "lockdown: only admins log in, sessions frozen or ended (asks first)",
            ),
        ]),
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!(
            "detach key: {}    any key closes this help",
            app.svc.config().detach_key_name
        ),
        dim(),
    ));
    let r = centered(area, 70, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(" Keys ", bold().fg(ACCENT)))),
        r,
    );
}

/// `text` in lines of at most `width` characters, broken at spaces where it can be.
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(10);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word = word.to_string();
        while word.chars().count() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let cut: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(cut);
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
