//! Scenario 5, idle connections: resident memory per idle MQTT connection,
//! (VmRSS after - VmRSS before) / connections, then a PINGREQ round to check
//! every connection is still alive.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::{Ctx, spawn_group};
use crate::client::{self, Conn, Packet, SMALL_READ_BUF};
use crate::procfs::rss_bytes;
use crate::report::{Better, BrokerResult, Metric, Status};

/// Connection attempts in flight at once.
const CONNECT_CONCURRENCY: usize = 50;

/// Connections per local source address (127.0.0.x) before moving to the next.
const PER_SOURCE: usize = 20_000;

/// Waits until VmRSS stops growing (two samples 500 ms apart within 0.5 %),
/// at most 10 s.
async fn settled_rss(pid: u32) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut prev = rss_bytes(pid)?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rss_bytes(pid)?;
        if now.abs_diff(prev) * 200 <= prev || Instant::now() > deadline {
            return Ok(now);
        }
        prev = now;
    }
}

pub async fn run(ctx: &Ctx) -> Result<BrokerResult> {
    let (addr, pid, p, broker) = (ctx.addr, ctx.pid, ctx.params.clone(), ctx.broker);
    let n = p.connections;
    spawn_group("idle", move || async move {
        let before = settled_rss(pid).await?;
        let t0 = Instant::now();
        let mut conns: Vec<Conn> = Vec::with_capacity(n);
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0;
        let mut failures = 0usize;
        let mut first_error = None;
        while next < n || !set.is_empty() {
            while next < n && set.len() < CONNECT_CONCURRENCY {
                let local = (n > PER_SOURCE).then(|| {
                    SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2 + (next / PER_SOURCE) as u8), 0))
                });
                let id = format!("idle-{next}");
                set.spawn(async move {
                    Conn::connect(addr, local, &id, None, p.keep_alive, SMALL_READ_BUF).await
                });
                next += 1;
            }
            if let Some(joined) = set.join_next().await {
                match joined? {
                    Ok(c) => conns.push(c),
                    Err(e) => {
                        failures += 1;
                        first_error.get_or_insert(format!("{e:#}"));
                    }
                }
            }
            if failures > n / 10 + 10 {
                bail!(
                    "too many failed connections ({failures}); first: {}",
                    first_error.unwrap_or_default()
                );
            }
        }
        let connect_secs = t0.elapsed().as_secs_f64();
        let connected = conns.len();
        let after = settled_rss(pid).await?;

        // Liveness: one PINGREQ each, all at once.
        let mut ping = Vec::new();
        client::encode_pingreq(&mut ping);
        let mut set = tokio::task::JoinSet::new();
        for mut conn in conns {
            let ping = ping.clone();
            set.spawn(async move {
                let ok = timeout(Duration::from_secs(20), async {
                    conn.stream.write_all(&ping).await?;
                    loop {
                        let mut got = false;
                        conn.drain(|pkt| got |= matches!(pkt, Packet::PingResp))?;
                        if got {
                            return anyhow::Ok(true);
                        }
                        if !conn.fill().await? {
                            return Ok(false);
                        }
                    }
                })
                .await;
                (conn, matches!(ok, Ok(Ok(true))))
            });
        }
        let mut alive = 0usize;
        let mut conns = Vec::with_capacity(connected);
        while let Some(r) = set.join_next().await {
            let (conn, ok) = r.context("ping task")?;
            alive += usize::from(ok);
            conns.push(conn);
        }
        drop(conns);

        let per_conn = (after as f64 - before as f64) / connected.max(1) as f64;
        let mut r = BrokerResult::new(broker);
        r.metrics = vec![
            Metric::new("bytes/connection", per_conn, 0, Better::Lower),
            Metric::new("RSS before MiB", before as f64 / 1048576.0, 1, Better::Info),
            Metric::new("RSS after MiB", after as f64 / 1048576.0, 1, Better::Info),
            Metric::new("connected", connected as f64, 0, Better::Info),
            Metric::new("answered PINGREQ", alive as f64, 0, Better::Info),
            Metric::new(
                "connects/s",
                connected as f64 / connect_secs.max(1e-9),
                0,
                Better::Info,
            ),
        ];
        if failures > 0 {
            r.notes.push(format!(
                "{failures} connection(s) failed; first: {}",
                first_error.unwrap_or_default()
            ));
        }
        if alive < connected || connected < n {
            r.status = Status::Failed(format!("{alive} of {n} connections alive at the end"));
        }
        Ok(r)
    })
    .await
}
