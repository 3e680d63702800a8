use super::*;

fn dir() -> (tempfile::TempDir, DataDir) {
    let t = tempfile::tempdir().unwrap();
    let d = DataDir::new(t.path().join("data"));
    (t, d)
}

fn master(b: u8) -> Master {
    Master::from_bytes(&[b; 32], Source::Env)
}

#[test]
fn a_data_key_is_kept_wrapped_and_does_not_open_with_another_master_key() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    let (id, audit) = keys.random_current(Purpose::Audit).unwrap();
    let text = std::fs::read(keys.path()).unwrap();
    assert!(
        !text.windows(32).any(|w| w == &audit[..]),
        "the raw key is not in the file"
    );
    let hex = crate::secrets::hex(&audit);
    assert!(!String::from_utf8_lossy(&text).contains(&hex));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&*audit);
    assert!(!String::from_utf8_lossy(&text).contains(&b64));

    let again = Keys::with_master(&d, master(1), None).unwrap();
    assert_eq!(*again.get(Purpose::Audit, &id).unwrap(), *audit);
    match Keys::with_master(&d, master(2), None) {
        Err(KeyError::WrongMaster { expected, got, .. }) => {
            assert_eq!(expected, master(1).id);
            assert_eq!(got, master(2).id);
        }
        other => panic!("another master opened the keys: {other:?}"),
    }
}

#[test]
fn after_a_master_rotation_the_keys_open_with_the_new_key_only() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    let (rid, rec) = keys.random_current(Purpose::Recording).unwrap();
    let (_, sec) = keys.random_current(Purpose::Secrets).unwrap();
    assert_eq!(keys.rewrap(&master(3)).unwrap(), 2);
    let new = Keys::with_master(&d, master(3), None).unwrap();
    assert_eq!(*new.get(Purpose::Recording, &rid).unwrap(), *rec);
    assert_eq!(*new.current(Purpose::Secrets).unwrap().unwrap().1, *sec);
    assert!(matches!(
        Keys::with_master(&d, master(1), None),
        Err(KeyError::WrongMaster { .. })
    ));
}

#[test]
fn a_ring_changed_outside_cordon_is_refused() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    let (old, _) = keys.random_current(Purpose::Recording).unwrap();
    keys.add_current(Purpose::Recording, &[9u8; 32]).unwrap();
    // Moving `current` back to the old key, as someone who wants recordings sealed with a
    // key they hold might.
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys.path()).unwrap()).unwrap();
    v["current"]["recording"] = serde_json::Value::String(old);
    std::fs::write(keys.path(), serde_json::to_vec(&v).unwrap()).unwrap();
    match Keys::with_master(&d, master(1), None) {
        Err(KeyError::Damaged { why, .. }) => assert!(why.contains("MAC"), "{why}"),
        other => panic!("a changed ring was taken: {other:?}"),
    }
}

#[test]
fn a_wrapped_key_moved_to_another_purpose_does_not_open() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    keys.random_current(Purpose::Audit).unwrap();
    let ring = keys.ring().unwrap();
    let mut moved = (*ring).clone();
    moved.keys[0].purpose = "secrets".into();
    assert!(keys.unwrap(&moved.keys[0]).is_err());
}

#[test]
fn plain_key_files_of_an_older_cordon_move_into_the_ring_and_are_removed() {
    let (_t, d) = dir();
    std::fs::create_dir_all(d.root.join("keys/recording")).unwrap();
    let rec = [4u8; 32];
    let rid = id_for(Purpose::Recording, &rec);
    crate::secrets::write_private(&d.root.join(format!("keys/recording/{rid}.key")), &rec).unwrap();
    std::fs::write(d.root.join("keys/recording/current"), &rid).unwrap();
    crate::secrets::write_private(&d.root.join("keys/audit.key"), &[5u8; 32]).unwrap();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    assert_eq!(keys.notes.len(), 1, "{:?}", keys.notes);
    assert_eq!(*keys.current(Purpose::Recording).unwrap().unwrap().1, rec);
    assert_eq!(keys.current(Purpose::Recording).unwrap().unwrap().0, rid);
    assert_eq!(*keys.current(Purpose::Audit).unwrap().unwrap().1, [5u8; 32]);
    assert!(!d.root.join("keys/audit.key").exists());
    assert!(!d.root.join("keys/recording").exists());
}

#[test]
fn a_backup_restores_every_key_into_a_fresh_directory_with_another_master() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    let (rid, rec) = keys.random_current(Purpose::Recording).unwrap();
    let (_, audit) = keys.random_current(Purpose::Audit).unwrap();
    let file = backup::seal(&keys, "correct horse battery").unwrap();
    assert!(!String::from_utf8_lossy(&file).contains(&crate::secrets::hex(&rec)));

    assert!(matches!(
        backup::open(&file, "wrong horse battery"),
        Err(KeyError::Backup(_))
    ));
    let (_t2, fresh) = dir();
    let other = Keys::with_master(&fresh, master(2), None).unwrap();
    let opened = backup::open(&file, "correct horse battery").unwrap();
    assert_eq!(backup::restore(&other, &opened, false).unwrap(), 2);
    assert_eq!(*other.get(Purpose::Recording, &rid).unwrap(), *rec);
    assert_eq!(*other.current(Purpose::Audit).unwrap().unwrap().1, *audit);
    assert_eq!(
        backup::restore(&other, &opened, false).unwrap(),
        0,
        "idempotent"
    );
}

#[test]
fn restoring_over_a_different_audit_key_is_refused_unless_asked() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    keys.random_current(Purpose::Audit).unwrap();
    let file = backup::seal(&keys, "correct horse battery").unwrap();
    let (_t2, other_dir) = dir();
    let other = Keys::with_master(&other_dir, master(1), None).unwrap();
    let (ours, _) = other.random_current(Purpose::Audit).unwrap();
    let opened = backup::open(&file, "correct horse battery").unwrap();
    assert!(matches!(
        backup::restore(&other, &opened, false),
        Err(KeyError::Conflict { .. })
    ));
    assert_eq!(other.current(Purpose::Audit).unwrap().unwrap().0, ours);
    backup::restore(&other, &opened, true).unwrap();
    assert_ne!(other.current(Purpose::Audit).unwrap().unwrap().0, ours);
    assert!(
        other.get(Purpose::Audit, &ours).is_ok(),
        "the old key is kept"
    );
}

#[test]
fn a_backup_changed_by_one_byte_or_with_a_short_passphrase_is_refused() {
    let (_t, d) = dir();
    let keys = Keys::with_master(&d, master(1), None).unwrap();
    keys.random_current(Purpose::Audit).unwrap();
    assert!(backup::seal(&keys, "short").is_err());
    let mut file = backup::seal(&keys, "correct horse battery").unwrap();
    // The header's memory cost, weakened: it is associated data, so the keys do not open.
    let text = String::from_utf8(file.clone()).unwrap();
    let weakened = text.replacen("\"t\":3", "\"t\":1", 1);
    assert!(backup::open(weakened.as_bytes(), "correct horse battery").is_err());
    let n = file.len() - 10;
    file[n] ^= 1;
    assert!(backup::open(&file, "correct horse battery").is_err());
}

#[test]
fn ages_are_overdue_past_their_period_and_never_for_keys_that_do_not_rotate_in_place() {
    let day = 86_400;
    let list = vec![
        KeyInfo {
            purpose: Purpose::Recording,
            id: "a".into(),
            created: 0,
            current: true,
        },
        KeyInfo {
            purpose: Purpose::Recording,
            id: "old".into(),
            created: -100 * day,
            current: false,
        },
        KeyInfo {
            purpose: Purpose::Audit,
            id: "b".into(),
            created: 0,
            current: true,
        },
    ];
    let r = Rotation::default();
    let at = |d: i64| ages(&list, "m", 0, d * day, &r);
    assert!(at(29).iter().all(|a| !a.overdue()));
    let a31 = at(31);
    assert_eq!(a31.len(), 3, "the master and each current key");
    assert!(a31.iter().any(|a| a.key == "recording" && a.overdue()));
    assert!(a31.iter().all(|a| a.key != "audit" || !a.overdue()));
    assert!(!a31.iter().any(|a| a.key == "master" && a.overdue()));
    assert!(at(91).iter().any(|a| a.key == "master" && a.overdue()));
}

#[test]
fn an_interrupted_master_rotation_is_finished_at_the_next_open() {
    let t = tempfile::tempdir().unwrap();
    let d = DataDir::new(t.path().join("data"));
    let file = t.path().join("etc/master.key");
    let old = master::generate_at(&file).unwrap();
    let keys = Keys::with_master(&d, old, None).unwrap();
    keys.random_current(Purpose::Audit).unwrap();
    // As rotate_master does, stopped before the rename.
    let new = Master::generate(Source::File(file.clone())).unwrap();
    master::write_new(&master::aside(&file), &new).unwrap();
    keys.rewrap(&new).unwrap();
    let cfg = MasterConfig {
        file: Some(file.clone()),
    };
    let keys = Keys::open(&d, &cfg).unwrap();
    assert_eq!(keys.master_id(), new.id);
    assert!(!master::aside(&file).exists());
    assert!(keys.current(Purpose::Audit).unwrap().is_some());
}
