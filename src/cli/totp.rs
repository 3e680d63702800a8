//! `cordon user totp ...`: second factors from the host's shell. `enroll` draws the QR code
//! for a user (the admin hands it over, or the user sits at the host), asks for a code to
//! confirm and shows the recovery codes once; `confirm`, `status`, and `reset` for a lost
//! device. The service decides and audits.

use std::io::{BufRead, IsTerminal, Write};

use super::{tryc, Admin};

pub fn enroll(a: &Admin, name: &str) -> i32 {
    let e = tryc!(a.svc.totp_enroll(&a.me, name));
    let terminal = std::io::stdout().is_terminal();
    println!(
        "Scan this QR code with {}'s authenticator app (account {}):\n",
        crate::text::printable(name),
        crate::text::printable(&e.account)
    );
    for line in &e.qr {
        if terminal {
            // Fixed colours: the code scans whatever the terminal's theme.
            println!("  \x1b[97;40m{line}\x1b[0m");
        } else {
            println!("  {line}");
        }
    }
    println!("\nor type the secret: {}", e.secret);
    println!("URI: {}", crate::text::printable(&e.uri));
    print!("\nCode from the app (empty to confirm later): ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let code = line.trim();
    if code.is_empty() {
        println!(
            "\nnot confirmed: the enrolment waits; confirm with: cordon user totp confirm {name} CODE"
        );
        return 0;
    }
    confirm(a, name, code)
}

pub fn confirm(a: &Admin, name: &str, code: &str) -> i32 {
    let codes = tryc!(a.svc.totp_confirm(&a.me, name, code));
    println!(
        "second factor confirmed for {name}. Recovery codes, each good for one login without the app; keep them offline, they are not shown again:"
    );
    for c in codes {
        println!("  {c}");
    }
    0
}

pub fn status(a: &Admin, name: &str) -> i32 {
    let s = tryc!(a.svc.totp_status(&a.me, name));
    let required = if s.required { "required" } else { "optional" };
    match s.state {
        "enrolled" => println!(
            "{name}: enrolled since {} ({required} for their role); {} recovery codes left",
            s.since.as_deref().unwrap_or("?"),
            s.recovery_left
        ),
        "pending" => println!("{name}: enrolment pending confirmation ({required} for their role)"),
        _ => println!("{name}: no second factor ({required} for their role)"),
    }
    0
}

pub fn reset(a: &Admin, name: &str) -> i32 {
    tryc!(a.svc.totp_reset(&a.me, name));
    println!(
        "{name}'s second factor and recovery codes are removed; they enrol again (ssh -t HOST totp enroll, or cordon user totp enroll {name})"
    );
    0
}
