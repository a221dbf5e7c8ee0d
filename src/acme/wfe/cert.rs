//! Certificates (RFC 8555 §7.4.2, §7.6, RFC 9773): download, renewal
//! information, revocation.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Engine, Reply, Signed};
use crate::acme::ari;
use crate::acme::ca::leaf_of;
use crate::acme::db::Store;
use crate::acme::jws::{unb64, Jwk, Signer};
use crate::acme::model::{path, Account};
use crate::acme::problem::{malformed, Kind, Problem};
use crate::pki::crl::Reason;
use crate::pki::serial::hex;

impl<S: Store> Engine<S> {
    /// §7.4.2: the certificate chain, as PEM; `ID/alt` is the alternate
    /// chain (root included), each linked to the other as rel="alternate".
    pub(super) fn cert(&self, s: &Signed, id: &str, alt: bool) -> Result<Reply, Problem> {
        let account = s.account()?;
        let owned = self.store.order(id)?.is_some_and(|o| o.account == account.id);
        let missing = || Problem::not_found("no such certificate of this account");
        let chain = self.store.cert(id)?.filter(|_| owned).ok_or_else(missing)?;
        let other = self.issuer.alternate(&chain);
        let url = format!("{}{}{id}", self.base, path::CERT);
        let (body, link) = match (alt, other) {
            (false, Some(_)) => (chain, Some(format!("<{url}/alt>;rel=\"alternate\""))),
            (false, None) => (chain, None),
            (true, Some(other)) => (other, Some(format!("<{url}>;rel=\"alternate\""))),
            (true, None) => return Err(missing()),
        };
        // Caddy wants exactly this type.
        let reply = Reply::typed(200, "application/pem-certificate-chain", body);
        Ok(match link {
            Some(link) => reply.with("Link", link),
            None => reply,
        })
    }

    /// The certificate this server issued with this serial, when the
    /// account ordered it: (order id, chain).
    pub(super) fn owned_cert(&self, account: &Account, serial: &[u8]) -> Result<Option<(String, String)>, Problem> {
        let Some((id, chain)) = self.store.cert_by_serial(&hex(serial))? else { return Ok(None) };
        Ok(self.store.order(&id)?.filter(|o| o.account == account.id).map(|_| (id, chain)))
    }

    /// RFC 9773 §4: when to renew the certificate named by `cert_id`. A GET,
    /// unauthenticated: it tells nothing a certificate does not.
    pub(super) fn renewal_info(&self, cert_id: &str, now: OffsetDateTime) -> Result<Reply, Problem> {
        let (_, serial) = ari::parse_cert_id(cert_id)?;
        let unknown = || Problem::not_found(format!("no certificate {cert_id} was issued here"));
        let (_, chain) = self.store.cert_by_serial(&hex(&serial))?.ok_or_else(unknown)?;
        let der = leaf_of(&chain).ok_or_else(unknown)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| unknown())?;
        if ari::cert_id(&cert).as_deref() != Some(cert_id) {
            return Err(unknown());
        }
        let revoked = self.issuer.is_revoked(&serial);
        let validity = cert.validity();
        let window = ari::window(validity.not_before.to_datetime(), validity.not_after.to_datetime(), revoked, now);
        Ok(Reply::json(200, &ari::to_json(window, revoked)).with("Retry-After", ari::RETRY_AFTER_SECS.to_string()))
    }

    /// §7.6: revoke, signed by the account that ordered it or by the
    /// certificate's own key.
    pub(super) fn revoke(&self, s: &Signed, now: OffsetDateTime) -> Result<Reply, Problem> {
        let payload = s.req.json()?;
        let der = unb64(
            payload
                .get("certificate")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("revokeCert needs \"certificate\""))?,
            "certificate",
        )?;
        let code = match payload.get("reason") {
            None => 0,
            Some(r) => r.as_u64().ok_or_else(|| malformed("\"reason\" must be a number"))?,
        };
        let reason = Reason::from_code(code).ok_or_else(|| {
            Problem::new(
                Kind::BadRevocationReason,
                format!("reason {code} is not one this CA uses; give 0-6 or 9 (RFC 5280 §5.3.1)"),
            )
        })?;
        let pem = crate::pki::to_pem("CERTIFICATE", &der);
        let cert = x509_parser::parse_x509_certificate(&der).ok().map(|(_, c)| c);
        let allowed = match (&s.req.signer, &s.account) {
            (Signer::Jwk(key), _) => {
                let cert = cert.ok_or_else(|| malformed("\"certificate\" is not a certificate"))?;
                Jwk::from_spki(cert.public_key().raw).as_ref() == Some(key)
            }
            (_, Some(account)) => match cert {
                Some(c) => self.owned_cert(account, c.raw_serial())?.is_some_and(|(_, chain)| chain.starts_with(&pem)),
                None => false,
            },
            _ => false,
        };
        if !allowed {
            return Err(Problem::new(
                Kind::Unauthorized,
                "only the account that ordered a certificate, or its key, may revoke it",
            ));
        }
        self.issuer.revoke(&der, reason, now)?;
        Ok(Reply::empty(200))
    }
}
