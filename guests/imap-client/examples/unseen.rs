//! Lists the unseen mail of a real server over plain IMAP, marks it
//! seen, then idles once: a manual check of the client against e.g. the
//! Dovecot of `tests/e2e/dovecot.py`.
//!
//!     cargo run --example unseen -- 127.0.0.1:1143 user password [idle-seconds]

use std::net::TcpStream;
use std::time::Duration;

use imap_client::{Client, Flag};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, user, password, rest @ ..] = args.as_slice() else {
        return Err("usage: unseen HOST:PORT USER PASSWORD [IDLE-SECONDS]".into());
    };
    let idle_secs: u64 = rest.first().map_or(Ok(0), |s| s.parse())?;
    let mut imap = Client::connect(TcpStream::connect(addr)?)?;
    imap.login(user, password)?;
    let mailbox = imap.select("INBOX")?;
    println!(
        "INBOX: {} messages, uidvalidity {:?}",
        mailbox.exists, mailbox.uid_validity
    );
    for uid in imap.uid_search_unseen()? {
        let body = imap.uid_fetch_body(uid)?.unwrap_or_default();
        println!("uid {uid}: {} bytes", body.len());
        imap.uid_store_flags(uid, &[Flag::Seen])?;
    }
    if idle_secs > 0 {
        println!("idle: {:?}", imap.idle(Duration::from_secs(idle_secs))?);
        println!("unseen now: {:?}", imap.uid_search_unseen()?);
    }
    imap.logout()?;
    Ok(())
}
