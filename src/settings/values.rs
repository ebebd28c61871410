//! The settings' value formats: what a flag or variable holding a list, a
//! range, a rate or a CIDR block must look like, with the message when it does not.

use std::net::IpAddr;
use std::time::Duration;

use rapat_gateway::{IceServer, RateLimit};

/// A parsed `RAPAT_ICE_SERVERS` (a newtype, so clap takes the whole list as one value).
#[derive(Clone, Debug)]
pub struct IceServers(pub(super) Vec<IceServer>);

pub(super) fn parse_ice_servers(text: &str) -> Result<IceServers, String> {
    serde_json::from_str(text).map(IceServers).map_err(|error| format!("expected a JSON array of ice servers: {error}"))
}

pub(super) fn parse_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    // A bare address is a block of one.
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR block such as 10.0.0.0/8 or an address"))
}

/// `BURST/PERIOD`, e.g. `10/1s` or `300/10ms`: a token bucket of BURST, refilled
/// one token per PERIOD.
pub(super) fn parse_rate(text: &str) -> Result<RateLimit, String> {
    let (burst, period) = text.split_once('/').ok_or("expected BURST/PERIOD, such as 10/1s or 300/10ms")?;
    let burst: u32 = burst.trim().parse().map_err(|_| format!("{burst:?} is not a whole number"))?;
    let period = period.trim();
    let (number, unit) = match period.strip_suffix("ms") {
        Some(number) => (number, 1),
        None => (period.strip_suffix('s').ok_or(format!("{period:?} needs a unit: ms or s"))?, 1000),
    };
    let number: u64 = number.parse().map_err(|_| format!("{period:?} is not a duration such as 500ms or 2s"))?;
    if burst == 0 || number == 0 {
        return Err(format!("{text}: the burst and the period must be above zero"));
    }
    Ok(RateLimit { burst, replenish_every: Duration::from_millis(number * unit) })
}

/// 1 or 3: JetStream replicates a stream on an odd number of nodes, and rapat
/// supports a single server and a 3-node cluster.
pub(super) fn parse_replicas(text: &str) -> Result<usize, String> {
    match text.trim() {
        "1" => Ok(1),
        "3" => Ok(3),
        other => Err(format!(
            "{other:?} is not a supported replica count: use 1 (one NATS server) or 3 (a 3-node NATS cluster)"
        )),
    }
}

pub(super) fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let (first, last) = text.split_once('-').ok_or("expected FIRST-LAST, such as 50000-50099")?;
    let port = |p: &str| p.trim().parse::<u16>().map_err(|_| format!("{p:?} is not a port number"));
    let (first, last) = (port(first)?, port(last)?);
    if first == 0 || first > last {
        return Err(format!("{first}-{last} is not a range of ports"));
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_one_or_three() {
        assert_eq!(parse_replicas("1"), Ok(1));
        assert_eq!(parse_replicas("3"), Ok(3));
        for refused in ["0", "2", "5", "three", ""] {
            assert!(parse_replicas(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn rates_read_as_burst_and_period() {
        let rate = parse_rate("10/1s").expect("valid");
        assert_eq!((rate.burst, rate.replenish_every), (10, Duration::from_secs(1)));
        let rate = parse_rate("300/10ms").expect("valid");
        assert_eq!((rate.burst, rate.replenish_every), (300, Duration::from_millis(10)));
        for bad in ["10", "10/1", "0/1s", "10/0ms", "x/1s", "10/1h"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
