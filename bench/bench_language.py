"""Language detectors for story ideas: accuracy on short ideas, cold load time and memory.

Rows: ``py3langid`` and ``lingua`` alone (both restricted to pipeline.language.LANGUAGES), and
``storyloom``: pipeline.language.story_language, py3langid with its script and short-idea rules
(too short to tell keeps the default, English).

Candidates: ``py3langid`` (a modernised langid.py, its model in the wheel) and
``lingua-language-detector`` (n-gram models in the wheel). Each runs in a fresh interpreter so
the load time and the resident memory are its own. The ideas are the test corpus
(tests/data/ideas.yaml, emoji-only ideas left out) plus the short ideas below.

    .venv/bin/python bench/bench_language.py

lingua is a bench-only candidate: ``pip install lingua-language-detector`` to measure it.

Measured on 2026-11-29 (2 shared cores under heavy load; 70 ideas in 12 languages):

    detector      accuracy  load s  ms/idea  RSS MB
    py3langid        97.1%    1.03     0.09     131   (misses: "Hello World", a short Russian idea)
    lingua           98.6%   22.69     3.52    1104   (miss: "An astronaut plants a garden…")
    storyloom       100.0%    2.16     0.86     131

py3langid was chosen: as accurate once the script and short-idea rules are added, twenty times
faster to load and a tenth of the memory (lingua's wheel alone is 96 MB).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

SHORT = [
    ("A dragon learns to cook", "en"),
    ("The brave mouse", "en"),
    ("Ghost ship at dawn", "en"),
    ("La bruja y el gato", "es"),
    ("Un perro en la nieve", "es"),
    ("Le petit prince et la rose", "fr"),
    ("Un chien perdu à Paris", "fr"),
    ("Der Fuchs und die Eule", "de"),
    ("Ein Roboter im Weltall", "de"),
    ("Кот и мышь", "ru"),
    ("Волшебный лес", "ru"),
    ("小猫钓鱼", "zh"),
    ("月亮上的兔子", "zh"),
    ("الأسد والفأر", "ar"),
    ("سفينة في البحر", "ar"),
    ("猫と犬の冒険", "ja"),
    ("Il gatto e la volpe", "it"),
    ("O menino e o mar", "pt"),
    ("जादुई पेड़", "hi"),
    ("הכלב והחתול", "he"),
]

PROBE = r"""
import json, resource, sys, time
ideas = json.loads(sys.stdin.read())
t0 = time.perf_counter()
if sys.argv[1] == "storyloom":
    from pipeline.language import story_language, warm
    warm()
    detect = lambda text: story_language(text, None)
elif sys.argv[1] == "py3langid":
    from pipeline.language import _model
    model = _model()
    detect = lambda text: model.classify(text)[0]
else:
    from lingua import IsoCode639_1, LanguageDetectorBuilder
    from pipeline.language import LANGUAGES
    codes = [getattr(IsoCode639_1, c.upper()) for c in sorted(LANGUAGES)
             if hasattr(IsoCode639_1, c.upper())]
    det = (LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
           .with_preloaded_language_models().build())
    def detect(text):
        lang = det.detect_language_of(text)
        return lang.iso_code_639_1.name.lower() if lang else None
load_s = time.perf_counter() - t0
t1 = time.perf_counter()
answers = [detect(text) for text, _ in ideas]
per_idea_ms = 1000 * (time.perf_counter() - t1) / len(ideas)
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"load_s": load_s, "per_idea_ms": per_idea_ms, "rss_mb": rss_mb,
                  "answers": answers}))
"""


def ideas() -> list[tuple[str, str]]:
    corpus = yaml.safe_load((ROOT / "tests/data/ideas.yaml").read_text())
    out = [(e["idea"], e["language"]) for e in corpus if any(ch.isalpha() for ch in e["idea"])]
    return out + SHORT


def measure(candidate: str, items: list[tuple[str, str]]) -> dict[str, object] | None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, candidate], input=json.dumps(items), capture_output=True,
        text=True, cwd=ROOT, check=False,
    )
    if proc.returncode != 0:
        print(f"{candidate}: not measured ({proc.stderr.strip().splitlines()[-1:]})")
        return None
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def main() -> None:
    items = ideas()
    print(f"{len(items)} ideas in {len({lang for _, lang in items})} languages")
    print(f"{'detector':<12} {'accuracy':>9} {'load s':>7} {'ms/idea':>8} {'RSS MB':>7}")
    for candidate in ("py3langid", "lingua", "storyloom"):
        r = measure(candidate, items)
        if r is None:
            continue
        answers = r["answers"]
        assert isinstance(answers, list)
        right = sum(a == lang for a, (_, lang) in zip(answers, items, strict=True))
        print(f"{candidate:<12} {right / len(items):>9.1%} {r['load_s']:>7.2f} "
              f"{r['per_idea_ms']:>8.2f} {r['rss_mb']:>7.0f}")
        for a, (text, lang) in zip(answers, items, strict=True):
            if a != lang:
                print(f"    {lang} -> {a}: {text}")


if __name__ == "__main__":
    main()
