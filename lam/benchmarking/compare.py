"""`lam compare`: accuracy and speed of LAM's backends and of all-MiniLM-L6-v2, in one run.

    lam compare             # about 2.5 minutes: torch and MiniLM, 300 STS-B pairs, 512 and 4,096 tokens, long-doc round
    lam compare --quick     # several minutes: all of STS-B dev, lengths 16 ... 32,768, peak memory
    lam compare --full      # the full grid, with more repeats
    lam compare --long      # with the full long-document grid (about an hour) instead of the short one

Accuracy on the STS-B dev sentences: per-text cosine and max abs difference between the
backends, each system's Spearman, agreement with the teacher. Speed: medians of interleaved
repeats after warm-up (JAX's first call, which compiles, is reported apart) on the STS-B dev
sentences and on synthetic documents of 16 ... 32,768 tokens at batch sizes 1 and 32.

With --quick and --full (or --competitors), LAM also runs in its other compute precisions
(bfloat16, int8) and sentence-transformers' fastest CPU backends join the STS-B rows
(`lam.benchmarking.competitors`; missing ones are listed as skipped with the reason), and
single-query latency (p50, p99 of one 16- or 64-token text) is measured for every system.

Every run ends with long-document retrieval (`lam.benchmarking.long_compare`): LAM models on
whole documents against all-MiniLM-L6-v2 truncated and chunk-averaged, on a few held-out
documents by default, on all of them with --long; --no-long skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .competitors import COMPETITORS, TEACHER, load_competitors
from .long_compare import LongSettings, format_long_table, plot_long, run_long
from .peak_memory import measure_in_subprocess
from .timing import first_call_seconds, interleaved_medians
from ..datasets import spearman_of_cosine, stsb_pairs
from .workloads import synthetic_document

TEACHER_MAX_TOKENS = 512
ALL_PRECISIONS = ("float32", "bfloat16", "int8")
PRECISION_SUFFIX = {"float32": "", "bfloat16": "-bf16", "int8": "-int8"}


@dataclass
class Settings:
    model: str = "LAM-base-v1"
    backends: tuple[str, ...] = ("torch", "jax")
    accuracy_pairs: int | None = None          # None: all 1,500 STS-B dev pairs, else evenly spaced ones
    stsb_sentences: int | None = None          # None: all of STS-B dev
    lengths: tuple[int, ...] = (16, 128, 512, 2048, 8192, 32768)
    batch_sizes: tuple[int, ...] = (1, 32)
    max_batch_tokens: int = 65536              # batch-32 rows beyond this are skipped (time and memory)
    repeats: int = 5
    long_repeats: int = 3                      # for documents of 8,192 tokens and more
    memory: bool = True
    precisions: tuple[str, ...] = ALL_PRECISIONS   # LAM compute precisions (STS-B rows and latency)
    competitors: tuple[str, ...] = tuple(COMPETITORS)  # sentence-transformers systems; the teacher always runs
    latency_lengths: tuple[int, ...] = (16, 64)     # single-query latency, one text of this many tokens
    latency_repeats: int = 200
    long: LongSettings | None = field(default_factory=LongSettings.short)  # None: no long-document tasks
    out_dir: Path = Path("out/compare")
    notes: dict = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides) -> "Settings":
        fields = dict(stsb_sentences=600, max_batch_tokens=16384, repeats=3, long_repeats=1, latency_repeats=100)
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def demo(cls, **overrides) -> "Settings":
        """`lam compare`'s default: a short run that shows accuracy and linear cost. The JAX backend
        is left out because its first run compiles each new shape (minutes on 2 busy cores)."""
        fields = dict(backends=("torch",), accuracy_pairs=300, lengths=(512, 4096), batch_sizes=(1,), repeats=3,
                      long_repeats=3, memory=False, precisions=("float32",), competitors=(TEACHER,),
                      latency_lengths=())
        fields.update(overrides)
        return cls(**fields)


_run_started = time.perf_counter()


def progress(message: str) -> None:
    """One line on stderr, stamped with the seconds since the run started."""
    print(f"[{time.perf_counter() - _run_started:6.1f} s] {message}", file=sys.stderr, flush=True)


def load_warning() -> str | None:
    """A warning when the 1-minute load average exceeds the core count (timings would mislead)."""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= cores:
        return None
    return (f"warning: the load average ({load:.1f}) is above the number of cores ({cores}): other work is "
            "running, so the timings below will be slow and noisy; compare speeds on a quiet machine")


def evenly_spaced(count: int | None, total: int) -> np.ndarray:
    """Indices of `count` items spread over `total` (all of them if count is None or larger)."""
    if count is None or count >= total:
        return np.arange(total)
    return np.linspace(0, total - 1, count).round().astype(int)


def lam_name(backend: str, precision: str = "float32") -> str:
    return f"lam-{backend}{PRECISION_SUFFIX[precision]}"


def is_lam(name: str) -> bool:
    return name.startswith("lam-")


def load_systems(settings: Settings) -> tuple[dict, dict]:
    """Name -> object with .encode(texts, batch_size=...) -> (N, d) array, and name -> why it is missing."""
    from lam import LAM

    systems, errors = {}, {}
    for backend in settings.backends:
        for precision in settings.precisions:
            name = lam_name(backend, precision)
            progress(f"loading {settings.model} on the {backend} backend, compute precision {precision}")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    systems[name] = LAM(settings.model, backend=backend, fallback=False, compute_precision=precision)
            except Exception as err:  # noqa: BLE001 - reported in the output, the run goes on
                errors[name] = f"{type(err).__name__}: {err}"
    names = (TEACHER,) + tuple(n for n in settings.competitors if n != TEACHER)
    competitors, skipped = load_competitors(names, progress)
    systems.update(competitors)
    errors.update(skipped)
    return systems, errors


def encode(system, texts: list[str], batch_size: int = 32) -> np.ndarray:
    return np.asarray(system.encode(texts, batch_size=batch_size, convert_to_numpy=True))


def accuracy(systems: dict, first: list[str], second: list[str], gold: np.ndarray) -> tuple[dict, dict]:
    """Spearman per system, backend differences, agreement with the teacher; plus first-call seconds."""
    sentences = sorted(set(first) | set(second))
    row = {s: i for i, s in enumerate(sentences)}
    embeddings, first_call = {}, {}
    for name, system in systems.items():
        progress(f"accuracy: {name} encodes {len(sentences)} STS-B dev sentences")
        first_call[name] = first_call_seconds(lambda: embeddings.__setitem__(name, encode(system, sentences)))
    result = {"sentences": len(sentences), "pairs": len(gold), "spearman": {}}
    for name, emb in embeddings.items():
        a, b = emb[[row[s] for s in first]], emb[[row[s] for s in second]]
        result["spearman"][name] = round(spearman_of_cosine(a, b, gold), 5)
    float32_names = [n for n in (lam_name("torch"), lam_name("jax")) if n in embeddings]
    if len(float32_names) == 2:
        x, y = (embeddings[n] for n in float32_names)
        cosine = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        max_abs = np.abs(x - y).max(1)
        result["backend_difference"] = {
            "pair": float32_names,
            "cosine": {"min": float(cosine.min()), "mean": float(cosine.mean()), "max": float(cosine.max())},
            "max_abs": {"min": float(max_abs.min()), "mean": float(max_abs.mean()), "max": float(max_abs.max())},
        }
    if TEACHER in embeddings:
        result["mean_cosine_with_teacher"] = {
            n: round(float((embeddings[n] * embeddings[TEACHER]).sum(1).mean()), 5) for n in embeddings if n != TEACHER}
    return result, first_call


def stsb_speed(systems: dict, sentences: list[str], token_count: int, settings: Settings) -> dict:
    progress(f"speed: {len(sentences)} sentences, {settings.repeats} interleaved repeats of each system")
    runs = {name: (lambda s=system: encode(s, sentences)) for name, system in systems.items()}
    medians = interleaved_medians(runs, settings.repeats)
    rows = {}
    for name, timing in medians.items():
        seconds = timing["median_s"]
        rows[name] = {"median_s": round(seconds, 4), "texts_per_s": round(len(sentences) / seconds, 1),
                      "tokens_per_s": round(token_count / seconds)}
        if TEACHER in medians:
            rows[name]["speedup_vs_teacher"] = round(medians[TEACHER]["median_s"] / seconds, 3)
    return rows


def length_speed(systems: dict, settings: Settings) -> list[dict]:
    """One row per (system, length, batch size): ms per text, tokens/s, seconds per token."""
    rows = []
    for length in settings.lengths:
        for batch in settings.batch_sizes:
            if batch > 1 and batch * length > settings.max_batch_tokens:
                continue
            progress(f"speed: documents of {length} tokens, batch {batch}")
            documents = [synthetic_document(length, seed=i) for i in range(batch)]
            runs = {}
            for name, system in systems.items():
                if name == TEACHER and length > TEACHER_MAX_TOKENS:
                    continue
                runs[name] = lambda s=system: encode(s, documents, batch_size=batch)
            compile_s = {name: first_call_seconds(run) for name, run in runs.items()}
            repeats = settings.long_repeats if length >= 8192 else settings.repeats
            medians = interleaved_medians(runs, repeats, warmup=0)
            for name, timing in medians.items():
                seconds = timing["median_s"]
                row = {"system": name, "tokens": length, "batch": batch, "median_s": round(seconds, 5),
                       "first_call_s": round(compile_s[name], 4), "ms_per_text": round(1000 * seconds / batch, 3),
                       "tokens_per_s": round(batch * length / seconds), "us_per_token": 1e6 * seconds / (batch * length)}
                if TEACHER in medians:
                    row["speedup_vs_teacher"] = round(medians[TEACHER]["median_s"] / seconds, 3)
                rows.append(row)
    return rows


def linear_scaling(rows: list[dict]) -> dict:
    """Per LAM system: time per token at the longest length / at 512 tokens (batch 1)."""
    result = {}
    for name in {r["system"] for r in rows if is_lam(r["system"])}:
        by_length = {r["tokens"]: r["us_per_token"] for r in rows if r["system"] == name and r["batch"] == 1}
        if 512 in by_length and len(by_length) > 1:
            longest = max(by_length)
            result[name] = {"tokens": longest, "ratio_to_512": round(by_length[longest] / by_length[512], 3)}
    return result


def query_latency(systems: dict, settings: Settings) -> list[dict]:
    """p50 and p99 milliseconds of `encode(text)` for one text of each latency length, as a search
    service embeds a query; every system is timed in the same rounds."""
    rows = []
    for length in settings.latency_lengths:
        text = synthetic_document(length, seed=1)
        progress(f"latency: one {length}-token query, {settings.latency_repeats} interleaved repeats of each system")
        runs = {name: (lambda s=system: s.encode(text)) for name, system in systems.items()}
        for name, timing in interleaved_medians(runs, settings.latency_repeats, warmup=3).items():
            milliseconds = 1000 * np.asarray(timing["samples_s"])
            rows.append({"system": name, "tokens": length, "repeats": len(milliseconds),
                         "p50_ms": round(float(np.percentile(milliseconds, 50)), 3),
                         "p99_ms": round(float(np.percentile(milliseconds, 99)), 3)})
    return rows


def headline(report: dict) -> dict:
    """The issue's comparisons, from this run: LAM's fastest setting within 0.5 Spearman points of
    float32 against sentence-transformers' fastest backend; LAM float32 against the torch backend;
    the fastest 16-token query of each side."""
    spearman, speed = report["accuracy"]["spearman"], report["stsb_speed"]["systems"]
    texts_per_s = {name: row["texts_per_s"] for name, row in speed.items()}
    float32_names = [n for n in texts_per_s if is_lam(n) and not n.endswith(("-bf16", "-int8"))]
    result = {}
    if float32_names and any(not is_lam(n) for n in texts_per_s):
        best_float32 = max(float32_names, key=texts_per_s.get)
        reference = spearman.get(best_float32)
        eligible = [n for n in texts_per_s if is_lam(n) and reference is not None and n in spearman
                    and 100 * (reference - spearman[n]) <= 0.5]
        fastest_lam = max(eligible, key=texts_per_s.get)
        fastest_other = max((n for n in texts_per_s if not is_lam(n)), key=texts_per_s.get)
        result["fastest_lam_vs_fastest_sentence_transformers"] = {
            "lam": fastest_lam, "other": fastest_other,
            "ratio": round(texts_per_s[fastest_lam] / texts_per_s[fastest_other], 3),
            "spearman_points_below_lam_float32": round(100 * (reference - spearman[fastest_lam]), 3)}
        if TEACHER in texts_per_s:
            result["lam_float32_vs_sentence_transformers_torch"] = {
                "lam": best_float32, "ratio": round(texts_per_s[best_float32] / texts_per_s[TEACHER], 3)}
    short = [row for row in report.get("latency", []) if row["tokens"] == min(r["tokens"] for r in report["latency"])]
    if short:
        best = lambda rows: min(rows, key=lambda r: r["p50_ms"])  # noqa: E731
        lam_rows, other_rows = [r for r in short if is_lam(r["system"])], [r for r in short if not is_lam(r["system"])]
        result["query_latency"] = {"tokens": short[0]["tokens"],
                                   **({"lam": best(lam_rows)} if lam_rows else {}),
                                   **({"other": best(other_rows)} if other_rows else {})}
    return result


def set_up_sentence_lengths(systems: dict) -> None:
    for name, system in systems.items():
        system.max_seq_length = max(system.max_seq_length, 32768) if is_lam(name) else TEACHER_MAX_TOKENS


def run(settings: Settings) -> dict:
    global _run_started
    _run_started = time.perf_counter()
    warning = load_warning()
    if warning:
        progress(warning)
    systems, errors = load_systems(settings)
    first, second, gold = stsb_pairs("dev")
    rows = evenly_spaced(settings.accuracy_pairs, len(gold))
    first, second, gold = [first[i] for i in rows], [second[i] for i in rows], gold[rows]
    report = {"machine": machine_description(), "settings": {k: str(v) for k, v in vars(settings).items()},
              "load_errors": errors, "load_warning": warning}
    acc, first_call = accuracy(systems, first, second, gold)
    report["accuracy"] = acc
    sentences = sorted(set(first) | set(second))[: settings.stsb_sentences]
    token_count = sum(len(ids) for ids in next(s for n, s in systems.items() if is_lam(n))._tokenize(sentences)) \
        if any(is_lam(n) for n in systems) else 0
    report["stsb_speed"] = {"sentences": len(sentences), "tokens": token_count,
                            "first_call_s_all_dev": {k: round(v, 3) for k, v in first_call.items()},
                            "systems": stsb_speed(systems, sentences, token_count, settings)}
    if settings.latency_lengths:
        report["latency"] = query_latency(systems, settings)
    report["headline"] = headline(report)
    set_up_sentence_lengths(systems)
    # Documents by length: LAM in float32 against the teacher (the precisions and competitors are compared above).
    float32_systems = {n: s for n, s in systems.items()
                       if n == TEACHER or n in {lam_name(b) for b in settings.backends}}
    report["length_speed"] = length_speed(float32_systems, settings)
    report["linear_scaling"] = linear_scaling(report["length_speed"])
    if settings.memory:
        report["peak_memory_32k"] = {}
        for backend in settings.backends:
            if f"lam-{backend}" in systems:
                progress(f"peak memory: one 32,768-token document on {backend}, in a fresh process")
                try:
                    report["peak_memory_32k"][backend] = measure_in_subprocess(settings.model, backend, 32768)
                except Exception as err:  # noqa: BLE001
                    report["peak_memory_32k"][backend] = {"error": str(err)}
    if settings.long is not None:
        del systems
        report["long"] = run_long(settings.long, progress)
    return report


def machine_description() -> dict:
    import torch

    cpu = "unknown"
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": round(os.getloadavg()[0], 2), "python": platform.python_version(),
            "torch": torch.__version__}


def format_table(report: dict) -> str:
    """The report as plain-text tables."""
    lines = [f"machine: {report['machine']}"]
    if report.get("load_warning"):
        lines.append(report["load_warning"])
    for name, reason in report["load_errors"].items():
        lines.append(f"skipped {name}: {reason}")
    acc = report["accuracy"]
    lines.append(f"\nSTS-B dev ({acc['pairs']} pairs, {acc['sentences']} sentences): Spearman x 100")
    for name, score in acc["spearman"].items():
        agreement = acc.get("mean_cosine_with_teacher", {}).get(name)
        lines.append(f"  {name:<20} {100 * score:6.2f}" + (f"   mean cosine with teacher {agreement:.4f}" if agreement else ""))
    if "backend_difference" in acc:
        diff = acc["backend_difference"]
        lines.append(f"  {diff['pair'][0]} vs {diff['pair'][1]}: cosine min {diff['cosine']['min']:.7f} "
                     f"mean {diff['cosine']['mean']:.7f}; max abs min {diff['max_abs']['min']:.2e} "
                     f"mean {diff['max_abs']['mean']:.2e} max {diff['max_abs']['max']:.2e}")
    speed = report["stsb_speed"]
    lines.append(f"\nSTS-B dev encode speed ({speed['sentences']} sentences, {speed['tokens']} tokens; median)")
    lines.append(f"  {'system':<20} {'seconds':>9} {'texts/s':>9} {'tokens/s':>9} {'vs minilm':>9} {'1st call (all dev)':>19}")
    for name, row in speed["systems"].items():
        lines.append(f"  {name:<20} {row['median_s']:>9.3f} {row['texts_per_s']:>9.1f} {row['tokens_per_s']:>9} "
                     f"{row.get('speedup_vs_teacher', float('nan')):>8.2f}x {speed['first_call_s_all_dev'][name]:>18.2f}s")
    if report.get("latency"):
        lines.append("\nsingle-query latency (one text per encode call, interleaved repeats)")
        lines.append(f"  {'system':<20} {'tokens':>6} {'p50 ms':>8} {'p99 ms':>8} {'repeats':>8}")
        for row in report["latency"]:
            lines.append(f"  {row['system']:<20} {row['tokens']:>6} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
                         f"{row['repeats']:>8}")
    lines.extend(format_headline(report.get("headline", {})))
    lines.append("\nspeed by document length (median)")
    lines.append(f"  {'system':<12} {'tokens':>6} {'batch':>5} {'ms/text':>10} {'tokens/s':>9} {'us/token':>9} "
                 f"{'vs minilm':>9} {'1st call':>9}")
    for row in report["length_speed"]:
        ratio = f"{row['speedup_vs_teacher']:.2f}x" if "speedup_vs_teacher" in row else "-"
        lines.append(f"  {row['system']:<12} {row['tokens']:>6} {row['batch']:>5} {row['ms_per_text']:>10.2f} "
                     f"{row['tokens_per_s']:>9} {row['us_per_token']:>9.2f} {ratio:>9} {row['first_call_s']:>8.2f}s")
    for name, scaling in report["linear_scaling"].items():
        lines.append(f"  {name}: time per token at {scaling['tokens']} tokens = {scaling['ratio_to_512']:.2f} x that at 512")
    for backend, memory in report.get("peak_memory_32k", {}).items():
        lines.append(f"  peak RSS encoding one 32,768-token document, {backend}: {memory}")
    return "\n".join(lines)


def format_headline(headline: dict) -> list[str]:
    lines = []
    if "fastest_lam_vs_fastest_sentence_transformers" in headline:
        row = headline["fastest_lam_vs_fastest_sentence_transformers"]
        lines.append(f"\nfastest LAM setting within 0.5 Spearman points of float32: {row['lam']} "
                     f"({row['spearman_points_below_lam_float32']:+.2f} points below float32), "
                     f"{row['ratio']:.2f}x the STS-B texts/s of the fastest sentence-transformers system, {row['other']}")
    if "lam_float32_vs_sentence_transformers_torch" in headline:
        row = headline["lam_float32_vs_sentence_transformers_torch"]
        lines.append(f"LAM float32 ({row['lam']}): {row['ratio']:.2f}x the texts/s of sentence-transformers' torch backend")
    if "query_latency" in headline:
        row = headline["query_latency"]
        sides = [f"{side} {row[side]['system']} p50 {row[side]['p50_ms']:.2f} ms" for side in ("lam", "other") if side in row]
        lines.append(f"fastest {row['tokens']}-token query: " + "; ".join(sides))
    return lines


def plot(report: dict, path: Path) -> None:
    """Time per token against length, log-log, one line per (system, batch size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    series = sorted({(r["system"], r["batch"]) for r in report["length_speed"]})
    for system, batch in series:
        rows = sorted((r for r in report["length_speed"] if r["system"] == system and r["batch"] == batch),
                      key=lambda r: r["tokens"])
        axes.plot([r["tokens"] for r in rows], [r["us_per_token"] for r in rows], marker="o",
                  label=f"{system}, batch {batch}")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("document length (tokens)")
    axes.set_ylabel("time per token (µs)")
    axes.set_title("Encode time per token (median)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="all of STS-B dev, lengths 16 ... 32,768 at batch 1 and 32, peak memory: several minutes")
    size.add_argument("--full", action="store_true", help="the full grid with 5 repeats (the README's tables)")
    parser.add_argument("--model", default="LAM-base-v1", help="built-in name or model directory")
    parser.add_argument("--backends", default=None,
                        help="comma-separated LAM backends (default: torch; torch,jax with --quick or --full)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement")
    parser.add_argument("--lengths", default=None, help="comma-separated document lengths in tokens")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--precisions", default=None,
                        help="comma-separated LAM compute precisions (float32, bfloat16, int8; default: float32, "
                             "all three with --quick or --full)")
    parser.add_argument("--competitors", default=None,
                        help="comma-separated sentence-transformers systems besides the teacher, or 'all' or 'none' "
                             f"({', '.join(n for n in COMPETITORS if n != TEACHER)}; default: none, all with --quick "
                             "or --full); missing packages are reported as skipped")
    parser.add_argument("--latency-repeats", type=int, default=None,
                        help="single-query latency repeats per system (0: skip the latency rows)")
    long = parser.add_mutually_exclusive_group()
    long.add_argument("--long", action="store_true",
                      help="the full long-document grid: every held-out document, 256 ... 32,768 tokens, both "
                           "backends (about an hour on 2 cores) instead of the short one")
    long.add_argument("--no-long", action="store_true", help="skip the long-document retrieval tasks")
    parser.add_argument("--long-models", default=None,
                        help="comma-separated LAM models for the long-document tasks (default: --model and "
                             "LAM-long-v1)")
    parser.add_argument("--out", default="out/compare",
                        help="directory for compare.json, compare.png and compare_long.png")


def settings_from(args) -> Settings:
    overrides = {"model": args.model, "out_dir": Path(args.out)}
    if args.backends:
        overrides["backends"] = tuple(args.backends.split(","))
    if args.no_memory:
        overrides["memory"] = False
    if args.repeats is not None:
        overrides["repeats"] = args.repeats
    if args.lengths:
        overrides["lengths"] = tuple(int(x) for x in args.lengths.split(","))
    if args.precisions:
        overrides["precisions"] = tuple(args.precisions.split(","))
        if set(overrides["precisions"]) - set(ALL_PRECISIONS):
            raise SystemExit(f"lam compare: --precisions must be among {ALL_PRECISIONS}, got {args.precisions!r}")
    if args.competitors:
        chosen = {"all": tuple(COMPETITORS), "none": (TEACHER,)}.get(args.competitors)
        overrides["competitors"] = chosen or (TEACHER, *args.competitors.split(","))
        unknown = set(overrides["competitors"]) - set(COMPETITORS)
        if unknown:
            raise SystemExit(f"lam compare: unknown --competitors {sorted(unknown)}; choose from {list(COMPETITORS)}")
    if args.latency_repeats is not None:
        overrides["latency_repeats"] = args.latency_repeats
        if args.latency_repeats == 0:
            overrides["latency_lengths"] = ()
        elif not (args.quick or args.full):
            overrides["latency_lengths"] = Settings.latency_lengths
    long_models = tuple(args.long_models.split(",")) if args.long_models else \
        tuple(dict.fromkeys((args.model, "LAM-long-v1")))
    if args.no_long:
        overrides["long"] = None
    else:
        overrides["long"] = LongSettings(models=long_models) if args.long else LongSettings.short(models=long_models)
    if args.full:
        return Settings(**overrides)
    return Settings.quick(**overrides) if args.quick else Settings.demo(**overrides)


def run_command(args) -> int:
    settings = settings_from(args)
    report = run(settings)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    (settings.out_dir / "compare.json").write_text(json.dumps(report, indent=2))
    plot(report, settings.out_dir / "compare.png")
    print(format_table(report))
    written = [settings.out_dir / "compare.json", settings.out_dir / "compare.png"]
    if "long" in report:
        plot_long(report["long"], settings.out_dir / "compare_long.png")
        print(format_long_table(report["long"]))
        written.append(settings.out_dir / "compare_long.png")
    print(f"\nwrote {', '.join(map(str, written))}")
    return 0
