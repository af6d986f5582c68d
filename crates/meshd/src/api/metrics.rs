//! The Prometheus metrics (docs/observability.md), built from a [`Snapshot`] at scrape time.
//!
//! Nothing here runs on the data path: the core's counters are plain relaxed atomics that the
//! data path bumps anyway, and a scrape copies them. The families are prometheus crate
//! protobuf models, encoded by its `TextEncoder` beside the process collector.

use super::snapshot::{Counts, PeerSnapshot, Snapshot};
use meshd_core::config::MetricsDetail;
use meshd_core::counters::{HistogramSnapshot, Traffic, HANDSHAKE_BUCKETS};
use meshd_core::key::PublicKey;
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

/// What the firewall guard counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FirewallStats {
    pub applies_ok: u64,
    pub applies_error: u64,
    pub reasserts: u64,
    /// Packets dropped per chain of table `inet meshd`.
    pub dropped: BTreeMap<String, u64>,
}

/// What reloads did: counted by the daemon's reloader.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReloadStats {
    pub ok: u64,
    pub refused: u64,
    /// Whether the latest reload (if any) was applied; true before the first.
    pub last_successful: bool,
}

/// Label pairs sorted by name, as the prometheus crate's own metrics have them.
fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    let mut pairs = pairs.to_vec();
    pairs.sort_by_key(|(k, _)| *k);
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_string());
            l.set_value((*v).to_string());
            l
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_label(labels(pairs));
    m.set_gauge(g);
    m
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn per_peer(
    s: &Snapshot,
    name: &str,
    help: &str,
    kind: MetricType,
    value: impl Fn(&PeerSnapshot) -> f64,
) -> MetricFamily {
    let metrics = s
        .peers
        .iter()
        .map(|p| {
            let l = [("peer", p.name.as_str())];
            match kind {
                MetricType::GAUGE => gauge(&l, value(p)),
                _ => counter(&l, value(p)),
            }
        })
        .collect();
    family(name, help, kind, metrics)
}

/// Counter series labelled `labels`: one per peer (with its `peer` label) under
/// `metrics_detail: peer`, else one for the whole node, the sum over its peers.
fn peer_or_node(
    s: &Snapshot,
    labels: &[(&str, &str)],
    value: impl Fn(&Counts) -> u64,
) -> Vec<Metric> {
    match s.metrics_detail {
        MetricsDetail::Peer => s
            .peers
            .iter()
            .map(|p| {
                let mut l = labels.to_vec();
                l.push(("peer", &p.name));
                counter(&l, value(&p.counts) as f64)
            })
            .collect(),
        MetricsDetail::Node => {
            let counts = s.peers.iter().map(|p| &p.counts);
            let sum: u64 = counts.chain([&s.retired]).map(&value).sum();
            vec![counter(labels, sum as f64)]
        }
    }
}

/// A counter family with one series (per peer, or for the node) per label pair of `by`.
fn counters_by<const N: usize>(
    s: &Snapshot,
    name: &str,
    help: &str,
    by: [(&str, &str); N],
    value: impl Fn(&Counts, &str) -> u64,
) -> MetricFamily {
    let metrics = by
        .iter()
        .flat_map(|&(label, v)| peer_or_node(s, &[(label, v)], |p| value(p, v)))
        .collect();
    family(name, help, MetricType::COUNTER, metrics)
}

/// A traffic counter family: tx and rx, per peer or for the node.
fn per_direction(
    s: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&Traffic) -> u64,
) -> MetricFamily {
    counters_by(
        s,
        name,
        help,
        [("direction", "tx"), ("direction", "rx")],
        |p, dir| value(if dir == "tx" { &p.tx } else { &p.rx }),
    )
}

/// prometheus_wireguard_exporter's families, with its labels, so its dashboards work.
fn exporter_families(s: &Snapshot) -> Vec<MetricFamily> {
    let peer_labels: Vec<[(String, String); 4]> = s
        .peers
        .iter()
        .map(|p| {
            let allowed: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
            [
                ("interface".into(), s.interface.clone()),
                ("public_key".into(), PublicKey(p.public_key).to_base64()),
                ("allowed_ips".into(), allowed.join(",")),
                ("friendly_name".into(), p.name.clone()),
            ]
        })
        .collect();
    let make = |value: &dyn Fn(&PeerSnapshot) -> f64, is_gauge: bool| -> Vec<Metric> {
        s.peers
            .iter()
            .zip(&peer_labels)
            .map(|(p, l)| {
                let pairs: Vec<(&str, &str)> =
                    l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                if is_gauge {
                    gauge(&pairs, value(p))
                } else {
                    counter(&pairs, value(p))
                }
            })
            .collect()
    };
    vec![
        family(
            "wireguard_sent_bytes_total",
            "Bytes sent to the peer (UDP payload, as WireGuard counts)",
            MetricType::COUNTER,
            make(&|p| p.counts.tx.wire_bytes as f64, false),
        ),
        family(
            "wireguard_received_bytes_total",
            "Bytes received from the peer (UDP payload, as WireGuard counts)",
            MetricType::COUNTER,
            make(&|p| p.counts.rx.wire_bytes as f64, false),
        ),
        family(
            "wireguard_latest_handshake_seconds",
            "Unix time of the latest handshake with the peer, 0 if never",
            MetricType::GAUGE,
            make(
                &|p| {
                    p.last_handshake
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0.0, |d| d.as_secs() as f64)
                },
                true,
            ),
        ),
    ]
}

fn histogram(pairs: &[(&str, &str)], h: &HistogramSnapshot) -> Metric {
    let mut hist = Histogram::default();
    hist.set_sample_count(h.count);
    hist.set_sample_sum(h.sum_seconds);
    let buckets = HANDSHAKE_BUCKETS
        .iter()
        .zip(&h.cumulative)
        .map(|(bound, n)| {
            let mut b = Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(*n);
            b
        })
        .collect();
    hist.set_bucket(buckets);
    let mut m = Metric::from_label(labels(pairs));
    m.set_histogram(hist);
    m
}

fn handshake_durations(s: &Snapshot) -> MetricFamily {
    let metrics = match s.metrics_detail {
        MetricsDetail::Peer => s
            .peers
            .iter()
            .map(|p| histogram(&[("peer", &p.name)], &p.counts.handshake_durations))
            .collect(),
        MetricsDetail::Node => {
            let mut all = HistogramSnapshot {
                cumulative: vec![0; HANDSHAKE_BUCKETS.len()],
                count: 0,
                sum_seconds: 0.0,
            };
            let retired = std::iter::once(&s.retired.handshake_durations);
            for h in s
                .peers
                .iter()
                .map(|p| &p.counts.handshake_durations)
                .chain(retired)
            {
                for (total, n) in all.cumulative.iter_mut().zip(&h.cumulative) {
                    *total += n;
                }
                all.count += h.count;
                all.sum_seconds += h.sum_seconds;
            }
            vec![histogram(&[], &all)]
        }
    };
    family(
        "meshd_handshake_duration_seconds",
        "Handshakes this node initiated: initiation sent to response received",
        MetricType::HISTOGRAM,
        metrics,
    )
}

/// Every meshd metric family (the process collector's are added by the caller).
/// A counter family with one series per `result` label value.
fn by_result(name: &str, help: &str, results: [(&str, u64); 2]) -> MetricFamily {
    family(
        name,
        help,
        MetricType::COUNTER,
        results
            .iter()
            .map(|(result, n)| counter(&[("result", result)], *n as f64))
            .collect(),
    )
}

pub fn families(s: &Snapshot, fw: &FirewallStats, reloads: &ReloadStats) -> Vec<MetricFamily> {
    let mut out = exporter_families(s);
    out.push(per_peer(
        s,
        "meshd_peer_up",
        "1 while the latest handshake with the peer is under 180 s old",
        MetricType::GAUGE,
        |p| f64::from(u8::from(p.state() == "up")),
    ));
    out.push(counters_by(
        s,
        "meshd_handshakes_total",
        "Completed handshakes, by this node's role",
        [("role", "initiator"), ("role", "responder")],
        |p, role| {
            if role == "initiator" {
                p.handshakes_as_initiator
            } else {
                p.handshakes_as_responder
            }
        },
    ));
    out.push(family(
        "meshd_handshake_initiations_total",
        "Handshake initiations sent",
        MetricType::COUNTER,
        peer_or_node(s, &[], |p| p.handshake_initiations),
    ));
    out.push(handshake_durations(s));
    out.push(per_direction(
        s,
        "meshd_payload_bytes_total",
        "Inner IP bytes carried through the tunnel",
        |t| t.payload_bytes,
    ));
    out.push(per_direction(
        s,
        "meshd_wire_bytes_total",
        "UDP payload bytes on the wire: data, handshakes, cookies and keepalives",
        |t| t.wire_bytes,
    ));
    out.push(per_direction(
        s,
        "meshd_packets_total",
        "Inner IP packets carried through the tunnel",
        |t| t.packets,
    ));
    out.push(family(
        "meshd_dropped_packets_total",
        "Packets and datagrams the data path dropped, by reason",
        MetricType::COUNTER,
        s.drops
            .iter()
            .map(|(reason, n)| counter(&[("reason", reason)], *n as f64))
            .collect(),
    ));
    out.push(family(
        "meshd_endpoint_changes_total",
        "Times a peer's endpoint moved (roaming, or learned)",
        MetricType::COUNTER,
        peer_or_node(s, &[], |p| p.endpoint_changes),
    ));
    out.push(by_result(
        "meshd_firewall_applies_total",
        "nft transactions that installed table inet meshd, by result",
        [("ok", fw.applies_ok), ("error", fw.applies_error)],
    ));
    out.push(family(
        "meshd_firewall_reasserts_total",
        "Times table inet meshd was found changed or missing and put back",
        MetricType::COUNTER,
        vec![counter(&[], fw.reasserts as f64)],
    ));
    out.push(family(
        "meshd_firewall_dropped_packets_total",
        "Packets dropped by table inet meshd, by chain (read from its counters)",
        MetricType::COUNTER,
        fw.dropped
            .iter()
            .map(|(chain, n)| counter(&[("chain", chain)], *n as f64))
            .collect(),
    ));
    out.push(by_result(
        "meshd_config_reloads_total",
        "Reloads of mesh.yaml (SIGHUP, systemctl reload, meshd reload), by result",
        [("ok", reloads.ok), ("refused", reloads.refused)],
    ));
    out.push(family(
        "meshd_config_last_reload_successful",
        "1 if the latest reload was applied (or there was none), 0 if it was refused",
        MetricType::GAUGE,
        vec![gauge(&[], f64::from(u8::from(reloads.last_successful)))],
    ));
    out.push(family(
        "meshd_build_info",
        "meshd's version",
        MetricType::GAUGE,
        vec![gauge(&[("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    ));
    out
}

/// The text exposition of `families` (Prometheus text format 0.0.4).
pub fn encode(families: &[MetricFamily]) -> String {
    let mut buf = String::new();
    match prometheus::TextEncoder::new().encode_utf8(families, &mut buf) {
        Ok(()) => buf,
        Err(e) => format!("# encoding failed: {e}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::snapshot::{Counts, PeerSnapshot};
    use meshd_core::counters::HistogramSnapshot;
    use std::time::Duration;

    fn snapshot(metrics_detail: MetricsDetail) -> Snapshot {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let peer = |name: &str, n: u8, hs: Option<u64>| PeerSnapshot {
            name: name.into(),
            public_key: [n; 32],
            address: format!("10.100.0.{n}").parse().unwrap(),
            allowed_ips: vec![format!("10.100.0.{n}/32").parse().unwrap()],
            endpoint: None,
            last_handshake: hs.map(|age| now - Duration::from_secs(age)),
            since_last_handshake: hs.map(Duration::from_secs),
            last_handshake_duration: None,
            keepalive: None,
            counts: Counts {
                tx: Traffic {
                    payload_bytes: 1000,
                    wire_bytes: 1100,
                    packets: 10,
                },
                rx: Traffic::default(),
                handshake_initiations: 2,
                handshakes_as_initiator: 1,
                handshakes_as_responder: 0,
                endpoint_changes: 1,
                handshake_durations: HistogramSnapshot {
                    cumulative: vec![1; HANDSHAKE_BUCKETS.len()],
                    count: 1,
                    sum_seconds: 0.0004,
                },
            },
        };
        Snapshot {
            interface: "meshd0".into(),
            node: "db".into(),
            public_key: [9; 32],
            address: "10.100.0.1/24".parse().unwrap(),
            listen_port: 51820,
            taken: now,
            peers: vec![peer("app", 2, Some(12)), peer("old", 3, None)],
            drops: vec![("no_route", 4), ("decrypt", 0)],
            metrics_detail,
            retired: Counts {
                tx: Traffic {
                    payload_bytes: 500,
                    wire_bytes: 0,
                    packets: 0,
                },
                handshakes_as_initiator: 3,
                ..Default::default()
            },
        }
    }

    fn text() -> String {
        text_of(MetricsDetail::Peer)
    }

    fn text_of(detail: MetricsDetail) -> String {
        let fw = FirewallStats {
            applies_ok: 2,
            applies_error: 0,
            reasserts: 1,
            dropped: [("mesh_in".to_string(), 7)].into(),
        };
        let reloads = ReloadStats {
            ok: 3,
            refused: 1,
            last_successful: false,
        };
        encode(&families(&snapshot(detail), &fw, &reloads))
    }

    #[test]
    fn every_family_is_there_with_its_labels_and_values() {
        let t = text();
        for line in [
            "meshd_payload_bytes_total{direction=\"tx\",peer=\"app\"} 1000",
            "meshd_wire_bytes_total{direction=\"tx\",peer=\"app\"} 1100",
            "meshd_packets_total{direction=\"rx\",peer=\"old\"} 0",
            "meshd_peer_up{peer=\"app\"} 1",
            "meshd_peer_up{peer=\"old\"} 0",
            "meshd_handshakes_total{peer=\"app\",role=\"initiator\"} 1",
            "meshd_handshake_initiations_total{peer=\"app\"} 2",
            "meshd_handshake_duration_seconds_bucket{peer=\"app\",le=\"0.0005\"} 1",
            "meshd_handshake_duration_seconds_count{peer=\"app\"} 1",
            "meshd_dropped_packets_total{reason=\"no_route\"} 4",
            "meshd_endpoint_changes_total{peer=\"app\"} 1",
            "meshd_firewall_applies_total{result=\"ok\"} 2",
            "meshd_firewall_reasserts_total 1",
            "meshd_firewall_dropped_packets_total{chain=\"mesh_in\"} 7",
            "meshd_config_reloads_total{result=\"ok\"} 3",
            "meshd_config_reloads_total{result=\"refused\"} 1",
            "meshd_config_last_reload_successful 0",
            "# TYPE meshd_handshake_duration_seconds histogram",
        ] {
            assert!(t.contains(line), "missing `{line}` in:\n{t}");
        }
        assert!(t.contains(&format!(
            "meshd_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn exporter_series_match_prometheus_wireguard_exporter() {
        let t = text();
        let key = PublicKey([2u8; 32]).to_base64();
        let labels = format!(
            "{{allowed_ips=\"10.100.0.2/32\",friendly_name=\"app\",interface=\"meshd0\",public_key=\"{key}\"}}"
        );
        assert!(
            t.contains(&format!("wireguard_sent_bytes_total{labels} 1100")),
            "{t}"
        );
        assert!(
            t.contains(&format!("wireguard_received_bytes_total{labels} 0")),
            "{t}"
        );
        assert!(
            t.contains(&format!(
                "wireguard_latest_handshake_seconds{labels} 1799999988"
            )),
            "{t}"
        );
        assert!(
            t.contains("wireguard_latest_handshake_seconds{allowed_ips=\"10.100.0.3/32\",friendly_name=\"old\""),
            "{t}"
        );
        let never = t
            .lines()
            .find(|l| l.starts_with("wireguard_latest_handshake_seconds") && l.contains("\"old\""))
            .unwrap_or_default();
        assert!(never.ends_with(" 0"), "{never}");
    }

    /// Sample lines (not comments) of `t` that name `peer`.
    fn per_peer_lines(t: &str, peer: &str) -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.contains(&format!("peer=\"{peer}\""))
                    || l.contains(&format!("friendly_name=\"{peer}\""))
            })
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn by_default_a_peer_has_four_series_and_the_rest_is_summed_over_the_node() {
        let t = text_of(MetricsDetail::Node);
        let app = per_peer_lines(&t, "app");
        assert_eq!(app.len(), 4, "{app:#?}");
        for family in [
            "wireguard_sent_bytes_total",
            "wireguard_received_bytes_total",
            "wireguard_latest_handshake_seconds",
            "meshd_peer_up",
        ] {
            assert!(
                app.iter().any(|l| l.starts_with(family)),
                "no {family}: {app:#?}"
            );
        }
        // Two peers' counters and those of peers reloads retired, added up, one series each.
        for line in [
            "meshd_payload_bytes_total{direction=\"tx\"} 2500",
            "meshd_wire_bytes_total{direction=\"tx\"} 2200",
            "meshd_packets_total{direction=\"rx\"} 0",
            "meshd_handshakes_total{role=\"initiator\"} 5",
            "meshd_handshake_initiations_total 4",
            "meshd_handshake_duration_seconds_bucket{le=\"0.0005\"} 2",
            "meshd_handshake_duration_seconds_count 2",
            "meshd_endpoint_changes_total 2",
        ] {
            assert!(t.contains(line), "missing `{line}` in:\n{t}");
        }
        // With peer detail: app alone has the full set (31 series).
        assert_eq!(per_peer_lines(&text(), "app").len(), 31);
    }

    /// The metric names a dashboard expression uses.
    fn metric_names(expr: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut word = String::new();
        for c in expr.chars().chain([' ']) {
            if c.is_ascii_alphanumeric() || c == '_' {
                word.push(c);
            } else {
                if ["meshd_", "wireguard_", "process_"]
                    .iter()
                    .any(|p| word.starts_with(p))
                {
                    names.push(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
        names
    }

    #[test]
    fn the_dashboard_asks_only_for_series_of_both_details_and_filters_peers_by_regex() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../config/grafana-dashboard.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let exprs: Vec<&str> = text
            .split("\"expr\": \"")
            .skip(1)
            .chain(text.split("\"query\": \"").skip(1))
            .filter_map(|rest| rest.split("\",").next())
            .collect();
        assert!(exprs.len() > 10, "{exprs:?}");
        for detail in [MetricsDetail::Node, MetricsDetail::Peer] {
            let t = text_of(detail);
            for expr in &exprs {
                for name in metric_names(expr) {
                    // process_* come from the process collector, beside these families.
                    let base = name.trim_end_matches("_bucket");
                    assert!(
                        name.starts_with("process_") || t.contains(&format!("# TYPE {base} ")),
                        "{detail:?}: the dashboard asks for {name}, which meshd does not export"
                    );
                }
                // A series without a `peer` label matches `peer=~".*"` (All), not `peer="x"`.
                assert!(!expr.contains("peer=\\\""), "an exact peer match: {expr}");
            }
        }
        assert!(
            text.contains("label_values(meshd_peer_up{instance=~\\\"$instance\\\"}, peer)"),
            "the peer list must come from a per-peer family of both details"
        );
    }

    #[test]
    fn the_nodes_own_key_is_not_a_peer_series() {
        // The snapshot holds no private key at all; the node's own public key is no peer's.
        let own = PublicKey([9u8; 32]).to_base64();
        assert!(!text().contains(&own));
    }
}
