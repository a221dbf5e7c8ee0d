//! What the ACME server agrees to certify: identifiers that parse, fit the
//! CA's name constraints (a client could not use a certificate outside
//! them anyway) and `--allow`, and a CSR that asks for exactly the order's
//! names with a key that is not the account's (RFC 8555 §7.4, §11.1).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::jws::Jwk;
use super::model::{ChallengeKind, Ident, IdentKind};
use super::problem::{malformed, Identifier, Kind, Problem};
use crate::pki::constraints::{NameConstraints, Subtree};
use crate::pki::csr::ParsedCsr;
use crate::pki::san::{check_dns_name, San};

/// The most identifiers one order may hold (Let's Encrypt's limit too).
pub const MAX_IDENTIFIERS: usize = 100;

/// The server's issuing policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The issuing CA's own constraints.
    pub constraints: NameConstraints,
    /// `--allow` values; empty allows whatever the constraints allow.
    pub allow: Vec<Subtree>,
}

impl Ident {
    /// The SAN this identifier becomes.
    pub fn san(&self) -> San {
        match self.kind {
            IdentKind::Dns => San::Dns(self.value.clone()),
            IdentKind::Ip => San::Ip(self.value.parse().expect("checked when the order was made")),
        }
    }

    fn problem_id(&self) -> Identifier {
        let kind = match self.kind {
            IdentKind::Dns => "dns",
            IdentKind::Ip => "ip",
        };
        Identifier { kind: kind.into(), value: self.value.clone() }
    }

    /// The challenges that can prove it: a wildcard only by dns-01
    /// (§7.1.3), an IP address never by dns-01 (RFC 8738 §7).
    pub fn challenges(&self) -> &'static [ChallengeKind] {
        if self.value.starts_with("*.") {
            &[ChallengeKind::Dns01]
        } else {
            ChallengeKind::for_ident(self.kind)
        }
    }
}

impl Policy {
    /// Reads a newOrder's `identifiers`, canonical and without repeats, and
    /// refuses the order when any is malformed or not allowed, with one
    /// subproblem per identifier at fault (§6.7.1).
    pub fn identifiers(&self, payload: &Value) -> Result<Vec<Ident>, Problem> {
        let list = payload
            .get("identifiers")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| malformed("newOrder needs a non-empty \"identifiers\" array"))?;
        if list.len() > MAX_IDENTIFIERS {
            return Err(Problem::new(
                Kind::RejectedIdentifier,
                format!("{} identifiers in one order; at most {MAX_IDENTIFIERS}", list.len()),
            ));
        }
        let mut out: Vec<Ident> = Vec::new();
        let mut problems = Vec::new();
        for item in list {
            let (kind, value) = (item.get("type").and_then(Value::as_str), item.get("value").and_then(Value::as_str));
            let (Some(kind), Some(value)) = (kind, value) else {
                return Err(malformed("each identifier needs a \"type\" and a \"value\""));
            };
            let ident = match parse_ident(kind, value) {
                Ok(i) => i,
                Err((k, why)) => {
                    problems.push((k, why, Identifier { kind: kind.into(), value: value.into() }));
                    continue;
                }
            };
            if let Some(why) = self.refusal(&ident) {
                problems.push((Kind::RejectedIdentifier, why, ident.problem_id()));
            } else if !out.contains(&ident) {
                out.push(ident);
            }
        }
        if problems.is_empty() {
            return Ok(out);
        }
        let kind = if problems.iter().all(|p| p.0 == problems[0].0) { problems[0].0 } else { Kind::RejectedIdentifier };
        let mut p = Problem::new(kind, format!("{} identifier(s) cannot be certified by this CA", problems.len()));
        p.subproblems = problems;
        Err(p)
    }

    /// Why this CA will not certify `ident`, if it will not.
    fn refusal(&self, ident: &Ident) -> Option<String> {
        let san = ident.san();
        // A wildcard is constrained like the name under it (RFC 5280 §4.2.1.10).
        let checked = match &san {
            San::Dns(d) => San::Dns(d.trim_start_matches("*.").to_string()),
            other => other.clone(),
        };
        if let Some(why) = self.constraints.violation(&checked) {
            return Some(why);
        }
        let allowed = self.allow.is_empty() || self.allow.iter().any(|s| s.covers(&checked) == Some(true));
        (!allowed).then(|| {
            let list: Vec<String> = self.allow.iter().map(ToString::to_string).collect();
            format!("{san} is not in this server's --allow list ({})", list.join(", "))
        })
    }

    /// Checks a finalize CSR against its order (§7.4): exactly the order's
    /// names, a CN (if any) among them, and a key other than the account's.
    pub fn check_csr(&self, csr: &ParsedCsr, order: &[Ident], account_key: &Jwk) -> Result<(), Problem> {
        let bad = |why: String| Problem::new(Kind::BadCsr, why);
        let wanted: BTreeSet<String> = order.iter().map(|i| i.san().to_string()).collect();
        let asked: BTreeSet<String> = csr
            .sans
            .iter()
            .map(|s| match s {
                San::Dns(d) => San::Dns(d.to_ascii_lowercase()).to_string(),
                other => other.to_string(),
            })
            .collect();
        if asked != wanted {
            let extra: Vec<&String> = asked.difference(&wanted).collect();
            let missing: Vec<&String> = wanted.difference(&asked).collect();
            return Err(bad(format!(
                "the CSR's names differ from the order's: extra {extra:?}, missing {missing:?}; request exactly the order's identifiers"
            )));
        }
        if let Some(cn) = &csr.common_name {
            let cn_san = cn.parse::<IpAddr>().map(San::Ip).unwrap_or_else(|_| San::Dns(cn.to_ascii_lowercase()));
            if !wanted.contains(&cn_san.to_string()) {
                return Err(bad(format!("the CSR's CN {cn:?} is not one of the order's identifiers")));
            }
        }
        if Jwk::from_spki(&csr.spki_der).is_some_and(|k| &k == account_key) {
            return Err(bad("the CSR's key is the account key; use a separate key for the certificate (§11.1)".into()));
        }
        Ok(())
    }
}

/// One identifier, canonical: lowercase DNS, IP addresses in their usual
/// text form.
fn parse_ident(kind: &str, value: &str) -> Result<Ident, (Kind, String)> {
    match kind {
        "dns" => {
            let v = value.to_ascii_lowercase();
            check_dns_name(&v)
                .map_err(|why| (Kind::RejectedIdentifier, format!("{value:?} is not a DNS name: {why}")))?;
            if v.parse::<IpAddr>().is_ok() {
                return Err((
                    Kind::Malformed,
                    format!("{value:?} is an IP address; send it as type \"ip\" (RFC 8738)"),
                ));
            }
            Ok(Ident { kind: IdentKind::Dns, value: v })
        }
        "ip" => {
            let ip: IpAddr = value.parse().map_err(|_| (Kind::Malformed, format!("{value:?} is not an IP address")))?;
            Ok(Ident { kind: IdentKind::Ip, value: ip.to_string() })
        }
        other => {
            Err((Kind::UnsupportedIdentifier, format!("identifier type {other:?} is not supported; use dns or ip")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn local() -> Policy {
        let (permitted, _) = crate::pki::constraints::effective(&["localhost".into(), "test".into()]);
        Policy { constraints: NameConstraints { permitted, excluded: vec![] }, allow: vec![] }
    }

    #[test]
    fn identifiers_are_canonical_deduplicated_and_held_to_the_constraints() {
        let p = local();
        let ok = p
            .identifiers(&json!({ "identifiers": [
                { "type": "dns", "value": "App.Test" }, { "type": "dns", "value": "app.test" },
                { "type": "ip", "value": "::0001" }, { "type": "dns", "value": "*.svc.test" }
            ]}))
            .unwrap();
        let values: Vec<&str> = ok.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(values, ["app.test", "::1", "*.svc.test"]);
        assert_eq!(ok[2].challenges(), &[ChallengeKind::Dns01], "a wildcard only by dns-01");
        assert!(!ok[1].challenges().contains(&ChallengeKind::Dns01), "an IP never by dns-01");

        let err = p
            .identifiers(&json!({ "identifiers": [
                { "type": "dns", "value": "localhost" }, { "type": "dns", "value": "www.example.com" },
                { "type": "ip", "value": "8.8.8.8" }
            ]}))
            .unwrap_err();
        assert_eq!(err.kind, Kind::RejectedIdentifier);
        let named: Vec<&str> = err.subproblems.iter().map(|s| s.2.value.as_str()).collect();
        assert_eq!(named, ["www.example.com", "8.8.8.8"]);

        let many: Vec<Value> = (0..1000).map(|i| json!({ "type": "dns", "value": format!("h{i}.test") })).collect();
        assert_eq!(p.identifiers(&json!({ "identifiers": many })).unwrap_err().kind, Kind::RejectedIdentifier);
        assert_eq!(p.identifiers(&json!({ "identifiers": [] })).unwrap_err().kind, Kind::Malformed);
        let odd = p.identifiers(&json!({ "identifiers": [{ "type": "email", "value": "a@test" }] })).unwrap_err();
        assert_eq!(odd.kind, Kind::UnsupportedIdentifier);
        let ip_as_dns =
            p.identifiers(&json!({ "identifiers": [{ "type": "dns", "value": "127.0.0.1" }] })).unwrap_err();
        assert_eq!(ip_as_dns.kind, Kind::Malformed);
    }

    #[test]
    fn allow_narrows_what_the_constraints_permit() {
        let mut p = local();
        p.allow = vec![Subtree::parse("api.test").unwrap()];
        assert!(p.identifiers(&json!({ "identifiers": [{ "type": "dns", "value": "x.api.test" }] })).is_ok());
        let err = p.identifiers(&json!({ "identifiers": [{ "type": "dns", "value": "web.test" }] })).unwrap_err();
        assert!(err.subproblems[0].1.contains("--allow"), "{err:?}");
    }

    #[test]
    fn a_csr_must_ask_for_the_orders_names_with_its_own_key() {
        use crate::pki::csr::{make_csr, parse_csr};
        use crate::pki::keys::{KeySpec, PrivateKey};
        use crate::pki::subject::Subject;
        let p = local();
        let order = p
            .identifiers(&json!({ "identifiers": [{ "type": "dns", "value": "app.test" }, { "type": "ip", "value": "127.0.0.1" }] }))
            .unwrap();
        let (key, account) =
            (PrivateKey::generate(KeySpec::EcdsaP256).unwrap(), PrivateKey::generate(KeySpec::Ed25519).unwrap());
        let account_key = Jwk::from_spki(&account.spki_der()).expect("an Ed25519 account key");
        let csr = |cn: &str, sans: &[San], key: &PrivateKey| {
            let dn = Subject { common_name: Some(cn.into()), ..Default::default() }.to_dn().unwrap();
            parse_csr(&make_csr(&dn, sans, key).unwrap(), "test").unwrap()
        };
        let names = [San::Dns("APP.test".into()), San::ip("127.0.0.1").unwrap()];
        p.check_csr(&csr("app.test", &names, &key), &order, &account_key).unwrap();
        let extra = [names[0].clone(), names[1].clone(), San::Dns("other.test".into())];
        let err = p.check_csr(&csr("app.test", &extra, &key), &order, &account_key).unwrap_err();
        assert!(err.kind == Kind::BadCsr && err.detail.contains("other.test"), "{err}");
        let err = p.check_csr(&csr("evil.test", &names, &key), &order, &account_key).unwrap_err();
        assert!(err.detail.contains("CN"), "{err}");
        let err = p.check_csr(&csr("app.test", &names, &account), &order, &account_key).unwrap_err();
        assert!(err.detail.contains("account key"), "{err}");
        let ec_account = Jwk::from_spki(&key.spki_der()).expect("a P-256 key");
        assert!(matches!(ec_account, Jwk::Ec { p384: false, .. }));
    }
}
