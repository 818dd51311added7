//! Rate limiting: the quotas for reads, writes and auth, what happens when Redis fails, and
//! the proxies whose `X-Forwarded-For` is believed.

use std::time::Duration;

use super::{
    error::{ConfigError, err},
    parse::parse_with,
};

/// Requests allowed per window for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests per window.
    pub limit: u32,
    /// Window length.
    pub window: Duration,
}

/// An address or network whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet {
    /// Network address.
    pub addr: std::net::IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl TrustedNet {
    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
            (IpAddr::V6(a), IpAddr::V4(b)) => (u128::from(a), u128::from(b.to_ipv6_mapped()), 128u32),
            (IpAddr::V4(a), IpAddr::V6(b)) => match b.to_ipv4_mapped() {
                Some(b) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32u32),
                None => return false,
            },
        };
        let prefix = u32::from(self.prefix);
        let shift = bits - prefix;
        prefix == 0 || (a >> shift) == (b >> shift)
    }
}

/// Rate limiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// GET/HEAD API requests (`None`: not limited).
    pub reads: Option<Quota>,
    /// Other API requests.
    pub writes: Option<Quota>,
    /// Auth endpoints.
    pub auth: Option<Quota>,
    /// Serve requests when the Redis limiter fails.
    pub fail_open: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<TrustedNet>,
}

fn parse_quota(get: &impl Fn(&str) -> Option<String>, name: &'static str, default: &str) -> Result<Option<Quota>, ConfigError> {
    parse_with(get, name, default, "120/60s", |v| {
        if v == "off" {
            return Ok(None);
        }
        let (limit, window) = v.split_once('/').ok_or_else(|| format!("{v:?} is not requests/window such as 120/60s, or off"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| format!("{limit:?} is not a count from 1 to 1000000"))?;
        // A bare unit is one of it: `600/min` reads as `600/1min`.
        let window = window.trim();
        let window = if window.starts_with(|c: char| c.is_ascii_digit()) { window.to_owned() } else { format!("1{window}") };
        let window = humantime::parse_duration(&window).map_err(|_| format!("{window:?} is not a duration such as 60s or min"))?;
        if window < Duration::from_secs(1) || window > Duration::from_secs(86_400) {
            return Err("the window must be from 1s to 24h".into());
        }
        Ok(Some(Quota { limit, window }))
    })
}

/// Reads the `JEEX_RATE_LIMIT_*` quotas and policy and `JEEX_TRUSTED_PROXIES`.
pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<RateLimitConfig, ConfigError> {
    let fail_open = match get("JEEX_RATE_LIMIT_ON_REDIS_ERROR").as_deref() {
        None | Some("open") => true,
        Some("closed") => false,
        Some(other) => return Err(err("JEEX_RATE_LIMIT_ON_REDIS_ERROR", format!("{other:?} is not open or closed"), "open")),
    };
    let mut trusted_proxies = Vec::new();
    for item in get("JEEX_TRUSTED_PROXIES").unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| err("JEEX_TRUSTED_PROXIES", format!("{item:?} is not an IP address or CIDR"), "10.0.0.0/8,127.0.0.1"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                err("JEEX_TRUSTED_PROXIES", format!("{item:?} has a prefix length outside 0–{max}"), "10.0.0.0/8,127.0.0.1")
            })?,
        };
        trusted_proxies.push(TrustedNet { addr, prefix });
    }
    Ok(RateLimitConfig {
        reads: parse_quota(get, "JEEX_RATE_LIMIT_READS", "300/60s")?,
        writes: parse_quota(get, "JEEX_RATE_LIMIT_WRITES", "60/60s")?,
        auth: parse_quota(get, "JEEX_RATE_LIMIT_AUTH", "10/60s")?,
        fail_open,
        trusted_proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::{super::parse::lookup, *};

    fn cfg(pairs: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
        parse(&lookup(pairs))
    }

    #[test]
    fn trusted_networks_match_by_prefix() {
        let c = cfg(&[("JEEX_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7, ::1"), ("JEEX_RATE_LIMIT_AUTH", "off")]).unwrap();
        let nets = &c.trusted_proxies;
        let trusted = |ip: &str| nets.iter().any(|n| n.contains(ip.parse().unwrap()));
        assert!(trusted("10.200.3.4") && trusted("192.168.1.7") && trusted("::1"));
        assert!(!trusted("11.0.0.1") && !trusted("192.168.1.8") && !trusted("127.0.0.1"));
        assert_eq!(c.auth, None);
    }

    #[test]
    fn a_quota_window_may_be_a_bare_unit() {
        let c =
            cfg(&[("JEEX_RATE_LIMIT_READS", "600/min"), ("JEEX_RATE_LIMIT_WRITES", "5/h"), ("JEEX_RATE_LIMIT_AUTH", "3/ 10s")]).unwrap();
        assert_eq!(c.reads, Some(Quota { limit: 600, window: Duration::from_secs(60) }));
        assert_eq!(c.writes, Some(Quota { limit: 5, window: Duration::from_secs(3600) }));
        assert_eq!(c.auth, Some(Quota { limit: 3, window: Duration::from_secs(10) }));
        assert_eq!(cfg(&[("JEEX_RATE_LIMIT_READS", "600/fortnight")]).unwrap_err().variable, "JEEX_RATE_LIMIT_READS");
    }
}
