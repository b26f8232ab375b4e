"""Samples by whom they describe: shared by the scrape path (collect.py) and the Prometheus path (prometheus.py),
so that neither imports the other."""

from __future__ import annotations


def split_by_worker(samples) -> tuple[list, dict[str, list]]:
    """A page's samples: (the frontend's own, worker id -> that worker's engine series). Engine series are the
    reference runtime's `disagg_engine_*` and the `vllm:*` a disagg frontend re-exports, labelled `worker_id`."""
    front, per_worker = [], {}
    for sample in samples:
        name, labels, _ = sample
        wid = dict(labels).get("worker_id") if name.startswith(("disagg_engine_", "vllm:")) else None
        if wid:
            per_worker.setdefault(wid, []).append(sample)
        else:
            front.append(sample)
    return front, per_worker
