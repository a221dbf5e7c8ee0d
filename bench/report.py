"""Turns bench/results/*.json (hyperfine) into BENCHMARKS.md and an SVG bar
chart of the speed-up ratios. Standard library only.

usage: python3 bench/report.py RESULTS_DIR OUT.md OUT.svg
       python3 bench/report.py --record   (run.sh: what ran, as JSON)
"""
import json
import os
import platform
import subprocess
import sys
import time

res_dir, out_md, out_svg = (sys.argv[1:4] + [None, None, None])[:3]


def load(name):
    path = os.path.join(res_dir, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["results"]


def ms(seconds):
    return seconds * 1000.0


def fmt(seconds):
    """Milliseconds, with more digits where they matter (start-up)."""
    v = ms(seconds)
    return "%.2f ms" % v if v < 10 else "%.1f ms" % v


def version(cmd):
    """The first line a tool prints for its version, or why there is none."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return "not installed"
    except Exception as e:  # a hang or a crash is not "not installed"
        return "did not answer (%s)" % e
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "no version printed (exit %d)" % out.returncode


def certforge_binary():
    """The certforge that bench/run.sh measured: $CERTFORGE, else this
    checkout's release build, else whatever is on PATH."""
    if os.environ.get("CERTFORGE"):
        return os.environ["CERTFORGE"]
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "certforge")
    return here if os.access(here, os.X_OK) else "certforge"


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return "%.0f GiB" % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return "unknown"


def measured_now():
    """What describes a run: when, on what machine, with which tools."""
    tools = [("certforge", [certforge_binary(), "--version"]), ("openssl", ["openssl", "version"]), ("mkcert", ["mkcert", "-version"]), ("cfssl", ["cfssl", "version"]), ("certstrap", ["certstrap", "--version"]), ("hyperfine", ["hyperfine", "--version"])]
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": "%s, %d cores, %s RAM, %s" % (cpu(), os.cpu_count() or 0, mem(), platform.platform()),
        "versions": [[name, version(cmd)] for name, cmd in tools],
    }


if len(sys.argv) > 1 and sys.argv[1] == "--record":
    # run.sh records this beside the results while it measures, so a report
    # made later still names the binaries and the machine that ran.
    print(json.dumps(measured_now(), indent=1))
    sys.exit(0)

run_path = os.path.join(res_dir, "run.json")
if os.path.exists(run_path):
    with open(run_path) as f:
        run = json.load(f)
else:
    run = measured_now()


lines = []
w = lines.append
w("# certforge benchmarks")
w("")
w("Made by `bash bench/run.sh` on %s. Each table is one hyperfine run, so its ratios compare tools measured in the same minutes on the same machine; absolute times on a shared machine are noisy, the ratios much less so." % run["when"])
w("")
w("Machine: %s." % run["machine"])
w("")
w("| tool | version |")
w("|---|---|")
for name, v in run["versions"]:
    w("| %s | %s |" % (name, v))
w("")

bars = []  # (label, ratio, target)
targets = []  # (workload, target, measured, met)


def table(title, name, base="certforge", note=None):
    results = load(name)
    if results is None:
        w("## %s\n\nnot measured\n" % title)
        return {}
    w("## %s" % title)
    w("")
    if note:
        w(note)
        w("")
    w("| command | median | mean ± σ | user | system | runs | vs certforge |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    medians = {r["command"]: r["median"] for r in results}
    base_m = next((m for c, m in medians.items() if c.startswith(base)), None)
    for r in results:
        ratio = ""
        if base_m and not r["command"].startswith(base):
            x = r["median"] / base_m
            ratio = "%.1f× slower" % x if x >= 1 else "%.2f× faster" % (1 / x)
            if not r["command"].startswith(("harness", "the disk alone", "C ")):
                bars.append(("%s: %s" % (name.upper().replace("_", " "), r["command"]), r["median"] / base_m))
        w("| `%s` | %s | %s ± %s | %s | %s | %d | %s |" % (r["command"], fmt(r["median"]), fmt(r["mean"]), fmt(r.get("stddev") or 0), fmt(r.get("user") or 0), fmt(r.get("system") or 0), len(r["times"]), ratio))
    w("")
    w("<details><summary>commands</summary>\n")
    for r in results:
        w("- `%s`" % r["command"])
    w("\n</details>\n")
    return medians


def ratio(medians, peer_prefix, net=False):
    """How many times faster certforge is than the peer; with `net`, after
    taking off the harness both pay (bash reading workloads.sh), measured
    in the same run as "harness alone"."""
    cf = next((m for c, m in medians.items() if c.startswith("certforge")), None)
    peer = next((m for c, m in medians.items() if c.startswith(peer_prefix)), None)
    h = next((m for c, m in medians.items() if c.startswith("harness")), 0.0) if net else 0.0
    if cf and peer and cf > h:
        return (peer - h) / (cf - h)
    return None


def both(medians, peer_prefix):
    """"8.1× (5.2× with the harness)", and the net ratio."""
    net, gross = ratio(medians, peer_prefix, net=True), ratio(medians, peer_prefix)
    if net is None:
        return None, None
    return net, "%.1f× (%.1f× counting the bash harness both pay)" % (net, gross)


m1 = table("W1: the gRPC guide's openssl set, ECDSA P-256 (CA + server with 4 SANs + client)", "w1")
m2 = table("W2: the blog workflow, five processes", "w2")
m3 = table("W3: the gRPC guide's openssl set with RSA-4096 keys", "w3")
m4 = table("W4: 1,000 ECDSA leaves from one plan, on disk and on tmpfs", "w4")
m4o = table("W4 against openssl: the same plan, and a shell loop of openssl calls", "w4_openssl")
m4s = table("W4 scaling: certforge apply with N leaves", "w4_scaling", base="none")
m5l = table("W5: list over a depot of 10,000 certificates", "w5_list", base="none")
m5r = table("W5: revoke into a CRL that already lists 100,000 entries", "w5_revoke", base="none")
ms_ = table("Start-up: certforge --version against a C program that does nothing", "startup")
detail = []
try:
    detail = [line.rstrip("\n").split("\t") for line in open(os.path.join(res_dir, "startup_detail.tsv")) if "\t" in line]
except OSError:
    pass
for row in detail:
    what, who, value = (row + ["", ""])[:3]
    label = {"faults": "page faults (perf stat, mean of 50)", "relocations": "relative relocations by the dynamic loader", "size": "binary size, bytes"}.get(what, what)
    w("- %s, `%s`: %s" % (label, who.replace(res_dir, "").split("/")[-1] if what == "faults" else who, value))
if detail:
    w("")
rss = None
try:
    rss = int(open(os.path.join(res_dir, "startup_rss_kb")).read().strip())
except (OSError, ValueError):
    pass
if rss:
    w("Peak RSS of `certforge --version`: %.1f MB (GNU time, %%M).\n" % (rss / 1024))


def target(work, text, value, ok):
    targets.append((work, text, value, ok))


def divan_medians(path):
    """{bench name: median seconds} from `cargo bench --bench library` (divan's table)."""
    units = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    out = {}
    try:
        text = open(path).read()
    except OSError:
        return out
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) < 3:
            continue
        # "├─ ca_issue_server   144 µs": the name, then the fastest time.
        toks = cells[0].split()
        name = toks[-3] if len(toks) >= 3 else ""
        median = cells[2].split()
        if name and len(median) == 2 and median[1] in units:
            try:
                out[name] = float(median[0]) * units[median[1]]
            except ValueError:
                pass
    return out


lib = divan_medians(os.path.join(res_dir, "library.txt"))
w("## Library: `certforge::Ca` in a Rust test suite, one core")
w("")
if lib:
    w("`cargo bench --bench library` (divan, one thread). The floor is the work no certificate can skip, in aws-lc-rs alone: a P-256 key for the leaf, one ECDSA signature and one verification (the self-check's).")
    w("")
    w("| bench | median | certificates per second per core |")
    w("|---|---:|---:|")
    for name, label in [("ca_new", "`Ca::new` (key, self-signed CA, self-check)"), ("ca_issue_server", "`Ca::issue(Leaf::server(..))`"), ("floor_p256_keygen_sign_verify", "floor: P-256 keygen + sign + verify (aws-lc-rs)")]:
        if name in lib:
            w("| %s | %.1f µs | %.0f |" % (label, lib[name] * 1e6, 1 / lib[name]))
    w("")
else:
    w("not measured\n")


r = ratio(m1, "openssl")
target("W1", "≥ 10× faster than the openssl script with P-256", "%.1f×" % r if r else "n/a", r is not None and r >= 10)
r, text = both(m1, "mkcert")
target("W1", "≥ 8× faster than mkcert -ecdsa (fresh CAROOT)", text or "mkcert not installed", None if r is None else r >= 8)
r = ratio(m1, "cfssl")
target("W1", "faster than cfssl", "%.1f×" % r if r else "cfssl not installed", None if r is None else r > 1)
r, text = both(m2, "certstrap")
target("W2", "≥ 3× faster than certstrap --curve P-256", text or "certstrap not installed", None if r is None else r >= 3)
r = ratio(m3, "openssl")
target("W3", "≥ 1.5× faster than the openssl script (RSA-4096)", "%.1f×" % r if r else "n/a", r is not None and r >= 1.5)
cf4 = m4.get("certforge (disk)")
tmp4 = m4.get("certforge on tmpfs")
target("W4", "on disk ≤ 1.5× the same plan on tmpfs", "%.2f× (%.0f ms vs %.0f ms)" % (cf4 / tmp4, ms(cf4), ms(tmp4)) if cf4 and tmp4 else "n/a", bool(cf4 and tmp4 and cf4 <= 1.5 * tmp4))
target("W4", "under 1 s wall on 2 cores", "%.0f ms" % ms(cf4) if cf4 else "n/a", cf4 is not None and cf4 < 1.0)
r = ratio(m4o, "openssl")
target("W4", "≥ 50× faster than a shell loop of openssl calls", "%.0f×" % r if r else "n/a", r is not None and r >= 50)
if m4s:
    per = {}
    for c, m in m4s.items():
        n = int(c.split("N=")[1])
        per[n] = m / n
    lin = per.get(10000, 0) <= 1.25 * per.get(1000, 1e9)
    target("W4", "linear or better from N=10 to 10,000", ", ".join("N=%d: %.2f ms/cert" % (n, ms(p)) for n, p in sorted(per.items())), lin)
for label, mm in [("W5 list", m5l), ("W5 revoke", m5r)]:
    v = next(iter(mm.values()), None)
    target(label, "under 1 s", "%.0f ms" % ms(v) if v else "n/a", v is not None and v < 1.0)
v = ms_.get("certforge --version")
c = next((m for k, m in ms_.items() if k.startswith("C ")), None)
target("start-up", "≤ 1.3× a C program that does nothing", "%.2f× (%.2f ms vs %.2f ms)" % (v / c, ms(v), ms(c)) if v and c else "n/a", bool(v and c and v <= 1.3 * c))
target("start-up", "under 5 ms", "%.2f ms" % ms(v) if v else "n/a", v is not None and v < 0.005)
li, lf = lib.get("ca_issue_server"), lib.get("floor_p256_keygen_sign_verify")
target("library", "Ca::issue within 2× the crypto floor", "%.2f× (%.0f vs %.0f certs/s/core)" % (li / lf, 1 / li, 1 / lf) if li and lf else "n/a", bool(li and lf and li <= 2 * lf))
target("start-up", "peak RSS under 20 MB", "%.1f MB" % (rss / 1024) if rss else "n/a", rss is not None and rss < 20 * 1024)

body = lines
lines = []
w = lines.append
w("## Targets")
w("")
w("| workload | target | measured | |")
w("|---|---|---|---|")
for work, text, value, ok in targets:
    mark = "met" if ok else ("no peer" if ok is None else "**missed**")
    w("| %s | %s | %s | %s |" % (work, text, value, mark))
w("")
w("![speed-up of certforge over each peer](bench/ratios.svg)")
w("")
skipped = [s for s in open(os.path.join(res_dir, "skipped")).read().splitlines() if s.strip()] if os.path.exists(os.path.join(res_dir, "skipped")) else []
if skipped:
    w("Skipped peers: " + "; ".join(skipped) + ".")
    w("")
notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes.md")
tail = []
if os.path.exists(notes):
    tail = ["", open(notes).read().rstrip(), ""]
anchor = next(i for i, l in enumerate(body) if l.startswith("## W1"))
final = body[:anchor] + lines + body[anchor:] + tail
with open(out_md, "w") as f:
    f.write("\n".join(final) + "\n")

# The chart: one bar per (workload, peer), length = how many times faster
# certforge is, on a log scale; the dashed line marks 1× (as fast).
import math

W_, bar_h, left = 760, 26, 330
height = 40 + bar_h * len(bars) + 30
maxr = max([b[1] for b in bars] + [10])
scale = (W_ - left - 80) / math.log10(maxr * 1.2)
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W_, height),
       '<text x="10" y="20" font-size="14" font-weight="bold">How many times faster certforge is than each peer (log scale)</text>']
for i, (label, r) in enumerate(bars):
    y = 35 + i * bar_h
    width = max(1, scale * math.log10(max(r, 1.0001)))
    colour = "#2e7d32" if r >= 1 else "#c62828"
    svg.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + 16, label.replace("&", "&amp;").replace("<", "&lt;")))
    svg.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y + 4, width, bar_h - 8, colour))
    svg.append('<text x="%.1f" y="%d">%.1f×</text>' % (left + width + 6, y + 16, r))
svg.append('<line x1="%d" y1="30" x2="%d" y2="%d" stroke="#555" stroke-dasharray="4"/>' % (left, left, height - 20))
svg.append("</svg>")
with open(out_svg, "w") as f:
    f.write("\n".join(svg) + "\n")
