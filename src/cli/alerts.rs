//! `cordon alert test`, `cordon block ls|rm ADDRESS`, `cordon incident ls|show ID`: alerts,
//! the addresses their containment blocked, and incidents, through the service. Keys of
//! incidents may be names strangers typed (escaped when written down, and again here).

use super::{fail, tryc, Admin};
use crate::text::printable;

/// Sends a test alert through every sink; exit status 1 if any failed.
pub fn test(a: &Admin) -> i32 {
    let results = tryc!(a.svc.alert_test(&a.me));
    let mut failed = false;
    for (sink, r) in results {
        match r {
            Ok(m) => println!("{}: {}", printable(&sink), printable(&m)),
            Err(e) => {
                failed = true;
                println!("{}: failed: {}", printable(&sink), printable(&e));
            }
        }
    }
    i32::from(failed)
}

fn until(t: i64) -> String {
    crate::audit::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))
}

pub fn blocks(a: &Admin, json: bool) -> i32 {
    let blocks = tryc!(a.svc.blocks(&a.me));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&blocks).unwrap_or_default()
        );
        return 0;
    }
    if blocks.is_empty() {
        println!("no address is blocked");
        return 0;
    }
    println!("{:<40} {:<25} {:<24} INCIDENT", "ADDRESS", "UNTIL", "RULE");
    for b in blocks {
        println!(
            "{:<40} {:<25} {:<24} {}",
            printable(&b.address),
            until(b.until),
            printable(&b.rule),
            b.incident
        );
    }
    0
}

pub fn unblock(a: &Admin, address: &str) -> i32 {
    match a.svc.unblock(&a.me, address) {
        Ok(b) => {
            println!(
                "{} unblocked (it was blocked until {}, incident {})",
                printable(&b.address),
                until(b.until),
                b.incident
            );
            0
        }
        Err(e) => fail(e),
    }
}

pub fn incidents(a: &Admin, limit: usize, json: bool) -> i32 {
    let list = tryc!(a.svc.incidents(&a.me, limit));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return 0;
    }
    if list.is_empty() {
        println!("no incidents");
        return 0;
    }
    println!(
        "{:<6} {:<25} {:<24} {:<7} KEY",
        "ID", "OPENED", "RULE", "ALERTS"
    );
    for i in list {
        println!(
            "{:<6} {:<25} {:<24} {:<7} {}",
            i.id,
            printable(&i.opened),
            printable(&i.rule),
            i.alerts,
            printable(&i.key)
        );
    }
    0
}

pub fn incident(a: &Admin, id: i64, json: bool) -> i32 {
    let (i, events) = tryc!(a.svc.incident(&a.me, id));
    if json {
        let v = serde_json::json!({ "incident": i, "timeline": events });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    println!("incident {}", i.id);
    println!("rule:   {}", printable(&i.rule));
    println!("key:    {}", printable(&i.key));
    println!("opened: {}", printable(&i.opened));
    println!("alerts: {}", i.alerts);
    println!("timeline:");
    for e in events {
        println!(
            "  {}  {:<16} {}",
            printable(&e.at),
            printable(&e.what),
            printable(&e.detail)
        );
    }
    0
}
