//! The service's rules, driven directly (no face, no session processes): authority read at
//! each call, answers that do not tell what the caller may not see, users that inherit
//! nothing from an earlier user of the same name, bounded audit floods.

use super::*;
use crate::store::RecordingEntry;

fn service() -> (tempfile::TempDir, Arc<Service>) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    let mut config = Config::load(None, &data.root).unwrap();
    config.master.file = Some(crate::keys::master::for_tests(dir.path()));
    let (svc, _) = Service::open(data, config).unwrap();
    (dir, svc)
}

fn user(svc: &Service, name: &str, role: Role) -> Principal {
    svc.add_user(&Principal::local_admin(), name, role, &[])
        .unwrap();
    svc.principal(name, "test").unwrap()
}

fn recording(svc: &Service, id: &str, owner: &Principal) {
    svc.store
        .add_recording(&RecordingEntry {
            id: id.into(),
            session: 1,
            user: owner.user.clone(),
            user_id: owner.user_id,
            profile: "default".into(),
            command: "bash".into(),
            started: crate::audit::now_rfc3339(),
            ended: None,
            exit_status: None,
            state: crate::store::RecordingState::Complete,
            path: "/nonexistent".into(),
            bytes: 0,
            key_id: "00".into(),
            hold: false,
        })
        .unwrap();
}

fn audit_lines(svc: &Service, event: &str) -> usize {
    crate::audit::read_events(&svc.dir.audit_log())
        .iter()
        .filter(|e| e["event"] == event)
        .count()
}

#[test]
fn a_lock_applies_to_the_next_call_of_a_principal_obtained_before_it() {
    let (_d, svc) = service();
    let admin = Principal::local_admin();
    let alice = user(&svc, "alice", Role::Developer);
    assert!(svc.sessions(&alice).is_ok());
    svc.set_locked(&admin, "alice", true).unwrap();
    assert_eq!(
        svc.sessions(&alice).err(),
        Some(Error::Forbidden("your account is locked".into()))
    );
    assert!(
        svc.issue_token(&alice, "alice", "ssh").is_err(),
        "no tokens for a locked user either"
    );
    svc.set_locked(&admin, "alice", false).unwrap();
    assert!(svc.sessions(&alice).is_ok());
    svc.remove_user(&admin, "alice").unwrap();
    assert_eq!(
        svc.sessions(&alice).err(),
        Some(Error::Forbidden("your account was removed".into()))
    );
}

#[test]
fn a_role_change_applies_to_the_next_call() {
    let (_d, svc) = service();
    let bob = user(&svc, "bob", Role::Auditor);
    assert!(svc.audit_events(&bob, 10, None).is_ok());
    svc.set_role(&Principal::local_admin(), "bob", Role::Viewer)
        .unwrap();
    assert!(
        matches!(svc.audit_events(&bob, 10, None), Err(Error::Forbidden(_))),
        "the principal still says auditor; the store does not"
    );
}

#[test]
fn a_refusal_names_the_role_with_its_article() {
    let (_d, svc) = service();
    let bob = user(&svc, "bob", Role::Auditor);
    let dave = user(&svc, "dave", Role::Viewer);
    assert_eq!(
        svc.issue_token(&bob, "dave", "ssh").err(),
        Some(Error::Forbidden(
            "an auditor may not issue another user's tokens".into()
        ))
    );
    assert_eq!(
        svc.audit_events(&dave, 10, None).err(),
        Some(Error::Forbidden(
            "a viewer may not read the audit log".into()
        ))
    );
}

#[test]
fn another_users_recording_answers_exactly_like_a_missing_one() {
    let (_d, svc) = service();
    let alice = user(&svc, "alice", Role::Developer);
    let bob = user(&svc, "bob", Role::Developer);
    recording(&svc, "aaaa1111", &alice);
    recording(&svc, "aaaa2222", &bob);
    let theirs = svc.recording(&bob, "aaaa1111").unwrap_err();
    let missing = svc.recording(&bob, "ffff1111").unwrap_err();
    assert_eq!(theirs, Error::NotFound("no recording aaaa1111".into()));
    assert_eq!(missing, Error::NotFound("no recording ffff1111".into()));
    // A prefix matches among bob's own only: no "matches several" tells him alice has one.
    assert_eq!(svc.recording(&bob, "aaaa").unwrap().id, "aaaa2222");
    assert_eq!(svc.recordings(&bob, &Filter::default()).unwrap().len(), 1);
    assert!(
        crate::audit::read_events(&svc.dir.audit_log())
            .iter()
            .any(|e| e["event"] == "refused"
                && e["why"]
                    .as_str()
                    .is_some_and(|w| w.contains("belongs to alice"))),
        "the attempt is audited"
    );
}

#[test]
fn a_user_added_again_under_a_removed_name_inherits_nothing() {
    let (_d, svc) = service();
    let admin = Principal::local_admin();
    let old = user(&svc, "carol", Role::Developer);
    recording(&svc, "cccc0001", &old);
    let pair = svc.issue_token(&old, "carol", "test").unwrap();
    svc.remove_user(&admin, "carol").unwrap();
    let new = user(&svc, "carol", Role::Developer);
    assert_ne!(new.user_id, old.user_id);
    assert!(
        svc.recordings(&new, &Filter::default()).unwrap().is_empty(),
        "the old recordings are not hers"
    );
    assert!(
        svc.authenticate(&pair.access_token, "test").is_err(),
        "the old user's token does not act for the new one"
    );
    let auditor = user(&svc, "dave", Role::Auditor);
    assert_eq!(
        svc.recordings(&auditor, &Filter::default()).unwrap()[0].user_id,
        old.user_id,
        "auditors still see it"
    );
}

#[test]
fn a_reused_refresh_token_ends_the_access_tokens_of_its_login() {
    let (_d, svc) = service();
    let alice = user(&svc, "alice", Role::Developer);
    let first = svc.issue_token(&alice, "alice", "test").unwrap();
    let second = svc
        .refresh_tokens(&first.refresh_token, "test", "r1")
        .unwrap();
    assert!(svc.authenticate(&second.access_token, "test").is_ok());
    assert!(
        svc.refresh_tokens(&first.refresh_token, "test", "r2")
            .is_err(),
        "a reuse is refused"
    );
    assert!(
        svc.authenticate(&second.access_token, "test").is_err(),
        "and ends the access token issued from the login"
    );
    assert!(svc.authenticate(&first.access_token, "test").is_err());
    assert!(svc
        .refresh_tokens(&second.refresh_token, "test", "r3")
        .is_err());
    let other = svc.issue_token(&alice, "alice", "test").unwrap();
    assert!(
        svc.authenticate(&other.access_token, "test").is_ok(),
        "another login of the same user is not affected"
    );
}

#[test]
fn another_users_tokens_and_keys_are_refused_whether_or_not_the_user_exists() {
    let (_d, svc) = service();
    let alice = user(&svc, "alice", Role::Developer);
    user(&svc, "bob", Role::Developer);
    let existing = svc.revoke_tokens(&alice, "bob").unwrap_err();
    let missing = svc.revoke_tokens(&alice, "nobody").unwrap_err();
    assert_eq!(existing.to_string(), missing.to_string());
    assert!(matches!(
        (existing, missing),
        (Error::Forbidden(_), Error::Forbidden(_))
    ));
    let existing = svc.keys(&alice, "bob").unwrap_err();
    let missing = svc.keys(&alice, "nobody").unwrap_err();
    assert_eq!(existing, missing);
}

#[test]
fn a_flood_of_failed_logins_writes_a_bounded_number_of_lines() {
    let (_d, svc) = service();
    for i in 0..500 {
        let _ = svc.key_login(
            &format!("user{i}\x1b]52;c;x\x07"),
            "SHA256:nope",
            "10.9.9.9:4000",
        );
    }
    let written = audit_lines(&svc, "login.failed");
    assert_eq!(
        written,
        throttle::BURST as usize,
        "the first few are written, the rest counted"
    );
    let line = crate::audit::read_events(&svc.dir.audit_log())
        .into_iter()
        .find(|e| e["event"] == "login.failed")
        .unwrap();
    assert!(!line["actor"].as_str().unwrap().contains('\x1b'), "{line}");
}

#[test]
fn a_removed_users_places_are_moved_aside() {
    let (_d, svc) = service();
    let alice = user(&svc, "alice", Role::Developer);
    let u = svc.store.user("alice").unwrap().unwrap();
    let home = svc.places.home(&u).unwrap();
    std::fs::write(home.join("secret"), "x").unwrap();
    svc.remove_user(&Principal::local_admin(), "alice").unwrap();
    assert!(!home.exists());
    let again = user(&svc, "alice", Role::Developer);
    assert_ne!(again.user_id, alice.user_id);
    let u = svc.store.user("alice").unwrap().unwrap();
    assert!(!svc.places.home(&u).unwrap().join("secret").exists());
}

#[test]
fn a_command_with_a_nul_byte_is_refused_before_anything_starts() {
    let (_d, svc) = service();
    let alice = user(&svc, "alice", Role::Developer);
    let command = vec!["echo".to_string(), "a\0b".to_string()];
    let session = svc.create_session(
        &alice,
        NewSession {
            command: command.clone(),
            cols: 80,
            rows: 24,
            ..Default::default()
        },
    );
    let run = svc.prepare_run(
        &alice,
        &RunRequest {
            argv: command,
            profile: None,
            workspace: None,
            timeout: None,
        },
    );
    let refused = || {
        Some(Error::Invalid(
            "argument 1 of the command holds a NUL byte, which no program can be given".into(),
        ))
    };
    assert_eq!(session.err(), refused());
    assert_eq!(run.err(), refused());
    assert!(svc.hub.list().is_empty());
}

#[test]
fn what_conflicts_with_how_things_stand_is_a_conflict_not_invalid_input() {
    let (_d, svc) = service();
    let admin = user(&svc, "boss", Role::Admin);
    assert!(matches!(
        svc.add_user(&admin, "boss", Role::Viewer, &[]),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        svc.remove_user(&admin, "boss"),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        svc.set_role(&admin, "boss", Role::Viewer),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        svc.set_locked(&admin, "boss", true),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        svc.add_user(&admin, "Bad Name", Role::Viewer, &[]),
        Err(Error::Invalid(_))
    ));
}
