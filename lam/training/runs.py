"""The work of `lam distill`'s commands (imported when one runs, so `lam --help` stays light)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..teacher import teacher_dir
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .data import TextMix
from .evaluation import evaluate_student, student_stsb_spearman
from .export import ship, with_tensors
from .loop import LoopSettings, run_loop
from .stage1 import stage1_loss
from .stage2 import stage2_loss
from .student import build_student, load_tensors, set_trainable
from .teacher import Teacher, TextTokens

RUN_FILE = "run.json"


def _settings(args) -> LoopSettings:
    return LoopSettings(steps=args.steps, lr=args.lr, warmup=args.warmup, checkpoint_minutes=args.checkpoint_minutes)


def _record_run(args, **extra) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"}
    (args.out / RUN_FILE).write_text(json.dumps({**fields, **extra}, indent=2))


def _set_threads(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def run_stage1(args) -> None:
    _set_threads(args)
    torch.manual_seed(args.seed)
    model, _ = build_student(seed=args.seed)
    params = set_trainable(model, "mixers")
    teacher = Teacher(teacher_dir())
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    step_loss = stage1_loss(model, teacher, tokens, TextMix.load(args.data_dir), args.seed, args.batch_size, args.max_tokens)
    _record_run(args, position_policy="clamp")
    run_loop(model, params, step_loss, _settings(args), args.out, resume=args.resume, stop_at=args.stop_at,
             description="stage1")


def run_stage2(args) -> None:
    _set_threads(args)
    torch.manual_seed(args.seed)
    model, _ = build_student(position_policy=args.position_policy, seed=args.seed)
    load_tensors(model, load_checkpoint(args.init / CHECKPOINT_NAME)["model"])
    params = set_trainable(model, args.scope)
    teacher = Teacher(teacher_dir())
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    step_loss = stage2_loss(model, teacher, tokens, TextMix.load(args.data_dir), args.seed, args.batch_size,
                            args.max_tokens, args.long_fraction, args.long_batch_size, args.max_long_tokens,
                            args.similarity_weight)
    _record_run(args)
    run_loop(model, params, step_loss, _settings(args), args.out, resume=args.resume, stop_at=args.stop_at,
             description="stage2")
    scores = evaluate_student(model, teacher, tokens)
    print(json.dumps(scores))
    (args.out / "eval.json").write_text(json.dumps(scores, indent=2))


def student_from(init: str, position_policy: str | None = None):
    """A student initialised from a run directory's checkpoint or a built-in model's shipped tensors."""
    from ..registry import BUILTIN_MODELS, shipped_weights

    if init in BUILTIN_MODELS:
        tensors, overrides = shipped_weights(init)
        model, _ = build_student(position_policy=position_policy or overrides.get("position_policy", "clamp"))
        load_tensors(model, {k: torch.from_numpy(v.astype("float32")) for k, v in tensors.items()})
        return model
    run = json.loads((Path(init) / RUN_FILE).read_text())
    model, _ = build_student(position_policy=position_policy or run["position_policy"])
    load_tensors(model, load_checkpoint(Path(init) / CHECKPOINT_NAME)["model"])
    return model


def run_features(args) -> None:
    """Cache the frozen part's output (the last feed-forward input) for stage 3."""
    import numpy as np

    from ..benchmarking.long_tasks import known_item_task, plain_tokenizer
    from .data import long_split
    from .long_head import cache_features

    _set_threads(args)
    model = student_from(args.init).eval()
    model.form = "auto"  # inference only: the compiled token scan
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    books, articles = long_split(args.data_dir, args.split)
    books = books[: args.books]
    documents = books + [a for a in articles if len(a.split()) >= args.min_article_words][: args.articles]
    queries = known_item_task(documents, plain_tokenizer(teacher_dir() / "tokenizer.json"),
                              queries_per_band=tuple(int(x) for x in args.queries_per_band.split(",")),
                              seed=args.seed, max_tokens=args.max_document_tokens).queries
    short_texts, targets = [], np.zeros((0, model.config.hidden_size), dtype=np.float32)
    if args.short_texts:
        mix = TextMix.short_texts(args.data_dir)
        while len(short_texts) < args.short_texts:
            short_texts += mix.batch(args.seed, len(short_texts) // 16, 16)[0]
        short_texts = short_texts[: args.short_texts]
        teacher = Teacher(teacher_dir())
        ids = tokens(short_texts, args.max_tokens)
        targets = torch.cat([teacher.targets(ids[s:s + 64]) for s in range(0, len(ids), 64)]).numpy()
    _record_run(args, books=len(books), documents=len(documents), queries=len(queries), short=len(short_texts))
    cache_features(model, tokens, documents, queries, short_texts, targets, args.out, args.max_document_tokens,
                   args.max_tokens)


def run_stage3(args) -> None:
    from ..benchmarking.long_tasks import DEPTH_BANDS
    from .long_head import FeatureCache, cached_known_item, head_loss

    _set_threads(args)
    torch.manual_seed(args.seed)
    model = student_from(args.init)
    params = set_trainable(model, "last-ffn")
    layer = model.layers[-1]
    cache = FeatureCache.load(args.features)
    step_loss = head_loss(layer, cache, args.seed, args.batch_size, args.short_batch_size, args.sample_tokens,
                          args.window_fraction, args.temperature, args.distill_weight, args.similarity_weight)
    _record_run(args, position_policy=model.config.position_policy)
    run_loop(model, params, step_loss, _settings(args), args.out, resume=args.resume, stop_at=args.stop_at,
             description="stage3")
    if args.stop_at is not None and args.stop_at < args.steps:
        return
    model.eval()
    scores = {"stsb_dev_spearman": round(student_stsb_spearman(model, TextTokens(teacher_dir() / "tokenizer.json")), 5)}
    if args.validation:
        scores["validation_known_item_accuracy_at_1"] = cached_known_item(layer, FeatureCache.load(args.validation),
                                                                          DEPTH_BANDS)
    print(json.dumps(scores))
    (args.out / "eval.json").write_text(json.dumps(scores, indent=2))


def run_export(args) -> None:
    _set_threads(args)
    run = json.loads((args.run / RUN_FILE).read_text())
    if "init" in run:  # stage 2 and 3 start from another run or a built-in model
        model = student_from(run["init"], run["position_policy"])
    else:
        model, _ = build_student(position_policy=run["position_policy"], seed=run["seed"])
    load_tensors(model, load_checkpoint(args.run / CHECKPOINT_NAME)["model"])
    model.form = "auto"  # evaluation only: the compiled token scan
    tokens = TextTokens(teacher_dir() / "tokenizer.json")
    full = student_stsb_spearman(model, tokens)
    from ..registry import BUILTIN_MODELS, shipped_weights

    base = shipped_weights(run["init"])[0] if run.get("init") in BUILTIN_MODELS else None
    shipped = ship(model, args.out, {"position_policy": run["position_policy"]}, args.dtype, base)
    stored = student_stsb_spearman(with_tensors(model, shipped), tokens)
    size_mb = args.out.stat().st_size / 1e6
    print(json.dumps({"tensors": len(shipped), "megabytes": round(size_mb, 2), "spearman_float32": full,
                      f"spearman_{args.dtype}": stored, "difference": abs(full - stored)}, indent=2))
