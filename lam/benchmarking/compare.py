"""`lam compare`: accuracy and speed of LAM's backends and of all-MiniLM-L6-v2, in one run.

    lam compare             # about a minute: torch backend and MiniLM, 300 STS-B dev pairs, 512 and 4,096 tokens
    lam compare --quick     # several minutes: all of STS-B dev, lengths 16 ... 32,768, peak memory
    lam compare --full      # the full grid, with more repeats

Accuracy on the STS-B dev sentences: per-text cosine and max abs difference between the
backends, each system's Spearman, agreement with the teacher. Speed: medians of interleaved
repeats after warm-up (JAX's first call, which compiles, is reported apart) on the STS-B dev
sentences and on synthetic documents of 16 ... 32,768 tokens at batch sizes 1 and 32.
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

from .peak_memory import measure_in_subprocess
from .timing import first_call_seconds, interleaved_medians
from ..datasets import stsb_pairs
from .workloads import synthetic_document

TEACHER = "minilm"
TEACHER_MAX_TOKENS = 512


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
    out_dir: Path = Path("out/compare")
    notes: dict = field(default_factory=dict)

    @classmethod
    def quick(cls, **overrides) -> "Settings":
        fields = dict(stsb_sentences=600, max_batch_tokens=16384, repeats=3, long_repeats=1)
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def demo(cls, **overrides) -> "Settings":
        """`lam compare`'s default: a short run that shows accuracy and linear cost. The JAX backend
        is left out because its first run compiles each new shape (minutes on 2 busy cores)."""
        fields = dict(backends=("torch",), accuracy_pairs=300, lengths=(512, 4096), batch_sizes=(1,), repeats=3,
                      long_repeats=3, memory=False)
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


def load_systems(settings: Settings) -> tuple[dict, dict]:
    """Name -> object with .encode(texts, batch_size=...) -> (N, d) array, and name -> load error."""
    from lam import LAM

    systems, errors = {}, {}
    for backend in settings.backends:
        progress(f"loading {settings.model} on the {backend} backend")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                systems[f"lam-{backend}"] = LAM(settings.model, backend=backend, fallback=False)
        except Exception as err:  # noqa: BLE001 - reported in the output, the run goes on
            errors[f"lam-{backend}"] = f"{type(err).__name__}: {err}"
    progress(f"loading the teacher ({TEACHER}) in sentence-transformers")
    try:
        from sentence_transformers import SentenceTransformer

        from lam.teacher import teacher_dir

        systems[TEACHER] = SentenceTransformer(str(teacher_dir()), device="cpu")
    except Exception as err:  # noqa: BLE001
        errors[TEACHER] = f"{type(err).__name__}: {err}"
    return systems, errors


def encode(system, texts: list[str], batch_size: int = 32) -> np.ndarray:
    return np.asarray(system.encode(texts, batch_size=batch_size, convert_to_numpy=True))


def accuracy(systems: dict, first: list[str], second: list[str], gold: np.ndarray) -> tuple[dict, dict]:
    """Spearman per system, backend differences, agreement with the teacher; plus first-call seconds."""
    from scipy.stats import spearmanr

    sentences = sorted(set(first) | set(second))
    row = {s: i for i, s in enumerate(sentences)}
    embeddings, first_call = {}, {}
    for name, system in systems.items():
        progress(f"accuracy: {name} encodes {len(sentences)} STS-B dev sentences")
        first_call[name] = first_call_seconds(lambda: embeddings.__setitem__(name, encode(system, sentences)))
    result = {"sentences": len(sentences), "pairs": len(gold), "spearman": {}}
    for name, emb in embeddings.items():
        a, b = emb[[row[s] for s in first]], emb[[row[s] for s in second]]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        result["spearman"][name] = round(float(spearmanr(cosine, gold).statistic), 5)
    lam_names = [n for n in embeddings if n != TEACHER]
    if len(lam_names) == 2:
        x, y = (embeddings[n] for n in lam_names)
        cosine = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        max_abs = np.abs(x - y).max(1)
        result["backend_difference"] = {
            "pair": lam_names,
            "cosine": {"min": float(cosine.min()), "mean": float(cosine.mean()), "max": float(cosine.max())},
            "max_abs": {"min": float(max_abs.min()), "mean": float(max_abs.mean()), "max": float(max_abs.max())},
        }
    if TEACHER in embeddings:
        result["mean_cosine_with_teacher"] = {
            n: round(float((embeddings[n] * embeddings[TEACHER]).sum(1).mean()), 5) for n in lam_names}
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
    for name in {r["system"] for r in rows if r["system"] != TEACHER}:
        by_length = {r["tokens"]: r["us_per_token"] for r in rows if r["system"] == name and r["batch"] == 1}
        if 512 in by_length and len(by_length) > 1:
            longest = max(by_length)
            result[name] = {"tokens": longest, "ratio_to_512": round(by_length[longest] / by_length[512], 3)}
    return result


def set_up_sentence_lengths(systems: dict) -> None:
    for name, system in systems.items():
        system.max_seq_length = TEACHER_MAX_TOKENS if name == TEACHER else max(system.max_seq_length, 32768)


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
    token_count = sum(len(ids) for ids in next(s for n, s in systems.items() if n != TEACHER)._tokenize(sentences)) \
        if any(n != TEACHER for n in systems) else 0
    report["stsb_speed"] = {"sentences": len(sentences), "tokens": token_count,
                            "first_call_s_all_dev": {k: round(v, 3) for k, v in first_call.items()},
                            "systems": stsb_speed(systems, sentences, token_count, settings)}
    set_up_sentence_lengths(systems)
    report["length_speed"] = length_speed(systems, settings)
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
    if report["load_errors"]:
        lines.append(f"could not load: {report['load_errors']}")
    acc = report["accuracy"]
    lines.append(f"\nSTS-B dev ({acc['pairs']} pairs, {acc['sentences']} sentences): Spearman x 100")
    for name, score in acc["spearman"].items():
        agreement = acc.get("mean_cosine_with_teacher", {}).get(name)
        lines.append(f"  {name:<12} {100 * score:6.2f}" + (f"   mean cosine with teacher {agreement:.4f}" if agreement else ""))
    if "backend_difference" in acc:
        diff = acc["backend_difference"]
        lines.append(f"  {diff['pair'][0]} vs {diff['pair'][1]}: cosine min {diff['cosine']['min']:.7f} "
                     f"mean {diff['cosine']['mean']:.7f}; max abs min {diff['max_abs']['min']:.2e} "
                     f"mean {diff['max_abs']['mean']:.2e} max {diff['max_abs']['max']:.2e}")
    speed = report["stsb_speed"]
    lines.append(f"\nSTS-B dev encode speed ({speed['sentences']} sentences, {speed['tokens']} tokens; median)")
    lines.append(f"  {'system':<12} {'seconds':>9} {'texts/s':>9} {'tokens/s':>9} {'vs minilm':>9} {'1st call (all dev)':>19}")
    for name, row in speed["systems"].items():
        lines.append(f"  {name:<12} {row['median_s']:>9.3f} {row['texts_per_s']:>9.1f} {row['tokens_per_s']:>9} "
                     f"{row.get('speedup_vs_teacher', float('nan')):>8.2f}x {speed['first_call_s_all_dev'][name]:>18.2f}s")
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
    parser.add_argument("--out", default="out/compare", help="directory for compare.json and compare.png")


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
    print(f"\nwrote {settings.out_dir / 'compare.json'} and {settings.out_dir / 'compare.png'}")
    return 0
