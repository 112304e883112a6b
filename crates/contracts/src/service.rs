//! The services of SPEC §2, in port order.

use serde::{Deserialize, Serialize};

/// A service of the cafe. Its lower-case name is its command-line value, its log directory,
/// its database name and the `source` of the events it raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Gateway,
    Order,
    Payment,
    Drink,
    Customercenter,
    Delivery,
    Deliverycenter,
    Identity,
    Web,
}

impl ServiceName {
    /// Every service, in port order: the gateway at the base port, the others after it.
    pub const ALL: [ServiceName; 9] = [
        ServiceName::Gateway,
        ServiceName::Order,
        ServiceName::Payment,
        ServiceName::Drink,
        ServiceName::Customercenter,
        ServiceName::Delivery,
        ServiceName::Deliverycenter,
        ServiceName::Identity,
        ServiceName::Web,
    ];

    /// The services behind the gateway, in port order (base+1 ..): all of them but the
    /// gateway, which comes first.
    pub const BEHIND_GATEWAY: [ServiceName; ServiceName::ALL.len() - 1] =
        *ServiceName::ALL.last_chunk().expect("the gateway is not the only service");

    pub fn as_str(self) -> &'static str {
        platform::spelling::name(&self)
    }

    /// Its port's offset from the base port.
    pub fn port_offset(self) -> u16 {
        self as u16
    }

    /// The path prefixes the gateway routes to it (SPEC §2); none for the gateway itself.
    /// The web's `/` is every path no other prefix takes: the gateway tries it last.
    pub fn routes(self) -> &'static [&'static str] {
        match self {
            ServiceName::Gateway => &[],
            ServiceName::Order => &["/orders", "/menu"],
            ServiceName::Payment => &["/payments"],
            ServiceName::Drink => &["/drinks", "/orderinfos"],
            ServiceName::Customercenter => &["/mypages"],
            ServiceName::Delivery => &["/deliveries", "/cancellations"],
            ServiceName::Deliverycenter => &["/deliverypages"],
            ServiceName::Identity => &["/auth", "/customers"],
            ServiceName::Web => &["/"],
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        platform::spelling::parse(s).ok_or_else(|| format!("no service named {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::ServiceName;

    #[test]
    fn names_and_ports_follow_the_spec() {
        let names: Vec<_> = ServiceName::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["gateway", "order", "payment", "drink", "customercenter", "delivery", "deliverycenter", "identity", "web"]
        );
        assert_eq!(ServiceName::Deliverycenter.port_offset(), 6);
        assert_eq!(ServiceName::Identity.port_offset(), 7);
        assert_eq!(ServiceName::Web.port_offset(), 8);
        assert_eq!(ServiceName::BEHIND_GATEWAY.last(), Some(&ServiceName::Web), "the catch-all route comes last");
        assert_eq!("drink".parse::<ServiceName>(), Ok(ServiceName::Drink));
        assert!("kitchen".parse::<ServiceName>().is_err());
    }

    #[test]
    fn the_command_line_spells_every_service_as_serde_does() {
        use clap::ValueEnum;
        for service in ServiceName::ALL {
            let value = service.to_possible_value().expect("no service is hidden");
            assert_eq!(value.get_name(), service.as_str());
        }
    }

    #[test]
    fn every_service_behind_the_gateway_has_routes_and_no_two_share_one() {
        assert!(ServiceName::Gateway.routes().is_empty());
        let mut all: Vec<&str> = Vec::new();
        for service in ServiceName::BEHIND_GATEWAY {
            assert!(!service.routes().is_empty(), "{service} has no route");
            all.extend(service.routes());
        }
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "a prefix routed to two services");
    }
}
