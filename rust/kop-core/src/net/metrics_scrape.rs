//! One scrape: the recorded counters, plus gauges read from the broker's state now
//! (partitions, log sizes, groups and their lag, fetch sessions). Nothing here is on the
//! request path.

use crate::auth::Security;
use crate::broker::Broker;

use crate::metrics::text::Text;
use crate::metrics::{events, hooks};

/// Every metric of the server, in the exposition format. `tenants`: the other brokers of the
/// `tenants` option, whose per-broker series (requests, throttles, topics, groups, fetch
/// sessions) get a `tenant` label.
pub fn render(
    broker: &Broker,
    security: Option<&Security>,
    tenants: Option<&crate::tenants::Tenants>,
) -> String {
    let mut t = Text::default();
    let m = &broker.metrics;
    m.requests.render(&mut t);
    m.connections.render(&mut t);
    per_broker(broker, &mut t);
    for tenant in tenants.iter().flat_map(|ts| ts.all()) {
        if !std::ptr::eq(&*tenant.broker, broker) {
            t.set_tenant(Some(&tenant.key));
            tenant.broker.metrics.requests.render(&mut t);
            per_broker(&tenant.broker, &mut t);
            t.set_tenant(None);
        }
    }
    if let Some(s) = security {
        hooks::render(
            &mut t,
            &[
                ("authorizer", &s.authorizer.hook_stats),
                ("scram_credential", &s.scram_hook_cache.hook_stats),
                ("authenticator", &s.authenticator_hook_stats),
                ("oauthbearer_validator", &s.oauthbearer_hook_stats),
            ],
        );
        // Each other tenant decides (and looks up SCRAM credentials) with its own security.
        for tenant in tenants.iter().flat_map(|ts| ts.all()) {
            if !std::ptr::eq(&*tenant.security, s) {
                t.set_tenant(Some(&tenant.key));
                hooks::render(
                    &mut t,
                    &[
                        ("authorizer", &tenant.security.authorizer.hook_stats),
                        (
                            "scram_credential",
                            &tenant.security.scram_hook_cache.hook_stats,
                        ),
                    ],
                );
                t.set_tenant(None);
            }
        }
    }
    events::render(&mut t, broker.shares_storage());
    for c in m.collected() {
        t.raw(&c());
    }
    t.into_string()
}

/// The series of one broker's own state: throttles, topics, groups, fetch sessions.
fn per_broker(broker: &Broker, t: &mut Text) {
    broker.metrics.throttles.render(t);
    topics(broker, t);
    groups(broker, t);
    t.family(
        "kop_fetch_sessions",
        "gauge",
        "Incremental fetch sessions (KIP-227) cached.",
    );
    t.sample(
        "kop_fetch_sessions",
        &[],
        broker.fetch_sessions.len() as f64,
    );
}

fn topics(broker: &Broker, t: &mut Text) {
    let mut all = broker.topics();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let traffic: Vec<(&str, [u64; 4])> = all
        .iter()
        .map(|topic| (topic.name.as_str(), topic.traffic.load()))
        .collect();
    for (i, (name, help)) in [
        (
            "kop_topic_bytes_in_total",
            "Record batch bytes produced, by topic.",
        ),
        ("kop_topic_messages_in_total", "Records produced, by topic."),
        (
            "kop_topic_bytes_out_total",
            "Record batch bytes fetched, by topic.",
        ),
        (
            "kop_topic_messages_out_total",
            "Records fetched, by topic (records of the batches sent).",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        t.family(name, "counter", help);
        for (topic, values) in &traffic {
            t.sample(name, &[("topic", topic)], values[i] as f64);
        }
    }
    let partitions: Vec<_> = all
        .iter()
        .flat_map(|topic| {
            topic
                .partitions()
                .into_iter()
                .map(move |p| (topic.name.as_str(), p))
        })
        .collect();
    t.family("kop_topics", "gauge", "Topics.");
    t.sample("kop_topics", &[], all.len() as f64);
    t.family(
        "kop_partitions",
        "gauge",
        "Partitions, all topics together.",
    );
    t.sample("kop_partitions", &[], partitions.len() as f64);
    t.family(
        "kop_partition_log_size_bytes",
        "gauge",
        "Bytes of the partition's log held by this instance (Pulsar: the tail cache).",
    );
    let mut served = Vec::new();
    for (topic, p) in &partitions {
        let index = p.index.to_string();
        if let Some(size) = p.size_bytes() {
            t.sample(
                "kop_partition_log_size_bytes",
                &[("topic", topic), ("partition", &index)],
                size as f64,
            );
        }
        if let Ok(end) = p.log_end_offset() {
            served.push((*topic, index, end, p.log_start_offset(), p.high_watermark()));
        }
    }
    for (name, help, pick) in [
        (
            "kop_partition_log_end_offset",
            "The offset the partition's next record gets.",
            0usize,
        ),
        (
            "kop_partition_log_start_offset",
            "The partition's first offset still stored.",
            1,
        ),
        (
            "kop_partition_high_watermark",
            "The partition's high watermark (stored, visible to consumers).",
            2,
        ),
    ] {
        t.family(name, "gauge", help);
        for (topic, index, end, start, hw) in &served {
            let v = [*end, *start, *hw][pick];
            t.sample(name, &[("topic", topic), ("partition", index)], v as f64);
        }
    }
}

fn groups(broker: &Broker, t: &mut Text) {
    let listed = broker.groups.list();
    t.family(
        "kop_groups",
        "gauge",
        "Consumer groups this instance coordinates, by state.",
    );
    let mut states: Vec<(&str, u64)> = Vec::new();
    for (_, _, state, _) in &listed {
        match states.iter_mut().find(|(s, _)| s == state) {
            Some((_, n)) => *n += 1,
            None => states.push((state, 1)),
        }
    }
    states.sort();
    for (state, n) in states {
        t.sample("kop_groups", &[("state", state)], n as f64);
    }
    let mut lags = Vec::new();
    for (group, ..) in &listed {
        for (topic, partitions) in broker.groups.fetch(group, None) {
            let Some(found) = broker.topic(&topic) else {
                continue;
            };
            for (index, entry) in partitions {
                let (Some(entry), Some(p)) = (entry, found.partition(index)) else {
                    continue;
                };
                if entry.offset < 0 || p.ensure_served().is_err() {
                    continue;
                }
                let lag = (p.high_watermark() - entry.offset).max(0);
                lags.push((
                    group.clone(),
                    topic.clone(),
                    index.to_string(),
                    entry.offset,
                    lag,
                ));
            }
        }
    }
    t.family(
        "kop_consumer_group_committed_offset",
        "gauge",
        "A group's committed offset, by group, topic and partition.",
    );
    for (g, topic, p, offset, _) in &lags {
        t.sample(
            "kop_consumer_group_committed_offset",
            &[("group", g), ("topic", topic), ("partition", p)],
            *offset as f64,
        );
    }
    t.family(
        "kop_consumer_group_lag",
        "gauge",
        "High watermark minus the group's committed offset, by group, topic and partition.",
    );
    for (g, topic, p, _, lag) in &lags {
        t.sample(
            "kop_consumer_group_lag",
            &[("group", g), ("topic", topic), ("partition", p)],
            *lag as f64,
        );
    }
}
