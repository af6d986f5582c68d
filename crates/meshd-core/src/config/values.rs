//! Value parsers: one scalar's text to its value, or a sentence saying what is wrong with it.

use super::error::{q, shorten};
use super::model::{
    Allow, Endpoint, Metrics, PortSpec, Protocol, QuietCpu, Rate, RateUnit, MAX_QUIET_CPU,
};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A TUN device name: 1..=15 bytes of `[A-Za-z0-9_.-]`, not `.` or `..`.
pub(super) fn parse_interface_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the interface name is empty; write e.g. meshd0".to_string());
    }
    if text.len() > 15 {
        return Err(format!(
            "interface name {} is {} bytes long; Linux allows at most 15",
            q(text),
            text.len()
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "interface name {} contains {:?}; use only letters, digits, `_`, `.` and `-`",
            q(text),
            c
        ));
    }
    if text == "." || text == ".." {
        return Err(format!("{} is not a valid interface name", q(text)));
    }
    Ok(text.to_string())
}

/// `off`, or an IP address and port to listen on.
pub(super) fn parse_metrics(text: &str) -> Result<Metrics, String> {
    if text == "off" {
        return Ok(Metrics::Off);
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(format!(
            "metrics address {} has port 0; give a real port, e.g. 127.0.0.1:9586",
            q(text)
        )),
        Ok(addr) => Ok(Metrics::Listen(addr)),
        Err(_) => Err(format!(
            "metrics {} is not an IP address and port (like 127.0.0.1:9586 or [::1]:9586) nor `off`",
            q(text)
        )),
    }
}

/// `auto`, `off`, or a CPU number.
pub(super) fn parse_quiet_cpu(text: &str) -> Result<QuietCpu, String> {
    match text {
        "auto" => Ok(QuietCpu::Auto),
        "off" => Ok(QuietCpu::Off),
        _ if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            match text.parse::<u16>() {
                Ok(cpu) if cpu <= MAX_QUIET_CPU => Ok(QuietCpu::Cpu(cpu)),
                _ => Err(format!(
                    "quiet_cpu {} is out of range; a CPU number is between 0 and {MAX_QUIET_CPU}",
                    q(text)
                )),
            }
        }
        _ => Err(format!(
            "quiet_cpu {} is not a CPU number (0, 1, ...), `auto` or `off`",
            q(text)
        )),
    }
}

/// `N/second`, `N/minute` or `N/hour`, N >= 1.
pub(super) fn parse_rate(text: &str) -> Result<Rate, String> {
    let Some((count, unit)) = text.split_once('/') else {
        return Err(format!(
            "rate {} needs a unit; write e.g. 5/second (per second, minute or hour)",
            q(text)
        ));
    };
    let per = match unit.trim() {
        "second" => RateUnit::Second,
        "minute" => RateUnit::Minute,
        "hour" => RateUnit::Hour,
        other => {
            return Err(format!(
                "rate {} has the unknown unit {}; expected second, minute or hour",
                q(text),
                q(other)
            ))
        }
    };
    let count = count.trim();
    if count.is_empty() || !count.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "rate {}: {} is not a whole number of packets",
            q(text),
            q(count)
        ));
    }
    match count.parse::<u32>() {
        Ok(0) => Err(format!("rate {} is zero; it must be at least 1", q(text))),
        Ok(count) => Ok(Rate { count, per }),
        Err(_) => Err(format!("rate {} is too large", q(text))),
    }
}

/// A node name: 1..=63 characters of `[a-z0-9_-]`, starting with a letter or a digit.
pub(super) fn check_node_name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("the node name is empty".to_string());
    }
    if text.chars().count() > 63 {
        return Err(format!(
            "node name {} is {} characters long; at most 63 are allowed",
            q(text),
            text.chars().count()
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')))
    {
        let hint = if c.is_ascii_uppercase() {
            format!(" (write {})", q(&text.to_ascii_lowercase()))
        } else {
            String::new()
        };
        return Err(format!(
            "node name {} contains {:?}; use only lowercase letters, digits, `-` and `_`{hint}",
            q(text),
            c
        ));
    }
    if !text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(format!(
            "node name {} must start with a letter or a digit",
            q(text)
        ));
    }
    Ok(())
}

/// A prefix such as `192.168.50.0/24`, in network form; a bare address means a single host.
pub(super) fn parse_prefix(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net = text
        .parse::<IpNet>()
        .map_err(|_| prefix_syntax_error(text))?;
    if net.trunc() != net {
        return Err(format!(
            "prefix {} has host bits set; did you mean {}?",
            q(text),
            net.trunc()
        ));
    }
    Ok(net)
}

fn prefix_syntax_error(text: &str) -> String {
    match text.split_once('/') {
        Some((addr, len)) if addr.parse::<IpAddr>().is_ok() => {
            let max = if addr.contains(':') { 128 } else { 32 };
            format!(
                "{} has an invalid prefix length {}; it must be between 0 and {max}",
                q(text),
                q(len)
            )
        }
        Some((addr, _)) => format!("{} is not an IP address in {}", q(addr), q(text)),
        None => format!(
            "{} is not an IP prefix like 192.168.50.0/24 or 2001:db8::/64",
            q(text)
        ),
    }
}

/// A node's overlay address with the mesh prefix length, e.g. `10.100.0.2/24`.
pub(super) fn parse_node_address(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        let example = match ip {
            IpAddr::V4(_) => format!("{ip}/24"),
            IpAddr::V6(_) => format!("{ip}/64"),
        };
        return Err(format!(
            "address {} needs the mesh prefix length, e.g. {example}",
            q(text)
        ));
    }
    let net = text
        .parse::<IpNet>()
        .map_err(|_| prefix_syntax_error(text))?;
    let ip = net.addr();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err(format!(
            "address {} is not usable as a node address (unspecified, loopback or multicast)",
            q(text)
        ));
    }
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() < 31 {
            if v4.addr() == v4.network() {
                return Err(format!(
                    "address {} is the network address of {}; pick a host address inside it",
                    q(text),
                    v4.trunc()
                ));
            }
            if v4.addr() == v4.broadcast() {
                return Err(format!(
                    "address {} is the broadcast address of {}; pick a host address inside it",
                    q(text),
                    v4.trunc()
                ));
            }
        }
    }
    Ok(net)
}

/// `1.2.3.4:51820`, `[2001:db8::1]:51820` or `host.example.com:51820`.
pub(super) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(format!("endpoint {} is missing the closing `]`", q(text)));
        };
        let Ok(ip) = inside.parse::<Ipv6Addr>() else {
            return Err(format!(
                "endpoint {}: {} is not an IPv6 address",
                q(text),
                q(inside)
            ));
        };
        let port = match after.strip_prefix(':') {
            Some(port) => endpoint_port(text, port)?,
            None if after.is_empty() => {
                return Err(format!(
                    "endpoint {} needs a port, e.g. [{inside}]:51820",
                    q(text)
                ))
            }
            None => return Err(format!("endpoint {} is not an address and port", q(text))),
        };
        return endpoint_addr(text, SocketAddr::new(IpAddr::V6(ip), port));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        let example = match ip {
            IpAddr::V4(_) => format!("{ip}:51820"),
            IpAddr::V6(_) => "[2001:db8::1]:51820".to_string(),
        };
        return Err(format!(
            "endpoint {} needs a port; write it like {example}",
            q(text)
        ));
    }
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err(format!(
            "endpoint {} needs a port, e.g. {}:51820",
            q(text),
            shorten(t)
        ));
    };
    if host.contains(':') {
        return Err(format!(
            "endpoint {} is not an address and port; write an IPv6 endpoint in brackets, e.g. [2001:db8::1]:51820",
            q(text)
        ));
    }
    let port = endpoint_port(text, port)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return endpoint_addr(text, SocketAddr::new(ip, port));
    }
    check_host_name(host).map_err(|why| format!("endpoint {}: {why}", q(text)))?;
    Ok(Endpoint::Host {
        host: host.to_string(),
        port,
    })
}

fn endpoint_port(endpoint: &str, port: &str) -> Result<u16, String> {
    if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "endpoint {}: {} is not a port number",
            q(endpoint),
            q(port)
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!(
            "endpoint {} has port {}; ports are 1 to 65535",
            q(endpoint),
            shorten(port)
        )),
    }
}

fn endpoint_addr(text: &str, addr: SocketAddr) -> Result<Endpoint, String> {
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!(
            "endpoint {} is not a unicast address a peer can be reached at",
            q(text)
        ));
    }
    Ok(Endpoint::Addr(addr))
}

/// A DNS name: labels of letters, digits and `-` (not at either end), at most 253 characters.
fn check_host_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() {
        return Err("the host name is empty".to_string());
    }
    if name.len() > 253 {
        return Err("the host name is longer than 253 characters".to_string());
    }
    if name.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("{} is not a valid IPv4 address", q(host)));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "{} is not a valid host name (each dot-separated label has 1 to 63 characters)",
                q(host)
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "host name {} contains {:?}; use letters, digits, `-`, `_` and dots",
                q(host),
                c
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "host name {} has a label starting or ending with `-`",
                q(host)
            ));
        }
    }
    Ok(())
}

/// One entry of a policy rule's `allow`: `tcp/PORT`, `udp/PORT`, `tcp/LOW-HIGH`, `icmp`, `any`.
pub(super) fn parse_allow(text: &str) -> Result<Allow, String> {
    match text.trim() {
        "icmp" => Ok(Allow::Icmp),
        "any" => Ok(Allow::Any),
        t if t.starts_with("icmp/") => Err(format!(
            "{} is not valid: icmp takes no port; write icmp",
            q(text)
        )),
        t if t.starts_with("any/") => Err(format!(
            "{} is not valid: any takes no port; write any",
            q(text)
        )),
        _ => {
            parse_port_spec(text, "tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or any").map(Allow::Port)
        }
    }
}

/// One entry of a node's `open`: tcp or udp ports only.
pub(super) fn parse_open_port(text: &str) -> Result<PortSpec, String> {
    match text.trim() {
        "icmp" => Err(
            "icmp cannot be opened per node; echo requests are governed by admin.icmp_rate"
                .to_string(),
        ),
        "any" => {
            Err("`any` cannot be used in open; list the ports, e.g. [tcp/443, udp/53]".to_string())
        }
        _ => parse_port_spec(text, "tcp/PORT, udp/PORT or tcp/LOW-HIGH"),
    }
}

/// `tcp/PORT`, `udp/PORT`, `tcp/LOW-HIGH`, `udp/LOW-HIGH` with 1 <= low <= high <= 65535.
pub(super) fn parse_port_spec(text: &str, expected: &str) -> Result<PortSpec, String> {
    let t = text.trim();
    let Some((proto, ports)) = t.split_once('/') else {
        return Err(match t {
            "tcp" | "udp" => format!("{} needs a port, e.g. {t}/443 or {t}/8000-8100", q(text)),
            _ if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() => {
                format!("{} has no protocol; write tcp/{t} or udp/{t}", q(text))
            }
            _ => format!("{} is not a port spec; expected {expected}", q(text)),
        });
    };
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(format!(
                "unknown protocol {} in {}; expected {expected}",
                q(other),
                q(text)
            ))
        }
    };
    let (low, high) = match ports.split_once('-') {
        Some((low, high)) => (port_number(text, low)?, port_number(text, high)?),
        None => {
            let p = port_number(text, ports)?;
            (p, p)
        }
    };
    if low > high {
        return Err(format!(
            "port range {} is reversed; write {proto}/{high}-{low}",
            q(text)
        ));
    }
    Ok(PortSpec {
        protocol,
        low,
        high,
    })
}

fn port_number(spec: &str, text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err(format!("{} is missing a port number", q(spec)));
    }
    if !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{} in {} is not a port number", q(text), q(spec)));
    }
    match text.parse::<u16>() {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(format!(
            "port {} in {} is out of range; ports are 1 to 65535",
            shorten(text),
            q(spec)
        )),
    }
}
