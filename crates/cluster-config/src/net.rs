//! IP networks in CIDR notation, as `pg_hba.conf` and Docker networks write them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block such as `172.21.0.0/16` or `fd00::/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why an address block is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("prefix length /{prefix} is longer than {max} bits")]
    PrefixTooLong { prefix: u8, max: u8 },
    #[error("mask {mask} is not of the same family as {addr}")]
    MixedFamilies { mask: IpAddr, addr: IpAddr },
    #[error("{0} is not a contiguous netmask")]
    NotContiguous(IpAddr),
    #[error("`{0}` is not an IP address or CIDR block")]
    NotAddress(String),
    #[error("`{block}`: prefix length `{prefix}` is not a number")]
    BadPrefix { block: String, prefix: String },
    #[error("`{block}`: {why}")]
    In { block: String, why: Box<CidrError> },
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = max_prefix(&addr);
        if prefix > max {
            return Err(CidrError::PrefixTooLong { prefix, max });
        }
        Ok(Cidr { addr, prefix })
    }

    /// Builds a block from an address and a netmask (`255.255.0.0`), as the
    /// two-column form of `pg_hba.conf` writes it.
    pub fn from_mask(addr: IpAddr, mask: IpAddr) -> Result<Self, CidrError> {
        let (bits, width) = match (addr, mask) {
            (IpAddr::V4(_), IpAddr::V4(m)) => (u128::from(u32::from(m)) << 96, 32),
            (IpAddr::V6(_), IpAddr::V6(m)) => (u128::from(m), 128),
            _ => return Err(CidrError::MixedFamilies { mask, addr }),
        };
        let prefix = bits.leading_ones();
        if bits.checked_shl(prefix).unwrap_or(0) != 0 {
            return Err(CidrError::NotContiguous(mask));
        }
        debug_assert!(prefix <= width);
        Cidr::new(addr, prefix as u8)
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses in the block, saturating for huge IPv6 blocks.
    pub fn size(&self) -> u128 {
        let host_bits = u32::from(max_prefix(&self.addr) - self.prefix);
        1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_bits(32, self.prefix) as u32;
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_bits(128, self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// True when every address of `other` is in `self`.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// True for a block inside loopback (127.0.0.0/8 or ::1).
    pub fn is_loopback(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => self.prefix >= 8 && a.is_loopback(),
            IpAddr::V6(a) => self.prefix == 128 && a.is_loopback(),
        }
    }

    /// The network address, host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) & mask_bits(32, self.prefix) as u32).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask_bits(128, self.prefix)).into()),
        }
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask_bits(width: u32, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        (u128::MAX << (128 - u32::from(prefix))) >> (128 - width)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::NotAddress(s.to_string()))?;
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| CidrError::BadPrefix {
                block: s.to_string(),
                prefix: p.to_string(),
            })?,
            None => max_prefix(&addr),
        };
        Cidr::new(addr, prefix).map_err(|e| CidrError::In {
            block: s.to_string(),
            why: Box::new(e),
        })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The cluster network's subnet: IPv4 in network form (`172.21.0.0/16`).
///
/// IPv6 is refused: the Compose file would need `enable_ipv6`, subnet
/// discovery and the replication rule in `pg_hba.conf` an IPv6 block, and
/// the tool supports neither end to end. A block with host bits set is
/// refused with its network form, so the address Docker uses and the one in
/// `pg_hba.conf` cannot differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet(Cidr);

impl Subnet {
    pub fn cidr(&self) -> Cidr {
        self.0
    }

    /// Inside 10/8, 172.16/12, 192.168/16 or 100.64/10 (RFC 1918 and 6598).
    pub fn is_private(&self) -> bool {
        let private: [Cidr; 4] = [
            Cidr::new(IpAddr::from([10, 0, 0, 0]), 8).expect("valid"),
            Cidr::new(IpAddr::from([172, 16, 0, 0]), 12).expect("valid"),
            Cidr::new(IpAddr::from([192, 168, 0, 0]), 16).expect("valid"),
            Cidr::new(IpAddr::from([100, 64, 0, 0]), 10).expect("valid"),
        ];
        private.iter().any(|p| p.covers(&self.0))
    }

    /// Addresses a Docker network of this block can give to containers
    /// (the network address, the gateway and the broadcast address are not).
    pub fn usable_hosts(&self) -> u128 {
        self.0.size().saturating_sub(3)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Subnet {
    type Err = crate::names::NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let e = |code: &'static str, message: String| crate::names::NameError { code, message };
        let shown = crate::names::shown(s);
        if !s.contains('/') {
            return Err(e(
                "subnet-syntax",
                format!("subnet `{shown}` needs a prefix length, such as 172.21.0.0/16"),
            ));
        }
        let c: Cidr = s
            .parse()
            .map_err(|m: CidrError| e("subnet-syntax", m.to_string()))?;
        if c.addr().is_ipv6() {
            return Err(e(
                "subnet-ipv6",
                format!("subnet `{shown}` is IPv6; the tool supports IPv4 cluster networks only (Compose would need enable_ipv6 and the standbys an IPv6 replication rule); use an IPv4 block such as 172.21.0.0/16"),
            ));
        }
        if c.network() != c.addr() {
            return Err(e(
                "subnet-host-bits",
                format!(
                    "subnet `{shown}` has host bits set; its network is {}/{}",
                    c.network(),
                    c.prefix()
                ),
            ));
        }
        Ok(Subnet(c))
    }
}

impl<'de> serde::Deserialize<'de> for Subnet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(crate::names::tagged(&e)))
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_contains() {
        let net: Cidr = "172.21.0.0/16".parse().unwrap();
        assert!(net.contains("172.21.3.4".parse().unwrap()));
        assert!(!net.contains("172.22.0.1".parse().unwrap()));
        assert_eq!(net.size(), 65536);
        assert!(net.covers(&"172.21.0.0/24".parse().unwrap()));
        assert!(!net.covers(&"172.0.0.0/8".parse().unwrap()));
        assert_eq!("10.0.0.7".parse::<Cidr>().unwrap().prefix(), 32);
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn netmask_form() {
        let c = Cidr::from_mask(
            "192.168.0.0".parse().unwrap(),
            "255.255.240.0".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(c.prefix(), 20);
        assert!(
            Cidr::from_mask("10.0.0.0".parse().unwrap(), "255.0.255.0".parse().unwrap()).is_err()
        );
    }

    #[test]
    fn subnets() {
        assert!("172.21.0.0/16".parse::<Subnet>().unwrap().is_private());
        assert!(!"8.8.0.0/16".parse::<Subnet>().unwrap().is_private());
        let code = |s: &str| s.parse::<Subnet>().unwrap_err().code;
        assert_eq!(code("172.21.5.7/16"), "subnet-host-bits");
        assert!("172.21.5.7/16"
            .parse::<Subnet>()
            .unwrap_err()
            .message
            .contains("172.21.0.0/16"));
        assert_eq!(code("fd00::/64"), "subnet-ipv6");
        assert_eq!(code("172.21.0.0"), "subnet-syntax");
        assert_eq!(code("nonsense/8"), "subnet-syntax");
        assert_eq!("10.0.0.0/30".parse::<Subnet>().unwrap().usable_hosts(), 1);
    }

    #[test]
    fn loopback_and_network() {
        assert!("127.0.0.1/32".parse::<Cidr>().unwrap().is_loopback());
        assert!("::1/128".parse::<Cidr>().unwrap().is_loopback());
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().is_loopback());
        assert_eq!(
            "172.21.9.9/16"
                .parse::<Cidr>()
                .unwrap()
                .network()
                .to_string(),
            "172.21.0.0"
        );
    }
}
