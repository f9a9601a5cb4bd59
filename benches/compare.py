#!/usr/bin/env python3
"""Parsing and summaries for benches/compare.sh (not run on its own).

  parse MODE REP TOOL BASE RC COUNTED SECS [TICKS0 TICKS1]
                                             one raw TSV line from BASE.{out,err,time,json}
  probe BASE RC                              why mcpt could not run (empty when it could)
  summary RAW MODE PEER                      medians per tool and the ratios mcpt/peer
  open RAW REPORT RATE SECS                  acceptance 3 from nginx's count and mcpt's report
  memory RAW WORK                            acceptance 5: peak RSS at many connections
  soak RAW                                   acceptance 5: RSS of 600 s over RSS of 60 s
  wakes STRACE COUNTED                       eventfd writes per counted request, by thread
"""
import json
import math
import re
import statistics
import sys

NAN = float("nan")


def read(path):
    try:
        return open(path, errors="replace").read()
    except OSError:
        return ""


def unit_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[m.group(2)]


def tool_figures(tool, base):
    """(tool's own rps, p50 ms, p99 ms, errors) from a tool's output."""
    out = read(base + ".out") + read(base + ".err")
    if tool == "wrk":
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50 = unit_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
        p99 = unit_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        n2 = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        err = (sum(map(int, m.groups())) if m else 0) + (int(n2.group(1)) if n2 else 0)
        return rps, p50, p99, err
    if tool == "oha":
        j = json.loads(read(base + ".out"))
        lat = j.get("latencyPercentiles", {})
        bad = sum(v for k, v in j.get("statusCodeDistribution", {}).items() if not k.startswith("2"))
        # Requests in flight at the -z deadline are not errors.
        bad += sum(v for k, v in j.get("errorDistribution", {}).items()
                   if k != "aborted due to deadline")
        return (j["summary"]["requestsPerSec"], (lat.get("p50") or NAN) * 1e3,
                (lat.get("p99") or NAN) * 1e3, bad)
    if tool == "h2load":
        rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
        m = re.search(r"requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, "
                      r"(\d+) failed, (\d+) errored", out)
        m2 = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        err = (int(m.group(1)) + int(m.group(2)) if m else 0) + (sum(map(int, m2.groups())) if m2 else 0)
        return rps, NAN, NAN, err   # h2load prints no percentiles
    t = json.loads(read(base + ".json"))["tasks"][0]
    return t["achieved_rps"], t["latency_ms"]["p50"], t["latency_ms"]["p99"], t["errors"]["total"]


def steal_pct(before, after):
    """The host's steal time between two `total steal` tick readings, in % of all CPU time."""
    (t0, s0), (t1, s1) = (map(int, x.split()) for x in (before, after))
    return (s1 - s0) / (t1 - t0) * 100 if t1 > t0 else NAN


def parse(mode, rep, tool, base, rc, counted, secs, cpu_before="0 0", cpu_after="0 0"):
    tim = read(base + ".time")
    rps = p50 = p99 = NAN
    err = ""
    try:
        rps, p50, p99, err = tool_figures(tool, base)
    except Exception as e:  # a failed run still gets its line, with rc
        print(f"parse error {tool} ({base}): {e!r}", file=sys.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", tim))
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tim)
    rss = int(rss.group(1)) / 1024 if rss else NAN
    counted, secs = int(counted), float(secs)
    per_req = cpu / counted * 1e6 if counted > 0 else NAN
    print(f"{mode}\t{rep}\t{tool}\t{counted}\t{secs:g}\t{counted / secs:.1f}\t{rps:.1f}\t{p50:.3f}"
          f"\t{p99:.3f}\t{cpu:.2f}\t{per_req:.2f}\t{rss:.1f}\t{err}\t{rc}"
          f"\t{steal_pct(cpu_before, cpu_after):.1f}")


def probe(base, rc):
    if rc != "0":
        lines = [x for x in read(base + ".err").splitlines() if x.strip()]
        return " / ".join(lines[-2:]) or f"exit status {rc}"
    try:
        t = json.loads(read(base + ".json"))["tasks"][0]
    except Exception as e:
        return f"no report: {e!r}"
    if t["total_requests"] == 0:
        return "no request finished"
    errs = {k: v for k, v in t["errors"].items() if k != "total" and v}
    return f"{t['errors']['total']} errors of {t['total_requests']}: {errs}" if errs else ""


def rows(raw, mode):
    lines = [x.rstrip("\n").split("\t") for x in open(raw)][1:]
    return [x for x in lines if x[0] == mode]


def med(values):
    v = [x for x in values if not math.isnan(x)]
    return statistics.median(v) if v else NAN


def summary(raw, mode, peer):
    rs = rows(raw, mode)
    cols = {"rps": 5, "tool_rps": 6, "p50": 7, "p99": 8, "us_req": 10, "rss": 11}
    print(f"===== {mode}: medians (rps = nginx's count / duration; us/req = generator user+sys"
          f" per counted request) =====")
    print(f"{'tool':7} {'n':>2} {'rps':>9} {'tool_rps':>9} {'p50_ms':>7} {'p99_ms':>7}"
          f" {'us/req':>7} {'rss_MiB':>8} {'errors':>6} {'bad':>3}")
    m = {}
    for tool in dict.fromkeys(x[2] for x in rs):
        r = [x for x in rs if x[2] == tool]
        m[tool] = {k: med([float(x[i]) for x in r]) for k, i in cols.items()}
        errs = sum(int(x[12]) for x in r if x[12].isdigit())
        bad = sum(1 for x in r if x[13] != "0")
        f = m[tool]
        print(f"{tool:7} {len(r):>2} {f['rps']:>9.0f} {f['tool_rps']:>9.0f} {f['p50']:>7.3f}"
              f" {f['p99']:>7.3f} {f['us_req']:>7.2f} {f['rss']:>8.1f} {errs:>6} {bad:>3}")
    print(steal_line(rs))
    ok = True
    for other in [p for p in m if p != "mcpt"]:
        a, b = m.get("mcpt"), m[other]
        if not a:
            break
        ratio = {k: a[k] / b[k] if b[k] else NAN for k in cols}
        print(f"mcpt/{other}: rps {ratio['rps']:.3f}  cpu/req {ratio['us_req']:.3f}"
              f"  p50 {ratio['p50']:.2f}  p99 {ratio['p99']:.2f}  rss {ratio['rss']:.2f}")
        if other == peer:
            fast = ratio["rps"] >= 1.0
            lean = ratio["us_req"] <= 1.0
            ok &= fast and lean
            print(f"  {'PASS' if fast else 'FAIL'}  throughput >= 1.0 x {peer} (acceptance 2)")
            print(f"  {'PASS' if lean else 'FAIL'}  CPU per request <= {peer}'s (acceptance 4)")
    return ok


STEAL_FLAG = 2.0


def steal_line(rs):
    """The host's steal time over runs `rs`: runs above STEAL_FLAG % measured the host."""
    steal = [float(x[14]) for x in rs if len(x) > 14 and not math.isnan(float(x[14]))]
    if not steal:
        return "host steal: not measured"
    high = sum(1 for v in steal if v > STEAL_FLAG)
    note = f"; {high} of {len(steal)} runs above {STEAL_FLAG:g}%: a contended host" if high else ""
    return f"host steal: median {med(steal):.1f}%, max {max(steal):.1f}% of CPU time{note}"


def open_check(raw, report, rate, secs):
    rate, secs = float(rate), int(secs)
    planned = rate * secs
    rs = {x[2]: x for x in rows(raw, "open")}
    print(f"===== open model: {rate:g} rps x {secs} s = {planned:.0f} planned =====")
    if "mcpt" not in rs:
        print("FAIL  no mcpt run")
        return False
    counted = int(rs["mcpt"][3])
    try:
        t = json.loads(read(report))["tasks"][0]
    except Exception as e:
        print(f"FAIL  no report ({e!r})")
        return False
    graded = [p for p in t["timeline"] if p["planned"] > 0]
    within = sum(1 for p in graded if abs(p["sent"] - p["planned"]) <= 0.05 * p["planned"])
    frac = within / len(graded) if graded else 0.0
    late = t["late_starts"] / planned
    p99 = t["latency_ms"]["p99"]
    checks = [
        (abs(counted - planned) <= 0.001 * planned,
         f"nginx counted {counted} ({(counted - planned) / planned * 100:+.3f}%; goal ±0.1%)"),
        (frac >= 0.95, f"seconds within ±5%: {within}/{len(graded)} (goal >= 95%)"),
        (late < 0.01, f"late starts {t['late_starts']} = {late * 100:.2f}% (goal < 1%)"),
        (p99 < 10, f"corrected p99 {p99:.3f} ms (goal < 10 ms); uncorrected"
                   f" {t['latency_uncorrected_ms']['p99']:.3f} ms"),
    ]
    for good, text in checks:
        print(f"  {'PASS' if good else 'FAIL'}  {text}")
    print(f"  mcpt: sent {t['sent_requests']}, not sent {t['not_sent']}, errors {t['errors']['total']},"
          f" us/req {rs['mcpt'][10]}")
    print(f"  {steal_line([rs['mcpt']])}")
    if "oha" in rs:
        o = rs["oha"]
        print(f"  oha -q: nginx counted {o[3]}, p99 {o[8]} ms (latency-corrected), us/req {o[10]};"
              f" mcpt/oha count {counted / max(int(o[3]), 1):.3f}")
    return all(good for good, _ in checks)


def memory(raw, work):
    ok = True
    print("===== memory: closed model, keep-alive connections (peak RSS, /usr/bin/time -v) =====")
    for mode in ("memory", "memory-tls"):
        rs = {x[2]: x for x in rows(raw, mode)}
        if "mcpt" not in rs:
            continue
        active = read(f"{work}/{mode}.mcpt.1.active").strip() or "?"
        m = float(rs["mcpt"][11])
        line = (f"{mode:10} mcpt {m:.1f} MiB ({active} connections active at nginx half-way,"
                f" {rs['mcpt'][12]} errors)")
        if "wrk" in rs:
            line += f"; wrk {float(rs['wrk'][11]):.1f} MiB; mcpt/wrk {m / float(rs['wrk'][11]):.2f}"
        print(line)
        if mode == "memory":
            good = m <= 100
            ok &= good
            print(f"  {'PASS' if good else 'FAIL'}  mcpt over http <= 100 MiB (acceptance 5)")
    return ok


def soak(raw):
    rs = {x[1]: x for x in rows(raw, "soak")}
    a, b = float(rs["1"][11]), float(rs["2"][11])
    good = b <= 1.2 * a
    print(f"===== soak: peak RSS 60 s {a:.1f} MiB, 600 s {b:.1f} MiB, ratio {b / a:.2f} =====")
    print(f"  {'PASS' if good else 'FAIL'}  600 s run within 1.2 x the 60 s run (acceptance 5)")
    return good


def wakes(trace, counted):
    counted = int(counted)
    by_thread = {}
    for line in open(trace, errors="replace"):
        if "<anon_inode:[eventfd]>" in line and " write(" in line:
            tid = line.split()[0]
            by_thread[tid] = by_thread.get(tid, 0) + 1
    total = sum(by_thread.values())
    print(f"===== wakes: {total} eventfd writes over {counted} requests (nginx) ="
          f" {total / max(counted, 1):.3f} per request =====")
    for tid, n in sorted(by_thread.items(), key=lambda x: -x[1]):
        print(f"  thread {tid}: {n} ({n / max(counted, 1):.3f} per request)")
    return counted > 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "parse":
        parse(*args)
        return 0
    if cmd == "probe":
        print(probe(*args))
        return 0
    table = {"summary": summary, "open": open_check, "memory": memory, "soak": soak, "wakes": wakes}
    ok = table[cmd](*args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
