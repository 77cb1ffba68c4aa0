#!/usr/bin/env python3
"""Turns the JSON lines of one `scripts/bench` run into BENCHMARKS.md and docs/bench.png.

    bench_report.py RESULTS.jsonl MACHINE.json PROFILE.md OUT.md OUT.png

Every figure is the median over the runs, shown with its spread (min–max) and, where the
issue names one, beside the baseline measured in the same run; ratios are the median of the
per-run ratios (each run's figure over that run's own baseline), so a noisy neighbour that
slows one run slows both sides of its ratio.
"""
import json
import statistics
import sys
from collections import defaultdict


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt):
    if not xs:
        return "—"
    return f"{fmt(min(xs))}–{fmt(max(xs))}" if len(xs) > 1 else fmt(xs[0])


def s(x):
    return f"{x:.2f} s"


def ms(x):
    return f"{x:.0f} ms"


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def yes(ok):
    return "✅ yes" if ok else "❌ no"


def load(path):
    rows = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                r = json.loads(line)
                rows[r["bench"]].append(r)
    return rows


def main():
    results, machine_path, profile_path, out_md, out_png = sys.argv[1:6]
    rows = load(results)
    machine = json.load(open(machine_path))
    summary = []  # (what, figure, spread, baseline, ratio, target, met)
    details = []

    # --- backlog ---------------------------------------------------------------------------
    by_size = defaultdict(list)
    for r in rows.get("backlog", []):
        by_size[r["mails"]].append(r)
    sizes = sorted(by_size)
    # Issue 16: the 10,000-mail backlog within 1.2x the bare client; the largest one linear
    # (<= 11x the 10,000-mail time) and within 40 MB; trialdesk's own CPU <= 0.5 ms per mail.
    ten_k = med([r["trialdesk_s"] for r in by_size[10000]]) if 10000 in by_size else None
    for n in sizes:
        b = by_size[n]
        td = [r["trialdesk_s"] for r in b]
        base = [r["baseline_s"] for r in b]
        ratios = [r["trialdesk_s"] / r["baseline_s"] for r in b]
        ratio = med(ratios)
        target = "≤ 1.2× bare client" if n == 10000 else "reported (target at 10,000)"
        summary.append((
            f"backlog throughput ({n:,} mails, {b[0]['replies']:,} replies)",
            f"{s(med(td))} ({n / med(td):.0f} mails/s)",
            spread(td, s),
            f"bare client {s(med(base))} (spread {spread(base, s)})",
            f"{ratio:.2f}×",
            target,
            yes(ratio <= 1.2) if n == 10000 else "—",
        ))
        if n > 10000 and ten_k:
            summary.append((
                f"backlog of {n:,}: time against the 10,000-mail backlog",
                s(med(td)), "—", f"10,000 mails {s(ten_k)}",
                f"{med(td) / ten_k:.1f}×", f"≤ {1.1 * n / 10000:.0f}× (linear)",
                yes(med(td) / ten_k <= 1.1 * n / 10000),
            ))
        cpu_ms = [1000 * r["trialdesk_cpu_s"] / n for r in b]
        summary.append((
            f"trialdesk's own CPU in the backlog ({n:,} mails)",
            f"{med(cpu_ms):.2f} ms/mail",
            spread(cpu_ms, lambda x: f"{x:.2f} ms"),
            "—", "—", "≤ 0.5 ms per mail", yes(med(cpu_ms) <= 0.5),
        ))
        peaks = [r["peak_rss_kb"] for r in b]
        summary.append((
            f"memory: peak RSS during the backlog ({n:,} mails)",
            mb(med(peaks)),
            spread(peaks, mb),
            "—", "—", "≤ 40 MB", yes(max(peaks) <= 40 * 1024),
        ))
        lines = ["| run | bare client | trialdesk | ratio | trialdesk CPU | peak RSS | idle RSS after |",
                 "|---|---|---|---|---|---|---|"]
        for r in b:
            lines.append(f"| {r['run'] + 1} | {s(r['baseline_s'])} | {s(r['trialdesk_s'])} | "
                         f"{r['trialdesk_s'] / r['baseline_s']:.2f}× | {s(r['trialdesk_cpu_s'])} | "
                         f"{mb(r['peak_rss_kb'])} | {mb(r['idle_rss_kb'])} |")
        details.append((f"Backlog throughput, {n:,} mails, per run", "\n".join(lines)))
        nb = [r for r in b if "naive_s" in r]
        if nb:
            naive = [r["naive_s"] for r in nb]
            summary.append((
                f"backlog: naive bot (imaplib + smtplib + sqlite3), {n:,} mails",
                f"{s(med(naive))}",
                spread(naive, s),
                f"bare client {s(med(base))}",
                f"{med([r['naive_s'] / r['baseline_s'] for r in nb]):.2f}×",
                "for comparison",
                "—",
            ))
            lines = ["| run | naive bot | trialdesk | naive CPU | trialdesk CPU | naive replies | "
                     "replies trialdesk would not send | requests left unanswered |",
                     "|---|---|---|---|---|---|---|---|"]
            for r in nb:
                lines.append(f"| {r['run'] + 1} | {s(r['naive_s'])} | {s(r['trialdesk_s'])} | "
                             f"{s(r['naive_cpu_s'])} | {s(r['trialdesk_cpu_s'])} | "
                             f"{r['naive_replies']:,} | {r['naive_wrong_replies']:,} | "
                             f"{r['naive_unanswered']:,} |")
            details.append((f"Backlog: the naive bot beside trialdesk, {n:,} mails, per run",
                            "\n".join(lines)))

    # --- memory: backlogs in a row ------------------------------------------------------------
    m = sorted(rows.get("memory", []), key=lambda r: r["backlog"])
    if m:
        idle = [r["idle_rss_kb"] for r in m]
        # "Flat": after the second backlog (the first fills the caches and the pools), idle
        # RSS grows by at most 5 % up to the last one.
        ref = idle[1] if len(idle) > 1 else idle[0]
        growth = idle[-1] - ref
        ok = growth <= 0.05 * ref
        summary.append((
            f"memory: idle RSS after {len(m)} backlogs in a row",
            " → ".join(mb(x) for x in idle),
            f"growth after the 2nd {growth / 1024:+.1f} MB ({100 * growth / ref:+.1f} %)",
            f"at start {mb(m[0]['start_rss_kb'])}", "—",
            "flat after the 2nd (≤ 5 %)", yes(ok),
        ))
        lines = ["| backlog | time | peak RSS during it | idle RSS after it |", "|---|---|---|---|"]
        for r in m:
            lines.append(f"| {r['backlog']} | {s(r['seconds'])} | {mb(r['peak_rss_kb'])} | "
                         f"{mb(r['idle_rss_kb'])} |")
        details.append(("Memory over backlogs in a row (one process)", "\n".join(lines)))

    # --- latency ------------------------------------------------------------------------------
    lat = rows.get("latency", [])
    if lat:
        p50 = [r["reply_p50_ms"] for r in lat]
        p99 = [r["reply_p99_ms"] for r in lat]
        f50 = [r["floor_idle_p50_ms"] for r in lat]
        over = [r["reply_p50_ms"] - r["floor_idle_p50_ms"] for r in lat]
        summary.append((
            f"arrival-to-reply latency p50 ({lat[0]['requests']} requests)",
            ms(med(p50)),
            spread(p50, ms),
            f"floor (SMTP 250 → IDLE EXISTS) p50 {ms(med(f50))}",
            f"floor + {med(over):.0f} ms",
            "≤ floor + 150 ms",
            yes(med(over) <= 150),
        ))
        summary.append((
            "arrival-to-reply latency p99",
            ms(med(p99)),
            spread(p99, ms),
            f"floor p99 {ms(med([r['floor_idle_p99_ms'] for r in lat]))}",
            "—", "≤ 1 s", yes(med(p99) <= 1000),
        ))
        lines = ["| run | reply p50 | reply p99 | reply max | floor IDLE p50 | floor IDLE p99 | "
                 "SMTP → Maildir p50 | p99 |", "|---|---|---|---|---|---|---|---|"]
        for r in lat:
            lines.append(
                f"| {r['run'] + 1} | {ms(r['reply_p50_ms'])} | {ms(r['reply_p99_ms'])} | "
                f"{ms(r['reply_max_ms'])} | {ms(r['floor_idle_p50_ms'])} | "
                f"{ms(r['floor_idle_p99_ms'])} | {r['floor_delivery_p50_ms']:.1f} ms | "
                f"{r['floor_delivery_p99_ms']:.1f} ms |")
        details.append(("Arrival-to-reply latency, per run", "\n".join(lines)))

    # --- pipeline CPU -------------------------------------------------------------------------
    pipe = rows.get("pipeline", [])
    if pipe:
        by = defaultdict(list)
        for r in pipe:
            by[r["size"]].append(r)
        lines = ["| mails | run | parse alone | full pipeline | ratio | mails/s per core |",
                 "|---|---|---|---|---|---|"]
        for size, rs in sorted(by.items(), key=lambda kv: int(kv[0].rstrip("KB"))):
            full = [r["full_us"] for r in rs]
            parse = [r["parse_us"] for r in rs]
            ratios = [r["full_us"] / r["parse_us"] for r in rs]
            rate = 1e6 / med(full)
            target = "≤ 3× parse alone" + ("; ≥ 20,000 mails/s" if size == "5KB" else "")
            ok = med(ratios) <= 3 and (size != "5KB" or rate >= 20000)
            summary.append((
                f"pipeline CPU, {size} requests",
                f"{med(full):.1f} µs/mail ({rate:,.0f} mails/s per core)",
                spread(full, lambda x: f"{x:.1f} µs"),
                f"mail-parser alone {med(parse):.1f} µs/mail",
                f"{med(ratios):.2f}×", target, yes(ok),
            ))
            for r in rs:
                lines.append(f"| {size} | {r['run'] + 1} | {r['parse_us']:.1f} µs | "
                             f"{r['full_us']:.1f} µs | {r['full_us'] / r['parse_us']:.2f}× | "
                             f"{1e6 / r['full_us']:,.0f} |")
        details.append(("Pipeline CPU (criterion, per mail, one core)", "\n".join(lines)))

    # --- reminder planning --------------------------------------------------------------------
    rem = rows.get("reminders", [])
    if rem:
        by = defaultdict(list)
        for r in rem:
            by[r["backend"]].append(r)
        lines = ["| backend | run | plan | count floor | ratio | reminders |", "|---|---|---|---|---|---|"]
        for backend, rs in sorted(by.items()):
            plan = [r["plan_s"] for r in rs]
            ratios = [r["plan_s"] / r["count_s"] for r in rs]
            summary.append((
                f"reminder planning, {rs[0]['trials']:,} trials, {backend}",
                s(med(plan)),
                spread(plan, s),
                f"indexed count(*) {med([r['count_s'] for r in rs]) * 1000:.1f} ms",
                f"{med(ratios):.1f}×",
                "≤ 2 s and ≤ 3× count",
                yes(med(plan) <= 2 and med(ratios) <= 3),
            ))
            for r in rs:
                lines.append(f"| {backend} | {r['run'] + 1} | {r['plan_s'] * 1000:.0f} ms | "
                             f"{r['count_s'] * 1000:.1f} ms | {r['plan_s'] / r['count_s']:.1f}× | "
                             f"{r['planned']:,} |")
        details.append(("Reminder planning, per run", "\n".join(lines)))

    # --- review pages -------------------------------------------------------------------------
    rev = rows.get("review", [])
    if rev:
        by = defaultdict(lambda: defaultdict(list))
        mails = rev[0]["mails"]
        for r in rev:
            by[r["backend"]][r["page"]].append(r["median_ms"])
        pages = list(dict.fromkeys(r["page"] for r in rev))
        backends = sorted(by)
        lines = ["| page | " + " | ".join(f"{b} (median of runs)" for b in backends) + " |",
                 "|---|" + "---|" * len(backends)]
        for p in pages:
            lines.append(f"| {p} | " + " | ".join(
                f"{med(by[b][p]):.1f} ms" if by[b][p] else "—" for b in backends) + " |")
        details.append((f"Review pages, server time with {mails:,} mails stored", "\n".join(lines)))
        for b in backends:
            worst_page = max(pages, key=lambda p: med(by[b][p]) if by[b][p] else 0)
            worst = med(by[b][worst_page])
            summary.append((
                f"review pages, {mails:,} mails, {b} (slowest page)",
                f"{worst:.1f} ms ({worst_page})",
                f"{len(pages)} pages",
                "—", "—", "≤ 100 ms", yes(worst <= 100),
            ))

    # --- write ----------------------------------------------------------------------------------
    out = []
    out.append("# Benchmarks\n")
    out.append(f"Measured by `scripts/bench{' --quick' if machine.get('quick') else ''}` "
               f"on {machine['date']} (commit `{machine['commit']}`), "
               f"{machine['runs']} runs each. Regenerate with `scripts/bench`; "
               "the numbers below are this machine's, not a promise.\n")
    out.append("Machine: " + "; ".join(f"{k}: {v}" for k, v in machine["facts"].items()) + ".\n")
    out.append("These machines are shared and noisy, so every figure is the **median over the runs** "
               "with its spread, beside a baseline measured in the same run; ratios are medians of "
               "per-run ratios. Missed targets are reported as measured, with the reason below.\n")
    out.append("![Benchmark overview](docs/bench.png)\n")
    out.append("## Summary\n")
    out.append("| what | figure (median) | spread | baseline (same run) | ratio | target | met? |")
    out.append("|---|---|---|---|---|---|---|")
    for row in summary:
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append(open(profile_path).read().strip() + "\n")
    out.append("## Details\n")
    for title, table in details:
        out.append(f"### {title}\n")
        out.append(table + "\n")
    with open(out_md, "w") as f:
        f.write("\n".join(out))
    plot(rows, out_png)


def plot(rows, out_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle("trialdesk benchmarks (median of runs; baseline in grey)")

    ax = axes[0][0]
    b = rows.get("backlog", [])
    # The plot shows the runs of the most-run size (the 10,000-mail backlog in a full run).
    if b:
        main_size = max({r["mails"] for r in b}, key=lambda n: sum(r["mails"] == n for r in b))
        b = [r for r in b if r["mails"] == main_size]
    if b:
        runs = [r["run"] + 1 for r in b]
        w = 0.38
        ax.bar([x - w / 2 for x in runs], [r["baseline_s"] for r in b], w, color="0.7", label="bare client")
        ax.bar([x + w / 2 for x in runs], [r["trialdesk_s"] for r in b], w, color="C0", label="trialdesk")
        ax.set_title(f"backlog: {b[0]['mails']:,} mails → {b[0]['replies']:,} replies")
        ax.set_xlabel("run")
        ax.set_ylabel("seconds to last reply")
        ax.set_xticks(runs)
        ax.legend()

    ax = axes[0][1]
    lat = rows.get("latency", [])
    if lat:
        for key, label, color in [("floor_delivery", "SMTP → Maildir (floor)", "0.75"),
                                  ("floor_idle", "SMTP → IDLE EXISTS (floor)", "0.45"),
                                  ("reply", "SMTP → reply in partner's Maildir", "C0")]:
            xs = sorted(x for r in lat for x in r[f"{key}_samples_ms"])
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.plot(xs, ys, label=label, color=color)
        ax.axvline(1000, color="C3", linestyle=":", label="p99 target 1 s")
        ax.set_title("arrival-to-reply latency (all runs)")
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of requests")
        ax.legend(fontsize=8, loc="lower right")

    ax = axes[0][2]
    pipe = rows.get("pipeline", [])
    if pipe:
        sizes = sorted({r["size"] for r in pipe}, key=lambda x: int(x.rstrip("KB")))
        parse = [med([r["parse_us"] for r in pipe if r["size"] == z]) for z in sizes]
        full = [med([r["full_us"] for r in pipe if r["size"] == z]) for z in sizes]
        xs = range(len(sizes))
        ax.bar([x - 0.2 for x in xs], parse, 0.4, color="0.7", label="mail-parser alone")
        ax.bar([x + 0.2 for x in xs], full, 0.4, color="C0", label="full pipeline")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(sizes)
        ax.set_ylabel("µs per mail (one core)")
        ax.set_title("pipeline CPU")
        ax.legend()

    ax = axes[1][0]
    rem = rows.get("reminders", [])
    if rem:
        backends = sorted({r["backend"] for r in rem})
        plan = [med([r["plan_s"] for r in rem if r["backend"] == be]) * 1000 for be in backends]
        count = [med([r["count_s"] for r in rem if r["backend"] == be]) * 1000 for be in backends]
        xs = range(len(backends))
        ax.bar([x - 0.2 for x in xs], count, 0.4, color="0.7", label="indexed count(*)")
        ax.bar([x + 0.2 for x in xs], plan, 0.4, color="C0", label="plan one day")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(backends)
        ax.set_ylabel("ms")
        ax.set_title(f"reminder planning, {rem[0]['trials']:,} trials")
        ax.legend()

    ax = axes[1][1]
    m = sorted(rows.get("memory", []), key=lambda r: r["backlog"])
    if m:
        if m:
            xs = [r["backlog"] for r in m]
            ax.plot(xs, [r["peak_rss_kb"] / 1024 for r in m], "o-", color="C1", label="peak during backlog")
            ax.plot(xs, [r["idle_rss_kb"] / 1024 for r in m], "o-", color="C0", label="idle after backlog")
            ax.set_xticks(xs)
        ax.axhline(40, color="C3", linestyle=":", label="40 MB target")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("backlog in a row")
        ax.set_ylabel("RSS (MB)")
        ax.set_title("memory of one trialdesk process")
        ax.legend(fontsize=8)

    ax = axes[1][2]
    rev = rows.get("review", [])
    if rev:
        backends = sorted({r["backend"] for r in rev})
        pages = list(dict.fromkeys(r["page"] for r in rev))
        h = 0.8 / len(backends)
        for i, be in enumerate(backends):
            vals = [med([r["median_ms"] for r in rev if r["backend"] == be and r["page"] == p] or [0])
                    for p in pages]
            ax.barh([y + i * h for y in range(len(pages))], vals, h, label=be, color=f"C{i}")
        ax.set_yticks([y + h * (len(backends) - 1) / 2 for y in range(len(pages))])
        ax.set_yticklabels(pages, fontsize=6)
        ax.invert_yaxis()
        ax.axvline(100, color="C3", linestyle=":", label="100 ms target")
        ax.set_xlabel("server time, ms (median)")
        ax.set_title(f"review pages, {rev[0]['mails']:,} mails")
        ax.legend(fontsize=8)

    # A part the run did not measure says so instead of showing empty axes.
    for ax in (a for row in axes for a in row):
        if not ax.has_data():
            ax.axis("off")
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")

    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


if __name__ == "__main__":
    main()
