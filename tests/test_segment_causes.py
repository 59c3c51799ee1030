"""tools/segment_causes.py over several scene kinds and seeds: each set's line, then their sum (a rule is
judged on more than two close-range seeds), with real generated sequences and the shipped engines."""

from __future__ import annotations

import json

from tests.conftest import load_tool


def test_several_sets_print_each_and_their_sum(tmp_path, capsys):
    causes = load_tool("segment_causes")
    out = tmp_path / "rows.json"
    assert (
        causes.main(["--kind", "desk,egocentric", "--seed", "9200,9300", "--frames", "8", "--json", str(out)])
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [(x["kind"], x["seed"]) for x in lines[:4]] == [
        ("desk", 9200),
        ("desk", 9300),
        ("egocentric", 9200),
        ("egocentric", 9300),
    ]
    whole = lines[4]
    assert whole["visible"] == sum(x["visible"] for x in lines[:4]) > 0
    for state, n in whole["states"].items():
        assert n == sum(x["states"].get(state, 0) for x in lines[:4])
        assert abs(whole["share"][state] - n / whole["visible"]) < 1e-4
    sets = json.loads(out.read_text())
    assert [len(s["rows"]) for s in sets] == [8, 8, 8, 8]


def test_the_sum_of_one_set_gives_its_shares():
    causes = load_tool("segment_causes")
    assert causes.total([{"visible": 3, "states": {"hand": 2, "miss": 1}, "wrong_on": {}}])["share"] == {
        "hand": 0.6667,
        "miss": 0.3333,
    }
