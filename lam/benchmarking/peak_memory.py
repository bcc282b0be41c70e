"""Peak resident memory of encoding one long document, measured in a fresh process.

    python -m lam.benchmarking.peak_memory --backend torch --tokens 32768
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import warnings


def peak_rss_mib() -> float:
    """This process's peak resident memory. On Linux VmHWM, which (unlike ru_maxrss) does not
    carry over the RSS of the parent that forked this process before exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_in_subprocess(model: str, backend: str, tokens: int) -> dict:
    """Run this module in a fresh interpreter; returns its JSON result."""
    command = [sys.executable, "-m", "lam.benchmarking.peak_memory", "--model", model, "--backend", backend,
               "--tokens", str(tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="LAM-base-v1")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--tokens", type=int, default=32768)
    args = parser.parse_args()

    from lam import LAM

    from .workloads import synthetic_document

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LAM(args.model, backend=args.backend, fallback=False)
    model.max_seq_length = max(model.max_seq_length, args.tokens)
    document = synthetic_document(args.tokens)
    model.encode(synthetic_document(64))
    loaded = peak_rss_mib()
    model.encode(document)
    print(json.dumps({"backend": model.backend, "tokens": args.tokens, "rss_after_load_mib": round(loaded, 1),
                      "peak_rss_mib": round(peak_rss_mib(), 1)}))


if __name__ == "__main__":
    main()
