//! Scenario 1, fan-out: one publisher floods QoS 0 messages to one topic with
//! `--subscribers` subscribers; delivered msg/s summed over subscribers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    ClientIds, Ctx, Receivers, RecvTotals, Shared, flood, qos0_result, spawn_group, warm_up,
};
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

    let receivers = Receivers::new(
        ctx.addr,
        ClientIds::Numbered("fo-sub", subs),
        &topic,
        &p,
        per_sub,
        hard_deadline,
    )
    .spawn("fanout-subs", &shared);

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
    let RecvTotals {
        delivered,
        last,
        closed,
    } = RecvTotals::of(&stats);
    let timed_out = shared
        .done_at()
        .is_some_and(|d| d.duration_since(start) >= p.max_time);
    Ok(qos0_result(
        ctx.broker,
        per_sub * subs as u64,
        delivered,
        last.unwrap_or(start).saturating_duration_since(start),
        cpu,
        closed,
        timed_out,
    ))
}
