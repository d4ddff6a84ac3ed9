"""Intrinsic evaluation of word vectors, as gensim's `KeyedVectors.evaluate_word_pairs` and
`evaluate_word_analogies` compute it: Spearman correlation with human similarity judgements (WordSim353,
SimLex-999) and 3CosAdd analogy accuracy (Mikolov et al.'s questions-words.txt), matching words case-insensitively
(the most frequent spelling wins) and skipping pairs / questions with a word outside the vocabulary, whose number
is reported. Also nearest neighbours and analogies for `sslab wordvec`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sslab.errors import SslabError

SETS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogy": "questions-words.txt"}


class WordTable:
    """Words and their vectors (rows in frequency order), looked up case-insensitively."""

    def __init__(self, words: list[str], vectors: np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise SslabError(f"{len(words)} words for vectors of shape {vectors.shape}")
        if not len(words):
            raise SslabError("no words in the vocabulary")
        self.words, self.vectors = list(words), vectors
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.unit = vectors / np.maximum(norms, 1e-12)
        self.index: dict[str, int] = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w.lower(), i)

    def __contains__(self, word: str) -> bool:
        return word.lower() in self.index

    def id(self, word: str) -> int:
        i = self.index.get(word.lower())
        if i is None:
            raise SslabError(f"{word!r} is not in the vocabulary ({len(self.words)} words)")
        return i

    def most_similar(self, positive: list[str], negative: list[str] = (), topn: int = 10) -> list[tuple[str, float]]:
        """The `topn` words nearest (cosine) to the sum of the positive words' unit vectors minus the negative
        ones', the query words left out."""
        pos, neg = [self.id(w) for w in positive], [self.id(w) for w in negative]
        ids = pos + neg
        if not ids:
            raise SslabError("no query words")
        q = self.unit[pos].sum(0) - self.unit[neg].sum(0)
        sims = self.unit @ (q / max(float(np.linalg.norm(q)), 1e-12))
        sims[ids] = -np.inf
        top = np.argsort(-sims)[:topn]
        return [(self.words[i], float(sims[i])) for i in top if np.isfinite(sims[i])]


def run_word_table(path) -> WordTable:
    """The word vectors of a word2vec / GloVe run (its `vectors.txt`) or of a word2vec text-format file (gensim's
    `save_word2vec_format`)."""
    from sslab.nets.text import read_word2vec_format

    path = Path(path)
    if path.is_dir():
        if not (path / "vectors.txt").is_file():
            raise SslabError(f"{path} holds no word vectors (vectors.txt); word2vec and glove runs write them")
        path = path / "vectors.txt"
    elif not path.is_file():
        raise SslabError(f"no such run folder or vectors file: {path}")
    return WordTable(*read_word2vec_format(path))


def parse_analogy(text: str) -> tuple[list[str], list[str]]:
    """"king - man + woman" -> (["king", "woman"], ["man"])."""
    tokens = text.replace("+", " + ").replace("-", " - ").split()
    positive, negative, sign = [], [], +1
    expect_word = True
    for t in tokens:
        if t in "+-":
            if expect_word:
                raise SslabError(f"cannot read the analogy {text!r}: write it as 'king - man + woman'")
            sign, expect_word = (+1 if t == "+" else -1), True
        else:
            if not expect_word:
                raise SslabError(f"cannot read the analogy {text!r}: put + or - between words")
            (positive if sign > 0 else negative).append(t)
            expect_word = False
    if expect_word or not positive:
        raise SslabError(f"cannot read the analogy {text!r}: write it as 'king - man + woman'")
    return positive, negative


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append((a, b, float(score)))
    return pairs


def read_questions(path: Path) -> dict[str, list[tuple[str, str, str, str]]]:
    sections: dict[str, list] = {}
    name = ""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            name = line[1:].strip()
            sections[name] = []
        elif line.strip():
            sections.setdefault(name, []).append(tuple(line.split()[:4]))
    return sections


def word_similarity(table: WordTable, path: Path) -> dict:
    """Spearman (and Pearson) correlation of cosine similarities with the human scores over the pairs whose both
    words are known."""
    from scipy import stats

    pairs = read_pairs(path)
    known = [(a, b, s) for a, b, s in pairs if a in table and b in table]
    out = {"pairs": len(known), "oov_pairs": len(pairs) - len(known),
           "oov_ratio": (len(pairs) - len(known)) / max(len(pairs), 1)}
    if len(known) < 3:
        return {**out, "spearman": None, "pearson": None}
    ia = [table.id(a) for a, _, _ in known]
    ib = [table.id(b) for _, b, _ in known]
    cos = (table.unit[ia] * table.unit[ib]).sum(1)
    human = np.array([s for _, _, s in known])
    return {**out, "spearman": float(stats.spearmanr(cos, human)[0]), "pearson": float(stats.pearsonr(cos, human)[0])}


def word_analogies(table: WordTable, path: Path, restrict: int = 300_000, chunk: int = 2048) -> dict:
    """3CosAdd accuracy: for "a b c d", is d the word nearest to b - a + c (unit vectors, a b c excluded) among
    the `restrict` most frequent words? Questions with a word outside those are skipped and counted."""
    sections = read_questions(path)
    limit = min(restrict, len(table.words))
    unit = table.unit[:limit]
    rows, per_section, oov = [], {}, 0
    for name, qs in sections.items():
        ok = 0
        for q in qs:
            ids = [table.index.get(w.lower(), limit) for w in q]
            if max(ids) >= limit:
                oov += 1
                continue
            rows.append((name, ids))
            ok += 1
        per_section[name] = {"questions": ok, "correct": 0}
    correct = 0
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        ids = np.array([r[1] for r in part])
        q = unit[ids[:, 1]] - unit[ids[:, 0]] + unit[ids[:, 2]]
        sims = q @ unit.T
        np.put_along_axis(sims, ids[:, :3], -np.inf, axis=1)
        hit = sims.argmax(1) == ids[:, 3]
        correct += int(hit.sum())
        for (name, _), h in zip(part, hit):
            per_section[name]["correct"] += int(h)
    total = len(rows)
    return {"accuracy": correct / total if total else None, "correct": correct, "questions": total,
            "oov_questions": oov, "sections": per_section}


def intrinsic(table: WordTable, root=None) -> dict:
    """All three sets: {"wordsim353": {...}, "simlex999": {...}, "analogy": {...}}; a set that cannot be found
    (no data root copy, no gensim, no network) is reported as unavailable rather than failing a run."""
    from sslab.data.text import word_vector_set

    out = {}
    for name, filename in SETS.items():
        try:
            path = word_vector_set(filename, root)
        except SslabError as err:
            out[name] = {"error": str(err)}
            continue
        out[name] = word_analogies(table, path) if name == "analogy" else word_similarity(table, path)
    return out


def intrinsic_lines(res: dict) -> list[str]:
    """One line per set, for the terminal and the report."""
    lines = []
    for name, r in res.items():
        if "error" in r:
            lines.append(f"{name}: not evaluated ({r['error']})")
        elif name == "analogy":
            acc = "n/a" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
            lines.append(f"analogy accuracy {acc} on {r['questions']:,} questions "
                         f"({r['oov_questions']:,} skipped: a word outside the vocabulary)")
        else:
            rho = "n/a" if r["spearman"] is None else f"{r['spearman']:.3f}"
            lines.append(f"{name} Spearman {rho} on {r['pairs']} pairs ({r['oov_pairs']} skipped: a word outside "
                         "the vocabulary)")
    return lines
