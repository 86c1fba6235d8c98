"""The glossary: it parses, a bad entry names the file and the entry, terms are found, and every
term is first used in the lesson that defines it."""

from __future__ import annotations

import pytest

from inspector.core.errors import InspectorError
from inspector.core.lessons.glossary import load_glossary, parse_glossary
from inspector.core.lessons.model import load_lessons

GOOD = """
- term: attention mask
  aliases: [attention mask, attention_mask]
  lesson: tokens
  definition: >-
    A list of 1s and 0s
    beside `input_ids`.
- term: micro-batch
  aliases: [micro-batch, "re:micro\\\\s*batch"]
  lesson: packing
  definition: What one device runs at once.
- term: "-100"
  lesson: shift
  definition: The label the loss skips.
"""


def test_a_glossary_parses_and_its_terms_are_found():
    g = parse_glossary(GOOD, lesson_ids={"tokens", "packing", "shift"})
    assert [t.term for t in g.terms] == ["attention mask", "micro-batch", "-100"]
    assert g.terms[0].definition == "A list of 1s and 0s beside `input_ids`."  # folded to one line
    assert [t.term for t in g.lookup("Attention_Mask")] == ["attention mask"]  # an alias, any case
    assert [t.term for t in g.lookup("`attention masks`")] == ["attention mask"]  # backticks, plural
    assert [t.term for t in g.lookup("batch")] == ["micro-batch"]  # part of a name
    assert g.lookup("softmax") == []
    assert g.nearest("atention mask") == ["attention mask"]
    assert [t.term for t in g.terms_of("packing")] == ["micro-batch"]
    assert [t.term for t in g.search("LABEL skips")] == ["-100"]  # every word, in the definition
    assert len(g.search("")) == 3


def test_aliases_match_whole_words_across_lines_with_a_plural():
    g = parse_glossary(GOOD)
    mask, micro, minus = g.terms
    assert mask.first_use("the Attention\nmasks of a batch") is not None
    assert mask.first_use("no attention_masking here") is None  # not a whole word
    assert micro.first_use("two micro-batches") is not None and micro.first_use("one microbatch") is not None
    assert minus.first_use("labels become `-100`") is not None  # no alias: the term itself
    assert minus.first_use("x-1000") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- term: a\n  lesson: x\n", "glossary g.yaml, entry 1 ('a'): missing key 'definition'"),
        ("- term: a\n  lesson: x\n  definition: d\n  see: b\n", "entry 1 ('a'): unknown key 'see'"),
        ("- term: a\n  lesson: x\n  definition: ''\n", "entry 1 ('a'): key 'definition' must be a non-empty text"),
        ("- term: a\n  lesson: x\n  definition: d\n  aliases: b\n", "entry 1 ('a'): key 'aliases' is 'b'"),
        ("- term: a\n  lesson: x\n  definition: d\n  aliases: ['re:(']\n",
         "entry 1 ('a'): alias 're:(' is not a valid regular expression"),
        ("- term: a\n  lesson: x\n  definition: d\n- term: A\n  lesson: x\n  definition: e\n",
         "entry 2 ('A'): the term is already entry 1"),
        ("- term: a\n  lesson: nowhere\n  definition: d\n", "entry 1 ('a'): key 'lesson' is 'nowhere', which is no lesson's id"),
        ("- just text\n", "entry 1: is 'just text', not a set of keys"),
        ("term: a\n", "glossary g.yaml is not a list of entries"),
        ("- term: [a\n", "glossary g.yaml is not valid YAML (line"),
    ],
)
def test_a_bad_entry_names_the_file_and_the_entry(text, message):
    with pytest.raises(InspectorError) as err:
        parse_glossary(text, "g.yaml", lesson_ids={"x"})
    assert message in str(err.value)


def test_the_shipped_glossary_names_only_lessons_that_exist():
    lessons = load_lessons()
    g = load_glossary(lesson_ids={lesson.id for lesson in lessons})
    assert len(g.terms) >= 45
    assert all(g.terms_of(lesson) for lesson in lessons)  # every lesson defines something
    assert all(len(t.definition.split()) <= 80 for t in g.terms), "a definition is a few plain sentences"


def test_every_term_is_first_used_in_the_lesson_that_defines_it():
    """In lesson order, a term's first use (any alias, any case, whole words) is in its lesson, and
    it is used there: a term is never met before it is defined."""
    lessons = load_lessons()
    number = {lesson.id: i + 1 for i, lesson in enumerate(lessons)}
    problems = []
    for term in load_glossary(lesson_ids=set(number)).terms:
        first = next((lesson for lesson in lessons if term.first_use(lesson.body)), None)
        home = lessons[number[term.lesson] - 1]
        if first is None or term.first_use(home.body) is None:
            seen = f" (first used in lesson {number[first.id]} {first.id})" if first is not None else ""
            problems.append(f"{term.term!r}: never used in lesson {number[term.lesson]} {term.lesson}, which defines it{seen}")
        elif first.id != term.lesson:
            found = term.first_use(first.body)
            assert found is not None
            problems.append(f"{term.term!r}: used in lesson {number[first.id]} {first.id} ({found.group(0)!r}) "
                            f"before lesson {number[term.lesson]} {term.lesson} defines it")
    assert problems == [], "\n".join(problems)
