//! The Admin view's dialogs: add a user, change a role, a user's SSH keys (add, remove),
//! remove a user. Each goes through the service with the admin's principal (its permission
//! checked and audited there, as for `cordon user ...`); what is typed stays in a dialog
//! the service refused, with the reason under it.
//!
//! Not here: locking, unlocking, revoking tokens and resetting a second factor take no input and are one key each in
//! the view ([`App::admin_tab_key`]).

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::app::{App, Dialog, Field};
use super::keys::Key;
use super::view::{bold, centered, dim, selected, wrap, ACCENT};
use crate::auth::Role;
use crate::store::Key as SshKey;

/// An authorized_keys line is at most this long in the field (an RSA 16384-bit key with a
/// long comment is under 3 KiB; pasted text beyond this is not a key).
const KEY_LINE_MAX: usize = 8192;

#[derive(Debug, Clone)]
pub enum AdminDialog {
    /// A new user: name, role, and an optional first key.
    AddUser {
        name: Field,
        role: usize,
        key: Field,
        /// 0: name, 1: role, 2: key.
        focus: usize,
        error: Option<String>,
    },
    /// The role of `user`, chosen from the list.
    Role {
        user: String,
        role: usize,
        error: Option<String>,
    },
    /// `user`'s SSH keys; `adding` is the field of a key being pasted; `removing` asks
    /// before the selected key goes.
    Keys {
        user: String,
        list: Vec<SshKey>,
        selected: usize,
        adding: Option<Field>,
        removing: bool,
        error: Option<String>,
    },
    /// Asks before `user` is removed.
    Remove { user: String, error: Option<String> },
    /// The host's lockdown: with `on`, asks before ending it; otherwise asks what becomes
    /// of the running sessions (`end`: ended, else frozen) and why, before beginning it.
    Lockdown {
        on: bool,
        end: bool,
        reason: Field,
        error: Option<String>,
    },
}

fn role_index(role: Role) -> usize {
    Role::ALL.iter().position(|&r| r == role).unwrap_or(0)
}

/// Appends a typed key to a field of at most `max` characters.
fn edit(text: &mut String, key: Key, max: usize) {
    match key {
        Key::Char(c) if text.chars().count() < max => text.push(c),
        Key::Backspace => {
            text.pop();
        }
        Key::Ctrl('u') => text.clear(),
        _ => {}
    }
}

impl App {
    /// A key in the Admin view (no dialog open): `a` add a user, `r` their role, `K` their
    /// keys, `l` lock or unlock, `t` revoke their tokens, `T` reset their second factor, `D`
    /// remove them; `L` the host's lockdown (asks first).
    pub(super) fn admin_tab_key(&mut self, key: Key) {
        let user = self
            .users
            .get(self.user_selected)
            .map(|u| (u.user.name.clone(), u.user.role));
        let dialog = match (key, user) {
            (Key::Char('a'), _) => AdminDialog::AddUser {
                name: Field {
                    label: "name",
                    text: String::new(),
                },
                role: role_index(Role::Developer),
                key: Field {
                    label: "ssh key",
                    text: String::new(),
                },
                focus: 0,
                error: None,
            },
            (Key::Char('r'), Some((user, role))) => AdminDialog::Role {
                user,
                role: role_index(role),
                error: None,
            },
            // `K`: `k` and `j` move in every list.
            (Key::Char('K'), Some((user, _))) => match self.svc.keys(&self.me, &user) {
                Ok(list) => AdminDialog::Keys {
                    user,
                    list,
                    selected: 0,
                    adding: None,
                    removing: false,
                    error: None,
                },
                Err(e) => {
                    self.status = e.to_string();
                    return;
                }
            },
            (Key::Char('D'), Some((user, _))) => AdminDialog::Remove { user, error: None },
            (Key::Char('L'), _) => AdminDialog::Lockdown {
                on: self.lockdown.is_some(),
                end: false,
                reason: Field {
                    label: "reason",
                    text: String::new(),
                },
                error: None,
            },
            (Key::Char('l'), Some(_)) => return self.toggle_lock(),
            (Key::Char('T'), Some((user, _))) => {
                self.status = match self.svc.totp_reset(&self.me, &user) {
                    Ok(()) => format!(
                        "{user}'s second factor is removed; they enrol again (ssh -t HOST totp enroll)"
                    ),
                    Err(e) => e.to_string(),
                };
                return;
            }
            (Key::Char('t'), Some((user, _))) => {
                self.status = match self.svc.revoke_tokens(&self.me, &user) {
                    Ok(()) => format!("every API token of {user} issued until now is revoked"),
                    Err(e) => e.to_string(),
                };
                return;
            }
            _ => return,
        };
        self.dialog = Some(Dialog::Admin(dialog));
    }

    /// A key in one of the Admin view's dialogs. Esc leaves it (or the field inside it)
    /// without changing anything; Enter does what the dialog's last line says.
    pub(super) fn admin_dialog_key(&mut self, key: Key) {
        let Some(Dialog::Admin(d)) = self.dialog.as_mut() else {
            return;
        };
        let mut done: Option<String> = None;
        match d {
            AdminDialog::AddUser {
                name,
                role,
                key: line,
                focus,
                error,
            } => match key {
                Key::Esc => self.dialog = None,
                Key::Tab | Key::Down => *focus = (*focus + 1) % 3,
                Key::BackTab | Key::Up => *focus = (*focus + 2) % 3,
                Key::Left if *focus == 1 => *role = (*role + Role::ALL.len() - 1) % Role::ALL.len(),
                Key::Right | Key::Char(' ') if *focus == 1 => *role = (*role + 1) % Role::ALL.len(),
                Key::Enter => {
                    let keys: Vec<String> = Some(line.text.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .into_iter()
                        .collect();
                    let (who, r) = (name.text.trim().to_string(), Role::ALL[*role]);
                    match self.svc.add_user(&self.me, &who, r, &keys) {
                        Ok((u, added)) => {
                            done = Some(format!(
                                "{} added as {} with {}",
                                u.name,
                                r.with_article(),
                                crate::text::count(added.len(), "key")
                            ))
                        }
                        Err(e) => *error = Some(e.to_string()),
                    }
                }
                k if *focus == 0 => edit(&mut name.text, k, 64),
                k if *focus == 2 => edit(&mut line.text, k, KEY_LINE_MAX),
                _ => {}
            },
            AdminDialog::Role { user, role, error } => match key {
                Key::Esc => self.dialog = None,
                Key::Up | Key::Char('k') => *role = role.saturating_sub(1),
                Key::Down | Key::Char('j') => *role = (*role + 1).min(Role::ALL.len() - 1),
                Key::Enter => {
                    let r = Role::ALL[*role];
                    match self.svc.set_role(&self.me, user, r) {
                        Ok(()) => done = Some(format!("{user} is now {}", r.with_article())),
                        Err(e) => *error = Some(e.to_string()),
                    }
                }
                _ => {}
            },
            AdminDialog::Keys {
                user,
                list,
                selected,
                adding,
                removing,
                error,
            } => {
                if let Some(field) = adding {
                    match key {
                        Key::Esc => *adding = None,
                        Key::Enter => match self.svc.add_key(&self.me, user, field.text.trim()) {
                            Ok(k) => {
                                self.status = format!("key {} added to {user}", k.fingerprint);
                                *adding = None;
                                *error = None;
                                if let Ok(l) = self.svc.keys(&self.me, user) {
                                    *selected = l.len().saturating_sub(1);
                                    *list = l;
                                }
                            }
                            Err(e) => *error = Some(e.to_string()),
                        },
                        k => edit(&mut field.text, k, KEY_LINE_MAX),
                    }
                } else if *removing {
                    *removing = false;
                    if key == Key::Char('y') {
                        if let Some(k) = list.get(*selected) {
                            match self.svc.remove_key(&self.me, user, &k.fingerprint) {
                                Ok(k) => {
                                    self.status =
                                        format!("key {} removed from {user}", k.fingerprint);
                                    *error = None;
                                    if let Ok(l) = self.svc.keys(&self.me, user) {
                                        *list = l;
                                        *selected = (*selected).min(list.len().saturating_sub(1));
                                    }
                                }
                                Err(e) => *error = Some(e.to_string()),
                            }
                        }
                    }
                } else {
                    match key {
                        Key::Esc | Key::Char('q') => self.dialog = None,
                        Key::Up | Key::Char('k') => *selected = selected.saturating_sub(1),
                        Key::Down | Key::Char('j') => {
                            *selected = (*selected + 1).min(list.len().saturating_sub(1))
                        }
                        Key::Char('a') => {
                            *error = None;
                            *adding = Some(Field {
                                label: "ssh key",
                                text: String::new(),
                            })
                        }
                        Key::Char('d') if !list.is_empty() => *removing = true,
                        _ => {}
                    }
                }
            }
            AdminDialog::Remove { user, error } => match key {
                Key::Char('y') => match self.svc.remove_user(&self.me, user) {
                    Ok(()) => {
                        done = Some(format!("{user} removed: keys, tokens and sessions ended"))
                    }
                    Err(e) => *error = Some(e.to_string()),
                },
                Key::Char('n') | Key::Esc => self.dialog = None,
                _ => {}
            },
            AdminDialog::Lockdown {
                on: true, error, ..
            } => {
                match key {
                    Key::Char('y') => match self.svc.lockdown_off(&self.me) {
                        Ok(_) => done = Some(
                            "lockdown off: everyone may log in again; frozen sessions are thawed"
                                .into(),
                        ),
                        Err(e) => *error = Some(e.to_string()),
                    },
                    Key::Char('n') | Key::Esc => self.dialog = None,
                    _ => {}
                }
            }
            AdminDialog::Lockdown {
                on: false,
                end,
                reason,
                error,
            } => match key {
                Key::Esc => self.dialog = None,
                Key::Tab | Key::Left | Key::Right => *end = !*end,
                Key::Enter => {
                    let sessions = if *end {
                        crate::service::LockdownSessions::End
                    } else {
                        crate::service::LockdownSessions::Freeze
                    };
                    match self.svc.lockdown_on(&self.me, sessions, reason.text.trim()) {
                        Ok(l) => {
                            done = Some(format!(
                                "lockdown on since {}: only admins may log in; running sessions {}",
                                l.since,
                                if *end { "ended" } else { "frozen" }
                            ))
                        }
                        Err(e) => *error = Some(e.to_string()),
                    }
                }
                k => edit(&mut reason.text, k, crate::service::LOCKDOWN_REASON_MAX),
            },
        }
        if let Some(status) = done {
            self.status = status;
            self.dialog = None;
        }
        if self.dialog.is_none() {
            self.refresh();
            self.user_selected = self.user_selected.min(self.users.len().saturating_sub(1));
        }
    }
}

/// What each key does in the dialog now: its last line and the footer say the same.
pub fn hints(d: &AdminDialog) -> Vec<(&'static str, &'static str)> {
    match d {
        AdminDialog::AddUser { .. } => vec![
            ("Tab", "next field"),
            ("◀ ▶", "role"),
            ("Enter", "add"),
            ("Esc", "cancel"),
        ],
        AdminDialog::Role { .. } => vec![("↑ ↓", "choose"), ("Enter", "set"), ("Esc", "cancel")],
        AdminDialog::Keys {
            adding: Some(_), ..
        } => {
            vec![("Enter", "add"), ("Esc", "back")]
        }
        AdminDialog::Keys { removing: true, .. } => {
            vec![("y", "remove it"), ("any other key", "keep it")]
        }
        AdminDialog::Keys { .. } => vec![("a", "add"), ("d", "remove"), ("Esc", "close")],
        AdminDialog::Remove { .. } => vec![("y", "remove"), ("n or Esc", "keep")],
        AdminDialog::Lockdown { on: true, .. } => {
            vec![("y", "end the lockdown"), ("n or Esc", "keep it")]
        }
        AdminDialog::Lockdown { .. } => vec![
            ("Tab", "freeze or end"),
            ("Enter", "lock down"),
            ("Esc", "cancel"),
        ],
    }
}

/// Draws an Admin dialog in the middle of `area`.
pub fn draw(f: &mut Frame, d: &AdminDialog, area: Rect) {
    let width = usize::from(area.width.saturating_sub(8).min(76));
    let field = |label: &str, text: &str, focused: bool| {
        // A pasted key is long: its end is what was just typed.
        let text = crate::text::printable(text);
        let room = width.saturating_sub(13);
        let count = text.chars().count();
        let shown: String = if count > room {
            let tail: String = text.chars().skip(count - room + 1).collect();
            format!("…{tail}")
        } else {
            text.into_owned()
        };
        Line::from(vec![
            Span::styled(format!("{label:>10} "), dim()),
            Span::styled(
                format!("{shown}{}", if focused { "▏" } else { "" }),
                if focused {
                    selected()
                } else {
                    Style::default()
                },
            ),
        ])
    };
    let error_lines = |error: &Option<String>, lines: &mut Vec<Line<'static>>| {
        if let Some(e) = error {
            lines.push(Line::raw(""));
            for l in wrap(&crate::text::printable(e), width) {
                lines.push(Line::styled(l, bold().fg(Color::Red)));
            }
        }
    };
    let (title, mut lines, error) = match d {
        AdminDialog::AddUser {
            name,
            role,
            key,
            focus,
            error,
        } => (
            " Add user ",
            vec![
                field(name.label, &name.text, *focus == 0),
                Line::from(vec![
                    Span::styled(format!("{:>10} ", "role"), dim()),
                    Span::styled(
                        format!("◀ {} ▶", Role::ALL[*role].name()),
                        if *focus == 1 {
                            selected()
                        } else {
                            Style::default()
                        },
                    ),
                ]),
                field(key.label, &key.text, *focus == 2),
                Line::styled(
                    "ssh key: optional, an authorized_keys line (paste it)",
                    dim(),
                ),
            ],
            error,
        ),
        AdminDialog::Role { user, role, error } => {
            let mut lines = vec![Line::styled(
                format!("the role of {}", crate::text::printable(user)),
                dim(),
            )];
            for (i, r) in Role::ALL.iter().enumerate() {
                let mark = if i == *role { "▶ " } else { "  " };
                lines.push(Line::styled(
                    format!("{mark}{}", r.name()),
                    if i == *role {
                        selected()
                    } else {
                        Style::default()
                    },
                ));
            }
            (" Role ", lines, error)
        }
        AdminDialog::Keys {
            user,
            list,
            selected: at,
            adding,
            removing,
            error,
        } => {
            let mut lines = vec![Line::styled(
                format!("the SSH keys {} logs in with", crate::text::printable(user)),
                dim(),
            )];
            if list.is_empty() {
                lines.push(Line::raw("(none: they cannot log in with a key)"));
            }
            for (i, k) in list.iter().enumerate() {
                lines.push(Line::styled(
                    format!(
                        "{:<12} {} {}",
                        k.algorithm,
                        k.fingerprint,
                        crate::text::printable(&k.comment)
                    ),
                    if i == *at && adding.is_none() {
                        selected()
                    } else {
                        Style::default()
                    },
                ));
            }
            if let Some(fl) = adding {
                lines.push(Line::raw(""));
                lines.push(field(fl.label, &fl.text, true));
                lines.push(Line::styled("paste an authorized_keys line", dim()));
            } else if *removing {
                lines.push(Line::raw(""));
                if let Some(k) = list.get(*at) {
                    let ask = format!(
                        "Remove {}? {} can no longer log in with it.",
                        k.fingerprint,
                        crate::text::printable(user)
                    );
                    lines.extend(wrap(&ask, width).into_iter().map(Line::raw));
                }
            }
            (" Keys ", lines, error)
        }
        AdminDialog::Remove { user, error } => (
            " Remove user ",
            vec![
                Line::raw(format!("Remove {}?", crate::text::printable(user))),
                Line::styled(
                    "Their keys, tokens and sessions end; their home and workspaces are moved",
                    dim(),
                ),
                Line::styled(
                    "aside (a user added later by that name inherits nothing). Their recordings",
                    dim(),
                ),
                Line::styled("stay for auditors.", dim()),
            ],
            error,
        ),
        AdminDialog::Lockdown {
            on: true, error, ..
        } => (
            " Lockdown ",
            vec![
                Line::raw("End the lockdown?"),
                Line::styled(
                    "Everyone may log in again; frozen sessions are thawed.",
                    dim(),
                ),
            ],
            error,
        ),
        AdminDialog::Lockdown {
            on: false,
            end,
            reason,
            error,
        } => (
            " Lockdown ",
            vec![
                Line::raw("Put the host in lockdown?"),
                Line::styled(
                    "Only admins may log in; other users' connections close now.",
                    dim(),
                ),
                Line::from(vec![
                    Span::styled(format!("{:>10} ", "sessions"), dim()),
                    Span::styled(
                        if *end {
                            "◀ end them ▶"
                        } else {
                            "◀ freeze them until the lockdown ends ▶"
                        },
                        selected(),
                    ),
                ]),
                field(reason.label, &reason.text, true),
            ],
            error,
        ),
    };
    error_lines(error, &mut lines);
    lines.push(Line::raw(""));
    let footer: Vec<String> = hints(d)
        .iter()
        .map(|(k, what)| format!("{k}: {what}"))
        .collect();
    lines.push(Line::styled(footer.join("   "), bold()));
    let h = (lines.len() as u16 + 2).min(area.height);
    let w = (area.width.saturating_sub(4)).min(80);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(Span::styled(title, bold().fg(ACCENT)))),
        r,
    );
}
