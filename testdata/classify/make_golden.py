"""Golden TF-IDF features and logistic-regression probabilities from scikit-learn for
crates/train/tests/tfidf_sklearn.rs, which holds duet's TF-IDF baseline
(duet_train::classify::tfidf::fit, duet_model::predict::tfidf) to them.

The settings are the ones duet documents (crates/model/src/predict/tfidf.rs), spelled out:

  word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True,
                         token_pattern=r"(?u)\\b\\w\\w+\\b", norm="l2", use_idf=True,
                         smooth_idf=True, sublinear_tf=True, min_df=1)
  char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), ...the same...)
  X    = hstack([word, char])          (each part L2-normalised on its own, as duet does)
  LogisticRegression(l1_ratio=0 (L2), C, solver="lbfgs", fit_intercept=True, class_weight)

fitted to convergence (tol 1e-10), so that the golden probabilities are the optimum of the
objective, not where a solver happened to stop.

One deliberate difference, stated here and in the test: duet fits a softmax with one weight
row per class and ½‖W‖² over all rows, also for two classes, while scikit-learn fits one weight
vector w for a binary problem. At the optimum duet's rows are ±w/2, so ½(‖w/2‖² + ‖w/2‖²) =
¼‖w‖²: the same problem as scikit-learn's with C twice duet's. The binary case below records
duet's C and the C scikit-learn was given (2·C).

Run from the repository root (the venv is git-ignored):

  python3 -m venv data/pyenv && data/pyenv/bin/pip install scikit-learn==1.9.1
  data/pyenv/bin/python testdata/classify/make_golden.py
"""

import json
import pathlib

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

# Three topics, with what the tokenizers must get right: capitals, punctuation, digits,
# one-letter words (no word token, but character n-grams), an underscore, repeated words
# (sublinear tf), and an accented letter.
THREE = [
    ("The striker scored a late goal, and the team won the match 2-1.", "sport"),
    ("Coach says the league season starts on Saturday; the squad is ready.", "sport"),
    ("Goal! Goal! Goal! The fans sang as the keeper saved a penalty.", "sport"),
    ("A tennis final in Paris: the champion won in straight sets.", "sport"),
    ("The team's new signing trained with the squad before the match.", "sport"),
    ("Shares fell 3% as the bank raised interest rates again.", "business"),
    ("The market rallied; investors bought stock in the tech firm.", "business"),
    ("Profit rose at the retailer, and the board raised its dividend.", "business"),
    ("The central bank kept rates on hold, traders said on Monday.", "business"),
    ("An investor_relations call: revenue up, costs down, shares up.", "business"),
    ("The film won best picture; the director thanked the cast.", "arts"),
    ("A new album from the band, recorded live in a small café.", "arts"),
    ("The novel's author read a chapter at the festival tonight.", "arts"),
    ("Critics praised the play, the actors and the stage design.", "arts"),
    ("The museum opens an exhibition of paintings and sculpture.", "arts"),
]
THREE_TEST = [
    "The keeper saved the match for the team.",
    "Bank shares rose as rates fell.",
    "A band played at the film festival.",
    "I",
    "Goal goal goal: 3-0!",
]
# Two classes with unequal counts, fitted with balanced class weights.
TWO = [
    ("WIN a FREE prize now!!! Call 0800 123 456.", "spam"),
    ("Claim your cash reward: text WIN to 80080.", "spam"),
    ("URGENT: your account won a free holiday, reply now", "spam"),
    ("Are we still on for lunch at noon?", "ham"),
    ("I'll be late, the bus is stuck in traffic.", "ham"),
    ("Can you send me the notes from today's meeting?", "ham"),
    ("Happy birthday! See you at the party tonight.", "ham"),
    ("Ok, call me when you get home.", "ham"),
]
TWO_TEST = [
    "Free cash prize, call now!",
    "See you at lunch.",
    "win",
]
# Words shorter than the shortest character n-gram (char_wb 4-5: " a ", " ok ") count once,
# whole; single words only.
SHORT = [
    ("ok i go", "yes"),
    ("ok ok, a yes", "yes"),
    ("so ok by me", "yes"),
    ("no, i do not", "no"),
    ("no no no", "no"),
    ("i am not in", "no"),
]
SHORT_TEST = ["ok", "a no", "x"]


def vectorizer(analyzer, ngram_range):
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        lowercase=True,
        token_pattern=r"(?u)\b\w\w+\b",
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=True,
        min_df=1,
    )


def r(v):
    """A float to 10 significant digits (duet computes features in f32: 7)."""
    return float(f"{v:.10g}")


def case(name, data, test, c, sklearn_c, balanced, word_ngrams=(1, 2), char_ngrams=(2, 5)):
    texts = [t for t, _ in data]
    y = [label for _, label in data]
    word = vectorizer("word", word_ngrams).fit(texts)
    char = vectorizer("char_wb", char_ngrams).fit(texts)
    # Terms named as duet names them: "w " + word n-gram, "c " + character n-gram.
    names = ["w " + t for t in word.get_feature_names_out()] + [
        "c " + t for t in char.get_feature_names_out()
    ]
    idf = np.concatenate([word.idf_, char.idf_])

    def features(docs):
        x = sp.hstack([word.transform(docs), char.transform(docs)]).tocsr()
        rows = []
        for i in range(x.shape[0]):
            lo, hi = x.indptr[i], x.indptr[i + 1]
            rows.append({names[j]: r(v) for j, v in zip(x.indices[lo:hi], x.data[lo:hi])})
        return x, rows

    x_train, rows_train = features(texts)
    x_test, rows_test = features(test)
    # Feature values of the first three training texts and all test texts keep the file small;
    # the vocabulary and idf are whole.
    clf = LogisticRegression(
        l1_ratio=0.0,  # L2 (scikit-learn 1.8 spells penalty="l2" this way)
        C=sklearn_c,
        solver="lbfgs",
        fit_intercept=True,
        tol=1e-10,
        max_iter=100_000,
        class_weight="balanced" if balanced else None,
    ).fit(x_train, y)
    assert clf.n_iter_[0] < 100_000, "not converged"
    return {
        "name": name,
        "c": c,
        "sklearn_c": sklearn_c,
        "balanced": balanced,
        "word_ngrams": list(word_ngrams),
        "char_ngrams": list(char_ngrams),
        "texts": texts,
        "labels": y,
        "classes": clf.classes_.tolist(),  # columns of the probabilities (sorted)
        "test_texts": test,
        "idf": {n: r(v) for n, v in zip(names, idf.tolist())},
        "features_train": rows_train[:3],
        "features_test": rows_test,
        "proba_train": clf.predict_proba(x_train).tolist(),
        "proba_test": clf.predict_proba(x_test).tolist(),
    }


golden = {
    "made_by": "testdata/classify/make_golden.py",
    "sklearn_version": sklearn.__version__,
    "cases": [
        case("three_topics", THREE, THREE_TEST, 10.0, 10.0, False),
        case("two_classes_balanced", TWO, TWO_TEST, 10.0, 20.0, True),
        case("short_words", SHORT, SHORT_TEST, 1.0, 2.0, False, (1, 1), (4, 5)),
    ],
}
out = pathlib.Path(__file__).with_name("tfidf_golden.json")
out.write_text(json.dumps(golden, ensure_ascii=False, separators=(",", ":")) + "\n")
print(f"wrote {out}")
