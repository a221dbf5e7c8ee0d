//! One-file PKI plans: CAs, intermediates and leaves in TOML, checked whole
//! (unknown issuers, cycles, duplicate names, bad SANs, each with its line)
//! before anything is made, and expanded (`count = N` with `{n}`).

use serde::Deserialize;
use toml::Spanned;

use super::keys::KeySpec;
use super::names::EntryName;
use super::profile::{Kind, LeafProfile};
use super::san::{San, SanField};
use super::template::{parse_key_type, position, SubjectDefaults, Template, TemplateKind};
use super::validity::Expiry;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    #[serde(default)]
    ca: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    intermediate: Vec<Spanned<RawEntry>>,
    #[serde(default)]
    leaf: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: Spanned<String>,
    cn: Option<String>,
    issuer: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    ips: Vec<Spanned<String>>,
    #[serde(default)]
    uris: Vec<Spanned<String>>,
    #[serde(default)]
    emails: Vec<Spanned<String>>,
    key_type: Option<Spanned<String>>,
    validity: Option<Spanned<String>>,
    path_len: Option<u8>,
    #[serde(default)]
    permit_domains: Vec<Spanned<String>>,
    crl_url: Option<Spanned<String>>,
    key_uri: Option<Spanned<String>>,
    count: Option<Spanned<u32>>,
    #[serde(default)]
    subject: SubjectDefaults,
}

/// Where an entry sits in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Root,
    Intermediate,
    Leaf,
}

/// One certificate the plan asks for, expanded and checked.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub name: EntryName,
    pub cn: String,
    pub role: Role,
    /// The depot name of the issuing entry (none for roots).
    pub issuer: Option<EntryName>,
    pub kind: Kind,
    pub sans: Vec<San>,
    pub key: KeySpec,
    pub validity: Expiry,
    pub subject: SubjectDefaults,
    /// A CA's CRL Distribution Point (`crl_url`, else its template's):
    /// what it issues carries it, as under `init --crl-url`.
    pub crl_url: Option<String>,
    /// A CA key on a PKCS#11 token (`key_uri = "pkcs11:…"`), and whether
    /// `key_type` was given, so a key already there must be of that type.
    pub key_uri: Option<(String, bool)>,
    /// The plan line this entry comes from.
    pub line: usize,
}

/// A checked plan, in an order where every issuer comes before what it signs.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
}

/// A plan error, with its place.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}:{line}: {message}")]
pub struct PlanError {
    pub source_name: String,
    pub line: usize,
    pub message: String,
}

/// How to read a plan.
pub struct Options<'a> {
    /// Deterministic mode makes Ed25519 keys only (their signatures are
    /// deterministic by design, RFC 8032).
    pub deterministic: bool,
    /// Loads a `template = "..."` that is not a built-in name.
    pub load_template: &'a dyn Fn(&str) -> Result<Template, String>,
}

/// The largest `count` a plan entry may ask for.
pub const MAX_COUNT: u32 = 100_000;

impl Plan {
    /// Parses, checks and expands a plan.
    pub fn parse(text: &str, source_name: &str, opts: &Options<'_>) -> Result<Plan, PlanError> {
        let err = |offset: usize, message: String| PlanError {
            source_name: source_name.to_string(),
            line: position(text, offset).0,
            message,
        };
        let raw: RawPlan =
            toml::from_str(text).map_err(|e| err(e.span().map_or(0, |s| s.start), e.message().to_string()))?;
        let mut out: Vec<PlanEntry> = Vec::new();
        let groups = [(Role::Root, &raw.ca), (Role::Intermediate, &raw.intermediate), (Role::Leaf, &raw.leaf)];
        // Raw issuer names per expanded entry, resolved once all names are known.
        let mut wanted: Vec<(usize, Option<Spanned<String>>)> = Vec::new();
        for (role, list) in groups {
            for spanned in list {
                let at = spanned.span().start;
                let e = spanned.get_ref();
                let count = e.count.as_ref().map_or(1, |c| *c.get_ref());
                if count == 0 || count > MAX_COUNT {
                    return Err(err(
                        e.count.as_ref().map_or(at, |c| c.span().start),
                        format!("count must be between 1 and {MAX_COUNT}"),
                    ));
                }
                if count > 1 && !e.name.get_ref().contains("{n}") {
                    return Err(err(
                        e.name.span().start,
                        format!("count = {count} needs {{n}} in the name, e.g. \"{}-{{n}}\"", e.name.get_ref()),
                    ));
                }
                if role == Role::Root && e.issuer.is_some() {
                    return Err(err(
                        at,
                        "a [[ca]] signs itself and takes no issuer; put a CA with an issuer under [[intermediate]]"
                            .into(),
                    ));
                }
                if role != Role::Root && e.issuer.is_none() {
                    return Err(err(
                        at,
                        format!("{:?} needs an issuer (the name of a [[ca]] or [[intermediate]])", e.name.get_ref()),
                    ));
                }
                if role != Role::Leaf && (e.profile.is_some() || !e.domains.is_empty() || !e.ips.is_empty()) {
                    return Err(err(at, "profile, domains and ips belong to [[leaf]] entries".into()));
                }
                let template = match &e.template {
                    None => None,
                    Some(t) => Some(
                        Template::builtin(t.get_ref())
                            .cloned()
                            .map_or_else(|| (opts.load_template)(t.get_ref()), Ok)
                            .map_err(|m| err(t.span().start, m))?,
                    ),
                };
                let kind = entry_kind(role, e, template, &err)?;
                let crl_url = match &e.crl_url {
                    Some(u) if role == Role::Leaf => {
                        return Err(err(
                            u.span().start,
                            "crl_url belongs on a [[ca]] or [[intermediate]]: what it issues carries it".into(),
                        ))
                    }
                    Some(u) => {
                        super::crl::check_crl_url(u.get_ref())
                            .map_err(|m| err(u.span().start, format!("crl_url: {m}")))?;
                        Some(u.get_ref().clone())
                    }
                    None => kind.template().crl_url,
                };
                let key_uri = match &e.key_uri {
                    None => None,
                    Some(u) => {
                        let why = if role == Role::Leaf {
                            Some("key_uri belongs on a [[ca]] or [[intermediate]]: a leaf's key is a file its service reads".to_string())
                        } else if opts.deterministic {
                            Some("key_uri cannot be used in deterministic mode: a token key is not derived from the seed".into())
                        } else if count > 1 {
                            Some("key_uri names one key, so the entry cannot have a count".into())
                        } else {
                            crate::pki::pkcs11_uri::Pkcs11Uri::parse(u.get_ref()).err().map(|x| format!("key_uri: {x}"))
                        };
                        if let Some(why) = why {
                            return Err(err(u.span().start, why));
                        }
                        Some((u.get_ref().clone(), e.key_type.is_some()))
                    }
                };
                let key = match &e.key_type {
                    Some(k) => parse_key_type(k.get_ref()).map_err(|m| err(k.span().start, m))?,
                    None if opts.deterministic => KeySpec::Ed25519,
                    None => kind.template().key_type.unwrap_or(KeySpec::EcdsaP256),
                };
                if opts.deterministic && key != KeySpec::Ed25519 {
                    return Err(err(e.key_type.as_ref().map_or(at, |k| k.span().start), "deterministic mode makes Ed25519 keys only (their signatures need no randomness); drop key_type or set it to \"ed25519\"".into()));
                }
                let validity = match &e.validity {
                    Some(v) => Expiry::parse(v.get_ref()).map_err(|x| err(v.span().start, x.naming(|_| "validity")))?,
                    None => kind.template().validity.unwrap_or(Expiry { months: 24, seconds: 0 }),
                };
                for n in 1..=count {
                    let sub = |s: &str| s.replace("{n}", &n.to_string());
                    let raw_name = sub(e.name.get_ref());
                    let name = EntryName::new(&raw_name)
                        .map_err(|x| err(e.name.span().start, format!("name {raw_name:?}: {x}")))?;
                    let mut sans = Vec::new();
                    let lists: [(&Vec<Spanned<String>>, super::san::SanParser); 4] =
                        [(&e.domains, San::domain), (&e.ips, San::ip), (&e.uris, San::uri), (&e.emails, San::email)];
                    for (values, parse) in lists {
                        for v in values {
                            let san = parse(&sub(v.get_ref())).map_err(|x| err(v.span().start, x.naming(plan_key)))?;
                            if !sans.contains(&san) {
                                sans.push(san);
                            }
                        }
                    }
                    let cn = e.cn.as_deref().map_or_else(|| raw_name.clone(), sub);
                    if out.iter().any(|o| o.name == name) {
                        return Err(err(
                            e.name.span().start,
                            format!("the name {raw_name:?} is used twice (as the depot file {}.crt)", name),
                        ));
                    }
                    wanted.push((out.len(), e.issuer.clone()));
                    out.push(PlanEntry {
                        name,
                        cn,
                        role,
                        issuer: None,
                        kind: kind.clone(),
                        sans,
                        key,
                        validity,
                        subject: e.subject.clone(),
                        crl_url: crl_url.clone(),
                        key_uri: key_uri.clone(),
                        line: position(text, at).0,
                    });
                }
            }
        }
        // Resolve issuers by name; they must be CAs of the plan.
        for (i, issuer) in wanted {
            let Some(issuer) = issuer else { continue };
            let target = EntryName::new(issuer.get_ref()).ok();
            let found = out.iter().find(|o| Some(&o.name) == target.as_ref()).ok_or_else(|| {
                err(
                    issuer.span().start,
                    format!("unknown issuer {:?}: no [[ca]] or [[intermediate]] has that name", issuer.get_ref()),
                )
            })?;
            if found.role == Role::Leaf {
                return Err(err(
                    issuer.span().start,
                    format!("the issuer {:?} is a [[leaf]], which cannot sign", issuer.get_ref()),
                ));
            }
            let name = found.name.clone();
            out[i].issuer = Some(name);
        }
        let entries =
            order(out).map_err(|(line, m)| PlanError { source_name: source_name.to_string(), line, message: m })?;
        Ok(Plan { entries })
    }
}

/// A plan's key for each kind of SAN, as its entries write them.
fn plan_key(field: SanField) -> &'static str {
    match field {
        SanField::Domain => "domains",
        SanField::Ip => "ips",
        SanField::Uri => "uris",
        SanField::Email => "emails",
    }
}

fn entry_kind(
    role: Role,
    e: &RawEntry,
    template: Option<Template>,
    err: &dyn Fn(usize, String) -> PlanError,
) -> Result<Kind, PlanError> {
    let want = match role {
        Role::Root => TemplateKind::Ca,
        Role::Intermediate => TemplateKind::Intermediate,
        Role::Leaf => TemplateKind::Leaf,
    };
    if let Some(mut t) = template {
        let span = e.template.as_ref().map_or(0, |t| t.span().start);
        if t.kind != want {
            return Err(err(span, format!("the template is of kind {:?}, but this entry needs {want:?}", t.kind)));
        }
        if e.path_len.is_some() {
            t.path_len = e.path_len;
        }
        if !e.permit_domains.is_empty() {
            t.permit_domains = e.permit_domains.iter().map(|d| d.get_ref().clone()).collect();
        }
        return Ok(Kind::Custom { template: Box::new(t), root: role == Role::Root });
    }
    for d in &e.permit_domains {
        super::constraints::Subtree::parse(d.get_ref())
            .map_err(|why| err(d.span().start, format!("permit_domains {:?}: {why}", d.get_ref())))?;
    }
    Ok(match role {
        Role::Root => Kind::Root {
            path_len: e.path_len,
            permit_domains: e.permit_domains.iter().map(|d| d.get_ref().clone()).collect(),
        },
        Role::Intermediate => Kind::Intermediate { path_len: e.path_len },
        Role::Leaf => {
            let profile = match e.profile.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("peer") => LeafProfile::Peer,
                Some("server") => LeafProfile::Server,
                Some("client") => LeafProfile::Client,
                Some(other) => {
                    return Err(err(
                        e.profile.as_ref().map_or(0, |p| p.span().start),
                        format!("unknown profile {other:?}; use server, client or peer"),
                    ))
                }
            };
            Kind::Leaf { profile, code_signing: false }
        }
    })
}

/// Orders entries so each issuer precedes what it signs; a cycle among
/// intermediates is an error naming one of its lines.
fn order(entries: Vec<PlanEntry>) -> Result<Vec<PlanEntry>, (usize, String)> {
    let mut done: Vec<PlanEntry> = Vec::with_capacity(entries.len());
    let mut left = entries;
    while !left.is_empty() {
        let before = left.len();
        let (ready, rest): (Vec<PlanEntry>, Vec<PlanEntry>) =
            left.into_iter().partition(|e| e.issuer.as_ref().is_none_or(|i| done.iter().any(|d| &d.name == i)));
        done.extend(ready);
        left = rest;
        if left.len() == before {
            let e = &left[0];
            return Err((
                e.line,
                format!(
                    "{:?} is part of an issuer cycle: no chain of issuers from it reaches a [[ca]]",
                    e.name.as_str()
                ),
            ));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Plan, PlanError> {
        Plan::parse(
            text,
            "plan.toml",
            &Options { deterministic: false, load_template: &|p| Err(format!("no template {p}")) },
        )
    }

    #[test]
    fn expands_counts_and_orders_issuers_first() {
        let plan = parse("[[leaf]]\nname = \"svc-{n}\"\nissuer = \"Issuing\"\ncount = 3\ndomains = [\"svc-{n}.example.com\"]\n\n[[intermediate]]\nname = \"Issuing\"\nissuer = \"Root\"\n\n[[ca]]\nname = \"Root\"\n").unwrap();
        let names: Vec<&str> = plan.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Root", "Issuing", "svc-1", "svc-2", "svc-3"]);
        assert_eq!(plan.entries[4].sans, vec![San::Dns("svc-3.example.com".into())]);
        assert_eq!(plan.entries[4].issuer.as_ref().unwrap().as_str(), "Issuing");
    }

    #[test]
    fn key_uri_is_for_one_ca_and_a_usable_uri() {
        let plan = parse("[[ca]]\nname = \"Root\"\nkey_uri = \"pkcs11:token=t;object=root\"\nkey_type = \"rsa\"\n[[intermediate]]\nname = \"I\"\nissuer = \"Root\"\nkey_uri = \"pkcs11:object=i\"\n").unwrap();
        assert_eq!(plan.entries[0].key_uri, Some(("pkcs11:token=t;object=root".into(), true)));
        assert_eq!(plan.entries[1].key_uri, Some(("pkcs11:object=i".into(), false)));
        let cases = [
            (
                "[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"A\"\nkey_uri = \"pkcs11:object=x\"\n",
                6,
                "a leaf's key is a file",
            ),
            ("[[ca]]\nname = \"A-{n}\"\ncount = 2\nkey_uri = \"pkcs11:object=x\"\n", 4, "cannot have a count"),
            ("[[ca]]\nname = \"A\"\nkey_uri = \"pkcs11:tokn=x;object=y\"\n", 3, "unknown attribute"),
            ("[[ca]]\nname = \"A\"\nkey_uri = \"pkcs11:object=y?pin-value=1\"\n", 3, "pin-value"),
        ];
        for (text, line, want) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(want), "{text}: {e}");
        }
        let det = Plan::parse(
            "[[ca]]\nname = \"A\"\nkey_uri = \"pkcs11:object=y\"\n",
            "plan.toml",
            &Options { deterministic: true, load_template: &|p| Err(format!("no template {p}")) },
        )
        .unwrap_err();
        assert!(det.message.contains("deterministic"), "{det}");
    }

    #[test]
    fn errors_carry_the_line() {
        let cases = [
            ("[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"B\"\n", 5, "unknown issuer"),
            ("[[ca]]\nname = \"A\"\n[[ca]]\nname = \"A\"\n", 4, "used twice"),
            ("[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"A\"\ndomains = [\"a..b\"]\n", 6, "domains"),
            ("[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"A\"\ncount = 2\n", 4, "{n}"),
            (
                "[[intermediate]]\nname = \"I\"\nissuer = \"J\"\n[[intermediate]]\nname = \"J\"\nissuer = \"I\"\n",
                1,
                "cycle",
            ),
            ("[[ca]]\nname = \"A\"\ncolour = \"red\"\n", 3, "colour"),
            ("[[ca]]\nname = \"A\"\n[[leaf]]\nname = \"x\"\nissuer = \"A\"\nprofile = \"web\"\n", 6, "profile"),
        ];
        for (text, line, word) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.message.contains(word), "{e}");
        }
    }

    #[test]
    fn deterministic_mode_refuses_randomly_signing_key_types() {
        let opts = Options { deterministic: true, load_template: &|_| Err(String::new()) };
        let e = Plan::parse("[[ca]]\nname = \"A\"\nkey_type = \"ecdsa-p256\"\n", "p", &opts).unwrap_err();
        assert!(e.message.contains("Ed25519"), "{e}");
        let plan = Plan::parse("[[ca]]\nname = \"A\"\n", "p", &opts).unwrap();
        assert_eq!(plan.entries[0].key, KeySpec::Ed25519);
    }
}
