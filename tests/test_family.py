"""bench/family.py: one policy against the plain fine-tune over several curricula, each its own pair."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "family.py"


def _row(run_id: str, scores: dict[str, list[float]], steps: int, gates: int, code: str) -> dict:
    end = {node: sum(v) / len(v) for node, v in scores.items()}
    return {"run_id": run_id, "final_score": sum(end.values()) / len(end), "gates_held": gates, "total_steps": steps,
            "end": end, "n_items": sum(len(v) for v in scores.values()), "items_label": "exam items",
            "item_scores": scores, "code": code}


def _folder(tmp: Path, name: str, rng: np.random.Generator, p_adaptive: float, p_flat: float, code: str) -> Path:
    scores = {side: {node: [float(x) for x in rng.random(40) < p] for node in ("facts", "laws")}
              for side, p in (("adaptive", p_adaptive), ("flat", p_flat))}
    folder = tmp / name
    folder.mkdir()
    rows = [_row("adaptive-s0", scores["adaptive"], 120, 1, code), _row("flat-budget-s0", scores["flat"], 120, 2, code)]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_curricula_are_paired_and_read_as_scipys_one_sample_t(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    folders = [_folder(tmp_path, f"c{k}", rng, 0.5 + 0.05 * k, 0.7, "abc" if k else "old") for k in range(4)]
    done = _run(*map(str, folders))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    diffs = []
    for f in folders:
        a, b = (json.loads(line) for line in (f / "rows.jsonl").read_text().splitlines())
        diffs.append(a["final_score"] - b["final_score"])
    test = stats.ttest_1samp(diffs, 0.0)
    assert np.allclose(out["score_minus_baseline_ci"], test.confidence_interval(0.95))
    assert np.isclose(out["power"]["p"], test.pvalue) and np.isclose(out["score_minus_baseline"], np.mean(diffs))
    assert out["power"]["n_seeds"] == 4 and out["power"]["item_share"] is None  # no shared items across curricula
    assert np.allclose([c["difference"] for c in out["curricula"]], diffs)
    assert all(c["within_seed"]["n_items"] == 80 for c in out["curricula"])
    assert out["gates_minus_baseline"] == -1 and out["code"] == ["abc", "old"]
    assert "over the 4 curricula" in done.stdout and "2 versions of the product's code" in done.stdout


def test_a_folder_without_the_pair_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "c0", np.random.default_rng(0), 0.5, 0.5, "abc")
    done = _run(str(folder), "--seed", "1")
    assert done.returncode != 0 and f"{folder / 'rows.jsonl'}: no finished run adaptive-s1, flat-budget-s1" in done.stderr


def test_a_collapsed_arm_is_named_and_rows_from_before_the_check_are_said(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    checked, old = _folder(tmp_path, "checked", rng, 0.9, 0.3, "abc"), _folder(tmp_path, "old", rng, 0.9, 0.3, "abc")
    rows = [json.loads(line) for line in (checked / "rows.jsonl").read_text().splitlines()]
    rows[0]["one_answer"], rows[1]["one_answer"] = {}, {"laws": {"answer": "east", "share": 0.975, "n": 40}}
    (checked / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = _run(str(checked), str(old))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {checked}: flat-budget, flat-budget-s0: one answer to nearly every verdict item on "
                        "laws ('east' on 97.5% of 40) while the expected answers vary: a collapsed model, so a "
                        "difference against it is not a fair comparison"]
    assert "note: 1 folder(s) hold rows written before runs were checked" in done.stdout and str(old) in done.stdout
