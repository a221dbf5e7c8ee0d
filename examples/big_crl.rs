//! Benchmark set-up (bench/run.sh, W5): gives a depot CA a CRL that already
//! lists N revoked serials, so `certforge revoke` can be timed against it.
//!
//! usage: cargo run --release --example big_crl -- DEPOT CA-NAME N

use certforge::depot::{read_file, write_all, Depot, Write1, PUBLIC_MODE};
use certforge::pki::ca::CaSigner;
use certforge::pki::crl::{CrlState, Entry};
use certforge::pki::keys::PrivateKey;
use certforge::pki::names::EntryName;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, depot, ca, n] = args.as_slice() else { anyhow::bail!("usage: big_crl DEPOT CA-NAME N") };
    let depot = Depot::new(depot);
    let name = EntryName::new(ca)?;
    let cert = certforge::pki::from_pem_or_der(&read_file(&depot.path(&name, "crt"))?, "CERTIFICATE")
        .map_err(anyhow::Error::msg)?;
    let key =
        PrivateKey::from_bytes(&read_file(&depot.path(&name, "key"))?, ca, &mut None::<zeroize::Zeroizing<String>>)?;
    let signer = CaSigner::new(cert, key, ca, ca)?;
    let now = time::OffsetDateTime::now_utc();
    let mut state = CrlState::default();
    for i in 0..n.parse::<u64>()? {
        // Serials that no real certificate has: 0x7E followed by the index.
        let mut serial = vec![0x7e];
        serial.extend_from_slice(&i.to_be_bytes());
        // Distinct by construction, so no duplicate check is needed.
        state.entries.push(Entry { serial, revoked_at: now, reason: None });
    }
    let der = state.sign(&signer, now)?;
    write_all(&[Write1 {
        path: depot.path(&name, "crl"),
        bytes: certforge::pki::to_pem("X509 CRL", &der).into_bytes().into(),
        mode: PUBLIC_MODE,
        replace: true,
    }])?;
    println!("{} now lists {n} revoked serials", depot.path(&name, "crl").display());
    Ok(())
}
