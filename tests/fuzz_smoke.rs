//! The fuzz targets' short smoke run, in every `cargo test`: each one over
//! its committed corpus, then over random and mutated inputs; plus the
//! properties of naming and of the --expires grammar. The long libFuzzer
//! runs live in fuzz/ (`cargo +nightly fuzz run NAME`).

use std::path::Path;

use certforge::fuzz;
use proptest::prelude::*;

type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("csr", fuzz::csr),
    ("key", fuzz::key),
    ("pem_bundle", fuzz::pem_bundle),
    ("expires", fuzz::expires),
    ("plan", fuzz::plan),
    ("template", fuzz::template),
    ("names", fuzz::names),
    // What the network feeds `serve`.
    ("jws", fuzz::jws),
    ("finalize_csr", fuzz::finalize_csr),
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn every_target_survives_its_corpus() {
    for &(name, target) in TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "fuzz/corpus/{name} holds seeds");
        for s in &seeds {
            target(s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn targets_survive_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for &(_, target) in TARGETS {
            target(&data);
        }
    }

    #[test]
    fn targets_survive_mutated_seeds(which in 0..TARGETS.len(), pick in any::<usize>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let (name, target) = TARGETS[which];
        let seeds = corpus(name);
        let mut data = seeds[pick % seeds.len()].clone();
        for (at, byte) in flips {
            if !data.is_empty() {
                let i = at % data.len();
                data[i] ^= byte;
            }
        }
        data.truncate(cut % (data.len() + 1));
        target(&data);
    }

    #[test]
    fn names_never_leave_the_depot_and_are_stable(raw in "\\PC{0,80}") {
        if let Ok(n) = certforge::pki::names::EntryName::new(&raw) {
            prop_assert!(!n.as_str().contains('/') && !n.as_str().starts_with('.'));
            prop_assert_eq!(certforge::pki::names::sanitize(n.as_str()), n.as_str());
            prop_assert_eq!(certforge::pki::names::EntryName::new(n.as_str()).unwrap(), n);
        }
    }

    #[test]
    fn expires_reads_what_it_writes(years in 0u32..50, months in 0u32..24, days in 0u64..400, hours in 0u64..48) {
        prop_assume!(years + months > 0 || days + hours > 0);
        let text = format!("{years} years {months} months {days} days {hours} hours");
        let e = certforge::Expiry::parse(&text).unwrap();
        prop_assert_eq!(e.months, years * 12 + months);
        prop_assert_eq!(e.seconds, days * 86_400 + hours * 3600);
    }
}

// The ACME front end's target (fuzz::acme_request): a request sequence per
// input, so a slower target than the others, with its own smoke run.
#[test]
fn acme_request_survives_its_corpus() {
    let seeds = corpus("acme_request");
    assert!(seeds.len() >= 3, "fuzz/corpus/acme_request holds seeds");
    for s in &seeds {
        fuzz::acme_request(s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn acme_request_survives_mutated_seeds(pick in any::<usize>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let seeds = corpus("acme_request");
        let mut data = seeds[pick % seeds.len()].clone();
        for (at, byte) in flips {
            let i = at % data.len();
            data[i] ^= byte;
        }
        data.truncate(cut % (data.len() + 1));
        fuzz::acme_request(&data);
    }
}
