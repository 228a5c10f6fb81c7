//! Scenario 4, latency: one publisher at a fixed rate (`--rate`, one message
//! per write, send time in the payload) to `--subscribers` QoS 0 subscribers;
//! p50/p99/p99.9/max of (receive time - send time) over all deliveries, on
//! one monotonic clock shared by every thread of this process.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::AsyncWriteExt;

use super::{ClientIds, Ctx, Receivers, Shared, spawn_group, warm_up};
use crate::client::{self, BIG_READ_BUF, Conn};
use crate::procfs::CpuMark;
use crate::report::{Better, BrokerResult, Metric};

pub async fn run(ctx: &Ctx) -> Result<BrokerResult> {
    let p = ctx.params.clone();
    let subs = p.subscribers;
    let total = (p.rate as f64 * p.duration.as_secs_f64()).round().max(1.0) as u64;
    let topic = ctx.topic("latency");
    let shared = Shared::new();
    let base = Instant::now();
    let hard_deadline = Instant::now() + Duration::from_secs(60) + p.duration * 2 + p.settle * 2;

    let receivers = {
        let format = p.payload_format;
        Receivers::new(
            ctx.addr,
            ClientIds::Numbered("lat-sub", subs),
            &topic,
            &p,
            total,
            hard_deadline,
        )
        .spawn_with(
            "latency-subs",
            &shared,
            move || Vec::<u32>::with_capacity(total as usize),
            move |lat_us, payload, t| {
                let sent_ns = format.read_sent_ns(payload);
                let sent = base + Duration::from_nanos(sent_ns);
                lat_us.push(
                    t.saturating_duration_since(sent)
                        .as_micros()
                        .min(u32::MAX as u128) as u32,
                );
            },
        )
    };

    let publisher = {
        let (shared, topic, addr, pid) = (Arc::clone(&shared), topic.clone(), ctx.addr, ctx.pid);
        let login = ctx.publisher_login.clone();
        spawn_group("latency-pub", move || async move {
            let r = async {
                let mut conn = Conn::connect(
                    addr,
                    None,
                    "lat-pub",
                    login.as_ref(),
                    p.keep_alive,
                    BIG_READ_BUF,
                )
                .await?;
                let format = p.payload_format;
                warm_up(&mut conn, &topic, format, &shared, subs).await?;
                let mut msg = Vec::new();
                let at = client::encode_publish(
                    &mut msg,
                    &topic,
                    0,
                    0,
                    &format.build(p.payload, 0, 0, 0),
                );
                let interval = Duration::from_secs_f64(1.0 / p.rate as f64);
                let cpu = CpuMark::take(pid)?;
                let start = Instant::now();
                let mut due = start;
                for seq in 0..total {
                    if shared.abort.load(Ordering::Relaxed) {
                        break;
                    }
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let now = Instant::now();
                    let sent_ns = now.duration_since(base).as_nanos() as u64;
                    format.write_seq(&mut msg[at..], seq);
                    format.write_sent_ns(&mut msg[at..], sent_ns);
                    conn.stream.write_all(&msg).await?;
                    due += interval;
                }
                let secs = start.elapsed();
                shared.mark_done();
                shared
                    .wait_finished(hard_deadline.saturating_duration_since(Instant::now()))
                    .await;
                conn.disconnect().await;
                anyhow::Ok((cpu, secs))
            }
            .await;
            if r.is_err() {
                shared.abort.store(true, Ordering::Relaxed);
            }
            r
        })
    };

    let (pub_res, recv_res) = tokio::join!(publisher, receivers);
    let (cpu, pub_secs) = pub_res?;
    let results = recv_res?;
    let cpu = cpu.elapsed(ctx.pid)?;
    let closed = results.iter().filter(|(s, _)| s.closed).count();
    let mut lat: Vec<u32> = results.into_iter().flat_map(|(_, l)| l).collect();
    lat.sort_unstable();
    let delivered = lat.len() as u64;
    let expected = total * subs as u64;
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64
    };
    let mut r = BrokerResult::new(ctx.broker);
    r.metrics = vec![
        Metric::new("p50 us", pct(0.50), 0, Better::Lower),
        Metric::new("p99 us", pct(0.99), 0, Better::Lower),
        Metric::new("p99.9 us", pct(0.999), 0, Better::Lower),
        Metric::new("max us", pct(1.0), 0, Better::Info),
        Metric::new(
            "broker CPU us/msg",
            cpu.broker_us as f64 / delivered.max(1) as f64,
            3,
            Better::Lower,
        ),
        Metric::new(
            "loadgen CPU us/msg",
            cpu.bench_us as f64 / delivered.max(1) as f64,
            3,
            Better::Info,
        ),
        Metric::new(
            "delivered %",
            100.0 * delivered as f64 / expected.max(1) as f64,
            2,
            Better::Higher,
        ),
        Metric::new(
            "achieved rate msg/s",
            total as f64 / pub_secs.as_secs_f64().max(1e-9),
            0,
            Better::Info,
        ),
    ];
    if closed > 0 {
        r.notes.push(format!(
            "{closed} subscriber connection(s) closed by the broker"
        ));
    }
    Ok(r)
}
