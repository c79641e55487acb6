//! Where a tenant may send calls: the toll-fraud guard.
//!
//! An [`Allowance`] names the routes a tenant's numbers may take and the
//! E.164 prefixes they may dial. The operator sets one per tenant (CLI or
//! operator API); a tenant without one has the node's `[dialing]` default.
//! A number is checked when it is created or changed, and every call is
//! checked again before it is placed, so a narrowed allowance takes effect
//! at once.
//!
//! Some ranges cost the caller far more than a call should, and are where
//! toll fraud pays ([`HIGH_COST`]): premium-rate services, satellite and
//! international networks, and the Caribbean countries inside +1 that
//! look domestic to a North American. A number in one of them is refused
//! unless the allowance names that range itself (`+1900`), not merely a
//! prefix that covers it (`+1`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ranges refused unless an allowance names them (or a part of them).
pub const HIGH_COST: &[&str] = &[
    // Shared-cost and premium-rate services of the international plan
    // (ITU-T E.164: UIFN-like global services), satellite and
    // international networks.
    "+808", "+870", "+878", "+879", "+881", "+882", "+883", "+888", "+979",
    // NANP premium rate.
    "+1900", "+1976",
    // NANP countries outside the US and Canada, charged as international:
    // the classic "call back this missed call" scams.
    "+1242", "+1246", "+1264", "+1268", "+1284", "+1345", "+1441", "+1473", "+1649", "+1658",
    "+1664", "+1721", "+1758", "+1767", "+1784", "+1809", "+1829", "+1849", "+1868", "+1869",
    "+1876",
    // UK premium rate (09), "personal numbers" (070) and revenue-sharing
    // 0871-0873.
    "+449", "+4470", "+44871", "+44872", "+44873",
    // Premium rate in France (089), Germany (0900, 0137), Italy (899),
    // Spain (803, 806, 807), Australia (190).
    "+3389", "+49900", "+49137", "+39899", "+34803", "+34806", "+34807", "+61190",
];

/// Routes and destinations a tenant may use. `None` is "any": any route of
/// the node, or any destination outside [`HIGH_COST`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub routes: Option<Vec<String>>,
    pub prefixes: Option<Vec<String>>,
}

/// Why a route or a number is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Route,
    Destination,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Route => "the route is not allowed for this tenant",
            Refusal::Destination => "the number is outside this tenant's allowed destinations",
        })
    }
}

impl Allowance {
    /// Whether numbers may call `e164` over `route`.
    pub fn check(&self, route: &str, e164: &str) -> Result<(), Refusal> {
        if !self.may_use(route) {
            return Err(Refusal::Route);
        }
        if !self.may_dial(e164) {
            return Err(Refusal::Destination);
        }
        Ok(())
    }

    pub fn may_use(&self, route: &str) -> bool {
        self.routes
            .as_ref()
            .is_none_or(|routes| routes.iter().any(|r| r == route))
    }

    /// Whether `e164` is inside an allowed prefix and, where it is in a
    /// high-cost range, whether an allowed prefix names that range.
    pub fn may_dial(&self, e164: &str) -> bool {
        let allowed = self.prefixes.as_deref();
        if !allowed.is_none_or(|prefixes| prefixes.iter().any(|p| e164.starts_with(p.as_str()))) {
            return false;
        }
        match HIGH_COST.iter().find(|range| e164.starts_with(*range)) {
            None => true,
            Some(range) => allowed
                .unwrap_or_default()
                .iter()
                .any(|p| p.starts_with(range) && e164.starts_with(p.as_str())),
        }
    }

    /// The routes of `node_routes` this allowance lets a tenant use.
    pub fn usable_routes<'a>(&self, node_routes: &'a [String]) -> Vec<&'a str> {
        let usable = node_routes.iter().filter(|r| self.may_use(r));
        usable.map(String::as_str).collect()
    }

    /// What a tenant may dial, in words for an error message.
    pub fn describe_destinations(&self) -> String {
        match &self.prefixes {
            None => "any number outside the premium, satellite and other high-cost ranges".into(),
            Some(prefixes) if prefixes.is_empty() => "none".into(),
            Some(prefixes) => prefixes.join(", "),
        }
    }
}

/// A dialling prefix is `+` and 1 to 15 digits, not starting with 0.
pub fn valid_prefix(prefix: &str) -> bool {
    let digits = prefix.strip_prefix('+').unwrap_or("");
    (1..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance(routes: Option<&[&str]>, prefixes: Option<&[&str]>) -> Allowance {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Allowance {
            routes: routes.map(owned),
            prefixes: prefixes.map(owned),
        }
    }

    #[test]
    fn any_allows_every_route_and_number_but_the_high_cost_ones() {
        let any = Allowance::default();
        assert_eq!(any.check("pstn", "+15555550100"), Ok(()));
        assert_eq!(any.check("other", "+442079460000"), Ok(()));
        for costly in [
            "+19005550100",
            "+18765550100",
            "+447012345678",
            "+881612345678",
        ] {
            assert_eq!(
                any.check("pstn", costly),
                Err(Refusal::Destination),
                "{costly}"
            );
        }
    }

    #[test]
    fn routes_and_prefixes_are_exact_lists() {
        let us = allowance(Some(&["pstn"]), Some(&["+1"]));
        assert_eq!(us.check("pstn", "+15555550100"), Ok(()));
        assert_eq!(us.check("other", "+15555550100"), Err(Refusal::Route));
        assert_eq!(us.check("pstn", "+442079460000"), Err(Refusal::Destination));
        let nothing = allowance(Some(&[]), Some(&[]));
        assert_eq!(nothing.check("pstn", "+15555550100"), Err(Refusal::Route));
        assert!(!nothing.may_dial("+15555550100"));
    }

    #[test]
    fn a_high_cost_range_needs_a_prefix_naming_it() {
        let us = allowance(None, Some(&["+1"]));
        assert!(!us.may_dial("+19005550100"));
        assert!(!us.may_dial("+18095550100"));
        let premium = allowance(None, Some(&["+1", "+1900"]));
        assert!(premium.may_dial("+19005550100"));
        assert!(!premium.may_dial("+19765550100"));
        // Narrower than the range counts too: only that part is allowed.
        let one_service = allowance(None, Some(&["+19005550"]));
        assert!(one_service.may_dial("+19005550100"));
        assert!(!one_service.may_dial("+19005551100"));
    }

    #[test]
    fn usable_routes_name_only_what_the_tenant_may_use() {
        let node = [
            "demo".to_owned(),
            "pstn".to_owned(),
            "other-tenant".to_owned(),
        ];
        let mine = allowance(Some(&["pstn", "gone"]), None);
        assert_eq!(mine.usable_routes(&node), ["pstn"]);
        assert_eq!(Allowance::default().usable_routes(&node).len(), 3);
    }

    #[test]
    fn prefixes_are_a_plus_and_digits() {
        for good in ["+1", "+44", "+1900", "+123456789012345"] {
            assert!(valid_prefix(good), "{good}");
        }
        for bad in ["", "+", "1", "+0", "+1 9", "+1234567890123456", "+1a"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn every_high_cost_range_is_a_valid_prefix() {
        for range in HIGH_COST {
            assert!(valid_prefix(range), "{range}");
        }
    }
}
