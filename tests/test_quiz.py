"""The resnet_from_scratch quiz: well formed, and its key shows no pattern a student could exploit
without knowing the answers (position of the correct option, its length, hedged wording)."""

import re
from collections import Counter

import pytest

from coursekit import notebooks as nbs
from coursekit.config import load_course

SOURCE = nbs.read(load_course().assignments["resnet_from_scratch"].notebook("source"))
HEDGES = re.compile(r"\b(typically|usually|often|generally|mostly|largely|may|might|can|could|tends?|"
                    r"sometimes|partly|some|approximately|roughly)\b", re.IGNORECASE)


def questions() -> dict[str, dict[str, str]]:
    """{"q1": {"a": option text, ...}, ...} from the quiz's markdown cell."""
    text = nbs.cells_by_grade_id(SOURCE)["quiz_questions"].source
    found = {}
    for block in re.split(r"\n(?=\*\*Q\d+\.\*\*)", text):
        m = re.match(r"\*\*Q(\d+)\.\*\*", block)
        if m:
            found[f"q{m.group(1)}"] = dict(re.findall(r"^- ([a-d])\) (.+)$", block, flags=re.M))
    return found


def key() -> dict[str, str]:
    namespace = {}
    exec(nbs.reference_answers(SOURCE)["quiz"], namespace)
    return namespace["quiz_answers"]


QUESTIONS, KEY = questions(), key()
N = len(KEY)


def test_every_question_has_four_options_one_key_and_a_check():
    assert list(QUESTIONS) == [f"q{i}" for i in range(1, N + 1)] == list(KEY)
    assert all(list(options) == ["a", "b", "c", "d"] for options in QUESTIONS.values())
    assert set(KEY.values()) <= set("abcd")
    checks = {nbs.grade_id(c) for c in SOURCE.cells if nbs.is_test(c) and nbs.grade_id(c).startswith("test_quiz_")}
    assert checks == {f"test_quiz_q{i:02d}" for i in range(1, N + 1)}, "one 1-point check per question"


@pytest.mark.parametrize("extreme", [max, min], ids=["longest", "shortest"])
def test_correct_option_is_rarely_the_longest_or_shortest(extreme):
    hits = []
    for q, options in QUESTIONS.items():
        lengths = {letter: len(text) for letter, text in options.items()}
        target = extreme(lengths.values())
        if lengths[KEY[q]] == target and list(lengths.values()).count(target) == 1:
            hits.append(q)
    assert len(hits) <= N // 3, f"the correct option is the {extreme.__name__} one in {hits}"


def test_positions_are_spread():
    counts = Counter(KEY.values())
    assert all(N // 4 - 1 <= counts[letter] <= N // 4 + 2 for letter in "abcd"), f"positions of the key: {counts}"
    letters = [KEY[q] for q in QUESTIONS]
    runs = [letters[i] for i in range(len(letters) - 2) if letters[i] == letters[i + 1] == letters[i + 2]]
    assert not runs, f"the same letter three times in a row: {letters}"


def test_hedged_wording_does_not_mark_the_correct_option():
    correct = [options[KEY[q]] for q, options in QUESTIONS.items()]
    wrong = [text for q, options in QUESTIONS.items() for letter, text in options.items() if letter != KEY[q]]
    share = lambda texts: sum(bool(HEDGES.search(t)) for t in texts) / len(texts)
    assert share(correct) <= share(wrong) + 0.1, (
        f"hedges in {share(correct):.0%} of the correct options vs {share(wrong):.0%} of the others")
