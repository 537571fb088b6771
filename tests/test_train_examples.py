"""Training examples: record parsing, the copy curriculum, retrieval-augmented rows, the corpus stream."""

from __future__ import annotations

import random
import re

import pytest

from rag_bench.models.scratch import train_tokenizer
from rag_bench.prompt import render_prompt
from rag_bench.training.examples import (
    IGNORE,
    CopyTask,
    FactRows,
    corpus_stream,
    document_separator,
    invent_value,
    parse_record_line,
    probe_lines,
    record_lines,
    repeat_example,
    retrieval_examples,
)

RECORDS = {
    "Algeria": ["Capital: Algiers", "Currency: Algerian dinar", "Area - total: 2,381,740 sq km", "Coastline: 998 km"],
    "Chad": ["Capital: N'Djamena", "Currency: CFA franc", "Area - total: 1,284,000 sq km", "Coastline: 0 km"],
    "Peru": ["Capital: Lima", "Currency: nuevo sol", "Area - total: 1,285,216 sq km", "Coastline: 2,414 km"],
}
TEXTS = ["\n".join(f"{name} | Facts | {line}" for line in lines) for name, lines in RECORDS.items()]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS * 3 + ["Some prose without records. It has two sentences."], vocab_size=400)


def test_record_lines_are_parsed_and_other_lines_ignored():
    rec = parse_record_line("Algeria | Government | Capital: Algiers")
    assert (rec.entity, rec.section, rec.field, rec.value) == ("Algeria", "Government", "Capital", "Algiers")
    assert rec.prefix == "Algeria | Government | Capital:" and rec.text() == "Algeria | Government | Capital: Algiers"
    assert parse_record_line("Chad | Economy | GDP: $1 (2020): est.").value == "$1 (2020): est."
    assert parse_record_line("Algiers is the capital: a city.") is None
    grouped = record_lines([*TEXTS, "no record here"])
    assert sorted(grouped) == ["Algeria", "Chad", "Peru"] and len(grouped["Chad"]) == 4


def test_invented_values_keep_the_shape_of_the_original():
    rng = random.Random(0)
    value = invent_value("2,381,740 sq km (2020 est.)", rng)
    assert re.fullmatch(r"\d,\d{3},\d{3} sq km \(\d{4} est\.\)", value) and value != "2,381,740 sq km (2020 est.)"
    assert invent_value("Algiers", rng, ["harbour"]) == "Harbour"


def test_copy_example_repeats_lines_of_its_context_with_loss_on_the_values(tokenizer):
    for loss_on in ("values", "lines"):
        task = CopyTask(record_lines(TEXTS), seed=1, max_lines=4, max_distractors=1, loss_on=loss_on)
        for _ in range(20):
            ex = task.example(tokenizer)
            assert len(ex.ids) == len(ex.labels) and ex.ids[0] == tokenizer.bos_token_id
            context, query = tokenizer.decode(ex.ids, skip_special_tokens=True).rsplit("\n\n", 1)
            for line in query.strip().splitlines():  # every repeated line, value included, is in the context
                assert line in context
            scored = tokenizer.decode([t for t, label in zip(ex.ids, ex.labels, strict=True) if label != IGNORE])
            if loss_on == "lines":
                assert scored == query
            else:  # only the values (and their newlines) are scored: each is found only by matching its prefix
                assert scored == "".join(" " + line.split(": ", 1)[1] + "\n" for line in query.strip().splitlines())
    short = task.example(tokenizer, max_tokens=16)
    assert len(short.ids) <= 16
    with pytest.raises(ValueError, match="loss_on"):
        CopyTask(record_lines(TEXTS), loss_on="answers")


def test_repeat_rows_are_random_tokens_twice_with_loss_on_the_repeat():
    ex = repeat_example(random.Random(0), 50, skip_ids=[0, 1], bos_id=0, min_len=5, max_len=5)
    assert ex.ids[0] == 0 and ex.ids[1:6] == ex.ids[6:11] and not {0, 1} & set(ex.ids[1:])
    assert ex.labels[:7] == [IGNORE] * 7 and ex.labels[7:] == ex.ids[7:]  # the first repeated token is a guess


def test_copy_probes_ask_about_a_fact_only_the_context_holds():
    task = CopyTask(record_lines(TEXTS), seed=2, max_lines=4, max_distractors=2)
    real_facts = {line for text in TEXTS for line in text.splitlines()}
    for _ in range(20):
        prompt, gold, passages = task.probe(invented=True)
        question = prompt.rsplit("\n\n", 1)[1]
        assert prompt == render_prompt(question, passages)
        assert f"{question} {gold}" in prompt and f"{question} {gold}" not in real_facts
        assert question.split(" | ")[0] not in RECORDS  # an invented entity
        assert prompt.count(question + " ") == 1  # the prefix is unambiguous in the context


def test_copy_task_needs_record_lines():
    with pytest.raises(ValueError, match="record lines"):
        CopyTask(record_lines(["just prose"]))


def test_retrieval_examples_put_neighbours_before_the_text(tokenizer):
    calls = []

    def neighbours(texts):
        calls.append(list(texts))
        return [["Peru | Facts | Capital: Lima", "x " * 500] for _ in texts]

    examples = retrieval_examples(TEXTS, tokenizer, neighbours, block=128, max_examples=2, seed=0, segment_chars=60)
    assert len(calls) == 1 and len(calls[0]) == 2 and len(examples) == 2
    for ex, segment in zip(examples, calls[0], strict=True):
        assert len(ex.ids) <= 128  # the over-long second passage was dropped
        first = next(i for i, label in enumerate(ex.labels) if label != IGNORE)
        assert tokenizer.decode(ex.ids[:first], skip_special_tokens=True) == "Peru | Facts | Capital: Lima\n\n"
        assert tokenizer.decode(ex.ids[first:]) == segment + "\n"
    with pytest.raises(ValueError, match="neighbours returned 0 lists for 2 texts"):
        retrieval_examples(TEXTS, tokenizer, lambda texts: [], block=128, max_examples=2, seed=0)


def test_corpus_stream_separates_documents_with_bos(tokenizer):
    stream = corpus_stream(TEXTS, tokenizer)
    assert stream.count(tokenizer.bos_token_id) == len(TEXTS) and stream[0] == tokenizer.bos_token_id
    assert tokenizer.decode(stream, skip_special_tokens=True) == "".join(TEXTS)
    labelled, origins = corpus_stream(TEXTS, tokenizer, origins=[f"o{i}" for i in range(len(TEXTS))])
    assert labelled == stream and len(origins) == len(stream)
    first = len(tokenizer(TEXTS[0])["input_ids"])
    assert set(origins[:first]) == {"o0"} and origins[first] == "o1"


def test_a_pretrained_tokenizer_without_bos_gets_its_end_of_text_between_documents(smollm2):
    """SmolLM2's tokenizer adds no BOS and its BOS (<|im_start|>) opens a chat turn: documents are separated by
    <|endoftext|>, its pretraining separator, and nothing else is added."""
    tok = smollm2.tokenizer
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    assert document_separator(tok) == eot != tok.bos_token_id
    stream = corpus_stream(TEXTS, tok)
    assert stream.count(eot) == len(TEXTS) and stream[0] == eot and tok.bos_token_id not in stream
    assert tok.decode(stream, skip_special_tokens=True) == "".join(TEXTS)


def test_probe_lines_are_training_facts_with_short_values():
    probes = probe_lines(record_lines(TEXTS), 5, seed=0, max_value_chars=12)
    assert len(probes) == 5
    facts = {line for text in TEXTS for line in text.splitlines()}
    assert all(f"{prefix} {value}" in facts and len(value) <= 12 for prefix, value in probes)


def test_fact_rows_are_whole_record_lines_from_many_entities_in_random_order(tokenizer):
    facts = FactRows(record_lines(TEXTS), tokenizer)
    rows = [facts.example(random.Random(seed), block=64) for seed in range(3)]
    for row in rows:
        assert len(row.ids) == 64 and row.labels == row.ids and row.ids[0] == tokenizer.bos_token_id
        lines = tokenizer.decode(row.ids, skip_special_tokens=True).split("\n")[:-1]  # the last one may be cut
        assert lines and all(line in {ln for text in TEXTS for ln in text.splitlines()} for line in lines)
    decoded = [tokenizer.decode(r.ids, skip_special_tokens=True) for r in rows]
    assert len(set(decoded)) == 3  # the order depends on the seed, not on the documents' order
    assert decoded[0] == tokenizer.decode(facts.example(random.Random(0), block=64).ids, skip_special_tokens=True)
    entities = {line.split(" | ")[0] for line in decoded[0].split("\n")[:-1]}
    assert len(entities) >= 2
    with pytest.raises(ValueError, match="record lines"):
        FactRows(record_lines(["prose only"]), tokenizer)


def test_fact_rows_and_probes_keep_to_the_fields_named(tokenizer):
    records = record_lines(TEXTS)
    facts = FactRows(records, tokenizer, fields=["Capital", "Coastline"])
    assert len(facts.lines) == 6
    text = tokenizer.decode(facts.example(random.Random(0), block=200).ids, skip_special_tokens=True)
    fields = {line.split(" | ")[2].split(":")[0] for line in text.split("\n")[:-1]}
    assert fields and fields <= {"Capital", "Coastline"}
    assert {prefix.rsplit(" | ", 1)[1] for prefix, _ in probe_lines(records, 9, seed=0, fields=["Capital"])} == {
        "Capital:"}
    with pytest.raises(ValueError, match=r"fact_fields \['Capitol'\] match no record line.*'Capital'"):
        FactRows(records, tokenizer, fields=["Capitol"])


def test_hard_distractors_hold_the_target_fields_of_another_entity():
    task = CopyTask(record_lines(TEXTS), seed=3, min_lines=2, max_lines=3, max_distractors=2, p_same_fields=1.0)
    seen = 0
    for _ in range(20):
        target, passages = task._passages()
        fields = {r.field for r in target}
        for passage in passages:
            lines = [parse_record_line(line) for line in passage.split("\n")]
            if lines[0].entity == target[0].entity:
                continue
            seen += 1
            assert {r.field for r in lines} == fields and len({r.entity for r in lines}) == 1
            assert lines[0].entity in RECORDS  # a real entity's section, as retrieval would put beside the target
    assert seen >= 10
