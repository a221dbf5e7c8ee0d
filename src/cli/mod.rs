//! What the user can type: clap definitions with certstrap's flag names and
//! aliases, so existing certstrap scripts run unchanged. What the program
//! decides from these lives in `commands/`.

pub mod complete;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueHint};
use clap_complete::engine::ArgValueCompleter;

use crate::pki::crl::Reason;
use crate::pki::profile::LeafProfile;

const MAIN_HELP: &str = "\
Examples (the certstrap blog workflow for gRPC mutual TLS):
  certforge --depot-path certs init --common-name \"gRPC Root CA\"
  certforge --depot-path certs request-cert --domain localhost
  certforge --depot-path certs request-cert --cn grpc_client
  certforge --depot-path certs sign --CA \"gRPC Root CA\" localhost
  certforge --depot-path certs sign --CA \"gRPC Root CA\" grpc_client

The depot directory defaults to ./out (or $CERTFORGE_DEPOT_PATH). Keys are
written 0600, nothing is ever overwritten, and a failed command changes
nothing.";

// Each command's examples (its `after_help`): lines of at most 79 columns, a
// long command continued with ` \`, so that every example pastes whole into a
// shell. `Cli::parse_args` prints them as written.
const INIT_HELP: &str = r#"Examples:
  certforge --depot-path certs init --common-name "gRPC Root CA"
  certforge init --cn "Test CA" --key-type ed25519 --expires "5 years" \
      --permit-domain example.com"#;

const REQUEST_CERT_HELP: &str = r#"Examples:
  certforge --depot-path certs request-cert --domain localhost \
      --ip 127.0.0.1,::1
  certforge --depot-path certs request-cert --cn grpc_client

Files are named after --cn, else the first --domain, --uri, --ip or --email."#;

const SIGN_HELP: &str = r#"Examples:
  certforge --depot-path certs sign --CA "gRPC Root CA" localhost
  certforge sign --CA "gRPC Root CA" --profile client grpc_client
  certforge sign --CA "gRPC Root CA" --intermediate "Issuing CA""#;

const REVOKE_HELP: &str = r#"Example:
  certforge --depot-path certs revoke --CN localhost --CA "gRPC Root CA" \
      --reason keyCompromise"#;

const INSPECT_HELP: &str = r#"Examples:
  certforge --depot-path certs inspect localhost
  certforge inspect server.crt ca.crt --json
  certforge --depot-path certs inspect gRPC_Root_CA.crl localhost.key"#;

const VERIFY_HELP: &str = r#"Examples:
  certforge --depot-path certs verify localhost --host localhost \
      --purpose server
  certforge verify server.crt --ca ca.crt --chain intermediates.pem \
      --host grpc.example.com
  certforge --depot-path certs verify grpc_client --purpose client \
      --crl auto --key certs/grpc_client.key

Without --ca, the depot's CAs are trusted and its intermediates complete the
chain. Exit status: 0 valid, 1 not valid, 2 bad usage."#;

const LINT_HELP: &str = r#"Examples:
  certforge --depot-path certs lint --all
  certforge lint server.crt --strict

Exit status: 1 when there is an error (or, with --strict, a warning)."#;

const PROBE_HELP: &str = r#"Examples:
  certforge --depot-path certs probe localhost:50051
  certforge probe 127.0.0.1:8443 --ca ca.crt --servername localhost \
      --cert client.crt --key client.key
  certforge probe 127.0.0.1:8443 --ca ca.crt --alpn http/1.1

Without --ca, the depot's CAs are trusted. By ALPN, probe offers h2 and
http/1.1, as curl does. When a server closes the connection without a TLS
alert and without agreeing a protocol, probe connects again offering those
two, to tell a server that requires ALPN (gRPC requires h2) from one that
refuses the client certificate.
Exit status: 0 when the handshake succeeds, the server keeps the connection
and its certificate verifies; 1 otherwise."#;

const LIST_HELP: &str = r#"Examples:
  certforge --depot-path certs list
  certforge --depot-path certs list --tree
  certforge --depot-path certs list --expiring-within 30d
  certforge --depot-path certs list --format prometheus \
      --out /var/lib/prometheus/node-exporter/certforge.prom

With --expiring-within, the exit status is 1 when anything is due (for CI).
--format prometheus gives each certificate's notAfter and notBefore (unix
seconds) and whether it is revoked, as gauges labelled name, issuer, kind
and serial; --out replaces FILE atomically, as node_exporter's textfile
collector needs, and prints nothing on success (for a timer)."#;

const RENEW_HELP: &str = r#"Examples:
  certforge --depot-path certs renew localhost
  certforge --depot-path certs renew localhost --rekey --expires "90 days"
  certforge --depot-path certs renew --all --expiring-within 30d"#;

const EXPORT_HELP: &str = r#"Examples:
  certforge --depot-path certs export localhost --format pkcs12 \
      --password-file pw.txt --out localhost.p12
  certforge --depot-path certs export "gRPC Root CA" --format truststore \
      --password changeit --out truststore.p12
  certforge --depot-path certs export localhost --format k8s \
      --name grpc-server --namespace prod --force > secret.yaml
  eval "$(certforge --depot-path certs export localhost --format env \
      --prefix TLS_SERVER --force)""#;

const APPLY_HELP: &str = r#"Example plan (plan.toml):
  [[ca]]
  name = "Test Root"

  [[leaf]]
  name = "svc-{n}"
  count = 100
  issuer = "Test Root"
  profile = "server"
  domains = ["svc-{n}.test"]

Examples:
  certforge --depot-path fixtures apply plan.toml
  certforge --depot-path fixtures apply plan.toml --dry-run
  certforge --depot-path fixtures apply plan.toml --deterministic-seed ci \
      --not-before 2025-01-01T00:00:00Z

What exists and matches the plan is kept; what is missing is made; what
differs (or expires within --renew-within) is re-issued, the old one kept in
archive/. An unchanged plan writes nothing. Certificates in the depot that
the plan does not name are kept, and listed with the command that removes
them.

--deterministic-seed: byte-identical output for the same plan,
--deterministic-seed value and --not-before. Anyone who knows that value has
the private keys: for test fixtures only."#;

const QUICKSTART_HELP: &str = r#"Examples:
  certforge --depot-path certs quickstart
  certforge --depot-path certs quickstart --host grpc.internal --ip 10.0.0.5
  eval "$(certforge --depot-path certs quickstart --print-env)""#;

const TEMPLATES_HELP: &str = r#"Examples:
  certforge templates list
  certforge templates show server > my-server.toml
  # edit my-server.toml, then:
  certforge sign --CA "Test CA" --template my-server.toml web"#;

const MAN_HELP: &str = r#"Examples:
  certforge man | man -l -
  certforge man --dir ~/.local/share/man/man1   # then: man certforge-sign"#;

/// A certstrap-compatible private CA for development, CI and staging.
#[derive(Debug, Parser)]
#[command(name = "certforge", version, about, after_help = MAIN_HELP, propagate_version = true)]
pub struct Cli {
    /// Directory holding keys, CSRs, certificates and CRLs.
    #[arg(
        long = "depot-path",
        global = true,
        env = "CERTFORGE_DEPOT_PATH",
        hide_env_values = true,
        default_value = "out",
        value_name = "DIR",
        value_hint = ValueHint::DirPath
    )]
    pub depot_path: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line as `Parser::parse_from` does (printing help
    /// or the usage error and exiting), but prints each command's examples
    /// as written. clap wraps `after_help` to the terminal's width at spaces,
    /// which cuts an example command into lines that no longer run when
    /// pasted, and reads `{n}` in it (the plan example's `svc-{n}`) as a line
    /// break; the literal text of a help template it prints untouched. A
    /// terminal narrower than the examples folds them without a line break,
    /// so they still paste whole.
    pub fn parse_args(args: Vec<std::ffi::OsString>) -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = examples_as_written(Cli::command()).mut_subcommands(examples_as_written);
        let mut matches = cmd.try_get_matches_from_mut(args).unwrap_or_else(|e| e.exit());
        Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
    }
}

/// `cmd` with its `after_help` as the literal end of its help template
/// (clap's default template otherwise). The man pages keep reading
/// `after_help`, which they do not wrap.
fn examples_as_written(cmd: clap::Command) -> clap::Command {
    let Some(after) = cmd.get_after_help().map(ToString::to_string) else { return cmd };
    cmd.help_template(format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{{all-args}}\n\n{after}"
    ))
}

/// The subcommands. Each one's arguments are built only when it runs
/// (`defer`): a command pays for its own flags, not for all nineteen. The
/// argument structs below carry `//` comments, not doc comments, because
/// clap would take a struct's doc as the subcommand's description and, run
/// deferred, put it over the variant's own.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a certificate authority: NAME.key, NAME.crt and an empty NAME.crl.
    #[command(after_help = INIT_HELP)]
    Init(InitArgs),
    /// Create a private key and a certificate signing request (NAME.key, NAME.csr).
    #[command(after_help = REQUEST_CERT_HELP)]
    RequestCert(RequestCertArgs),
    /// Sign NAME.csr with a CA, writing NAME.crt.
    #[command(after_help = SIGN_HELP)]
    Sign(SignArgs),
    /// Revoke a certificate: add it to its CA's CRL (CA.crl), once.
    #[command(after_help = REVOKE_HELP)]
    Revoke(RevokeArgs),
    /// Show what certificates, CSRs, CRLs and keys hold (PEM or DER, bundles too).
    #[command(after_help = INSPECT_HELP)]
    Inspect(InspectArgs),
    /// Check a certificate as a TLS peer will, and say every reason it would be refused.
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Warn about what real TLS clients will reject or mishandle.
    #[command(after_help = LINT_HELP)]
    Lint(LintArgs),
    /// Connect to a TLS server, show what it sends, and verify it as `verify` does.
    #[command(after_help = PROBE_HELP)]
    Probe(ProbeArgs),
    /// List the depot: every certificate with its kind, issuer, names and expiry.
    #[command(after_help = LIST_HELP)]
    List(ListArgs),
    /// Re-issue a certificate with a fresh serial and validity, keeping the old one in archive/.
    #[command(after_help = RENEW_HELP)]
    Renew(RenewArgs),
    /// Hand a certificate to Java, .NET, Kubernetes or env-configured services.
    #[command(after_help = EXPORT_HELP)]
    Export(ExportArgs),
    /// Make or update a whole PKI from one plan file, idempotently.
    #[command(after_help = APPLY_HELP)]
    Apply(ApplyArgs),
    /// The CA, server and client set of the gRPC authentication guide's openssl script, in one command, for gRPC mutual TLS.
    #[command(after_help = QUICKSTART_HELP)]
    Quickstart(QuickstartArgs),
    /// Show the built-in certificate templates, to start your own from a copy.
    #[command(after_help = TEMPLATES_HELP)]
    Templates {
        #[command(subcommand)]
        action: TemplatesAction,
    },
    /// Print the completion script for a shell: subcommands, flags, and CA and entry names from the depot.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
    /// Print the manual page certforge(1), or write one page per subcommand with --dir.
    #[command(after_help = MAN_HELP)]
    Man(ManArgs),
    /// Trust a CA in this machine's stores (OS, Chromium/Firefox NSS, Java), as `mkcert -install` does; or remove it; or show where it is trusted.
    #[command(after_help = TRUST_HELP)]
    Trust {
        #[command(subcommand)]
        action: TrustAction,
    },
    /// Run an ACME server (RFC 8555) on a depot CA, so that certbot, lego, Caddy and cert-manager get and renew certificates by themselves.
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Manage the ACME server's state: External Account Binding keys; with --database, a fleet's certificates.
    #[command(after_help = ACME_HELP)]
    Acme(AcmeArgs),
}

const ACME_HELP: &str = r#"Examples:
  certforge acme eab add staging-ingress
  certforge acme --database postgres://certforge@db.internal/certforge list
  certforge acme --database postgres://certforge@db.internal/certforge \
      revoke web1.staging.internal --reason keyCompromise
  certforge acme --database postgres://certforge@db.internal/certforge \
      revoke 4F:2A:91:0C:7D:33:18:E6:5B:02 --reason superseded

CERTFORGE_DATABASE_URL may hold the URL instead of --database. Without it,
eab add|list use the depot's acme.sqlite; list and revoke need the fleet's
database (a depot's certificates: certforge list, certforge revoke)."#;

// `acme` arguments.
#[derive(Debug, Args)]
pub struct AcmeArgs {
    /// The PostgreSQL database the `serve --database` fleet shares (postgres://…, or set CERTFORGE_DATABASE_URL); without it, the depot's acme.sqlite.
    #[arg(
        long = "database",
        value_name = "URL",
        global = true,
        env = "CERTFORGE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    #[command(subcommand)]
    pub action: AcmeAction,
}

// `acme` subcommands (a `//` comment: clap would show a doc comment as
// the description of `certforge acme`, over the variant's own).
#[derive(Debug, Subcommand)]
pub enum AcmeAction {
    /// List the certificates the fleet issued: serial, expiry, revocation, names (needs --database).
    List {
        /// One JSON array, for scripts.
        #[arg(long = "json")]
        json: bool,
        /// Also list serials reserved for orders that were never signed.
        #[arg(long = "all")]
        all: bool,
    },
    /// Revoke a certificate the fleet issued, by serial or name, and wait for a CRL that carries it (needs --database).
    Revoke {
        /// The serial in hex (colons allowed), or a DNS name in the certificate.
        #[arg(value_name = "SERIAL|NAME")]
        target: String,
        /// Why it is revoked (RFC 5280 §5.3.1).
        #[arg(long = "reason", value_enum, value_name = "REASON")]
        reason: Option<Reason>,
        /// A NAME in several valid certificates revokes them all (without it, that is refused and their serials listed).
        #[arg(long = "all")]
        all: bool,
    },
    /// External Account Binding keys, for `serve --require-eab`.
    Eab {
        #[command(subcommand)]
        action: EabAction,
    },
}

/// `acme eab` subcommands.
#[derive(Debug, Subcommand)]
pub enum EabAction {
    /// Make a kid and HMAC key for NAME (a person or team) and print them once; the client gives both to the server.
    Add {
        /// Who the key is for, e.g. "staging-ingress".
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the kids and names (never the keys).
    List,
}

/// `--metrics-listen`: a port alone is loopback's, so that metrics reach
/// the network only when an address says so.
fn metrics_listen(v: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = v.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    v.parse().map_err(|_| format!("{v:?} is neither a port nor HOST:PORT (e.g. 9464, 127.0.0.1:9464, [::1]:9464)"))
}

const SERVE_HELP: &str = r#"Examples:
  certforge --depot-path D serve --CA "Staging CA" --listen 127.0.0.1:14000
  certforge serve --CA "Staging CA" --listen 0.0.0.0:443 \
      --hostname acme.staging.internal --allow staging.internal
  # CI: every challenge passes
  certforge serve --CA "CI CA" --listen 127.0.0.1:14000 --skip-validation
  # one of a fleet behind a balancer, its state in PostgreSQL
  certforge serve --CA "Staging CA" --listen 0.0.0.0:443 \
      --hostname acme1.staging.internal \
      --external-url https://acme.staging.internal \
      --database postgres://certforge@db.staging.internal/certforge

Issued certificates are ordinary depot entries (NAME.acme-ORDER.crt): list,
verify, revoke and renew see them. Accounts and orders are kept in the depot's
acme.sqlite and survive a restart. With --database (or
CERTFORGE_DATABASE_URL) they are kept in PostgreSQL instead, shared by every
instance: certificates are then listed and revoked with `certforge acme list`
and `certforge acme revoke`."#;

// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The CA that issues (a sealed local CA issues through its intermediate).
    #[arg(long = "CA", visible_alias = "ca", value_name = "CA", add = ArgValueCompleter::new(complete::ca_names))]
    pub ca: String,
    /// Address to listen on, HOST:PORT; repeat for several (IPv6 as [::1]:14000).
    #[arg(long = "listen", value_name = "ADDR", default_value = "127.0.0.1:14000")]
    pub listen: Vec<std::net::SocketAddr>,
    /// Also serve the CA's CRL over plain HTTP on ADDR, at /crl/NAME.crl (what `init --crl-url` should name).
    #[arg(long = "crl-listen", value_name = "ADDR")]
    pub crl_listen: Vec<std::net::SocketAddr>,
    /// A DNS name clients reach the server by: it goes into the server's own certificate and the directory URL.
    #[arg(long = "hostname", value_name = "NAME")]
    pub hostname: Vec<String>,
    /// Lifetime of issued certificates, e.g. "45 days" (the default), "90 days", "12 hours"; capped at the CA's expiry.
    #[arg(long = "cert-lifetime", value_name = "SPAN", default_value = "45 days")]
    pub cert_lifetime: String,
    /// server: serverAuth only; peer: serverAuth + clientAuth (for gRPC mutual TLS).
    #[arg(long = "profile", value_enum, default_value = "server")]
    pub profile: ServeProfile,
    /// Only certify names under DOMAIN or addresses in CIDR; repeat for several (default: whatever the CA may certify).
    #[arg(long = "allow", value_name = "DOMAIN|CIDR")]
    pub allow: Vec<String>,
    /// Accept every challenge without checking it (CI). Refused unless every --listen is loopback, or the flag is given twice.
    #[arg(long = "skip-validation", action = clap::ArgAction::Count)]
    pub skip_validation: u8,
    /// Port that http-01 checks connect to.
    #[arg(long = "http01-port", value_name = "PORT", default_value_t = 80)]
    pub http01_port: u16,
    /// Port that tls-alpn-01 checks connect to.
    #[arg(long = "tlsalpn01-port", value_name = "PORT", default_value_t = 443)]
    pub tlsalpn01_port: u16,
    /// DNS server for dns-01 checks (and for resolving names to check), HOST:PORT (default: the system's resolver).
    #[arg(long = "dns-resolver", value_name = "HOST:PORT")]
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// Log lines as text or as one JSON object per line.
    #[arg(long = "log-format", value_enum, default_value = "text")]
    pub log_format: crate::serve::log::Format,
    /// New accounts need an External Account Binding: a kid and HMAC key from `certforge acme eab add NAME`.
    #[arg(long = "require-eab")]
    pub require_eab: bool,
    /// Keep accounts, orders, certificates, revocations and the CRL in this PostgreSQL database (postgres://…, or set CERTFORGE_DATABASE_URL), shared by every instance of a fleet.
    #[arg(long = "database", value_name = "URL", env = "CERTFORGE_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// The URL clients use, when it is not this server's own: a balancer's https://HOST[:PORT]. It names the directory, and HOST joins the server's certificate.
    #[arg(long = "external-url", value_name = "URL")]
    pub external_url: Option<String>,
    /// New orders per account per hour (0: no limit).
    #[arg(long = "rate-orders-per-account", value_name = "N", default_value_t = 3000)]
    pub rate_orders_per_account: u32,
    /// New orders per client address per hour (IPv6 by /64; 0: no limit).
    #[arg(long = "rate-orders-per-address", value_name = "N", default_value_t = 20000)]
    pub rate_orders_per_address: u32,
    /// Failed validations per account and name per hour, after which new orders for that name are refused (0: no limit).
    #[arg(long = "rate-failed-validations", value_name = "N", default_value_t = 300)]
    pub rate_failed_validations: u32,
    /// Every connection starts with a PROXY protocol v2 header naming the client (haproxy's send-proxy-v2), so per-address limits and logs see clients, not the balancer; a connection without one is closed.
    #[arg(long = "proxy-protocol")]
    pub proxy_protocol: bool,
    /// Also serve /metrics (Prometheus text format) over plain HTTP on [HOST:]PORT: a port alone listens on 127.0.0.1 only; give HOST:PORT for a scraper on a private network. /metrics is on the HTTPS port too.
    #[arg(long = "metrics-listen", value_name = "[HOST:]PORT", value_parser = metrics_listen)]
    pub metrics_listen: Vec<std::net::SocketAddr>,
    #[command(flatten)]
    pub pass: PassArgs,
}

/// What `serve` issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeProfile {
    Server,
    Peer,
}

const TRUST_HELP: &str = r#"Examples:
  # a CA that is safe to trust (name-constrained, its root key destroyed):
  certforge init --local --cn "Dev CA"
  # into the system store, NSS (Chromium, Firefox) and Java:
  certforge trust install
  # where it is trusted, and the lines for Node, Python requests and gRPC:
  certforge trust status
  eval "$(certforge trust status --print-env)"
  certforge trust uninstall --store nss,java --dry-run"#;

const COMPLETIONS_HELP: &str = r#"Install (each once; the .deb package installs bash, zsh and fish completion):
  # bash
  certforge completions bash \
      > ~/.local/share/bash-completion/completions/certforge
  # zsh, with fpath+=(~/.zfunc) before compinit in ~/.zshrc
  certforge completions zsh > ~/.zfunc/_certforge
  # fish
  certforge completions fish > ~/.config/fish/completions/certforge.fish
  # PowerShell, in $PROFILE
  certforge completions powershell | Out-String | Invoke-Expression
  # elvish, in ~/.config/elvish/rc.elv
  eval (certforge completions elvish | slurp)

After --CA, and after sign, revoke --CN, renew, export, verify and inspect,
TAB offers the names in the depot that the line names with --depot-path
(else $CERTFORGE_DEPOT_PATH, else ./out)."#;

// `completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: complete::Shell,
}

/// `trust` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrustAction {
    /// Add the CA to each store (idempotent); names every store it changed.
    Install(TrustArgs),
    /// Remove exactly this CA (matched by fingerprint) from each store, and Debian's Java copy of it.
    Uninstall(TrustArgs),
    /// Show each store and whether it trusts the CA, and the lines for runtimes that ignore the OS store.
    Status(TrustArgs),
}

// `trust` arguments, shared by its three actions.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// The CA (default: the depot's only root CA). A local CA's root is what gets trusted.
    #[arg(long = "CA", visible_alias = "ca", value_name = "CA", add = ArgValueCompleter::new(complete::ca_names))]
    pub ca: Option<String>,
    /// Which stores, comma-separated (default: all).
    #[arg(long = "store", value_enum, value_delimiter = ',', value_name = "STORE")]
    pub store: Vec<crate::trust::Store>,
    /// Say what would change, and the commands, without changing anything.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long = "json")]
    pub json: bool,
    /// Print only the `export` line for Node, Python requests and gRPC, for `eval`.
    #[arg(long = "print-env", conflicts_with = "json")]
    pub print_env: bool,
}

// `man` arguments.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write certforge.1 and one certforge-SUBCOMMAND.1 per subcommand into DIR (never overwriting).
    #[arg(long = "dir", value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
}

/// `templates` subcommands.
#[derive(Debug, Subcommand)]
pub enum TemplatesAction {
    /// List the built-in templates.
    List,
    /// Print one built-in template's TOML.
    Show {
        /// ca, intermediate, server, client or peer.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

// Subject fields other than the common name (certstrap's names and short flags).
#[derive(Debug, Args, Default, Clone)]
pub struct SubjectArgs {
    /// Organization (O).
    #[arg(short = 'o', long = "organization", value_name = "O")]
    pub organization: Option<String>,
    /// Organizational unit (OU).
    #[arg(long = "organizational-unit", visible_alias = "ou", value_name = "OU")]
    pub organizational_unit: Option<String>,
    /// Country (C), two letters.
    #[arg(short = 'c', long = "country", value_name = "C")]
    pub country: Option<String>,
    /// State or province (ST).
    #[arg(long = "province", visible_alias = "st", value_name = "ST")]
    pub province: Option<String>,
    /// Locality (L).
    #[arg(short = 'l', long = "locality", value_name = "L")]
    pub locality: Option<String>,
}

/// `--key-type` values; `commands::flags::key_spec` turns them, with
/// `--curve` and `--key-bits`, into a key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    #[value(name = "ed25519")]
    Ed25519,
    #[value(name = "rsa")]
    Rsa,
}

// Key choice.
#[derive(Debug, Args, Default, Clone)]
pub struct KeyArgs {
    /// Key type [default: ecdsa-p256].
    #[arg(long = "key-type", value_enum, value_name = "TYPE")]
    pub key_type: Option<KeyType>,
    /// Elliptic curve, as certstrap names it: P-256, P-384, P-521 or Ed25519.
    #[arg(long = "curve", value_name = "CURVE")]
    pub curve: Option<String>,
    /// RSA key size: 2048, 3072 or 4096 (implies an RSA key).
    #[arg(long = "key-bits", value_name = "BITS")]
    pub key_bits: Option<u32>,
    /// Use this existing private key instead of generating one (it is copied into the depot). For
    /// `init`, a PKCS#11 URI (pkcs11:token=…;object=…) keeps the CA key on that token: made there
    /// when absent (of --key-type), used when present.
    #[arg(long = "key", value_name = "PATH|URI")]
    pub existing_key: Option<PathBuf>,
}

// Passphrase sources. `--passphrase ""` means no passphrase, as in certstrap.
#[derive(Debug, Args, Default, Clone)]
pub struct PassArgs {
    /// Passphrase for the private key ("" for none). Prefer --passphrase-file: arguments show in `ps`.
    #[arg(long = "passphrase", env = "CERTFORGE_PASSPHRASE", hide_env_values = true, value_name = "PASS")]
    pub passphrase: Option<String>,
    /// Read the passphrase from the first line of FILE.
    #[arg(long = "passphrase-file", value_name = "FILE", conflicts_with = "passphrase")]
    pub passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub token: Pkcs11Args,
}

const TOKEN: &str = "CA key on a PKCS#11 token";

// Where a CA key on a PKCS#11 token (`--key pkcs11:…`) is reached.
#[derive(Debug, Args, Default, Clone)]
pub struct Pkcs11Args {
    /// The PKCS#11 module to load [default: the URI's module-path, else p11-kit-proxy, OpenSC, SoftHSM].
    #[arg(
        long = "pkcs11-module",
        env = "CERTFORGE_PKCS11_MODULE",
        hide_env_values = true,
        value_name = "PATH",
        help_heading = TOKEN
    )]
    pub module: Option<PathBuf>,
    /// Read the token's user PIN from the first line of FILE (or set CERTFORGE_PKCS11_PIN; at a terminal it is asked for).
    #[arg(long = "pin-file", value_name = "FILE", help_heading = TOKEN)]
    pub pin_file: Option<PathBuf>,
}

impl Pkcs11Args {
    /// The options the token code takes.
    pub fn options(&self) -> crate::pkcs11::Options {
        crate::pkcs11::Options { module: self.module.clone(), pin_file: self.pin_file.clone() }
    }
}

// Validity flags.
#[derive(Debug, Args, Default, Clone)]
pub struct ValidityArgs {
    /// How long until it expires, e.g. "2 years", "18 months", "1 year 6 months", "90 days", "12 hours".
    #[arg(long = "expires", value_name = "SPAN", conflicts_with = "not_after")]
    pub expires: Option<String>,
    /// certstrap's hidden --years N, the same as --expires "N years".
    #[arg(long = "years", hide = true, conflicts_with_all = ["expires", "not_after"])]
    pub years: Option<u32>,
    /// Start of validity, RFC 3339 (default: now less 10 minutes).
    #[arg(long = "not-before", value_name = "TIME")]
    pub not_before: Option<String>,
    /// End of validity, RFC 3339; may be in the past, for expired test certificates.
    #[arg(long = "not-after", value_name = "TIME")]
    pub not_after: Option<String>,
}

// `init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The CA's common name; the files are named after it.
    #[arg(long = "common-name", visible_alias = "cn", value_name = "NAME", required = true)]
    pub common_name: String,
    #[command(flatten)]
    pub subject: SubjectArgs,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub validity: ValidityArgs,
    /// Also print the certificate to stdout.
    #[arg(long = "stdout")]
    pub stdout: bool,
    /// Restrict the CA to these names (RFC 5280 name constraints): DNS names (each covers itself and
    /// every name below it) and IP ranges (10.0.0.0/8, fc00::/7). DNS names alone also get the loopback
    /// ranges, so IP addresses are never left unconstrained. Comma list, repeatable.
    #[arg(long = "permit-domain", value_delimiter = ',', value_name = "NAME|CIDR")]
    pub permit_domain: Vec<String>,
    /// Maximum number of intermediates below this CA (default: no limit).
    #[arg(long = "path-length", value_name = "N", conflicts_with = "exclude_path_length")]
    pub path_length: Option<u8>,
    /// Leave pathLenConstraint out (the default; kept for certstrap scripts).
    #[arg(long = "exclude-path-length")]
    pub exclude_path_length: bool,
    /// A certificate template (TOML) to use instead of the built-in profile; see `certforge templates show`.
    #[arg(long = "template", value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// A CA safe to trust on this machine: a root and "NAME Issuing", both name-constrained to the
    /// preset (loopback: localhost, *.test, 127.0.0.0/8, ::1; lan adds private networks) plus any
    /// --permit-domain; the root's key is never written, so the intermediate signs everything.
    #[arg(
        long = "local",
        value_enum,
        value_name = "PRESET",
        num_args = 0..=1,
        default_missing_value = "loopback",
        require_equals = true,
        conflicts_with_all = ["template", "existing_key", "path_length", "exclude_path_length"]
    )]
    pub local: Option<crate::pki::constraints::LocalPreset>,
    /// Where relying parties fetch this CA's CRL, e.g. http://ca.internal/crl/NAME.crl (`serve --crl-listen` publishes it): every certificate the CA issues then carries it as a CRL Distribution Point (RFC 5280 §4.2.1.13).
    #[arg(long = "crl-url", value_name = "URL", conflicts_with = "local")]
    pub crl_url: Option<String>,
}

// `request-cert` arguments.
#[derive(Debug, Args)]
pub struct RequestCertArgs {
    /// Common name; the files are named after it.
    #[arg(long = "common-name", visible_alias = "cn", value_name = "NAME")]
    pub common_name: Option<String>,
    /// DNS names for the SAN (comma list, repeatable). An IP here becomes an IP SAN.
    #[arg(long = "domain", value_delimiter = ',', value_name = "NAMES")]
    pub domain: Vec<String>,
    /// IP addresses for the SAN (comma list, repeatable).
    #[arg(long = "ip", value_delimiter = ',', value_name = "IPS")]
    pub ip: Vec<String>,
    /// URIs for the SAN, e.g. spiffe://example.org/svc (comma list, repeatable).
    #[arg(long = "uri", value_delimiter = ',', value_name = "URIS")]
    pub uri: Vec<String>,
    /// Email addresses for the SAN (comma list, repeatable).
    #[arg(long = "email", value_delimiter = ',', value_name = "ADDRS")]
    pub email: Vec<String>,
    #[command(flatten)]
    pub subject: SubjectArgs,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub pass: PassArgs,
    /// Write the CSR to PATH instead of the depot (never overwriting).
    #[arg(long = "csr", value_name = "PATH")]
    pub csr: Option<PathBuf>,
    /// A certificate template (TOML) to use instead of the built-in profile; see `certforge templates show`.
    #[arg(long = "template", value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Also print the CSR to stdout.
    #[arg(long = "stdout")]
    pub stdout: bool,
}

// `sign` arguments.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The entry to sign: reads NAME.csr and writes NAME.crt in the depot.
    #[arg(value_name = "NAME", add = ArgValueCompleter::new(complete::request_names))]
    pub name: Option<String>,
    /// The CA to sign with (its name as given to init, or the depot file stem).
    #[arg(long = "CA", visible_alias = "ca", value_name = "CA", required = true, add = ArgValueCompleter::new(complete::ca_names))]
    pub ca: String,
    /// What the certificate is for: server (serverAuth), client (clientAuth) or peer (both).
    #[arg(long = "profile", value_enum, value_name = "PROFILE", conflicts_with = "intermediate")]
    pub profile: Option<LeafProfile>,
    /// Make an intermediate CA instead of a leaf.
    #[arg(long = "intermediate")]
    pub intermediate: bool,
    /// With --intermediate: maximum number of intermediates below it (default: none set).
    #[arg(long = "path-length", value_name = "N", requires = "intermediate", conflicts_with = "exclude_path_length")]
    pub path_length: Option<u8>,
    /// With --intermediate: leave pathLenConstraint out.
    #[arg(long = "exclude-path-length", requires = "intermediate")]
    pub exclude_path_length: bool,
    /// Add the codeSigning extended key usage (certstrap's --codesigning).
    #[arg(long = "codesigning", conflicts_with = "intermediate")]
    pub codesigning: bool,
    /// A certificate template (TOML) to use instead of --profile / --intermediate; see `certforge templates show`.
    #[arg(long = "template", value_name = "FILE", conflicts_with_all = ["profile", "intermediate", "codesigning"])]
    pub template: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub validity: ValidityArgs,
    /// Read the CSR from PATH instead of the depot.
    #[arg(long = "csr", value_name = "PATH")]
    pub csr: Option<PathBuf>,
    /// Write the certificate to PATH instead of the depot (never overwriting).
    #[arg(long = "cert", value_name = "PATH")]
    pub cert: Option<PathBuf>,
    /// Also print the certificate to stdout.
    #[arg(long = "stdout")]
    pub stdout: bool,
}

// `revoke` arguments.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The certificate to revoke (the depot name it was signed under).
    #[arg(long = "CN", visible_alias = "cn", value_name = "NAME", required = true, add = ArgValueCompleter::new(complete::cert_names))]
    pub cn: String,
    /// The CA that issued it.
    #[arg(long = "CA", visible_alias = "ca", value_name = "CA", required = true, add = ArgValueCompleter::new(complete::ca_names))]
    pub ca: String,
    /// Why it is revoked (RFC 5280 §5.3.1).
    #[arg(long = "reason", value_enum, value_name = "REASON")]
    pub reason: Option<Reason>,
    #[command(flatten)]
    pub pass: PassArgs,
}

/// certstrap runs on Go's flag package, which also takes long flags with one
/// dash (`-cn`, `-depot-path`). Scripts written that way keep working: an
/// argument of one dash and a known long name gets its second dash.
pub fn normalize_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    // Only a single-dash word longer than a short flag needs the flag list;
    // most command lines have none, and building every subcommand's flags
    // costs a start-up that `--version` should not pay.
    let single_dash_long =
        |a: &std::ffi::OsString| a.to_str().is_some_and(|s| s.len() > 2 && s.starts_with('-') && !s.starts_with("--"));
    if !args.iter().skip(1).any(single_dash_long) {
        return args;
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut longs: Vec<String> = Vec::new();
    let mut collect = |c: &clap::Command| {
        for a in c.get_arguments() {
            longs.extend(a.get_long().map(str::to_string));
            longs.extend(a.get_all_aliases().unwrap_or_default().into_iter().map(str::to_string));
        }
    };
    collect(&cmd);
    for sub in cmd.get_subcommands() {
        collect(sub);
    }
    longs.push("help".into());
    longs.push("version".into());
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let Some(s) = a.to_str() else { return a };
            if i == 0 || s.starts_with("--") || !s.starts_with('-') || s.len() <= 2 {
                return a;
            }
            let name = s[1..].split('=').next().unwrap_or("");
            if longs.iter().any(|l| l == name) {
                format!("-{s}").into()
            } else {
                a
            }
        })
        .collect()
}

// `inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Files, or depot entry names (their .crt, else .csr, .crl or .key).
    #[arg(value_name = "FILE|NAME", required = true, add = ArgValueCompleter::new(complete::entry_names_or_files))]
    pub targets: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long = "json")]
    pub json: bool,
    #[command(flatten)]
    pub pass: PassArgs,
}

// `verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate: a file or a depot entry name.
    #[arg(value_name = "CERT|NAME", add = ArgValueCompleter::new(complete::cert_names_or_files))]
    pub cert: String,
    /// A trusted CA: a file (bundles too) or a depot CA name. Repeatable. Default: the depot's CAs.
    #[arg(long = "ca", visible_alias = "CA", value_name = "FILE|NAME", add = ArgValueCompleter::new(complete::ca_names_or_files))]
    pub ca: Vec<String>,
    /// Intermediate certificates that complete the chain (a PEM bundle). Repeatable.
    #[arg(long = "chain", value_name = "FILE")]
    pub chain: Vec<String>,
    /// A DNS name or IP address the client will dial. Repeatable.
    #[arg(long = "host", value_name = "NAME")]
    pub host: Vec<String>,
    /// What it must be good for.
    #[arg(long = "purpose", value_enum, value_name = "PURPOSE")]
    pub purpose: Option<crate::pki::verify::Purpose>,
    /// A CRL file, or `auto` for the depot's CRLs. Repeatable.
    #[arg(long = "crl", value_name = "FILE|auto")]
    pub crl: Vec<String>,
    /// The private key that should belong to the certificate: a key file, a depot name (its .key or
    /// .key.uri), or a pkcs11: URI, whose public key is read from the token.
    #[arg(long = "key", value_name = "FILE|URI")]
    pub key: Option<String>,
    /// Verify as of this RFC 3339 time instead of now.
    #[arg(long = "at", value_name = "TIME")]
    pub at: Option<String>,
    /// Print JSON instead of text.
    #[arg(long = "json")]
    pub json: bool,
    #[command(flatten)]
    pub pass: PassArgs,
}

// `lint` arguments.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Certificate files or depot entry names.
    #[arg(value_name = "FILE|NAME", required_unless_present = "all", conflicts_with = "all", add = ArgValueCompleter::new(complete::cert_names_or_files))]
    pub targets: Vec<String>,
    /// Lint every certificate in the depot.
    #[arg(long = "all")]
    pub all: bool,
    /// Exit 1 on warnings too.
    #[arg(long = "strict")]
    pub strict: bool,
    /// Print JSON instead of text.
    #[arg(long = "json")]
    pub json: bool,
}

// `probe` arguments.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The server, as HOST:PORT ([::1]:PORT for IPv6).
    #[arg(value_name = "HOST:PORT")]
    pub address: String,
    /// A trusted CA: a file or a depot CA name. Repeatable. Default: the depot's CAs.
    #[arg(long = "ca", visible_alias = "CA", value_name = "FILE|NAME", add = ArgValueCompleter::new(complete::ca_names_or_files))]
    pub ca: Vec<String>,
    /// The name to send as SNI and to check the certificate against (default: HOST).
    #[arg(long = "servername", value_name = "NAME")]
    pub servername: Option<String>,
    /// A client certificate to present, for mutual TLS (file or depot name).
    #[arg(long = "cert", value_name = "FILE|NAME", requires = "key")]
    pub cert: Option<String>,
    /// The client certificate's key.
    #[arg(long = "key", value_name = "FILE|NAME", requires = "cert")]
    pub key: Option<String>,
    /// Protocols to offer by ALPN, most preferred first, comma-separated, or `none` [default: h2,http/1.1, as curl]. gRPC servers require h2.
    #[arg(long = "alpn", value_name = "LIST")]
    pub alpn: Option<String>,
    /// Seconds to wait for the connection and the handshake.
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 10)]
    pub timeout: u64,
    /// Print JSON instead of text.
    #[arg(long = "json")]
    pub json: bool,
    #[command(flatten)]
    pub pass: PassArgs,
}

// `list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Draw the hierarchy: root, intermediates, leaves.
    #[arg(long = "tree")]
    pub tree: bool,
    /// Print JSON instead of a table (the same as --format json).
    #[arg(long = "json", conflicts_with = "format")]
    pub json: bool,
    /// What to print: a table, JSON, or Prometheus gauges of every certificate's expiry.
    #[arg(long = "format", value_enum, value_name = "FORMAT")]
    pub format: Option<ListFormat>,
    /// With --format prometheus: write to FILE (replaced atomically, mode 0644) instead of stdout.
    #[arg(long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only what expires within this span (expired included), e.g. 30d; exit 1 when anything does.
    #[arg(long = "expiring-within", value_name = "SPAN")]
    pub expiring_within: Option<String>,
    #[command(flatten)]
    pub token: Pkcs11Args,
}

/// `list --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// The table (or with --tree the hierarchy), for a person.
    Table,
    /// JSON, as --json prints it.
    Json,
    /// The Prometheus text format that node_exporter's textfile collector reads.
    Prometheus,
}

// `renew` arguments.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// The certificate to renew (depot name).
    #[arg(value_name = "NAME", required_unless_present = "all", conflicts_with = "all", add = ArgValueCompleter::new(complete::cert_names))]
    pub name: Option<String>,
    /// Renew every certificate due within --expiring-within: CAs first (keeping their keys), then leaves.
    #[arg(long = "all", requires = "expiring_within")]
    pub all: bool,
    /// Renew what expires within this span, e.g. 30d (required with --all). The renewed certificate
    /// never expires within it again: when its old lifetime would, it gets its profile's default.
    /// Default for a single NAME: 30d.
    #[arg(long = "expiring-within", value_name = "SPAN")]
    pub expiring_within: Option<String>,
    /// Make a new key too (leaves only; a CA keeps its key so what it signed keeps verifying).
    #[arg(long = "rekey")]
    pub rekey: bool,
    #[command(flatten)]
    pub pass: PassArgs,
    #[command(flatten)]
    pub validity: ValidityArgs,
}

/// `export --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// PKCS#12 with key, certificate and chain (for Java, .NET).
    #[value(name = "pkcs12", alias = "p12")]
    Pkcs12,
    /// PKCS#12 holding CA certificates only: a Java truststore.
    Truststore,
    /// PEM certificate + chain (with --with-key, the key too).
    Bundle,
    /// Shell `export` lines with the PEMs (TLS_CERT, TLS_KEY, TLS_ROOT_CA).
    Env,
    /// A Kubernetes kubernetes.io/tls Secret (YAML).
    K8s,
}

// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The depot entry to export.
    #[arg(value_name = "NAME", add = ArgValueCompleter::new(complete::cert_names))]
    pub name: String,
    /// What to write.
    #[arg(long = "format", value_enum, value_name = "FORMAT")]
    pub format: ExportFormat,
    /// Write to FILE (never overwriting) instead of stdout.
    #[arg(long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Allow a private key to be printed to a terminal.
    #[arg(long = "force")]
    pub force: bool,
    /// PKCS#12 password.
    #[arg(
        long = "password",
        env = "CERTFORGE_P12_PASSWORD",
        hide_env_values = true,
        value_name = "PASS",
        conflicts_with = "password_file"
    )]
    pub password: Option<String>,
    /// Read the PKCS#12 password from the first line of FILE.
    #[arg(long = "password-file", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// PKCS#12 with 3DES and SHA-1, for old Java (< 8u301) and macOS.
    #[arg(long = "legacy")]
    pub legacy: bool,
    /// The PKCS#12 entry name (default: the certificate's depot name).
    #[arg(long = "alias", value_name = "ALIAS")]
    pub alias: Option<String>,
    /// With --format bundle: append the private key.
    #[arg(long = "with-key")]
    pub with_key: bool,
    /// With --format env: the variable prefix (default TLS: TLS_CERT, TLS_KEY, TLS_ROOT_CA).
    #[arg(long = "prefix", value_name = "PREFIX", default_value = "TLS")]
    pub prefix: String,
    /// With --format k8s: the Secret's name (default: the entry name, DNS-safe).
    #[arg(long = "name", value_name = "NAME")]
    pub secret_name: Option<String>,
    /// With --format k8s: the Secret's namespace.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    /// Passphrase of an encrypted private key in the depot.
    #[command(flatten)]
    pub pass: PassArgs,
}

// Options shared by `apply` and `quickstart`.
#[derive(Debug, Args, Clone)]
pub struct PlanRunArgs {
    /// Show what would be made, kept or re-issued, and write nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Also re-issue what expires within this span, e.g. 30d.
    #[arg(long = "renew-within", value_name = "SPAN")]
    pub renew_within: Option<String>,
    /// Derive keys and serials from TEXT: byte-identical output. TEST FIXTURES ONLY: anyone who knows TEXT has the keys.
    #[arg(long = "deterministic-seed", value_name = "TEXT", requires = "not_before")]
    pub deterministic_seed: Option<String>,
    /// Anchor every certificate's validity here (RFC 3339); required with --deterministic-seed.
    #[arg(long = "not-before", value_name = "TIME")]
    pub not_before: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long = "json")]
    pub json: bool,
    /// No progress bar and no per-certificate lines.
    #[arg(long = "quiet", short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub pass: PassArgs,
}

// `apply` arguments.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file (TOML).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    #[command(flatten)]
    pub run: PlanRunArgs,
}

// `quickstart` arguments.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Another DNS name for the server certificate (it always has localhost). Repeatable.
    #[arg(long = "host", value_name = "NAME")]
    pub host: Vec<String>,
    /// Another IP address for the server certificate (it always has 127.0.0.1 and ::1). Repeatable.
    #[arg(long = "ip", value_name = "IP")]
    pub ip: Vec<String>,
    /// Make ca.crt a CA safe to trust on this machine, as `init --local` does: a name-constrained
    /// root whose key is destroyed, and "ca Issuing", which signs server and client.
    #[arg(
        long = "local",
        value_enum,
        value_name = "PRESET",
        num_args = 0..=1,
        default_missing_value = "loopback",
        require_equals = true
    )]
    pub local: Option<crate::pki::constraints::LocalPreset>,
    /// Print shell `export` lines (TLS_SERVER_CERT, TLS_SERVER_KEY, TLS_CLIENT_CERT, TLS_CLIENT_KEY, TLS_ROOT_CA).
    /// They hold the private keys, so stdout must be a file or a pipe, e.g. eval "$(certforge quickstart --print-env)".
    #[arg(long = "print-env")]
    pub print_env: bool,
    /// Allow --print-env to print the private keys to a terminal.
    #[arg(long = "force", requires = "print_env")]
    pub force: bool,
    #[command(flatten)]
    pub run: PlanRunArgs,
}

// Passphrases typed on the command line are wiped when the arguments go
// away, so they do not linger in memory: the parsed copies live in these Strings.
impl Drop for PassArgs {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(p) = &mut self.passphrase {
            p.zeroize();
        }
    }
}

impl Drop for ExportArgs {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(p) = &mut self.password {
            p.zeroize();
        }
    }
}
