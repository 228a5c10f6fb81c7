//! Scenario 1, fan-out: one publisher floods QoS 0 messages to one topic with
//! `--subscribers` subscribers; delivered msg/s summed over subscribers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Ctx, Shared, connect_many, flood, qos0_result, receive_qos0, spawn_group, warm_up};
use crate::client::{BIG_READ_BUF, Conn};
use crate::procfs::CpuMark;
use crate::report::BrokerResult;

pub async fn run(ctx: &Ctx) -> Result<BrokerResult> {
    let p = ctx.params.clone();
    let subs = p.subscribers;
    let per_sub = (p.messages / subs as u64).max(1);
    let topic = ctx.topic("fanout");
    let shared = Shared::new();
    let hard_deadline = Instant::now() + Duration::from_secs(60) + p.max_time + p.settle * 2;

    let receivers = {
        let (shared, topic, addr) = (Arc::clone(&shared), topic.clone(), ctx.addr);
        spawn_group("fanout-subs", move || async move {
            let r = async {
                let conns =
                    connect_many(addr, "fo-sub", subs, None, p.keep_alive, BIG_READ_BUF).await?;
                let mut set = tokio::task::JoinSet::new();
                for mut conn in conns {
                    let (shared, topic) = (Arc::clone(&shared), topic.clone());
                    set.spawn(async move {
                        conn.subscribe(&topic, 0).await?;
                        let st = receive_qos0(
                            &mut conn,
                            p.payload_format,
                            &shared,
                            per_sub,
                            p.settle,
                            hard_deadline,
                            |_, _| {},
                        )
                        .await?;
                        conn.disconnect().await;
                        anyhow::Ok(st)
                    });
                }
                let mut all = Vec::new();
                while let Some(r) = set.join_next().await {
                    all.push(r??);
                }
                anyhow::Ok(all)
            }
            .await;
            shared.finish(r.is_err());
            r
        })
    };

    let publisher = {
        let (shared, topic, addr, pid) = (Arc::clone(&shared), topic.clone(), ctx.addr, ctx.pid);
        let login = ctx.publisher_login.clone();
        spawn_group("fanout-pub", move || async move {
            let r = async {
                let mut conn = Conn::connect(
                    addr,
                    None,
                    "fo-pub",
                    login.as_ref(),
                    p.keep_alive,
                    BIG_READ_BUF,
                )
                .await?;
                warm_up(&mut conn, &topic, p.payload_format, &shared, subs).await?;
                let cpu = CpuMark::take(pid)?;
                let start = Instant::now();
                let r = tokio::time::timeout(
                    p.max_time,
                    flood(
                        &mut conn,
                        &topic,
                        (p.payload_format, p.payload),
                        0,
                        0,
                        per_sub,
                    ),
                )
                .await;
                shared.mark_done();
                if let Ok(r) = r {
                    r?;
                }
                shared
                    .wait_finished(hard_deadline.saturating_duration_since(Instant::now()))
                    .await;
                conn.disconnect().await;
                anyhow::Ok((cpu, start))
            }
            .await;
            if r.is_err() {
                shared.abort.store(true, Ordering::Relaxed);
            }
            r
        })
    };

    let (pub_res, recv_res) = tokio::join!(publisher, receivers);
    let (cpu, start) = pub_res?;
    let stats = recv_res?;
    let cpu = cpu.elapsed(ctx.pid)?;
    let delivered: u64 = stats.iter().map(|s| s.count).sum();
    let last = stats.iter().filter_map(|s| s.last).max().unwrap_or(start);
    let closed = stats.iter().filter(|s| s.closed).count();
    let timed_out = shared
        .done_at()
        .is_some_and(|d| d.duration_since(start) >= p.max_time);
    Ok(qos0_result(
        ctx.broker,
        per_sub * subs as u64,
        delivered,
        last.saturating_duration_since(start),
        cpu,
        closed,
        timed_out,
    ))
}
