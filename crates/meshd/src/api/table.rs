//! `meshd peers` for people: the [`PeersReply`] of the control socket as a column-aligned
//! table, with handshake ages ("12s ago") and byte counts in binary units ("1.21 MiB").
//! Pure: the ages come in the reply, measured by the daemon when it answered.

use super::control::{PeerEntry, PeersReply};

const HEADER: [&str; 8] = [
    "NAME",
    "ADDRESS",
    "ENDPOINT",
    "HANDSHAKE",
    "RX",
    "TX",
    "STATE",
    "KEEPALIVE",
];

/// Columns aligned to the right (the byte counts); the others to the left.
const RIGHT: [bool; 8] = [false, false, false, false, true, true, false, false];

/// Separates columns.
const GAP: &str = "  ";

/// The table, one line per peer under a header line, every line ending in `\n`. RX and TX
/// are wire bytes (what `wg show` calls transfer).
pub fn render(reply: &PeersReply) -> String {
    let rows: Vec<[String; 8]> = std::iter::once(HEADER.map(str::to_owned))
        .chain(reply.peers.iter().map(row))
        .collect();
    let mut widths = [0usize; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str(GAP);
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if RIGHT[i] {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn row(p: &PeerEntry) -> [String; 8] {
    [
        p.name.clone(),
        p.address.to_string(),
        p.endpoint.map_or_else(|| "-".to_owned(), |e| e.to_string()),
        handshake(p.latest_handshake_age_seconds),
        human_bytes(p.rx_bytes),
        human_bytes(p.tx_bytes),
        p.state.as_str().to_owned(),
        keepalive(p.keepalive_seconds),
    ]
}

/// "12s ago", "3m 4s ago", "2h 1m ago", "5d 3h ago", or "never".
pub fn handshake(age_seconds: Option<u64>) -> String {
    match age_seconds {
        Some(age) => format!("{} ago", human_duration(age)),
        None => "never".to_owned(),
    }
}

/// A duration in its two largest units: "12s", "3m 4s", "2h 1m", "5d 3h".
pub fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3_600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// "25s", or "off".
pub fn keepalive(seconds: Option<u16>) -> String {
    match seconds {
        Some(s) if s > 0 => format!("{s}s"),
        _ => "off".to_owned(),
    }
}

/// Bytes in binary units with two decimals, as `wg show` prints transfer: "532 B",
/// "1.21 MiB". Rounded so that a value never shows as "1024.00" of a unit.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut shown = (0u128, UNITS[0]);
    for (i, unit) in UNITS.iter().enumerate() {
        let scale = 1u128 << (10 * (i + 1));
        // Hundredths of the unit, rounded half up, in integers: exact for every u64.
        let hundredths = (u128::from(bytes) * 100 + scale / 2) / scale;
        shown = (hundredths, unit);
        if hundredths < 1024 * 100 {
            break;
        }
    }
    let (hundredths, unit) = shown;
    format!("{}.{:02} {unit}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::control::peers_reply;
    use crate::api::test_support::sample;

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(532), "532 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.00 KiB");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(1_268_924), "1.21 MiB");
        assert_eq!(human_bytes(1_048_575), "1.00 MiB");
        assert_eq!(human_bytes(1_048_576 - 4), "1.00 MiB");
        assert_eq!(human_bytes(1_048_576 - 6), "1023.99 KiB");
        assert_eq!(human_bytes(1_048_576 - 600), "1023.41 KiB");
        assert_eq!(human_bytes(5 * (1 << 30)), "5.00 GiB");
        assert_eq!(human_bytes(3 << 40), "3.00 TiB");
        assert_eq!(human_bytes(u64::MAX), "16.00 EiB");
    }

    #[test]
    fn ages() {
        assert_eq!(handshake(None), "never");
        assert_eq!(handshake(Some(0)), "0s ago");
        assert_eq!(handshake(Some(12)), "12s ago");
        assert_eq!(handshake(Some(59)), "59s ago");
        assert_eq!(handshake(Some(60)), "1m 0s ago");
        assert_eq!(handshake(Some(184)), "3m 4s ago");
        assert_eq!(handshake(Some(3_599)), "59m 59s ago");
        assert_eq!(handshake(Some(7_260)), "2h 1m ago");
        assert_eq!(handshake(Some(86_399)), "23h 59m ago");
        assert_eq!(handshake(Some(3 * 86_400 + 4 * 3_600 + 5)), "3d 4h ago");
        assert_eq!(human_duration(u64::MAX), "213503982334601d 7h");
    }

    #[test]
    fn keepalives() {
        assert_eq!(keepalive(Some(25)), "25s");
        assert_eq!(keepalive(Some(0)), "off");
        assert_eq!(keepalive(None), "off");
    }

    #[test]
    fn full_table() {
        let expected = "\
NAME   ADDRESS     ENDPOINT             HANDSHAKE     RX        TX  STATE  KEEPALIVE
app1   10.100.0.3  -                    never        0 B       0 B  never  off
edge1  10.100.0.4  [2001:db8::4]:51820  12s ago    532 B  1.21 MiB  up     25s
";
        assert_eq!(render(&peers_reply(&sample())), expected);
    }

    #[test]
    fn empty_mesh_prints_the_header() {
        let mut reply = peers_reply(&sample());
        reply.peers.clear();
        assert_eq!(
            render(&reply),
            "NAME  ADDRESS  ENDPOINT  HANDSHAKE  RX  TX  STATE  KEEPALIVE\n"
        );
    }
}
