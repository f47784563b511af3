//! Keeps users' webhooks off the platform's own network.
//!
//! A user's webhook URL is chosen by the user, and the worker that posts to it sits inside the
//! platform's network: without a guard, `http://10.0.0.5:6379/` or `http://169.254.169.254/`
//! (a cloud's metadata service) would make the worker a proxy into it (server-side request
//! forgery). So the client that posts to users' endpoints only connects to public addresses:
//! an address literal in the URL is checked before the request, and a host name is resolved by
//! `PublicOnly`, which drops every private address it resolves to, so a name that points
//! inside (or is re-pointed there after a check) cannot be reached either. The platform's own
//! Discord and Slack URLs come from the configuration and are not guarded.
//! The client never goes through a proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`): through one, only the proxy's address would be resolved and judged.
//! `notify.allow_private_webhooks` turns the guard off for development and demos on loopback;
//! no environment's file sets it, it must be set explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether an address is on the public internet: not loopback, private, link-local, shared
/// (carrier-grade NAT), documentation, benchmarking, multicast, broadcast or unspecified. An
/// IPv6 address that stands for an IPv4 one is judged by that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 address reaches: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
/// `::a.b.c.d` (deprecated, yet some stacks still send it to the IPv4 address) and NAT64's
/// well-known prefix `64:ff9b::/96` (on an IPv6-only cluster the translator turns
/// `64:ff9b::a00:5` into 10.0.0.5).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    // `::` and `::1` fall in `::/96` too; as 0.0.0.0 and 0.0.0.1 they are refused all the same.
    let compatible = s[..6] == [0; 6];
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    // IPv4-translated `::ffff:0:a.b.c.d` (SIIT) reaches the IPv4 address too.
    let translated = s[..6] == [0, 0, 0, 0, 0xffff, 0];
    (compatible || nat64 || translated).then(|| Ipv4Addr::new(a, b, c, d))
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24, IETF protocol assignments (DS-Lite, NAT64 discovery).
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        // 198.18.0.0/15, benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4, reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7, unique local.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10, link-local.
        || (first & 0xffc0) == 0xfe80
        // fec0::/10, site-local (deprecated, still routed inside some networks).
        || (first & 0xffc0) == 0xfec0
        // 2001:db8::/32, documentation.
        || (first == 0x2001 && second == 0x0db8)
        // 64:ff9b:1::/48, NAT64 for local use: what it reaches is the operator's choice.
        || (first == 0x64 && second == 0xff9b && ip.segments()[2] == 1)
        // 2002::/16 (6to4) and 2001::/32 (Teredo) tunnel to an IPv4 address through relays
        // whose reach the guard cannot judge.
        || first == 0x2002
        || (first == 0x2001 && second == 0))
}

/// Checks a URL's host when it is an address literal (names are checked by `PublicOnly`).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    // An IPv6 literal comes in brackets; a name does not parse as an address.
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) if !is_public(ip) => Err(format!("{ip} is not a public address")),
        _ => Ok(()),
    }
}

/// A resolver that returns only the public addresses of a name, and an error when it has none.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_and_deprecated_ranges_are_checked() {
        for ip in [
            // NAT64 and IPv4-compatible forms of private addresses.
            "64:ff9b::a00:5",
            "64:ff9b::127.0.0.1",
            "64:ff9b::169.254.169.254",
            "::10.0.0.5",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b:1::808:808",
            "fec0::1",
            "feff::1",
            "2002:a00:5::1",
            "2002:808:808::1",
            "2001:0:4136:e378::1",
            "::ffff:0:10.0.0.5",
            "::ffff:0:127.0.0.1",
            "192.0.0.8",
            "::ffff:192.0.0.170",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "64:ff9b::1.1.1.1",
            "::8.8.8.8",
            "2001:4860::8888",
            "::ffff:0:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        assert!(check_url("http://[64:ff9b::a00:5]:6379/").is_err());
        assert!(check_url("http://[::a00:5]/hook").is_err());
        assert!(check_url("http://[fec0::5]/hook").is_err());
    }

    #[test]
    fn address_literals_in_urls_are_checked() {
        assert!(check_url("http://127.0.0.1:6379/").is_err());
        assert!(check_url("http://[::1]/hook").is_err());
        assert!(check_url("https://169.254.169.254/latest/meta-data").is_err());
        assert!(check_url("https://1.1.1.1/hook").is_ok());
        assert!(check_url("https://hooks.example.com/x").is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_inside_are_refused() {
        let e = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(e.to_string().contains("no public address"), "{e}");
    }
}
