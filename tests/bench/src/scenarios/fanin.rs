//! Scenario 2, fan-in: `--publishers` publishers flood QoS 0 messages to one
//! topic with a single subscriber; delivered msg/s at that subscriber.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{
    ClientIds, Ctx, Receivers, RecvTotals, Shared, connect_many, flood, qos0_result, spawn_group,
    warm_up,
};
use crate::client::BIG_READ_BUF;
use crate::procfs::CpuMark;
use crate::report::BrokerResult;

pub async fn run(ctx: &Ctx) -> Result<BrokerResult> {
    let p = ctx.params.clone();
    let pubs = p.publishers;
    let per_pub = (p.messages / pubs as u64).max(1);
    let expected = per_pub * pubs as u64;
    let topic = ctx.topic("fanin");
    let shared = Shared::new();
    let hard_deadline = Instant::now() + Duration::from_secs(60) + p.max_time + p.settle * 2;

    let receiver = Receivers::new(
        ctx.addr,
        ClientIds::One("fi-sub"),
        &topic,
        &p,
        expected,
        hard_deadline,
    )
    .spawn("fanin-sub", &shared);

    let publishers = {
        let (shared, topic, addr, pid) = (Arc::clone(&shared), topic.clone(), ctx.addr, ctx.pid);
        let login = ctx.publisher_login.clone();
        spawn_group("fanin-pubs", move || async move {
            let r = async {
                let mut conns = connect_many(
                    addr,
                    "fi-pub",
                    pubs,
                    login.as_ref(),
                    p.keep_alive,
                    BIG_READ_BUF,
                )
                .await?;
                warm_up(&mut conns[0], &topic, p.payload_format, &shared, 1).await?;
                let cpu = CpuMark::take(pid)?;
                let start = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for (i, mut conn) in conns.into_iter().enumerate() {
                    let topic = topic.clone();
                    set.spawn(async move {
                        let first = i as u64 * per_pub;
                        let r = tokio::time::timeout(
                            p.max_time,
                            flood(
                                &mut conn,
                                &topic,
                                (p.payload_format, p.payload),
                                i as u32,
                                first,
                                per_pub,
                            ),
                        )
                        .await;
                        if let Ok(r) = r {
                            r?;
                        }
                        anyhow::Ok(conn)
                    });
                }
                let mut conns = Vec::new();
                while let Some(r) = set.join_next().await {
                    conns.push(r??);
                }
                shared.mark_done();
                shared
                    .wait_finished(hard_deadline.saturating_duration_since(Instant::now()))
                    .await;
                for conn in conns {
                    conn.disconnect().await;
                }
                anyhow::Ok((cpu, start))
            }
            .await;
            if r.is_err() {
                shared.abort.store(true, Ordering::Relaxed);
            }
            r
        })
    };

    let (pub_res, recv_res) = tokio::join!(publishers, receiver);
    let (cpu, start) = pub_res?;
    let st = RecvTotals::of(&recv_res?);
    let cpu = cpu.elapsed(ctx.pid)?;
    let timed_out = shared
        .done_at()
        .is_some_and(|d| d.duration_since(start) >= p.max_time);
    Ok(qos0_result(
        ctx.broker,
        expected,
        st.delivered,
        st.last.unwrap_or(start).saturating_duration_since(start),
        cpu,
        st.closed,
        timed_out,
    ))
}
