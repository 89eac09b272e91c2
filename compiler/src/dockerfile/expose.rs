//! EXPOSE port specs, read as BuildKit's `parsePort` reads them: `[ip:][hostPort:]port[/proto]`
//! with port ranges, giving the `port/proto` keys of the image config, and what the build
//! checks ExposeProtoCasing and ExposeInvalidFormat look for.
//! Must not: expand variables (the caller expands each word first).

/// One expanded EXPOSE word, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// `80/tcp`, one per port of a range, protocol lower-cased.
    pub ports: Vec<String>,
    /// The protocol was not written in lower case (ExposeProtoCasing).
    pub proto_not_lowercase: bool,
    /// An IP address or a host port was given (ExposeInvalidFormat).
    pub has_host_part: bool,
}

/// BuildKit's `splitParts`: the last two `:`-separated fields are host port and container
/// port, anything before them the IP (which may itself hold `:`, as `[::1]` does).
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [port] => ("", "", port),
        [host, port] => ("", host, port),
        _ => {
            let n = parts.len();
            // The IP is everything up to the second-to-last `:`.
            let ip_len = parts[..n - 2].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
            (raw.get(..ip_len).unwrap_or(""), parts[n - 2], parts[n - 1])
        }
    }
}

/// A port number, 0 to 65535.
fn port_number(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'+') {
        return None;
    }
    s.parse::<u16>().ok()
}

/// `8000` or `8000-8010`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (start, end) = match s.split_once('-') {
        Some((a, b)) if a != b => (a, Some(b)),
        Some((a, _)) => (a, None),
        None => (s, None),
    };
    let lo = port_number(start)?;
    let hi = match end {
        Some(e) => port_number(e)?,
        None => lo,
    };
    (hi >= lo).then_some((lo, hi))
}

/// Go's `net.ParseIP` for the two forms Docker accepts here (dotted IPv4, IPv6).
fn valid_ip(ip: &str) -> bool {
    ip.parse::<std::net::IpAddr>().is_ok()
}

/// Read one expanded EXPOSE word. The error is BuildKit's message.
pub fn parse_port(raw: &str) -> Result<PortSpec, String> {
    let (ip, host_port, container) = split_parts(raw);
    let (port, proto) = container.split_once('/').unwrap_or((container, ""));
    if port.is_empty() {
        return Err(format!("invalid port: {raw:?}: no port specified"));
    }
    let proto_lower = proto.to_ascii_lowercase();
    let proto_lower = match proto_lower.as_str() {
        "" => "tcp".to_string(),
        "tcp" | "udp" | "sctp" => proto_lower,
        _ => return Err(format!("invalid port: {raw:?}: invalid proto: {proto}")),
    };
    let proto_not_lowercase = proto != proto.to_ascii_lowercase();
    let has_host_part = !ip.is_empty() || !host_port.is_empty();
    let ip = match ip.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| format!("invalid IP address {ip}"))?,
        None => ip,
    };
    if !ip.is_empty() && !valid_ip(ip) {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (lo, hi) = port_range(port).ok_or_else(|| format!("invalid containerPort: {port}"))?;
    if !host_port.is_empty() {
        let (hlo, hhi) =
            port_range(host_port).ok_or_else(|| format!("invalid hostPort: {host_port}"))?;
        if hi - lo != hhi - hlo && hi != lo {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {port} and {host_port}"
            ));
        }
    }
    Ok(PortSpec {
        ports: (lo..=hi).map(|p| format!("{p}/{proto_lower}")).collect(),
        proto_not_lowercase,
        has_host_part,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn plain_ports_and_ranges() {
        let p = parse_port("80").unwrap();
        assert_eq!(p.ports, ["80/tcp"]);
        assert!(!p.proto_not_lowercase && !p.has_host_part);
        assert_eq!(
            parse_port("8000-8002/udp").unwrap().ports,
            ["8000/udp", "8001/udp", "8002/udp"]
        );
        assert_eq!(parse_port("53/sctp").unwrap().ports, ["53/sctp"]);
    }

    #[test]
    fn protocol_casing_is_noticed_and_lowered() {
        let p = parse_port("80/TcP").unwrap();
        assert_eq!(p.ports, ["80/tcp"]);
        assert!(p.proto_not_lowercase);
        assert!(!parse_port("8080/udp").unwrap().proto_not_lowercase);
    }

    #[test]
    fn host_parts_are_accepted_and_noticed() {
        for raw in ["127.0.0.1:80:80", "[::1]:8080:8080", "5000:5000"] {
            let p = parse_port(raw).unwrap();
            assert!(p.has_host_part, "{raw}");
        }
        assert_eq!(parse_port("[::1]:8080:8080").unwrap().ports, ["8080/tcp"]);
        assert!(!parse_port("8000").unwrap().has_host_part);
    }

    #[test]
    fn errors_carry_buildkits_wording() {
        assert_eq!(
            parse_port("80/foo").unwrap_err(),
            "invalid port: \"80/foo\": invalid proto: foo"
        );
        assert_eq!(parse_port("abc").unwrap_err(), "invalid containerPort: abc");
        assert_eq!(
            parse_port("70000").unwrap_err(),
            "invalid containerPort: 70000"
        );
        assert_eq!(
            parse_port("/tcp").unwrap_err(),
            "invalid port: \"/tcp\": no port specified"
        );
        assert_eq!(parse_port("x:80").unwrap_err(), "invalid hostPort: x");
        assert_eq!(
            parse_port("1.2.3:80:80").unwrap_err(),
            "invalid IP address: 1.2.3"
        );
        assert_eq!(
            parse_port("90-80").unwrap_err(),
            "invalid containerPort: 90-80"
        );
    }
}
