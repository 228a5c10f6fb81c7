//! Scenario 3, QoS 1 1 -> 1: throughput with nothing lost. The publisher keeps
//! at most `--qos1-window` PUBACKs outstanding and stays at most
//! `--qos1-lead` messages ahead of the subscriber; the subscriber PUBACKs
//! every delivery. Every sequence number must arrive and every publish must
//! be acknowledged, else the run is FAILED.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::timeout;

use super::{Ctx, Shared, WARMUP_SEQ, receiver_should_stop, spawn_group, ticker, warm_up};
use crate::client::{self, BIG_READ_BUF, Conn, Packet};
use crate::procfs::CpuMark;
use crate::report::{Better, BrokerResult, Metric, Status};

/// What the subscriber saw.
struct SubStats {
    unique: u64,
    duplicates: u64,
    not_qos1: u64,
    last: Option<Instant>,
    closed: bool,
}

/// What the publisher saw.
struct PubStats {
    sent: u64,
    acked: u64,
    unexpected_acks: u64,
    cpu: CpuMark,
    start: Instant,
    timed_out: bool,
}

pub async fn run(ctx: &Ctx) -> Result<BrokerResult> {
    let p = ctx.params.clone();
    let n = p.qos1_messages;
    let topic = ctx.topic("qos1");
    let shared = Shared::new();
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let hard_deadline = Instant::now() + Duration::from_secs(60) + p.max_time + p.settle * 2;

    let subscriber = {
        let (shared, topic, addr) = (Arc::clone(&shared), topic.clone(), ctx.addr);
        let (received, progress) = (Arc::clone(&received), Arc::clone(&progress));
        spawn_group("qos1-sub", move || async move {
            let r = async {
                let mut conn =
                    Conn::connect(addr, None, "q1-sub", None, p.keep_alive, BIG_READ_BUF).await?;
                conn.subscribe(&topic, 1).await?;
                let mut seen = vec![false; n as usize];
                let mut st = SubStats {
                    unique: 0,
                    duplicates: 0,
                    not_qos1: 0,
                    last: None,
                    closed: false,
                };
                let mut warmed = false;
                let mut acks = Vec::with_capacity(64 * 1024);
                let mut tick = ticker();
                while st.unique < n && !shared.abort.load(Ordering::Relaxed) {
                    tokio::select! {
                        biased;
                        r = conn.fill() => {
                            if !matches!(r, Ok(true)) {
                                st.closed = true;
                                break;
                            }
                        }
                        _ = tick.tick() => {
                            if receiver_should_stop(&shared, st.last, p.settle, hard_deadline) {
                                break;
                            }
                            continue;
                        }
                    }
                    let t = Instant::now();
                    acks.clear();
                    conn.drain(|pkt| {
                        if let Packet::Publish { qos, pid, payload } = pkt {
                            if qos == 1 {
                                client::encode_puback(&mut acks, pid);
                            }
                            let seq = p.payload_format.read_seq(payload);
                            if seq == WARMUP_SEQ {
                                if !warmed {
                                    warmed = true;
                                    shared.warmed.fetch_add(1, Ordering::AcqRel);
                                }
                                return;
                            }
                            if qos != 1 {
                                st.not_qos1 += 1;
                            }
                            match seen.get_mut(seq as usize) {
                                Some(s) if !*s => {
                                    *s = true;
                                    st.unique += 1;
                                    st.last = Some(t);
                                }
                                _ => st.duplicates += 1,
                            }
                        }
                    })?;
                    if !acks.is_empty() {
                        conn.stream.write_all(&acks).await?;
                    }
                    received.store(st.unique, Ordering::Release);
                    progress.notify_one();
                }
                conn.disconnect().await;
                anyhow::Ok(st)
            }
            .await;
            shared.finish(r.is_err());
            progress.notify_one();
            r
        })
    };

    let publisher = {
        let (shared, topic, addr, pid) = (Arc::clone(&shared), topic.clone(), ctx.addr, ctx.pid);
        let (received, progress) = (Arc::clone(&received), Arc::clone(&progress));
        let login = ctx.publisher_login.clone();
        spawn_group("qos1-pub", move || async move {
            let r = async {
                let mut conn = Conn::connect(
                    addr,
                    None,
                    "q1-pub",
                    login.as_ref(),
                    p.keep_alive,
                    BIG_READ_BUF,
                )
                .await?;
                let format = p.payload_format;
                warm_up(&mut conn, &topic, format, &shared, 1).await?;
                let mut template = Vec::new();
                let at = client::encode_publish(
                    &mut template,
                    &topic,
                    1,
                    0,
                    &format.build(p.payload, 0, 0, 0),
                );
                let pid_at = at - 2;
                let mut outstanding = vec![false; 65536];
                let mut next_pid: u16 = 0;
                let mut inflight = 0usize;
                let mut st = PubStats {
                    sent: 0,
                    acked: 0,
                    unexpected_acks: 0,
                    cpu: CpuMark::take(pid)?,
                    start: Instant::now(),
                    timed_out: false,
                };
                let stop_at = st.start + p.max_time;
                let mut batch = Vec::with_capacity(template.len() * 64);
                loop {
                    if !st.timed_out && Instant::now() >= stop_at {
                        st.timed_out = true;
                    }
                    let ahead = st.sent - received.load(Ordering::Acquire).min(st.sent);
                    let room = (p.qos1_window - inflight)
                        .min(p.qos1_lead.saturating_sub(ahead) as usize)
                        .min((n - st.sent) as usize)
                        .min(64);
                    if room > 0 && !st.timed_out {
                        batch.clear();
                        for _ in 0..room {
                            next_pid = next_pid.wrapping_add(1).max(1);
                            if outstanding[next_pid as usize] {
                                bail!("packet id {next_pid} still in flight after wrapping");
                            }
                            outstanding[next_pid as usize] = true;
                            let off = batch.len();
                            batch.extend_from_slice(&template);
                            batch[off + pid_at..off + pid_at + 2]
                                .copy_from_slice(&next_pid.to_be_bytes());
                            format.write_seq(&mut batch[off + at..], st.sent);
                            st.sent += 1;
                            inflight += 1;
                        }
                        conn.stream.write_all(&batch).await?;
                    }
                    if inflight == 0 && (st.sent == n || st.timed_out) {
                        break;
                    }
                    if inflight == 0 {
                        // Held back only by the lead over the subscriber.
                        if shared.finished.load(Ordering::Acquire) {
                            break;
                        }
                        let _ = timeout(Duration::from_millis(100), progress.notified()).await;
                        continue;
                    }
                    match timeout(Duration::from_secs(10), conn.fill()).await {
                        Err(_) => bail!("no PUBACK for 10 s ({inflight} outstanding)"),
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => bail!("broker closed the publisher connection"),
                        Ok(Err(e)) => return Err(e),
                    }
                    conn.drain(|pkt| {
                        if let Packet::PubAck { pid } = pkt {
                            if std::mem::take(&mut outstanding[pid as usize]) {
                                inflight -= 1;
                                st.acked += 1;
                            } else {
                                st.unexpected_acks += 1;
                            }
                        }
                    })?;
                }
                shared.mark_done();
                shared
                    .wait_finished(hard_deadline.saturating_duration_since(Instant::now()))
                    .await;
                conn.disconnect().await;
                anyhow::Ok(st)
            }
            .await;
            if r.is_err() {
                shared.abort.store(true, Ordering::Relaxed);
            }
            r
        })
    };

    let (pub_res, sub_res) = tokio::join!(publisher, subscriber);
    let ps = pub_res?;
    let ss = sub_res?;
    let cpu = ps.cpu.elapsed(ctx.pid)?;
    let secs = ss
        .last
        .unwrap_or(ps.start)
        .saturating_duration_since(ps.start)
        .as_secs_f64()
        .max(1e-9);
    let missing = ps.sent - ss.unique.min(ps.sent);
    let mut r = BrokerResult::new(ctx.broker);
    r.metrics = vec![
        Metric::new(
            "delivered msg/s",
            ss.unique as f64 / secs,
            0,
            Better::Higher,
        ),
        Metric::new(
            "broker CPU us/msg",
            cpu.broker_us as f64 / ss.unique.max(1) as f64,
            3,
            Better::Lower,
        ),
        Metric::new(
            "loadgen CPU us/msg",
            cpu.bench_us as f64 / ss.unique.max(1) as f64,
            3,
            Better::Info,
        ),
        Metric::new("sent", ps.sent as f64, 0, Better::Info),
        Metric::new("PUBACKed", ps.acked as f64, 0, Better::Info),
        Metric::new("delivered", ss.unique as f64, 0, Better::Info),
        Metric::new("missing", missing as f64, 0, Better::Info),
        Metric::new("duplicates", ss.duplicates as f64, 0, Better::Info),
        Metric::new("seconds", secs, 2, Better::Info),
    ];
    let mut problems = Vec::new();
    if missing > 0 {
        problems.push(format!("{missing} message(s) never delivered"));
    }
    if ps.acked < ps.sent {
        problems.push(format!("{} publish(es) never PUBACKed", ps.sent - ps.acked));
    }
    if ps.unexpected_acks > 0 {
        problems.push(format!(
            "{} PUBACK(s) for unknown packet ids",
            ps.unexpected_acks
        ));
    }
    if ss.not_qos1 > 0 {
        problems.push(format!("{} deliveries downgraded below QoS 1", ss.not_qos1));
    }
    if ps.timed_out {
        r.notes.push(format!(
            "publishing hit --max-secs after {} of {n}",
            ps.sent
        ));
    }
    if ss.closed {
        problems.push("broker closed the subscriber connection".into());
    }
    if !problems.is_empty() {
        r.status = Status::Failed(problems.join("; "));
    }
    Ok(r)
}
